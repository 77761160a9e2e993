/* The soft engine behind engine_ops: vCPU lifecycle, the interpreter's run
 * loop, and the synchronous exits through which port I/O and MMIO reach
 * the VMM's buses (the same classification and statistics as KVM exits).
 *
 * Threads: run() executes on the vCPU's thread; kick() only sets an atomic
 * flag and signals a condition variable, so it is safe from any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/soft/soft.h"

#define BATCH 4096 /* instructions between checks for a kick */

struct soft_engine {
	const struct guest_mem *mem;
	unsigned ncpus;
	engine_exit_fn exit_handler;
	void *exit_opaque;
	struct soft_optable *optable;
};

struct engine {
	struct soft_engine se;
};

struct engine_vcpu {
	struct soft_cpu cpu; /* first: soft_cpu pointers convert back */
	struct engine *engine;
	atomic_bool kicked;
	bool single_step;
	pthread_mutex_t lock;
	pthread_cond_t wake;
};


static bool soft_available(struct errmsg *why)
{
	(void)why;
	return true;
}

static int soft_create(struct engine **out, const struct engine_config *cfg, struct errmsg *err)
{
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		return errmsg_set(err, ENOMEM, "out of memory");
	e->se.mem = cfg->mem;
	e->se.ncpus = cfg->ncpus;
	e->se.exit_handler = cfg->exit_handler;
	e->se.exit_opaque = cfg->exit_opaque;
	e->se.optable = soft_optable_build();
	if (!e->se.optable) {
		free(e);
		return errmsg_set(err, EINVAL, "soft engine: inconsistent opcode tables");
	}
	if (cfg->ncpus > 1) {
		soft_optable_free(e->se.optable);
		free(e);
		return errmsg_set(err, ENOTSUP,
				  "the soft engine runs one vCPU for now; use --cpus 1 or --engine kvm");
	}
	*out = e;
	return 0;
}

static void soft_destroy(struct engine *e)
{
	if (!e)
		return;
	soft_optable_free(e->se.optable);
	free(e);
}

/* The architectural state after RESET (SDM vol. 3 §9.1.1, table 9-1). */
static void soft_reset_state(struct soft_cpu *cpu)
{
	struct cpu_state *s = &cpu->s;
	memset(s, 0, sizeof(*s));
	s->rip = 0xfff0;
	s->rflags = RFLAGS_FIXED;
	s->cr0 = CR0_ET | CR0_CD | CR0_NW;
	for (int r = 0; r < SEG_COUNT; r++) {
		s->seg[r].limit = 0xffff;
		s->seg[r].present = 1;
		s->seg[r].s = 1;
		s->seg[r].type = 3; /* read/write data, accessed */
	}
	s->seg[SEG_CS].selector = 0xf000;
	s->seg[SEG_CS].base = 0xffff0000;
	s->seg[SEG_CS].type = 11;
	s->seg[SEG_LDTR].s = 0;
	s->seg[SEG_LDTR].type = 2;
	s->seg[SEG_TR].s = 0;
	s->seg[SEG_TR].type = 11;
	s->gdt.limit = s->idt.limit = 0xffff;
	s->gpr[GPR_RDX] = 0x600; /* family 6 */
	s->apic_base = 0xfee00000ULL | (1ULL << 11) | (cpu->index == 0 ? (1ULL << 8) : 0);
	cpu->fpu.fcw = 0x40;
	cpu->fpu.mxcsr = 0x1f80;
	cpu->msr.pat = 0x0007040600070406ULL;
	cpu->lf.op = LF_NONE;
	soft_mode_changed(cpu);
}

static void soft_vcpu_destroy(struct engine_vcpu *v)
{
	if (!v)
		return;
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->lock);
	soft_dcache_free(v->cpu.dcache);
	free(v);
}

