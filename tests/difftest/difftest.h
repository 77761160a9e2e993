/* The differential tester: KVM (the real processor) is the oracle for the
 * soft CPU (and, in jitcmp.c, the soft engine's interpreter for its
 * translator: whole runs compared, no KVM needed). Both engines get the
 * same architectural state (struct cpu_state) and the same guest memory,
 * are single-stepped through the public engine interface
 * (engine/engine.h), and are compared after every instruction: GPRs, RIP,
 * RFLAGS (minus the flags the Intel SDM vol. 2 calls undefined for the
 * instruction just executed), segment registers, CR0/CR2/CR3/CR4, EFER,
 * the pages a test can touch, and the sequence of port-I/O and MMIO
 * accesses.
 *
 * Where the oracle is: on a PVM host (KVM nested in a VM), code at CPL3
 * runs natively while CPL0 code is run by the host's instruction emulator,
 * so tests run at CPL3 (SDM vol. 3 §5.5: privilege levels) with IOPL 3 for
 * port I/O. Exceptions are delivered through a guest IDT whose ring-0
 * handlers immediately write their vector to a magic port (an I/O exit the
 * tester recognises), which ends the test on both sides.
 *
 * Invariants: guest memory is touched only through guest_mem_*; every
 * loop over guest-controlled data (exit sequences, handler steps) is
 * bounded; a test either ends at its last byte, at the magic port, or at
 * its step budget. */
#ifndef SHRIKE_TESTS_DIFFTEST_H
#define SHRIKE_TESTS_DIFFTEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* ---- the guest machine every test runs in (machine.c) ---- */

/* Guest-physical = linear addresses (identity paging where paging is on). */
#define DT_MEM_SIZE      (16ULL << 20)
#define DT_GDT_ADDR      0x1000ULL
#define DT_IDT64_ADDR    0x2000ULL /* 256 x 16-byte gates */
#define DT_IDT32_ADDR    0x3000ULL /* 256 x 8-byte gates */
#define DT_TSS64_ADDR    0x4000ULL
#define DT_TSS32_ADDR    0x4800ULL
#define DT_STUBS_ADDR    0x5000ULL /* handler stubs, 8 bytes per vector */
#define DT_KSTACK_ADDR   0x6000ULL /* ring-0 stack, 2 pages */
#define DT_KSTACK_TOP    0x8000ULL
#define DT_PML4_ADDR     0x10000ULL
#define DT_PDPT_ADDR     0x11000ULL
#define DT_PD_ADDR       0x12000ULL
#define DT_PT_ADDR       0x13000ULL /* PAE/long-mode PT for the first 2 MiB */
#define DT_PD32_ADDR     0x14000ULL /* 32-bit paging directory */
#define DT_PT32_ADDR     0x15000ULL /* 32-bit paging table for the first 4 MiB */
#define DT_CODE_ADDR     0x100000ULL
#define DT_CODE_SIZE     0x10000ULL
#define DT_DATA_ADDR     0x180000ULL
#define DT_DATA_SIZE     0x4000ULL
#define DT_STACK_ADDR    0x190000ULL
#define DT_STACK_SIZE    0x4000ULL
#define DT_STACK_TOP     (DT_STACK_ADDR + 0x2000ULL) /* room above for pops */
#define DT_MMIO_LINEAR   0x1a0000ULL /* user page mapped to DT_MMIO_GPA */
#define DT_MMIO_GPA      0xd0000000ULL
#define DT_NOTPRESENT    0x1b0000ULL /* a user page that is not present */
#define DT_READONLY      0x1c0000ULL /* a present, read-only user page */
#define DT_SUPERVISOR    0x1d0000ULL /* a present, supervisor-only page */

/* Magic ports written by the exception stubs: vector v < 32 writes to
 * DT_PORT_EXC + v; the user-callable vector DT_USER_VECTOR writes to
 * DT_PORT_SOFTINT. Both lie in 0x00-0xff so the stubs can use OUT imm8. */
#define DT_PORT_EXC      0xc0
#define DT_PORT_SOFTINT  0xbf
#define DT_USER_VECTOR   0x80

