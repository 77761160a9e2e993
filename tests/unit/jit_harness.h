/* A VM of the soft engine for tests of the translator (engine/soft/jit)
 * against the interpreter: 32 MiB of guest memory, one vCPU in 64-bit
 * mode with its own page tables and IDT, run through the public engine
 * interface with single-stepping off (the translator never runs while
 * single-stepping, see soft_harness.h for that kind of test) until HLT,
 * shutdown or a watchdog's kick. Header-only, for cmocka test files.
 *
 * Memory map: guest code at CODE, data at DATA, an IDT at IDT whose 256
 * gates lead to HLT at HANDLERS + 16 * vector (interrupt gates: IF stays
 * clear in the handler, so the HLT ends the run and the exception frame
 * is at RSP), the stack below STACK_TOP. 2-4 MiB are mapped by 4 KiB
 * pages (PT_A) with UNMAPPED left out; a second address space (PML4_B)
 * differs from the first in one page (LIN_X, see build_page_tables).
 *
 * Ports the guest may write: PORT_LOG (EAX is appended to m->log),
 * PORT_DMA (AL = k: m->dma[k] is written with guest_mem_write, as a
 * device would), PORT_CHECK (m->checkpoint is called). */
#ifndef SHRIKE_TESTS_JIT_HARNESS_H
#define SHRIKE_TESTS_JIT_HARNESS_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "engine/engine.h"
#include "engine/soft/soft.h"
#include "vm/memory.h"

/* Every run happens in a child process (run_isolated), so that a crash
 * or a hang of generated code fails one test instead of the whole file.
 * Inside a child, checks print and exit instead of cmocka's asserts. */
#define CHECK(c)                                                                            \
	do {                                                                                \
		if (!(c)) {                                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			_exit(1);                                                           \
		}                                                                           \
	} while (0)
