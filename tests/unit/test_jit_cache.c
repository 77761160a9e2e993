/* soft/jit/code_cache: W^X (the views' permissions in /proc/self/maps, and
 * a store to the executable view or a jump into the writable one kills a
 * child process), code written through the RW view runs through the RX
 * view, patched jumps and calls change what runs, reservation limits and
 * the flush path, and a tiny cache under pressure from many small blocks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/soft/jit/code_cache.h"
#include "engine/soft/jit/emit.h"

typedef int (*int_fn)(void);

static int_fn as_fn(uintptr_t rx) { return (int_fn)rx; }

/* Emits `mov eax, value; ret` as one block; returns its execute address. */
static uintptr_t block_returning(struct jit_cache *c, int value)
{
	uint8_t *rw;
	uintptr_t rx;
	assert_int_equal(jit_cache_reserve(c, 32, &rw, &rx), 0);
	struct emit e;
	emit_init(&e, rw, 32, rx);
	emit_mov_ri(&e, 4, H_RAX, (uint32_t)value);
	emit_ret(&e);
	assert_true(emit_ok(&e));
	assert_int_equal(jit_cache_commit(c, emit_offset(&e)), 0);
	jit_cache_sync(c, rx, emit_offset(&e));
	return rx;
}

/* The permissions of the mapping that starts at `addr`, from /proc/self/maps. */
static bool mapping_perms(uintptr_t addr, char perms[5], char *path, size_t path_len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	char line[512];
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t start, end;
		char p[5] = "", name[256] = "";
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %*s %*s %*s %255[^\n]", &start,
			   &end, p, name) < 3)
			continue;
		if (start == addr) {
			memcpy(perms, p, 5);
			snprintf(path, path_len, "%s", name);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

/* No mapping of the cache's memfd is writable and executable. */
static unsigned wx_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	char line[512];
	unsigned bad = 0;
	while (fgets(line, sizeof(line), f)) {
		char p[5] = "";
		if (sscanf(line, "%*s %4s", p) == 1 && strstr(line, "shrike-jit") && p[1] == 'w' &&
		    p[2] == 'x')
			bad++;
	}
	fclose(f);
	return bad;
}

static void test_init_bounds(void **state)
{
	(void)state;
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 0), -EINVAL);
	assert_int_equal(jit_cache_init(&c, JIT_CACHE_MIN_SIZE - 1), -EINVAL);
	assert_int_equal(jit_cache_init(&c, (size_t)JIT_CACHE_MAX_SIZE + 1), -EINVAL);
	jit_cache_destroy(&c); /* harmless after a failed init */
	assert_int_equal(jit_cache_init(&c, 5000), 0);
	assert_int_equal(jit_cache_size(&c) % (size_t)sysconf(_SC_PAGESIZE), 0);
	assert_true(jit_cache_size(&c) >= 5000);
	assert_int_equal(jit_cache_used(&c), 0);
	jit_cache_destroy(&c);
	jit_cache_destroy(&c);
}

static void test_views_are_wx(void **state)
{
	(void)state;
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 64 * 1024 * 1024), 0);
	char perms[5], path[256];
	assert_true(mapping_perms((uintptr_t)c.rx, perms, path, sizeof(path)));
	assert_string_equal(perms, "r-xs");
	assert_non_null(strstr(path, "shrike-jit"));
	assert_true(mapping_perms((uintptr_t)c.rw, perms, path, sizeof(path)));
	assert_string_equal(perms, "rw-s");
	assert_non_null(strstr(path, "shrike-jit"));
	assert_int_equal(wx_mappings(), 0);

	struct jit_cache_stats s;
	jit_cache_stats(&c, &s);
	/* Placement is best effort; report it, and check it when claimed. */
	uintptr_t text = (uintptr_t)&jit_cache_init;
	print_message("[ INFO     ] rx view at %p, %s shrike's text (%p)\n", (void *)c.rx,
		      s.near_text ? "within rel32 reach of" : "NOT near", (void *)text);
	if (s.near_text) {
		assert_true(emit_rel32_reaches((uintptr_t)c.rx, text));
		assert_true(emit_rel32_reaches((uintptr_t)c.rx + c.size, text));
	}
	uintptr_t rx = (uintptr_t)c.rx, rw = (uintptr_t)c.rw;
	jit_cache_destroy(&c);
	assert_false(mapping_perms(rx, perms, path, sizeof(path)) && strstr(path, "shrike-jit"));
	assert_false(mapping_perms(rw, perms, path, sizeof(path)) && strstr(path, "shrike-jit"));
}