/* Selectors of the test GDT. */
#define DT_SEL_KCODE64   0x08
#define DT_SEL_KDATA     0x10
#define DT_SEL_UCODE32   0x1b /* CPL3 32-bit code (compatibility or protected mode) */
#define DT_SEL_UDATA     0x23
#define DT_SEL_UCODE64   0x2b
#define DT_SEL_TSS       0x30 /* 16 bytes in long mode */
#define DT_SEL_KCODE32   0x40
#define DT_SEL_UCODE16   0x4b
#define DT_SEL_UDATA16   0x53 /* 16-bit stack (B=0) based at DT_STACK_ADDR */
#define DT_SEL_TSS32     0x58
#define DT_SEL_UDATA16D  0x63 /* 16-bit data segment based at DT_DATA_ADDR */
#define DT_GDT_ENTRIES   13

enum dt_mode {
	DT_MODE_LONG64,   /* CPL3, 64-bit */
	DT_MODE_COMPAT32, /* CPL3, 32-bit compatibility mode under long mode */
	DT_MODE_PROT32,   /* CPL3, 32-bit protected mode, paging off */
	DT_MODE_PROT16,   /* CPL3, 16-bit protected mode code and stack */
	DT_MODE_KERNEL64, /* CPL0, 64-bit (system-instruction tests only) */
	DT_MODE_COUNT
};

const char *dt_mode_name(enum dt_mode m);
int dt_mode_parse(const char *name, enum dt_mode *out);
/* Operand/address size of the mode's code segment: 2, 4 or 8. */
unsigned dt_mode_bits(enum dt_mode m);

/* Writes descriptor tables, TSSs, handler stubs and page tables into mem. */
int dt_machine_write(const struct guest_mem *mem);
/* The initial state of a test in mode m (RIP = DT_CODE_ADDR, RSP =
 * DT_STACK_TOP, data base registers chosen by the caller afterwards). */
void dt_machine_state(enum dt_mode m, uint64_t apic_base, struct cpu_state *s);

/* ---- one engine (pair.c) ---- */

enum dt_event_kind { DT_EV_PIO, DT_EV_MMIO };

struct dt_event {
	uint8_t kind;   /* enum dt_event_kind */
	uint8_t size;
	bool write;
	uint32_t count;
	uint64_t addr;  /* port or guest-physical address */
	uint64_t data;  /* first 8 bytes */
};

#define DT_MAX_EVENTS 64

struct dt_side {
	const struct engine_ops *ops;
	struct guest_mem mem;
	struct engine *engine;
	struct engine_vcpu *vcpu;
	struct cpu_state st;
	/* Accesses of the current test, in order; excess ones are counted. */
	unsigned nev, lost_ev;
	struct dt_event ev[DT_MAX_EVENTS];
	int exc_vector; /* vector reported through a magic port, or -1 */
	atomic_bool watchdog_fired; /* the watchdog kicked a run() that hung */
	bool single_step;  /* the engine's own single-step is on */
	bool engine_stepping_known;
	enum vcpu_exit_kind last_exit;
	uint64_t last_detail;
};

/* The value port-I/O and MMIO reads return: a function of the address and
 * the element index only, so both engines see the same data. */
void dt_read_value(uint64_t addr, unsigned index, uint8_t *buf, unsigned len);

/* soft_interpret: a soft engine without its translator (ignored by KVM). */
int dt_side_init(struct dt_side *s, const struct engine_ops *ops, bool soft_interpret, char *err,
		 size_t errlen);
void dt_side_fini(struct dt_side *s);
/* Turns the engine's single-step on or off (cached). */
int dt_side_single_step(struct dt_side *s, bool on);
/* Loads state into the vCPU. */
int dt_side_load(struct dt_side *s, const struct cpu_state *st);
/* Forgets the recorded accesses and the reported vector. */
void dt_side_reset_events(struct dt_side *s);
/* Runs the vCPU until it stops after one instruction: the engine's
 * single-step exit, a completed I/O or MMIO access (answered as the VMM
 * does), or, under guest-TF stepping, the #DB stub's port write. Then
 * refreshes s->st. Returns 0 or -errno. */