static int soft_vcpu_create(struct engine *e, unsigned index, struct engine_vcpu **out,
			    struct errmsg *err)
{
	struct engine_vcpu *v = calloc(1, sizeof(*v));
	if (!v)
		return errmsg_set(err, ENOMEM, "out of memory");
	v->engine = e;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->wake, NULL);
	v->cpu.engine = &e->se;
	v->cpu.mem = e->se.mem;
	v->cpu.optable = e->se.optable;
	v->cpu.index = index;
	v->cpu.dcache = soft_dcache_new();
	if (!v->cpu.dcache) {
		soft_vcpu_destroy(v);
		return errmsg_set(err, ENOMEM, "out of memory");
	}
	soft_cpuid_init(&v->cpu, e->se.ncpus);
	soft_reset_state(&v->cpu);
	*out = v;
	return 0;
}

static int soft_get_state(struct engine_vcpu *v, struct cpu_state *s)
{
	*s = v->cpu.s;
	s->rflags = flags_get(&v->cpu);
	return 0;
}

static int soft_set_state(struct engine_vcpu *v, const struct cpu_state *s)
{
	struct soft_cpu *cpu = &v->cpu;
	cpu->s = *s;
	flags_put(cpu, s->rflags);
	cpu->halted = false;
	cpu->shutdown = false;
	tlb_flush_all(cpu);
	soft_mode_changed(cpu);
	return 0;
}

/* ---- synchronous exits ---- */

static void soft_exit(struct soft_cpu *cpu, struct vcpu_exit *x)
{
	struct soft_engine *e = cpu->engine;
	if (e->exit_handler)
		e->exit_handler(e->exit_opaque, cpu->index, x);
}

void soft_pio(struct soft_cpu *cpu, uint16_t port, unsigned size, bool write, uint8_t *data)
{
	struct vcpu_exit x = {.kind = VCPU_EXIT_IO};
	x.io.port = port;
	x.io.size = (uint8_t)size;
	x.io.is_write = write;
	x.io.count = 1;
	x.io.data = data;
	if (!write)
		memset(data, 0xff, size);
	soft_exit(cpu, &x);
}

void soft_mmio(struct soft_cpu *cpu, uint64_t gpa, unsigned size, bool write, uint8_t *data)
{
	struct vcpu_exit x = {.kind = VCPU_EXIT_MMIO};
	x.mmio.addr = gpa;
	x.mmio.size = (uint8_t)size;
	x.mmio.is_write = write;
	x.mmio.data = data;
	if (!write)
		memset(data, 0xff, size);
	soft_exit(cpu, &x);
}

void soft_halt(struct soft_cpu *cpu) { cpu->halted = true; }

/* ---- faults ---- */

static bool vector_has_error(uint8_t v)
{
	return v == EXC_DF || v == EXC_TS || v == EXC_NP || v == EXC_SS || v == EXC_GP ||
	       v == EXC_PF || v == EXC_AC;
}

_Noreturn void soft_raise(struct soft_cpu *cpu, uint8_t vector, uint32_t error_code)
{
	cpu->exc.vector = vector;
	cpu->exc.has_error = vector_has_error(vector);
	cpu->exc.error_code = error_code;
	longjmp(cpu->jb, 1);
}

_Noreturn void soft_raise_noerr(struct soft_cpu *cpu, uint8_t vector)
{
	soft_raise(cpu, vector, 0);
}

/* ---- the interpreter loop ---- */

static void soft_step(struct soft_cpu *cpu)
{
	struct insn i;
	soft_decode_cached(cpu, &i);
	cpu->next_rip = cpu->s.rip + i.len;
	if (!cpu->long64)
		cpu->next_rip &= cpu->def32 ? 0xffffffffULL : 0xffffULL;
	i.def->exec(cpu, &i);
	cpu->s.rip = cpu->next_rip;
	cpu->icount++;
}

/* Runs at most `budget` instructions; stops early on a halt, shutdown or
 * kick. Faults longjmp out to soft_run_once. */
static void soft_execute(struct engine_vcpu *v, unsigned budget)
{
	struct soft_cpu *cpu = &v->cpu;
	for (unsigned n = 0; n < budget; n++) {
		if (cpu->halted || cpu->shutdown)
			return;
		soft_step(cpu);
		cpu->exc.depth = 0; /* an instruction completed: no delivery in progress */
	}
}