/* In a child: the store or the jump must kill it with SIGSEGV. */
static void expect_segv(struct jit_cache *c, bool write_rx)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
		if (write_rx)
			*(volatile uint8_t *)c->rx = 0xc3;
		else
			((int_fn)(uintptr_t)c->rw)();
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
}

static void test_wx_enforced(void **state)
{
	(void)state;
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 4096), 0);
	block_returning(&c, 7); /* valid code at the start of both views */
	expect_segv(&c, true);
	expect_segv(&c, false);
	jit_cache_destroy(&c);
}

static int helper_add(int a, int b) { return a + b; }

static void test_written_code_runs(void **state)
{
	(void)state;
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 1024 * 1024), 0);
	uintptr_t f42 = block_returning(&c, 42);
	assert_int_equal(as_fn(f42)(), 42);

	/* a C helper called from generated code: rel32 when the cache sits
	 * near the text, through a register otherwise */
	uint8_t *rw;
	uintptr_t rx;
	assert_int_equal(jit_cache_reserve(&c, 64, &rw, &rx), 0);
	assert_int_equal(rx % JIT_CACHE_ALIGN, 0);
	struct emit e;
	emit_init(&e, rw, 64, rx);
	emit_push_r(&e, H_RBX); /* keeps the stack 16-byte aligned at the call */
	emit_mov_ri(&e, 4, H_RDI, 30);
	emit_mov_ri(&e, 4, H_RSI, 12);
	size_t before = emit_offset(&e);
	emit_call_abs(&e, (uintptr_t)&helper_add, H_RAX);
	size_t call_len = emit_offset(&e) - before;
	emit_alu_ri(&e, HALU_ADD, 4, H_RAX, 1000);
	emit_pop_r(&e, H_RBX);
	emit_ret(&e);
	assert_true(emit_ok(&e));
	assert_int_equal(jit_cache_commit(&c, emit_offset(&e)), 0);
	jit_cache_sync(&c, rx, emit_offset(&e));
	assert_int_equal(as_fn(rx)(), 1042);
	if (c.near_text)
		assert_int_equal(call_len, 5);
	jit_cache_destroy(&c);
}

/* A jump and a call between blocks, re-targeted through the RW alias. */
static void test_patching_changes_what_runs(void **state)
{
	(void)state;
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 1024 * 1024), 0);
	uintptr_t one = block_returning(&c, 1);
	uintptr_t two = block_returning(&c, 2);

	uint8_t *rw;
	uintptr_t rx;
	assert_int_equal(jit_cache_reserve(&c, 64, &rw, &rx), 0);
	struct emit e;
	emit_init(&e, rw, 64, rx);
	emit_align_rel32(&e, 1);
	size_t jmp_field = emit_jmp_rel32(&e, one);
	uintptr_t caller = emit_here(&e);
	emit_push_r(&e, H_RBX);
	emit_align_rel32(&e, 1);
	size_t call_field = emit_call_rel32(&e, one);
	emit_alu_ri(&e, HALU_ADD, 4, H_RAX, 100);
	emit_pop_r(&e, H_RBX);
	emit_ret(&e);
	assert_true(emit_ok(&e));
	assert_int_equal(jit_cache_commit(&c, emit_offset(&e)), 0);
	jit_cache_sync(&c, rx, emit_offset(&e));

	assert_int_equal(as_fn(rx)(), 1);
	assert_int_equal(as_fn(caller)(), 101);

	/* patch through the writable alias of the execute address */
	uint8_t *field = jit_cache_rw(&c, rx + jmp_field);
	assert_ptr_equal(field, rw + jmp_field);
	assert_int_equal(emit_patch_rel32(field, rx + jmp_field, two), 0);
	uint8_t *call = jit_cache_rw(&c, rx + call_field);
	assert_int_equal(emit_patch_rel32(call, rx + call_field, two), 0);
	jit_cache_sync(&c, rx, emit_offset(&e));
	int r = jit_cache_sync_cores(&c);
	assert_true(r == 0 || r == -ENOSYS);
	assert_int_equal(as_fn(rx)(), 2);
	assert_int_equal(as_fn(caller)(), 102);

	/* and back */
	assert_int_equal(emit_patch_rel32(field, rx + jmp_field, one), 0);
	jit_cache_sync(&c, rx + jmp_field, 4);
	assert_int_equal(as_fn(rx)(), 1);
	jit_cache_destroy(&c);
}

