/* Soft CPU: decoder basics and the MOV group. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/soft/soft.h"
#include "soft_harness.h"

static void test_mov_imm_and_reg(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	assert_non_null(h);
	/* mov rax, 0x1122334455667788; mov ebx, eax; mov cl, 0x7f; mov ah, cl */
	static const uint8_t code[] = {0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
				       0x89, 0xc3, 0xb1, 0x7f, 0x88, 0xcc};
	harness_load(h, code, sizeof(code));
	assert_int_equal(harness_step(h, 4), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x1122334455667f88ULL);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x55667788ULL); /* 32-bit write zero-extends */
	assert_int_equal(h->state.gpr[GPR_RCX] & 0xff, 0x7f);
	assert_int_equal(h->state.rip, HARNESS_CODE_ADDR + sizeof(code));
	harness_free(h);
}

static void test_mov_memory_and_lea(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	h->state.gpr[GPR_RSI] = HARNESS_DATA_ADDR;
	h->state.gpr[GPR_RCX] = 4;
	harness_sync(h);
	/* mov dword [rsi+rcx*2+8], 0xdeadbeef; mov rdx, [rsi+16]; lea rdi, [rsi+rcx*8-1];
	 * movzx eax, byte [rsi+16]; movsx r8, word [rsi+18] */
	static const uint8_t code[] = {0xc7, 0x44, 0x4e, 0x08, 0xef, 0xbe, 0xad, 0xde,
				       0x48, 0x8b, 0x56, 0x10,
				       0x48, 0x8d, 0x7c, 0xce, 0xff,
				       0x0f, 0xb6, 0x46, 0x10,
				       0x4c, 0x0f, 0xbf, 0x46, 0x12};
	harness_load(h, code, sizeof(code));
	assert_int_equal(harness_step(h, 5), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RDX], 0xdeadbeefULL);
	assert_int_equal(h->state.gpr[GPR_RDI], HARNESS_DATA_ADDR + 31);
	assert_int_equal(h->state.gpr[GPR_RAX], 0xef);
	assert_int_equal(h->state.gpr[GPR_R8], 0xffffffffffffdeadULL);
	harness_free(h);
}

static void test_rip_relative_and_moffs(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	uint64_t v = 0xabcdef0123456789ULL;
	guest_mem_write(&h->mem, HARNESS_CODE_ADDR + 0x100, &v, 8);
	/* mov rax, [rip+0xf9] (next rip = +7, +0xf9 = 0x100); mov [abs 0x300000], rax via A3 */
	static const uint8_t code[] = {0x48, 0x8b, 0x05, 0xf9, 0x00, 0x00, 0x00,
				       0x48, 0xa3, 0x00, 0x00, 0x30, 0, 0, 0, 0, 0};
	harness_load(h, code, sizeof(code));
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], v);
	uint64_t out = 0;
	guest_mem_read(&h->mem, HARNESS_DATA_ADDR, &out, 8);
	assert_int_equal(out, v);
	harness_free(h);
}

static void test_unmapped_access_faults(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	/* mov rax, [0x40000000] (beyond the 4 GiB identity map? no: inside, but outside RAM → MMIO) */
	static const uint8_t code[] = {0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x40};
	harness_load(h, code, sizeof(code));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->last_exit.kind, VCPU_EXIT_MMIO);
	assert_int_equal(h->last_exit.mmio.addr, 0x40000000ULL);
	assert_int_equal(h->state.gpr[GPR_RAX], ~0ULL); /* unclaimed MMIO reads all-ones */
	harness_free(h);
}

/* An 8-byte access split 3 + 5 across a page boundary: each piece moves
 * exactly its own bytes (the neighbours stay intact) and reads back. */