int dt_side_step(struct dt_side *s);

/* ---- undefined flags (flagmask.c) ---- */

/* Minimal decoding of an instruction's prefixes and opcode. */
struct dt_opinfo {
	unsigned len_prefixes;
	unsigned opsize;   /* 2, 4, 8 (1 for byte opcodes) */
	uint8_t map;       /* 0 = one byte, 1 = 0F, 2 = 0F38, 3 = 0F3A */
	uint8_t opcode;
	int reg;           /* ModRM.reg or -1 when the opcode has no ModRM */
	uint8_t rep;       /* 0, 0xf2, 0xf3 */
	bool rex_w;
	bool valid;
};

void dt_opinfo_decode(const uint8_t *code, size_t len, unsigned mode_bits, struct dt_opinfo *o);
/* RFLAGS bits whose value after this instruction the SDM leaves undefined,
 * given the state before it (for shift counts in CL). */
uint64_t dt_undefined_flags(const struct dt_opinfo *o, const uint8_t *code, size_t len,
			    const struct cpu_state *before);

/* ---- running one test (run.c) ---- */

/* How KVM executes a test's instructions on this host. */
enum dt_oracle {
	DT_ORACLE_NATIVE,   /* CPL3 64-bit code runs on the processor; stepped with guest TF */
	DT_ORACLE_EMULATOR, /* KVM's instruction emulator; stepped with KVM_GUESTDBG_SINGLESTEP */
};

enum dt_oracle dt_mode_oracle(enum dt_mode m);

struct dt_test {
	char name[128];
	const char *group;  /* instruction group, for the allowlist */
	enum dt_mode mode;
	const uint8_t *code;
	size_t len;
	struct cpu_state init; /* full initial state */
	const uint8_t *data;   /* initial data area (DT_DATA_SIZE bytes) or NULL */
	const uint8_t *stack;  /* initial stack area (DT_STACK_SIZE bytes) or NULL */
	uint64_t seed;         /* fills data/stack when data is NULL */
	unsigned max_steps;
	const char *repro;     /* how to run this test alone */
	/* Optional: for each code offset where an instruction starts, the
	 * generator template that produced it (NULL elsewhere). */
	const char *const *tags;
	bool generated;        /* by dt_generate (keyed by mode and seed), else corpus (by name) */
};

struct dt_stats {
	uint64_t tests, steps, faults, failures, oracle_skips, oracle_timeouts;
	uint64_t kvm_ns, soft_ns;
	uint64_t record_errors; /* recording: digests that disagree though the test passed */
};

/* Divergences reported in full; later ones get one line each. */
#define DT_FULL_REPORTS 5

/* One test's result as the oracle produced it: a digest chained over the
 * state after every step and the memory at the end, and what the replay
 * must take from the oracle instead of computing it: the flags each step
 * left undefined, and the vendor-specific bytes of each FXSAVE image. */
struct dt_result {
	uint64_t digest;
	unsigned steps;
	bool stop;        /* the oracle's run ended after `steps` steps, not at the test's end */
	bool missing;     /* no result (KVM timed out) */
	uint8_t *fbits;   /* undefined flags, the masked bits of each step in order */
	size_t nfbits, fbits_cap, fpos;
	struct dt_fxpatch *fx;
	unsigned nfx, fx_cap, fxpos;
	bool misaligned;  /* the replay asked for more than was recorded */
	/* Read from a file without a list of fixups: every FXSAVE takes this
	 * one (NULL: the oracle needed none). */
	bool default_fx;
	const struct dt_fxpatch *fx_default;
};

/* The bits of a digest a record file keeps. */
#define DT_DIGEST_BITS 36
#define DT_DIGEST_MASK ((uint64_t)((1ULL << DT_DIGEST_BITS) - 1))