/* Fault delivery with the SDM's escalation: a fault while delivering is a
 * double fault; a fault while delivering #DF shuts the processor down. */
static void soft_handle_fault(struct soft_cpu *cpu)
{
	if (cpu->exc.depth >= 2) {
		cpu->shutdown = true;
		return;
	}
	if (cpu->exc.depth == 1) {
		cpu->exc.depth = 2;
		soft_deliver(cpu, EXC_DF, true, 0, false, cpu->s.rip);
	} else {
		cpu->exc.depth = 1;
		soft_deliver(cpu, cpu->exc.vector, cpu->exc.has_error, cpu->exc.error_code, false,
			     cpu->s.rip);
	}
	cpu->exc.depth = 0;
}

static void soft_run_once(struct engine_vcpu *v, unsigned budget)
{
	struct soft_cpu *cpu = &v->cpu;
	/* setjmp returns again for every fault; the loop state lives in cpu,
	 * so no local is modified between setjmp and longjmp. */
	if (setjmp(cpu->jb)) {
		soft_handle_fault(cpu);
		return;
	}
	soft_execute(v, budget);
}

static void soft_wait_while_halted(struct engine_vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	while (v->cpu.halted && !atomic_load(&v->kicked))
		pthread_cond_wait(&v->wake, &v->lock);
	pthread_mutex_unlock(&v->lock);
}

static int soft_run(struct engine_vcpu *v, struct vcpu_exit *x)
{
	struct soft_cpu *cpu = &v->cpu;

	memset(x, 0, sizeof(*x));
	for (;;) {
		if (atomic_exchange(&v->kicked, false)) {
			x->kind = VCPU_EXIT_INTR;
			return 0;
		}
		if (cpu->shutdown) {
			x->kind = VCPU_EXIT_SHUTDOWN;
			return 0;
		}
		if (cpu->halted) {
			/* Reported once, like KVM without an in-kernel LAPIC; then the
			 * vCPU sleeps until something wakes it. */
			x->kind = VCPU_EXIT_HLT;
			soft_wait_while_halted(v);
			return 0;
		}
		if (v->single_step) {
			soft_run_once(v, 1);
			x->kind = cpu->shutdown ? VCPU_EXIT_SHUTDOWN : VCPU_EXIT_DEBUG;
			return 0;
		}
		soft_run_once(v, BATCH);
	}
}

static void soft_kick(struct engine_vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->kicked, true);
	pthread_cond_broadcast(&v->wake);
	pthread_mutex_unlock(&v->lock);
}

static int soft_set_single_step(struct engine_vcpu *v, bool enable)
{
	v->single_step = enable;
	return 0;
}

static void soft_vcpu_stats(struct engine_vcpu *v, struct engine_vcpu_stats *out)
{
	out->instructions = v->cpu.icount;
	out->unimplemented_ud = v->cpu.ud_count;
	soft_dcache_counts(v->cpu.dcache, &out->dcache_hits, &out->dcache_misses);
}

static int soft_irq_line(struct engine *e, uint32_t gsi, int level)
{
	/* Interrupt controllers for the soft engine arrive with the Linux
	 * boot issue; until then lines go nowhere, as on a machine whose
	 * PIC is masked. */
	(void)e;
	(void)gsi;
	(void)level;
	return 0;
}

static int soft_msi(struct engine *e, uint64_t addr, uint32_t data)
{
	(void)e;
	(void)addr;
	(void)data;
	return 0;
}

const struct engine_ops soft_engine_ops = {
    .name = "soft",
    .available = soft_available,
    .create = soft_create,
    .destroy = soft_destroy,
    .vcpu_create = soft_vcpu_create,
    .vcpu_destroy = soft_vcpu_destroy,
    .get_state = soft_get_state,
    .set_state = soft_set_state,
    .run = soft_run,
    .kick = soft_kick,
    .set_single_step = soft_set_single_step,
    .vcpu_stats = soft_vcpu_stats,
    .irq_line = soft_irq_line,
    .msi = soft_msi,
};
