/* The soft engine behind engine_ops: vCPU lifecycle, the interpreter's run
 * loop, and the synchronous exits through which port I/O and MMIO reach
 * the VMM's buses (the same classification and statistics as KVM exits).
 *
 * Threads: run() executes on the vCPU's thread; kick() only sets an atomic
 * flag and signals a condition variable, so it is safe from any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/soft_irqchip.h"
#include "engine/soft/jit/jit.h"
#include "engine/soft/soft.h"
#include "engine/soft/system.h"

#define BATCH 4096 /* instructions between checks for a kick */

#define MAX_HALT_WAIT_NS 10000000ULL /* re-check timers at least every 10 ms while halted */

struct engine_vcpu;

struct soft_engine {
	const struct guest_mem *mem;
	unsigned ncpus;
	engine_exit_fn exit_handler;
	void *exit_opaque;
	struct soft_optable *optable;
	bool interpret;     /* no translator (--soft-jit off) */
	size_t jit_cache;   /* bytes of code cache per vCPU */
	/* What KVM keeps in the kernel: PIC, PIT, IOAPIC, local APICs. */
	struct soft_irqchip irqchip;
	struct engine_vcpu *vcpus[IRQCHIP_MAX_CPUS];
};

struct engine {
	struct soft_engine se;
};

struct engine_vcpu {
	struct soft_cpu cpu; /* first: soft_cpu pointers convert back */
	struct engine *engine;
	atomic_bool kicked;   /* stop requested: run() returns VCPU_EXIT_INTR */
	bool halt_reported;   /* the current halt was reported as VCPU_EXIT_HLT */
	bool single_step;
	struct soft_jit *jit; /* NULL: interpret only */
	pthread_mutex_t lock;
	pthread_cond_t wake;
};

uint64_t soft_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t irqchip_clock_now(void *opaque)
{
	(void)opaque;
	return soft_now_ns();
}

/* The irqchip's "interrupt for vCPU n": note it and wake a halted vCPU. */
static void irqchip_kick(void *opaque, unsigned cpu)
{
	struct soft_engine *se = opaque;
	struct engine_vcpu *v = cpu < se->ncpus ? se->vcpus[cpu] : NULL;
	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->cpu.irq_hint, true);
	pthread_cond_broadcast(&v->wake);
	pthread_mutex_unlock(&v->lock);
}


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
	e->se.interpret = cfg->soft_interpret;
	e->se.jit_cache = cfg->soft_jit_cache ? (size_t)cfg->soft_jit_cache : SOFT_JIT_DEFAULT_CACHE;
	if (cfg->ncpus > 1) {
		free(e);
		return errmsg_set(err, ENOTSUP,
				  "the soft engine runs one vCPU for now; use --cpus 1 or --engine kvm");
	}
	e->se.optable = soft_optable_build();
	if (!e->se.optable) {
		free(e);
		return errmsg_set(err, EINVAL, "soft engine: inconsistent opcode tables");
	}
	struct soft_irqchip_config ic = {
	    .ncpus = cfg->ncpus ? cfg->ncpus : 1,
	    .clock = {.now_ns = irqchip_clock_now, .tsc_hz = SOFT_TSC_HZ},
	    .kick = irqchip_kick,
	    .kick_opaque = &e->se,
	};
	if (soft_irqchip_init(&e->se.irqchip, &ic)) {
		soft_optable_free(e->se.optable);
		free(e);
		return errmsg_set(err, ENOMEM, "soft engine: cannot create the interrupt controllers");
	}
	*out = e;
	return 0;
}

static void soft_destroy(struct engine *e)
{
	if (!e)
		return;
	soft_irqchip_destroy(&e->se.irqchip);
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
	s->gpr[GPR_RDX] = 0x000106a5; /* CPUID.1.EAX: family 6, model 0x1a, stepping 5 */
	s->apic_base = 0xfee00000ULL | (1ULL << 11) | (cpu->index == 0 ? (1ULL << 8) : 0);
	cpu->fpu.fcw = 0x40;
	cpu->fpu.mxcsr = 0x1f80;
	cpu->msr.pat = 0x0007040600070406ULL;
	cpu->lf.op = LF_NONE;
	tlb_flush_all(cpu);
	soft_mode_changed(cpu);
}

