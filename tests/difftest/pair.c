/* One engine under test: its own guest memory, engine and vCPU, created
 * through the public engine interface, and the single-step loop that turns
 * each engine's way of reporting I/O into the same event log. KVM returns
 * I/O and MMIO exits from run() (the instruction completes on the next
 * run(), as in the VMM's vCPU loop); the soft engine calls the exit
 * handler synchronously. Reads of ports and MMIO return dt_read_value(). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "difftest.h"

/* A test whose single instruction produces more exits than this is
 * reported as an engine failure rather than looping. */
#define MAX_EXITS_PER_STEP 4200

void dt_read_value(uint64_t addr, unsigned index, uint8_t *buf, unsigned len)
{
	uint64_t x = (addr + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)index * 0xbf58476d1ce4e5b9ULL);
	for (unsigned k = 0; k < len; k++) {
		x ^= x >> 29;
		x *= 0x94d049bb133111ebULL;
		buf[k] = (uint8_t)(x >> 56);
	}
}

static bool is_magic_port(uint16_t port)
{
	return port >= 0xbe && port < DT_PORT_EXC + 32;
}

static void record(struct dt_side *s, const struct dt_event *e)
{
	if (s->nev < DT_MAX_EVENTS)
		s->ev[s->nev++] = *e;
	else
		s->lost_ev++;
}

static void handle_io(struct dt_side *s, struct vcpu_exit *x)
{
	uint32_t count = x->io.count ? x->io.count : 1;
	unsigned size = x->io.size <= 4 ? x->io.size : 4;
	if (count > 4096 / (size ? size : 1))
		count = 4096 / (size ? size : 1);
	for (uint32_t k = 0; k < count; k++) {
		uint8_t *d = x->io.data + (size_t)k * size;
		struct dt_event e = {.kind = DT_EV_PIO, .size = (uint8_t)size,
				     .write = x->io.is_write, .count = 1, .addr = x->io.port};
		if (!x->io.is_write)
			dt_read_value(x->io.port, 0, d, size);
		memcpy(&e.data, d, size);
		record(s, &e);
		if (x->io.is_write && size == 1 && is_magic_port(x->io.port) && s->exc_vector < 0)
			s->exc_vector = x->io.port == DT_PORT_SOFTINT ? DT_USER_VECTOR
					: x->io.port == 0xbe	       ? 0x100
									: x->io.port - DT_PORT_EXC;
	}
}

static void handle_mmio(struct dt_side *s, struct vcpu_exit *x)
{
	unsigned size = x->mmio.size <= 8 ? x->mmio.size : 8;
	struct dt_event e = {.kind = DT_EV_MMIO, .size = (uint8_t)size, .write = x->mmio.is_write,
			     .count = 1, .addr = x->mmio.addr};
	if (!x->mmio.is_write)
		dt_read_value(x->mmio.addr, 0, x->mmio.data, size);
	memcpy(&e.data, x->mmio.data, size);
	record(s, &e);
}

static void soft_exit_handler(void *opaque, unsigned index, struct vcpu_exit *x)
{
	struct dt_side *s = opaque;
	(void)index;
	if (x->kind == VCPU_EXIT_IO)
		handle_io(s, x);
	else if (x->kind == VCPU_EXIT_MMIO)
		handle_mmio(s, x);
}

int dt_side_init(struct dt_side *s, const struct engine_ops *ops, bool soft_interpret, char *err,
		 size_t errlen)
{
	struct errmsg em = {{0}};
	int rc;

	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->exc_vector = -1;
	rc = guest_mem_init(&s->mem, DT_MEM_SIZE);
	if (rc) {
		snprintf(err, errlen, "guest memory: %s", strerror(-rc));
		return rc;
	}
	struct engine_config ec = {.mem = &s->mem, .ncpus = 1, .soft_interpret = soft_interpret,
				   .exit_handler = soft_exit_handler, .exit_opaque = s};
	rc = ops->create(&s->engine, &ec, &em);
	if (!rc)
		rc = ops->vcpu_create(s->engine, 0, &s->vcpu, &em);
	if (!rc)
		rc = dt_side_single_step(s, true);
	if (!rc)
		rc = dt_machine_write(&s->mem);
	if (rc) {
		snprintf(err, errlen, "%s engine: %s", ops->name, em.text[0] ? em.text : strerror(-rc));
		dt_side_fini(s);
	}
	return rc;
}