static void test_page_crossing_pieces(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	assert_non_null(h);
	uint64_t at = HARNESS_DATA_ADDR + 0xffd;
	uint8_t sentinel[16];
	memset(sentinel, 0xa5, sizeof(sentinel));
	guest_mem_write(&h->mem, at - 4, sentinel, sizeof(sentinel));
	h->state.gpr[GPR_RAX] = 0x1122334455667788ULL;
	h->state.gpr[GPR_RBX] = at;
	harness_sync(h);
	/* mov [rbx], rax; mov rcx, [rbx] */
	static const uint8_t code[] = {0x48, 0x89, 0x03, 0x48, 0x8b, 0x0b};
	harness_load(h, code, sizeof(code));
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RCX], 0x1122334455667788ULL);
	uint8_t got[16];
	guest_mem_read(&h->mem, at - 4, got, sizeof(got));
	static const uint8_t want[16] = {0xa5, 0xa5, 0xa5, 0xa5, 0x88, 0x77, 0x66, 0x55,
					 0x44, 0x33, 0x22, 0x11, 0xa5, 0xa5, 0xa5, 0xa5};
	assert_memory_equal(got, want, sizeof(want));
	harness_free(h);
}

/* Runs code as decoded blocks (no single-stepping) until HLT: the block
 * loop, a taken backward Jcc and the fast 32/64-bit forms together. */
static void test_block_run_fast_forms(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	assert_non_null(h);
	h->state.gpr[GPR_RBX] = HARNESS_DATA_ADDR;
	h->state.gpr[GPR_RDX] = 0xffffffffffffff00ULL;
	harness_sync(h);
	soft_engine_ops.set_single_step(h->vcpu, false);
	static const uint8_t code[] = {
	    0xb9, 0x0a, 0x00, 0x00, 0x00,       /* mov ecx, 10 */
	    0x31, 0xc0,                         /* xor eax, eax */
	    0x48, 0x01, 0xc8,                   /* 1: add rax, rcx */
	    0xff, 0xc9,                         /* dec ecx */
	    0x75, 0xf9,                         /* jnz 1b */
	    0x48, 0xc1, 0xe0, 0x02,             /* shl rax, 2 */
	    0x48, 0x89, 0x03,                   /* mov [rbx], rax */
	    0x48, 0x8b, 0x33,                   /* mov rsi, [rbx] */
	    0x48, 0x83, 0x2b, 0x14,             /* sub qword [rbx], 20 */
	    0x48, 0x3d, 0xdc, 0x00, 0x00, 0x00, /* cmp rax, 220 */
	    0x0f, 0x94, 0xc2,                   /* sete dl */
	    0x48, 0x39, 0xc6,                   /* cmp rsi, rax */
	    0x7c, 0x02,                         /* jl +2 (not taken) */
	    0xf7, 0xd6,                         /* not esi */
	    0xf4,                               /* hlt */
	};
	harness_load(h, code, sizeof(code));
	struct vcpu_exit x = {0};
	for (int k = 0; k < 100 && x.kind != VCPU_EXIT_HLT; k++)
		soft_engine_ops.run(h->vcpu, &x);
	assert_int_equal(x.kind, VCPU_EXIT_HLT);
	soft_engine_ops.get_state(h->vcpu, &h->state);
	assert_int_equal(h->state.gpr[GPR_RAX], 220);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_int_equal(h->state.gpr[GPR_RDX], 0xffffffffffffff01ULL);
	assert_int_equal(h->state.gpr[GPR_RSI], (uint32_t)~220u);
	uint64_t m = 0;
	guest_mem_read(&h->mem, HARNESS_DATA_ADDR, &m, sizeof(m));
	assert_int_equal(m, 200);
	assert_int_equal(h->state.rip, HARNESS_CODE_ADDR + sizeof(code));
	harness_free(h);
}

static void run_to_hlt(struct harness *h)
{
	struct vcpu_exit x = {0};
	for (int k = 0; k < 100 && x.kind != VCPU_EXIT_HLT; k++)
		soft_engine_ops.run(h->vcpu, &x);
	assert_int_equal(x.kind, VCPU_EXIT_HLT);
	soft_engine_ops.get_state(h->vcpu, &h->state);
}