static void soft_vcpu_destroy(struct engine_vcpu *v)
{
	if (!v)
		return;
	if (v->cpu.index < IRQCHIP_MAX_CPUS && v->engine->se.vcpus[v->cpu.index] == v)
		v->engine->se.vcpus[v->cpu.index] = NULL;
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->lock);
	soft_dcache_free(v->cpu.dcache);
	soft_jit_free(v->jit);
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
	v->cpu.code_la = ~0ULL;
	v->cpu.dcache = soft_dcache_new();
	if (!v->cpu.dcache) {
		soft_vcpu_destroy(v);
		return errmsg_set(err, ENOMEM, "out of memory");
	}
	if (!e->se.interpret) {
		v->jit = soft_jit_new(e->se.jit_cache);
		if (!v->jit) {
			soft_vcpu_destroy(v);
			return errmsg_set(err, ENOMEM, "soft engine: cannot map the translator's code cache");
		}
	}
	soft_cpuid_init(&v->cpu, e->se.ncpus);
	soft_reset_state(&v->cpu);
	if (index < IRQCHIP_MAX_CPUS)
		e->se.vcpus[index] = v;
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

/* A handler that stops the vCPU (a reset or poweroff request, say) kicks
 * it: the instruction completes, and the block and run() end there, as
 * with KVM, whose vCPU loop sees the request before entering again. */
static void soft_exit(struct soft_cpu *cpu, struct vcpu_exit *x)
{
	struct soft_engine *e = cpu->engine;
	if (e->exit_handler)
		e->exit_handler(e->exit_opaque, cpu->index, x);
	if (atomic_load_explicit(&((struct engine_vcpu *)cpu)->kicked, memory_order_relaxed))
		cpu->block_abort = true;
}

void soft_pio(struct soft_cpu *cpu, uint16_t port, unsigned size, bool write, uint8_t *data)
{
	struct soft_irqchip *chip = &cpu->engine->irqchip;
	/* PIC, PIT and port 0x61 are handled here, as KVM handles them in the
	 * kernel: they never reach the VMM's buses. */
	if (write ? irqchip_pio_write(chip, port, data, size) : irqchip_pio_read(chip, port, data, size))
		return;
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
	struct soft_irqchip *chip = &cpu->engine->irqchip;
	if (write ? irqchip_mmio_write(chip, cpu->index, gpa, data, size)
		  : irqchip_mmio_read(chip, cpu->index, gpa, data, size))
		return;
	struct vcpu_exit x = {.kind = VCPU_EXIT_MMIO};
	x.mmio.addr = gpa;
	x.mmio.size = (uint8_t)size;
	x.mmio.is_write = write;
	x.mmio.data = data;
	if (!write)
		memset(data, 0xff, size);
	soft_exit(cpu, &x);
}

void soft_halt(struct soft_cpu *cpu)
{
	cpu->halted = true;
	cpu->block_abort = true;
}

int soft_irqchip_msr_read(struct soft_cpu *cpu, uint32_t msr, uint64_t *value)
{
	return irqchip_msr_read(&cpu->engine->irqchip, cpu->index, msr, value);
}

int soft_irqchip_msr_write(struct soft_cpu *cpu, uint32_t msr, uint64_t value)
{
	return irqchip_msr_write(&cpu->engine->irqchip, cpu->index, msr, value);
}

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

/* The mask that wraps RIP at the current code size. */
static inline uint64_t rip_mask(const struct soft_cpu *cpu)
{
	if (cpu->long64)
		return ~0ULL;
	return cpu->def32 ? 0xffffffffULL : 0xffffULL;
}

/* Executes one decoded instruction and commits its RIP. cpu->exc.depth
 * is 0 here: every path that raises it lowers it again before the next
 * instruction (soft_handle_fault, soft_take_interrupt). */
static inline __attribute__((always_inline)) void soft_exec_one(struct soft_cpu *cpu, struct insn *i)
{
	cpu->next_rip = (cpu->s.rip + i->len) & rip_mask(cpu);
	i->exec(cpu, i);
	cpu->s.rip = cpu->next_rip;
	cpu->icount++;
}

/* Takes a pending external interrupt if the CPU accepts one now. The hint
 * stays set while an interrupt may be pending, so it is re-examined when
 * IF becomes 1; the check itself costs one atomic load per instruction. */
static bool soft_take_interrupt(struct engine_vcpu *v)
{
	struct soft_cpu *cpu = &v->cpu;
	struct soft_irqchip *chip = &cpu->engine->irqchip;

	if (!(cpu->s.rflags & FLAG_IF) || !atomic_load_explicit(&v->cpu.irq_hint, memory_order_relaxed))
		return false;
	atomic_store(&v->cpu.irq_hint, false);
	if (irqchip_pending(chip, cpu->index) < 0)
		return false;
	int vector = irqchip_ack(chip, cpu->index);
	atomic_store(&v->cpu.irq_hint, true); /* more may be pending behind this one */
	if (vector < 0)
		return false;
	cpu->halted = false;
	cpu->exc.depth = 1;
	cpu->exc.delivering = EXC_NMI; /* benign: a fault here is delivered normally */
	soft_deliver(cpu, (uint8_t)vector, false, 0, false, cpu->s.rip);
	cpu->exc.depth = 0;
	return true;
}