static void test_reserve_and_commit(void **state)
{
	(void)state;
	struct jit_cache c;
	uint8_t *rw;
	uintptr_t rx;
	assert_int_equal(jit_cache_init(&c, 8192), 0);
	assert_int_equal(jit_cache_commit(&c, 0), -EINVAL); /* nothing open */
	assert_int_equal(jit_cache_reserve(&c, 0, &rw, &rx), -EINVAL);
	assert_int_equal(jit_cache_reserve(&c, 8193, &rw, &rx), -E2BIG);
	assert_int_equal(jit_cache_reserve(&c, 100, &rw, &rx), 0);
	assert_ptr_equal(rw, c.rw);
	assert_int_equal(rx, (uintptr_t)c.rx);
	uint8_t *rw2;
	uintptr_t rx2;
	assert_int_equal(jit_cache_reserve(&c, 100, &rw2, &rx2), -EBUSY);
	assert_int_equal(jit_cache_commit(&c, 101), -EINVAL);
	assert_int_equal(jit_cache_commit(&c, 7), 0);
	assert_int_equal(jit_cache_used(&c), 7);
	assert_int_equal(jit_cache_commit(&c, 7), -EINVAL); /* closed */

	/* starts are 16-byte aligned */
	assert_int_equal(jit_cache_reserve(&c, 16, &rw, &rx), 0);
	assert_int_equal(rx, (uintptr_t)c.rx + 16);
	assert_ptr_equal(jit_cache_rw(&c, rx), rw);
	assert_int_equal(jit_cache_commit(&c, 0), 0); /* abandoned: nothing used */
	assert_int_equal(jit_cache_used(&c), 7);

	/* the rest of the cache, exactly, then nothing more */
	assert_int_equal(jit_cache_reserve(&c, 8192 - 16 + 1, &rw, &rx), -ENOSPC);
	assert_int_equal(jit_cache_reserve(&c, 8192 - 16, &rw, &rx), 0);
	assert_int_equal(jit_cache_commit(&c, 8192 - 16), 0);
	assert_int_equal(jit_cache_used(&c), 8192);
	assert_int_equal(jit_cache_reserve(&c, 1, &rw, &rx), -ENOSPC);

	/* the caller's flush path: flush and retry */
	assert_int_equal(jit_cache_generation(&c), 0);
	jit_cache_flush(&c);
	assert_int_equal(jit_cache_used(&c), 0);
	assert_int_equal(jit_cache_generation(&c), 1);
	assert_int_equal(jit_cache_flushes(&c), 1);
	assert_int_equal(jit_cache_reserve(&c, 8192, &rw, &rx), 0);
	/* a flush drops an open reservation */
	jit_cache_flush(&c);
	assert_int_equal(jit_cache_commit(&c, 1), -EINVAL);

	/* addresses outside the cache have no alias */
	assert_null(jit_cache_rw(&c, (uintptr_t)c.rx - 1));
	assert_null(jit_cache_rw(&c, (uintptr_t)c.rx + c.size));
	assert_false(jit_cache_contains(&c, (uintptr_t)c.rx + c.size));
	assert_true(jit_cache_contains(&c, (uintptr_t)c.rx + c.size - 1));

	struct jit_cache_stats s;
	jit_cache_stats(&c, &s);
	assert_int_equal(s.size, 8192);
	assert_int_equal(s.used, 0);
	assert_int_equal(s.peak, 8192);
	assert_int_equal(s.blocks, 2);
	assert_int_equal(s.flushes, 2);
	assert_int_equal(s.generation, 2);
	jit_cache_destroy(&c);
}