void dt_side_fini(struct dt_side *s)
{
	if (s->vcpu)
		s->ops->vcpu_destroy(s->vcpu);
	if (s->engine)
		s->ops->destroy(s->engine);
	if (s->mem.base)
		guest_mem_destroy(&s->mem);
	s->vcpu = NULL;
	s->engine = NULL;
	s->mem.base = NULL;
}

int dt_side_single_step(struct dt_side *s, bool on)
{
	if (s->single_step == on && s->engine_stepping_known)
		return 0;
	int rc = s->ops->set_single_step(s->vcpu, on);
	if (!rc) {
		s->single_step = on;
		s->engine_stepping_known = true;
	}
	return rc;
}

void dt_side_reset_events(struct dt_side *s)
{
	s->nev = 0;
	s->lost_ev = 0;
	s->exc_vector = -1;
}

int dt_side_load(struct dt_side *s, const struct cpu_state *st)
{
	s->last_exit = VCPU_EXIT_DEBUG;
	s->last_detail = 0;
	int rc = s->ops->set_state(s->vcpu, st);
	if (rc)
		return rc;
	return s->ops->get_state(s->vcpu, &s->st);
}

/* Completes the instruction behind an I/O or MMIO exit without running
 * further: KVM finishes a pending I/O on entry to KVM_RUN before it looks
 * at immediate_exit, which kick() sets (api.rst, KVM_RUN and
 * immediate_exit). Returns the exit that ends the completion. */
static int kvm_complete(struct dt_side *s, struct vcpu_exit *x)
{
	s->ops->kick(s->vcpu);
	memset(x, 0, sizeof(*x));
	return s->ops->run(s->vcpu, x);
}

static void handle_exit(struct dt_side *s, struct vcpu_exit *x)
{
	if (x->kind == VCPU_EXIT_IO)
		handle_io(s, x);
	else if (x->kind == VCPU_EXIT_MMIO)
		handle_mmio(s, x);
}

static bool is_access_exit(const struct vcpu_exit *x)
{
	return x->kind == VCPU_EXIT_IO || x->kind == VCPU_EXIT_MMIO;
}

/* One KVM entry sequence: an access exit is answered and completed (an
 * MMIO access split across pages exits again; each is answered). Stops at
 * the DEBUG exit, at any other exit that ends the test, or after the
 * first completed access: KVM reports no single-step trap for an
 * instruction it completes in KVM_RUN's prologue, and loses a guest-TF
 * trap after an emulated MMIO write, so the tester stops by itself. An
 * INTR that executed nothing is entered again. */
static int kvm_step(struct dt_side *s)
{
	struct vcpu_exit x;
	int rc = 0;

	for (unsigned n = 0; n < MAX_EXITS_PER_STEP; n++) {
		bool completed = false;
		memset(&x, 0, sizeof(x));
		rc = s->ops->run(s->vcpu, &x);
		for (unsigned m = 0; !rc && is_access_exit(&x) && m < MAX_EXITS_PER_STEP; m++) {
			handle_exit(s, &x);
			rc = kvm_complete(s, &x);
			completed = true;
		}
		if (rc)
			return rc;
		s->last_exit = x.kind;
		s->last_detail = x.detail.code;
		if (atomic_load(&s->watchdog_fired))
			return 0;
		if (x.kind != VCPU_EXIT_INTR)
			return 0; /* DEBUG, or an exit that ends the test */
		if (completed)
			return 0; /* the access completed the instruction (or the stub's) */
		/* Otherwise an INTR that executed nothing: a completion that
		 * ended in a DEBUG exit leaves immediate_exit set for one more
		 * entry, which returns at once. Enter again. */
	}
	return -ELOOP;
}

int dt_side_step(struct dt_side *s)
{
	int rc;
	if (s->ops == &kvm_engine_ops) {
		rc = kvm_step(s);
	} else {
		struct vcpu_exit x;
		memset(&x, 0, sizeof(x));
		rc = s->ops->run(s->vcpu, &x);
		s->last_exit = x.kind;
		s->last_detail = x.detail.code;
	}
	int rc2 = s->ops->get_state(s->vcpu, &s->st);
	return rc ? rc : rc2;
}