/* Decoded blocks and their chain links follow code changes: the guest
 * patching the loop it runs, then the host rewriting code (as DMA would)
 * between two runs of the same blocks, behind an unchanged block whose
 * chain link leads into the changed one. */
static void test_block_self_modifying(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	assert_non_null(h);
	soft_engine_ops.set_single_step(h->vcpu, false);
	uint8_t code[] = {
	    0xb9, 0x03, 0x00, 0x00, 0x00,             /* mov ecx, 3 */
	    0x31, 0xc0,                               /* xor eax, eax */
	    0xeb, 0x00,                               /* jmp 1f: ends the first block */
	    0x83, 0xc0, 0x01,                         /* 1: add eax, 1 */
	    0xc6, 0x05, 0xf8, 0xff, 0xff, 0xff, 0x05, /* mov byte [rip-8], 5: the imm above */
	    0xff, 0xc9,                               /* dec ecx */
	    0x75, 0xf2,                               /* jnz 1b */
	    0xf4,                                     /* hlt */
	};
	harness_load(h, code, sizeof(code));
	run_to_hlt(h);
	assert_int_equal(h->state.gpr[GPR_RAX], 1 + 5 + 5);
	/* The host replaces the patching MOV by a 7-byte NOP and the
	 * immediate by 2; the same blocks run again from the start, with no
	 * state load (which would flush the TLB and drop every chain link):
	 * only the comparison of the bytes can notice. */
	static const uint8_t nop7[] = {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00};
	memcpy(code + 12, nop7, sizeof(nop7));
	code[11] = 2;
	guest_mem_write(&h->mem, HARNESS_CODE_ADDR, code, sizeof(code));
	struct soft_cpu *cpu = harness_cpu(h);
	uint64_t gen = cpu->code_gen;
	cpu->s.rip = HARNESS_CODE_ADDR;
	cpu->halted = false;
	run_to_hlt(h);
	assert_int_equal(h->state.gpr[GPR_RAX], 2 + 2 + 2);
	assert_int_equal(cpu->code_gen, gen);
	harness_free(h);
}

static void test_decoder_lengths(void **state)
{
	(void)state;
	struct soft_optable *t = soft_optable_build();
	struct insn i;
	assert_non_null(t);
	static const uint8_t mov_abs[] = {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8};
	assert_int_equal(soft_decode_buffer(t, mov_abs, sizeof(mov_abs), true, true, &i), 10);
	assert_int_equal(i.opsize, 8);
	assert_int_equal(soft_decode_buffer(t, mov_abs, 5, true, true, &i), -2); /* truncated */
	static const uint8_t prefixes[] = {0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
					   0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x89, 0xc0};
	assert_int_equal(soft_decode_buffer(t, prefixes, sizeof(prefixes), true, true, &i), -3);
	static const uint8_t mov16[] = {0x8b, 0x46, 0x02}; /* mov ax, [bp+2] in 16-bit mode */
	assert_int_equal(soft_decode_buffer(t, mov16, 3, false, false, &i), 3);
	assert_int_equal(i.seg, SEG_SS);
	assert_int_equal(i.opsize, 2);
	static const uint8_t lock_mov[] = {0xf0, 0x89, 0x00}; /* LOCK MOV is #UD */
	assert_int_equal(soft_decode_buffer(t, lock_mov, 3, true, true, &i), -1);
	soft_optable_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mov_imm_and_reg),
	    cmocka_unit_test(test_mov_memory_and_lea),
	    cmocka_unit_test(test_rip_relative_and_moffs),
	    cmocka_unit_test(test_unmapped_access_faults),
	    cmocka_unit_test(test_decoder_lengths),
	    cmocka_unit_test(test_page_crossing_pieces),
	    cmocka_unit_test(test_block_run_fast_forms),
	    cmocka_unit_test(test_block_self_modifying),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