struct dt_ctx {
	struct dt_side kvm, soft;
	/* Recording (build/difftest --record): the oracle's result of the
	 * test being run is accumulated here (record.c); NULL otherwise. */
	struct dt_result *rec;
	struct dt_result rec_soft; /* the same digest, on the soft side: a check */
	struct dt_stats stats;
	bool verbose;
	bool keep_going;      /* report every failing test, not just the first */
	unsigned reports;     /* divergences reported so far */
	unsigned report_limit; /* replay: reports printed at most (0: all) */
	bool ignore_frame_rf; /* tolerate RF in exception frames (known soft CPU issue) */
	const char *objdump;  /* for disassembly in reports; NULL = none */
	uint64_t apic_base;   /* KVM's, kept in every loaded state */
	bool oracle_amd;      /* the host (KVM's processor) is AMD: see vendor.c */
	struct dt_watchdog *watchdog;
};

/* Runs one test on both engines. Returns 0 on agreement, 1 on a
 * divergence (reported on stdout), -errno on a tester failure. */
int dt_run_test(struct dt_ctx *c, const struct dt_test *t);
/* Shared by both comparisons (run.c). */
struct dt_range {
	uint64_t base, size;
	const char *name;
};
/* The guest memory a test can write, compared after every instruction. */
extern const struct dt_range dt_compared[];
extern const unsigned dt_ncompared;
extern const char *const dt_gpr_names[GPR_COUNT];
extern const char *const dt_seg_names[SEG_COUNT];
/* Writes the test's code, data, stack and the machine into s's memory. */
int dt_prepare_memory(struct dt_side *s, const struct dt_test *t);
bool dt_seg_equal(const struct segment *a, const struct segment *b);
uint64_t dt_linear_rip(const struct cpu_state *s);
bool dt_in_stubs(const struct cpu_state *s);
bool dt_vector_has_error(int v);
void dt_print_hex(const uint8_t *b, size_t n);
int dt_disassemble(const char *objdump, enum dt_mode m, const uint8_t *b, size_t n,
		   void (*fn)(void *opaque, uint64_t off, const char *text), void *opaque);

/* dt_run_test's result when the KVM side hit the watchdog. */
#define DT_ORACLE_TIMEOUT 2
/* dt_run_test, run once more after a watchdog timeout (see run.c). */
int dt_run_test_retry(struct dt_ctx *c, const struct dt_test *t);

/* ---- vendor differences (vendor.c) ---- */

/* The host processor's vendor is AMD (CPUID leaf 0). */
bool dt_host_is_amd(void);
/* The linear address of the ModRM memory operand of the instruction in
 * code (insn_len bytes long) in the state before it; false for a register
 * operand or bytes that do not decode. */
bool dt_mem_operand(const uint8_t *code, size_t len, size_t insn_len, unsigned mode_bits,
		    const struct cpu_state *before, uint64_t *la);
/* After a step that completed on both sides: with an AMD oracle, copies
 * the vendor-specific fields of what the instruction stored (FXSAVE's
 * FOP/FIP/FCS/FDP/FDS when no x87 exception is pending, and MXCSR_MASK)
 * from the KVM side into the soft side's memory, so that only the
 * architectural bytes are compared. */
struct dt_fxpatch {
	uint8_t copy;    /* DT_FX_POINTERS | DT_FX_MASK: what was taken from the oracle */
	uint8_t ptr[18]; /* bytes 6-23: FOP, FIP, FCS, FDP, FDS */
	uint8_t mask[4]; /* bytes 28-31: MXCSR_MASK */
};
#define DT_FX_POINTERS 1
#define DT_FX_MASK 2
/* The address of the image an FXSAVE just stored (it completed, no
 * fault), or false for any other instruction. */
bool dt_fxsave_image(const struct dt_opinfo *o, const uint8_t *code, size_t len, size_t insn_len,
		     unsigned mode_bits, const struct cpu_state *before, uint64_t *la);
/* Applies the fixup, and describes it in *p (copy 0 when nothing was
 * taken: a non-AMD oracle). Returns whether the instruction was an
 * FXSAVE (a fixup point, whatever the vendor). */