/* At an instruction boundary: STI and MOV SS hold off interrupts until
 * after the next instruction. Returns true if an interrupt was delivered. */
static bool soft_boundary(struct engine_vcpu *v)
{
	struct soft_cpu *cpu = &v->cpu;
	if (cpu->interrupt_shadow) {
		cpu->interrupt_shadow = false;
		return false;
	}
	/* The common case, inline: interrupts off or nothing hinted. */
	if (!(cpu->s.rflags & FLAG_IF) || !atomic_load_explicit(&v->cpu.irq_hint, memory_order_relaxed))
		return false;
	return soft_take_interrupt(v);
}

/* Runs the decoded block at RIP for as long as execution falls through it,
 * and at most *budget instructions. The mode cannot change inside the
 * block: whatever changes it (or paging, or the block's own bytes, or
 * halts the CPU) sets cpu->block_abort, which ends the block. */
static void soft_run_block(struct engine_vcpu *v, const struct soft_block *b, unsigned *budget)
{
	struct soft_cpu *cpu = &v->cpu;
	/* Handlers never modify a decoded instruction (the cache owns it). */
	struct insn *i = (struct insn *)&b->insn[0];
	struct insn *end = i + b->ninsns;
	uint64_t mask = rip_mask(cpu);
	unsigned n = *budget;

	cpu->block_abort = false;
	while (n) {
		uint64_t rip = cpu->s.rip;
		uint64_t fall = (rip + i->len) & mask;
		cpu->next_rip = fall;
		i->exec(cpu, i);
		uint64_t next = cpu->next_rip;
		cpu->s.rip = next;
		cpu->icount++;
		n--;
		if (__builtin_expect(cpu->block_abort, 0))
			break;
		if (next == fall) {
			if (++i == end)
				break;
		} else if (next != rip) {
			break; /* a taken branch; REP repeats the same instruction (rip unchanged) */
		}
		/* No interrupt shadow can be active here (setting one ends the
		 * block), so only a hinted interrupt needs a closer look. */
		if (__builtin_expect(atomic_load_explicit(&v->cpu.irq_hint, memory_order_relaxed), 0) &&
		    soft_boundary(v))
			break;
	}
	*budget = n;
}

/* Runs at most `budget` instructions; stops early on a halt, shutdown or
 * kick. Faults longjmp out to soft_run_once. */
static void soft_execute(struct engine_vcpu *v, unsigned budget)
{
	struct soft_cpu *cpu = &v->cpu;
	struct soft_block *prev = NULL; /* the block that ran last, for chaining */
	while (budget) {
		if (cpu->halted || cpu->shutdown ||
		    atomic_load_explicit(&v->kicked, memory_order_relaxed))
			return;
		if (soft_boundary(v)) {
			prev = NULL; /* an interrupt is no path to remember */
			continue;
		}
		/* The translator: 64-bit code with no instruction shadow or
		 * single-step trap pending, and a budget that lets a whole
		 * translation run (the interpreter handles the rest). */
		if (v->jit && cpu->long64 && !cpu->interrupt_shadow && !(cpu->s.rflags & FLAG_TF) &&
		    !v->single_step && budget >= SOFT_JIT_MIN_BUDGET) {
			int left = (int)budget;
			bool ran = soft_jit_run(cpu, v->jit, &cpu->irq_hint, &left);
			budget = left > 0 ? (unsigned)left : 0;
			prev = NULL;
			if (ran)
				continue;
		}
		struct soft_block *b = soft_block_lookup(cpu, prev);
		if (b) {
			soft_run_block(v, b, &budget);
			prev = b;
			continue;
		}
		prev = NULL;
		soft_decode(cpu, &cpu->scratch);
		soft_exec_one(cpu, &cpu->scratch);
		budget--;
	}
}
static bool exc_contributory(uint8_t v)
{
	return v == EXC_DE || (v >= EXC_TS && v <= EXC_GP);
}

/* SDM vol. 3 table 6-5: which second exception, raised while delivering
 * a first one, becomes a double fault. The others are delivered serially. */