/* Flushed code is INT3, so a stale pointer into it traps. */
static void test_flush_poisons_old_code(void **state)
{
	(void)state;
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 4096), 0);
	uintptr_t f = block_returning(&c, 5);
	assert_int_equal(as_fn(f)(), 5);
	jit_cache_flush(&c);
	uint8_t *p = jit_cache_rw(&c, f);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(p[i], 0xcc);
	uintptr_t g = block_returning(&c, 6);
	assert_int_equal(g, f); /* the space is reused */
	assert_int_equal(as_fn(g)(), 6);
	jit_cache_destroy(&c);
}

/* Many small blocks in a one-page cache: each runs right after it is made
 * and later in its generation; flushes come when (and only when) the
 * next block would not fit. */
static void test_tiny_cache_under_pressure(void **state)
{
	(void)state;
	enum { BLOCKS = 20000, MAX = 32, TABLE = 512 };
	struct jit_cache c;
	assert_int_equal(jit_cache_init(&c, 4096), 0);
	uintptr_t table[TABLE]; /* the caller's block table, dropped on a new generation */
	int values[TABLE];
	unsigned n = 0;
	uint64_t gen = jit_cache_generation(&c);
	uint64_t per_generation = (4096 - MAX) / JIT_CACHE_ALIGN + 1;
	for (int i = 0; i < BLOCKS; i++) {
		uint8_t *rw;
		uintptr_t rx;
		int r = jit_cache_reserve(&c, MAX, &rw, &rx);
		if (r == -ENOSPC) {
			assert_int_equal(n, per_generation);
			jit_cache_flush(&c);
			r = jit_cache_reserve(&c, MAX, &rw, &rx);
		}
		assert_int_equal(r, 0);
		if (jit_cache_generation(&c) != gen) {
			gen = jit_cache_generation(&c);
			n = 0;
		}
		struct emit e;
		emit_init(&e, rw, MAX, rx);
		emit_mov_ri(&e, 4, H_RAX, (uint32_t)i);
		emit_ret(&e);
		assert_true(emit_ok(&e));
		assert_int_equal(jit_cache_commit(&c, emit_offset(&e)), 0);
		jit_cache_sync(&c, rx, emit_offset(&e));
		assert_true(n < TABLE);
		table[n] = rx;
		values[n] = i;
		n++;
		assert_int_equal(as_fn(rx)(), i);
		unsigned old = (unsigned)(i * 7919) % n;
		assert_int_equal(as_fn(table[old])(), values[old]);
	}
	assert_int_equal(jit_cache_flushes(&c), (BLOCKS - 1) / per_generation);
	assert_int_equal(jit_cache_generation(&c), jit_cache_flushes(&c));
	assert_true(jit_cache_used(&c) <= jit_cache_size(&c));
	struct jit_cache_stats s;
	jit_cache_stats(&c, &s);
	assert_int_equal(s.blocks, BLOCKS);
	assert_int_equal(wx_mappings(), 0);
	jit_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_bounds),
		cmocka_unit_test(test_views_are_wx),
		cmocka_unit_test(test_wx_enforced),
		cmocka_unit_test(test_written_code_runs),
		cmocka_unit_test(test_patching_changes_what_runs),
		cmocka_unit_test(test_reserve_and_commit),
		cmocka_unit_test(test_flush_poisons_old_code),
		cmocka_unit_test(test_tiny_cache_under_pressure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