bool dt_vendor_fixup(const struct dt_ctx *c, const struct dt_opinfo *o, const uint8_t *code,
		     size_t len, size_t insn_len, unsigned mode_bits, const struct cpu_state *before,
		     struct dt_fxpatch *p);
/* Writes what p took from the oracle into the image at la in mem. */
void dt_fxpatch_apply(const struct guest_mem *mem, uint64_t la, const struct dt_fxpatch *p);

/* ---- instruction groups and the random generator (gen.c) ---- */

#define DT_MAX_GROUPS 40

/* The groups the generator draws from and corpus tests are tagged with. */
extern const char *const dt_group_names[];
extern const unsigned dt_group_count;

struct dt_groups {
	bool on[DT_MAX_GROUPS]; /* indexed like dt_group_names */
};

/* Parses a list of group names separated by commas, spaces or newlines
 * ('#' starts a comment; "all" enables everything). -EINVAL with the bad
 * name in err for an unknown group. */
int dt_groups_parse(struct dt_groups *g, const char *list, char *err, size_t errlen);
bool dt_group_enabled(const struct dt_groups *g, const char *name);
bool dt_group_known(const char *name);

#define DT_GEN_CODE_MAX 16384

/* The generator's version: bump it whenever the sequences it produces for
 * a seed change (templates, their weights, operands, prologues). The
 * recorded real-processor results (record.c) name the version they were
 * recorded with; a different one makes them stale, loudly. */
#define DT_GEN_VERSION 2

struct dt_gen {
	uint8_t code[DT_GEN_CODE_MAX];
	const char *tags[DT_GEN_CODE_MAX];
	uint8_t data[DT_DATA_SIZE];
	char repro[160];
	struct dt_test test;
};

/* Generates a sequence of about `ninsns` instructions drawn from the
 * enabled groups, for mode long64, compat32 or prot32. Returns 0, or
 * -ENOENT when no enabled group has templates for the mode. */
int dt_generate(struct dt_gen *out, uint64_t seed, enum dt_mode mode,
		const struct dt_groups *enabled, unsigned ninsns);

/* ---- the hand-written corpus (corpus.c) ---- */

#define DT_CORPUS_CODE_MAX 4096

struct dt_corpus_test {
	char name[96];
	char group[24];
	char file[512];
	unsigned line;
	unsigned modes;           /* bit per enum dt_mode */
	uint8_t code[DT_CORPUS_CODE_MAX];
	size_t len;
	bool reg_set[GPR_COUNT];
	uint64_t reg[GPR_COUNT];  /* literal values */
	int64_t reg_data_rel[GPR_COUNT]; /* offset from the data area when reg_is_data */
	bool reg_is_data[GPR_COUNT];
	bool flags_set;
	uint64_t flags;
	uint8_t *data;            /* DT_DATA_SIZE bytes */
};

struct dt_corpus {
	struct dt_corpus_test *t;
	unsigned n, cap;
};

/* Loads every *.txt file of dir (format in README.md). -errno with a
 * message naming the file and line on a syntax error. */
int dt_corpus_load(struct dt_corpus *c, const char *dir, char *err, size_t errlen);
void dt_corpus_free(struct dt_corpus *c);
/* The runnable test for corpus test ct in mode m. */
void dt_corpus_instantiate(const struct dt_corpus_test *ct, enum dt_mode m, struct dt_test *t,
			   char *repro, size_t repro_len);

/* Watchdog (run.c): kicks a side's run() that does not return by its
 * deadline, after setting the side's watchdog_fired. */
struct dt_watchdog;
struct dt_watchdog *dt_watchdog_start(struct dt_side *side);
void dt_watchdog_stop(struct dt_watchdog *w);
/* Arms for 5 s (on) or disarms. */
void dt_watchdog_arm(struct dt_watchdog *w, bool on);
/* Arms for ms milliseconds; 0 disarms. */
void dt_watchdog_arm_ms(struct dt_watchdog *w, long ms);

/* ---- the translator against the interpreter (jitcmp.c) ---- */

/* Whether the translator runs code of mode m (64-bit modes only). */
bool dt_jit_mode(enum dt_mode m);