static bool exc_is_double_fault(uint8_t first, uint8_t second)
{
	return (exc_contributory(first) && exc_contributory(second)) ||
	       (first == EXC_PF && (second == EXC_PF || exc_contributory(second)));
}

/* Fault delivery with the SDM's escalation: a fault while delivering #DF
 * shuts the processor down (triple fault). */
static void soft_handle_fault(struct soft_cpu *cpu)
{
	uint8_t vector = cpu->exc.vector;
	if (cpu->exc.depth >= 2) {
		cpu->shutdown = true;
		cpu->exc.depth = 0;
		return;
	}
	/* Faults push RFLAGS with RF set, so that IRET back to the faulting
	 * instruction does not re-trigger an instruction breakpoint (SDM vol. 3
	 * §18.3.1.1); delivery then clears RF for the handler. */
	cpu->s.rflags |= FLAG_RF;
	if (cpu->exc.depth == 1 && exc_is_double_fault(cpu->exc.delivering, vector)) {
		cpu->exc.depth = 2;
		cpu->exc.delivering = EXC_DF;
		soft_deliver(cpu, EXC_DF, true, 0, false, cpu->s.rip);
	} else {
		cpu->exc.depth = 1;
		cpu->exc.delivering = vector;
		soft_deliver(cpu, vector, cpu->exc.has_error, cpu->exc.error_code, false, cpu->s.rip);
	}
	cpu->exc.depth = 0;
}

static void soft_run_once(struct engine_vcpu *v, unsigned budget)
{
	struct soft_cpu *cpu = &v->cpu;
	cpu->string_bulk = !v->single_step;
	/* setjmp returns again for every fault; the loop state lives in cpu,
	 * so no local is modified between setjmp and longjmp. */
	if (setjmp(cpu->jb)) {
		soft_handle_fault(cpu);
		return;
	}
	soft_execute(v, budget);
}

/* Whether a halted CPU has something to wake it: an interrupt it can take. */
static bool soft_halt_should_wake(struct engine_vcpu *v)
{
	struct soft_cpu *cpu = &v->cpu;
	if (!atomic_load(&v->cpu.irq_hint) || !(cpu->s.rflags & FLAG_IF))
		return false;
	return irqchip_pending(&cpu->engine->irqchip, cpu->index) >= 0;
}

static void soft_wait_while_halted(struct engine_vcpu *v)
{
	struct soft_cpu *cpu = &v->cpu;
	struct soft_irqchip *chip = &cpu->engine->irqchip;

	while (cpu->halted && !atomic_load(&v->kicked)) {
		uint64_t now = soft_now_ns();
		irqchip_poll_timers(chip, now);
		if (soft_halt_should_wake(v)) {
			cpu->halted = false;
			break;
		}
		uint64_t next = irqchip_next_event_ns(chip, cpu->index);
		uint64_t until = now + MAX_HALT_WAIT_NS;
		if (next > now && next < until)
			until = next;
		struct timespec rt;
		clock_gettime(CLOCK_REALTIME, &rt);
		uint64_t abs = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec + (until - now);
		struct timespec deadline = {.tv_sec = (time_t)(abs / 1000000000ULL),
					    .tv_nsec = (long)(abs % 1000000000ULL)};
		pthread_mutex_lock(&v->lock);
		if (!atomic_load(&v->kicked) && !atomic_load(&v->cpu.irq_hint))
			pthread_cond_timedwait(&v->wake, &v->lock, &deadline);
		pthread_mutex_unlock(&v->lock);
	}
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
			/* Reported once, as soon as it happens (like KVM without an
			 * in-kernel LAPIC); the next run() sleeps until an interrupt
			 * or a kick wakes the vCPU. */
			if (!v->halt_reported) {
				v->halt_reported = true;
				x->kind = VCPU_EXIT_HLT;
				return 0;
			}
			soft_wait_while_halted(v);
			continue;
		}
		v->halt_reported = false;
		if (v->single_step) {
			soft_run_once(v, 1);
			x->kind = cpu->shutdown ? VCPU_EXIT_SHUTDOWN : VCPU_EXIT_DEBUG;
			return 0;
		}
		irqchip_poll_timers(&cpu->engine->irqchip, soft_now_ns());
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
	soft_jit_stats(v->jit, &out->jit);
}

static int soft_irq_line(struct engine *e, uint32_t gsi, int level)
{
	return irqchip_set_level(&e->se.irqchip, gsi, level);
}

static int soft_msi(struct engine *e, uint64_t addr, uint32_t data)
{
	return irqchip_msi(&e->se.irqchip, addr, data);
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