#define CHECK_EQ(a, b)                                                                      \
	do {                                                                                \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
		if (a_ != b_) {                                                             \
			fprintf(stderr, "%s:%d: %s = %#llx, expected %#llx\n", __FILE__,      \
				__LINE__, #a, a_, b_);                                      \
			_exit(1);                                                           \
		}                                                                           \
	} while (0)
#define CHILD_SECONDS 60

#define MEM_SIZE (32ULL << 20)
#define CODE 0x200000ULL
#define DATA 0x300000ULL
#define IDT 0x380000ULL
#define HANDLERS 0x390000ULL /* vector v's handler (HLT) at HANDLERS + 16 * v */
#define UNMAPPED 0x3f0000ULL /* the one page of 2-4 MiB left out of the page tables */
#define STACK_TOP 0x3f8000ULL
#define LIN_X 0x250000ULL
#define LIN_ALIAS 0x260000ULL
#define PHYS_X 0x280000ULL
#define PHYS_Y 0x281000ULL

/* Page tables: the boot tables (LAYOUT_PML4_ADDR, 2 MiB pages) with 2-4
 * MiB in 4 KiB pages (PT_A); a second address space (PML4_B) whose 2-4
 * MiB come from PT_B. */
#define PT_A 0x100000ULL
#define PT_B 0x101000ULL
#define PD_B 0x102000ULL
#define PDPT_B 0x103000ULL
#define PML4_B 0x104000ULL
#define PTE_PW 3ULL

#define PORT_LOG 0xe0
#define PORT_DMA 0xe4
#define PORT_CHECK 0xe6

#define LOG_MAX 8192
#define MAX_DMA 16
#define RUN_TIMEOUT_MS 20000

/* ---- guest code ---- */

/* The blob `name` spans name_start..name_end; labels the test needs are
 * exported as g_<name>_<label>. */
#define BLOB_BEGIN(name) ".pushsection .rodata.jittest_" #name ",\"a\"\n.balign 4096\n.globl " #name "_start\n" #name "_start:\n"
#define BLOB_END(name) ".globl " #name "_end\n" #name "_end:\n.popsection\n"
#define BLOB_DECL(name) extern const uint8_t name##_start[], name##_end[]
#define BLOB_OFF(name, label) ((uint64_t)(label - name##_start))

/* ---- the machine ---- */

struct dma {
	uint64_t gpa;
	uint8_t bytes[16];
	size_t len;
};

struct machine {
	struct guest_mem mem;
	struct engine *engine;
	struct engine_vcpu *vcpu;
	struct cpu_state st;
	bool interpret;
	uint32_t log[LOG_MAX];
	unsigned nlog;
	struct dma dma[MAX_DMA];
	void (*checkpoint)(struct machine *m);
	bool checkpoint_fired;
	uint64_t checkpoint_at; /* the round of the first firing */
	unsigned checkpoints;
};

static inline void machine_exit(void *opaque, unsigned index, struct vcpu_exit *x)
{
	struct machine *m = opaque;
	(void)index;
	if (x->kind != VCPU_EXIT_IO)
		return;
	if (!x->io.is_write) {
		memset(x->io.data, 0, x->io.size);
		return;
	}
	uint32_t v = 0;
	memcpy(&v, x->io.data, x->io.size > 4 ? 4 : x->io.size);
	switch (x->io.port) {
	case PORT_LOG:
		if (m->nlog < LOG_MAX)
			m->log[m->nlog++] = v;
		break;
	case PORT_DMA:
		if ((v & 0xff) < MAX_DMA && m->dma[v & 0xff].len)
			guest_mem_write(&m->mem, m->dma[v & 0xff].gpa, m->dma[v & 0xff].bytes,
					m->dma[v & 0xff].len);
		break;
	case PORT_CHECK:
		m->checkpoints++;
		if (m->checkpoint)
			m->checkpoint(m);
		break;
	default:
		break;
	}
}

static inline void put(struct machine *m, uint64_t gpa, const void *p, size_t n)
{
	CHECK_EQ(guest_mem_write(&m->mem, gpa, p, n), 0);
}

static inline void put64(struct machine *m, uint64_t gpa, uint64_t v) { put(m, gpa, &v, 8); }

static inline uint64_t get64(struct machine *m, uint64_t gpa)
{
	uint64_t v = 0;
	CHECK_EQ(guest_mem_read(&m->mem, gpa, &v, 8), 0);
	return v;
}

#define PUT_BLOB(m, gpa, name) put((m), (gpa), name##_start, (size_t)(name##_end - name##_start))

/* 2-4 MiB in 4 KiB pages, identity-mapped but for UNMAPPED; and the
 * second address space, the same but for linear LIN_X. */
static inline void build_page_tables(struct machine *m)
{
	uint64_t pt[512];
	for (unsigned i = 0; i < 512; i++)
		pt[i] = (0x200000ULL + 0x1000ULL * i) | PTE_PW;
	pt[(UNMAPPED - 0x200000) >> 12] = 0;
	pt[(LIN_X - 0x200000) >> 12] = PHYS_X | PTE_PW;
	pt[(LIN_ALIAS - 0x200000) >> 12] = PHYS_X | PTE_PW;
	put(m, PT_A, pt, sizeof(pt));
	pt[(LIN_X - 0x200000) >> 12] = PHYS_Y | PTE_PW;
	put(m, PT_B, pt, sizeof(pt));
	put64(m, LAYOUT_PD_ADDR + 8, PT_A | PTE_PW);

	uint64_t page[512];
	CHECK_EQ(guest_mem_read(&m->mem, LAYOUT_PD_ADDR, page, sizeof(page)), 0);
	page[1] = PT_B | PTE_PW;
	put(m, PD_B, page, sizeof(page));
	CHECK_EQ(guest_mem_read(&m->mem, LAYOUT_PDPT_ADDR, page, sizeof(page)), 0);
	page[0] = PD_B | PTE_PW;
	put(m, PDPT_B, page, sizeof(page));
	memset(page, 0, sizeof(page));
	page[0] = PDPT_B | PTE_PW;
	put(m, PML4_B, page, sizeof(page));
}

/* 256 interrupt gates; every handler is HLT (interrupts stay off). */
static inline void build_idt(struct machine *m)
{
	uint16_t cs = m->st.seg[SEG_CS].selector;
	for (uint64_t v = 0; v < 256; v++) {
		uint64_t off = HANDLERS + 16 * v;
		uint64_t gate[2] = {(off & 0xffff) | (uint64_t)cs << 16 | 0x8eULL << 40 |
					((off >> 16) & 0xffff) << 48,
				    off >> 32};
		put(m, IDT + 16 * v, gate, sizeof(gate));
		static const uint8_t hlt_loop[] = {0xf4, 0xeb, 0xfd}; /* hlt; jmp back */
		put(m, off, hlt_loop, sizeof(hlt_loop));
	}
	m->st.idt.base = IDT;
	m->st.idt.limit = 256 * 16 - 1;
}

/* A fresh VM: long mode, RIP = CODE, interrupts off. */
static inline struct machine *machine_new(bool interpret, uint64_t cache)
{
	struct machine *m = calloc(1, sizeof(*m));
	struct errmsg err;
	CHECK(m != NULL);
	CHECK_EQ(guest_mem_init(&m->mem, MEM_SIZE), 0);
	struct engine_config ec = {.mem = &m->mem, .ncpus = 1, .soft_interpret = interpret,
				   .soft_jit_cache = cache, .exit_handler = machine_exit,
				   .exit_opaque = m};
	m->interpret = interpret;
	CHECK_EQ(soft_engine_ops.create(&m->engine, &ec, &err), 0);
	CHECK_EQ(soft_engine_ops.vcpu_create(m->engine, 0, &m->vcpu, &err), 0);
	soft_engine_ops.get_state(m->vcpu, &m->st);
	uint64_t apic = m->st.apic_base;
	CHECK_EQ(boot_cpu_long_mode(&m->mem, &m->st), 0);
	m->st.apic_base = apic;
	build_page_tables(m);
	build_idt(m);
	m->st.rip = CODE;
	m->st.gpr[GPR_RSP] = STACK_TOP;
	CHECK_EQ(soft_engine_ops.set_state(m->vcpu, &m->st), 0);
	return m;
}

static inline void machine_sync(struct machine *m) { soft_engine_ops.set_state(m->vcpu, &m->st); }

static inline void machine_free(struct machine *m)
{
	soft_engine_ops.vcpu_destroy(m->vcpu);
	soft_engine_ops.destroy(m->engine);
	guest_mem_destroy(&m->mem);
	free(m);
}

static inline void machine_stats(struct machine *m, struct engine_vcpu_stats *s)
{
	memset(s, 0, sizeof(*s));
	soft_engine_ops.vcpu_stats(m->vcpu, s);
}

/* Kicks the vCPU after a delay unless the run ends first. */
struct watchdog {
	struct machine *m;
	unsigned ms;
	bool done, fired;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
};

static inline void *watchdog_main(void *opaque)
{
	struct watchdog *w = opaque;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += w->ms / 1000;
	until.tv_nsec += (long)(w->ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
			break;
	if (!w->done) {
		w->fired = true;
		soft_engine_ops.kick(w->m->vcpu);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static inline void watchdog_start(struct watchdog *w, struct machine *m, unsigned ms)
{
	memset(w, 0, sizeof(*w));
	w->m = m;
	w->ms = ms;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	CHECK_EQ(pthread_create(&w->thread, NULL, watchdog_main, w), 0);
}

static inline bool watchdog_stop(struct watchdog *w)
{
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	return w->fired;
}

static inline uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs until HLT, shutdown or a kick (the watchdog's after timeout_ms);
 * returns the exit kind, the state in m->st. */
static inline enum vcpu_exit_kind machine_run(struct machine *m, unsigned timeout_ms)
{
	struct watchdog w;
	struct vcpu_exit x;
	watchdog_start(&w, m, timeout_ms);
	do {
		memset(&x, 0, sizeof(x));
		CHECK_EQ(soft_engine_ops.run(m->vcpu, &x), 0);
	} while (x.kind != VCPU_EXIT_HLT && x.kind != VCPU_EXIT_SHUTDOWN &&
		 x.kind != VCPU_EXIT_INTR);
	watchdog_stop(&w);
	soft_engine_ops.get_state(m->vcpu, &m->st);
	return x.kind;
}

/* Runs fn(arg) in a child process with a time limit; the test fails if the
 * child does not exit with 0 (a failed CHECK, a signal, the alarm). */
static inline void run_isolated(void (*fn)(void *), void *arg, const char *what)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka's handlers would resume its test loop in the child. */
		static const int sigs[] = {SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGSYS, SIGABRT, SIGTRAP};
		for (unsigned k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
			signal(sigs[k], SIG_DFL);
		alarm(CHILD_SECONDS);
		fn(arg);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status)) {
		print_error("%s: killed by signal %d (%s)\n", what, WTERMSIG(status),
			    WTERMSIG(status) == SIGALRM ? "did not finish in time" : strsignal(WTERMSIG(status)));
		fail();
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		print_error("%s: failed (exit status %d)\n", what, WEXITSTATUS(status));
		fail();
	}
}

#endif