struct dt_jit_stats {
	uint64_t tests, instructions, failures;
	uint64_t explained; /* whole runs that differ through undefined flags only */
	uint64_t loops;     /* neither side ended within the time limit */
	uint64_t blocks, fallbacks; /* the translator's: translations, handler calls */
};

struct dt_jit_ctx;
/* Two soft-engine vCPUs, one with and one without the translator. */
int dt_jit_init(struct dt_jit_ctx **out, const char *objdump, bool verbose, char *err,
		size_t errlen);
void dt_jit_fini(struct dt_jit_ctx *c);
/* Runs t freely on both and compares the final states (see jitcmp.c).
 * Returns 0 on agreement, 1 on a divergence (reported on stdout),
 * -errno on a tester failure. */
int dt_jit_run_test(struct dt_jit_ctx *c, const struct dt_test *t);
const struct dt_jit_stats *dt_jit_get_stats(struct dt_jit_ctx *c);

/* ---- recorded real-processor results (record.c) ---- */

void dt_result_reset(struct dt_result *r);
void dt_result_free(struct dt_result *r);
/* The hash of a step: the registers the comparison compares (RFLAGS
 * without TF), the port-I/O and MMIO accesses and how the step ended.
 * oracle: s is KVM's side (its INTR exit is a normal step end). */
uint64_t dt_step_hash(const struct dt_side *s, bool oracle);
void dt_result_step(struct dt_result *r, uint64_t step_hash);
/* Ends the digest with the memory a test can write (dt_compared). */
void dt_result_finish(struct dt_result *r, const struct dt_side *s);
/* Records / takes the values of the undefined flags `mask` of a step. */
int dt_result_put_flags(struct dt_result *r, uint64_t mask, uint64_t rflags);
uint64_t dt_result_take_flags(struct dt_result *r, uint64_t mask);
int dt_result_put_fx(struct dt_result *r, const struct dt_fxpatch *p);
const struct dt_fxpatch *dt_result_take_fx(struct dt_result *r);

/* A file of results (format in README.md, "Recorded results"). */
struct dt_record;

/* What the tests were generated with. */
struct dt_record_params {
	char groups[512]; /* enabled groups, space-separated */
	unsigned length;
	uint64_t seed;
	unsigned count[DT_MODE_COUNT]; /* generated sequences per mode (0: none) */
};

struct dt_record *dt_record_new(const struct dt_record_params *p, const char *oracle);
void dt_record_free(struct dt_record *r);
/* Reads / writes a file. -errno with a message in err. */
int dt_record_load(struct dt_record **out, const char *path, char *err, size_t errlen);
int dt_record_save(const struct dt_record *r, const char *path, char *err, size_t errlen);
const struct dt_record_params *dt_record_params(const struct dt_record *r);
const char *dt_record_oracle(const struct dt_record *r);
/* The slot of test t: found in the record, or added (add). NULL when the
 * record has no such test, or when t's input differs from the recorded
 * one (*stale set then). */
struct dt_result *dt_record_slot(struct dt_record *r, const struct dt_test *t, bool add,
				 bool *stale);
/* Checks the record against this tester: the generator's version and
 * output for the recorded seeds, the undefined-flags table, the corpus
 * and the enabled groups (corpus: NULL to skip). Returns the number of
 * problems, each described on stdout with the prefix. */
unsigned dt_record_check(struct dt_record *r, const struct dt_corpus *corpus,
			 const struct dt_groups *groups, const char *prefix);
/* The groups as the record stores them. */
void dt_groups_string(const struct dt_groups *g, char *buf, size_t len);
/* A fingerprint of the undefined-flags table (flagmask.c). */
uint64_t dt_flagmask_fingerprint(void);
/* The oracle's description: vendor and model of this host's processor. */
void dt_host_cpu_name(char *buf, size_t len);

/* Replays t on c->soft against the recorded result r (run.c). Returns 0
 * on agreement, 1 on a divergence (reported), -errno on a failure. */
int dt_replay_test(struct dt_ctx *c, const struct dt_test *t, struct dt_result *r,
		   const char *record);

#endif
