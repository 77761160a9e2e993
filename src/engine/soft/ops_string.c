/* String instructions (SDM vol. 2: MOVS, CMPS, STOS, LODS, SCAS, INS,
 * OUTS, and REP/REPE/REPNE; vol. 1 §7.3.9 for the string operations and
 * the repeat prefixes).
 *
 * Operands: the source is seg:rSI (DS unless overridden), the destination
 * always ES:rDI. rSI, rDI and rCX are used and updated at the address
 * size, wrapping at that size (16-bit updates merge into the register,
 * 32-bit ones zero-extend it, as any register write). DF selects the
 * direction.
 *
 * REP: with a zero count no iteration happens (see zero_count() for the
 * register write-back). Each call of a handler performs ONE iteration and,
 * when more remain, leaves RIP at the instruction so it runs again
 * (next_rip = rip). So every iteration is fault-atomic and restartable,
 * interrupts and kicks are taken between iterations, and single-stepping
 * sees one iteration per step, as the trap flag does on hardware (a
 * single-step trap follows each iteration of a repeated string
 * instruction) -- which is what the differential tester compares against.
 * F2 and F3 both mean REP for the instructions that do not test ZF; for
 * CMPS and SCAS, REPE (F3) stops when ZF = 0 and REPNE (F2) when ZF = 1. */
#include "engine/soft/ctrl.h"

/* The I/O permission check of IN/OUT/INS/OUTS (CPL vs IOPL, TSS bitmap),
 * implemented with the system instructions. */
void soft_io_check(struct soft_cpu *cpu, uint16_t port, unsigned size);

/* Stand-in until ops_system.c provides the real check: a strong
 * definition there replaces it at link time. */
__attribute__((weak)) void soft_io_check(struct soft_cpu *cpu, uint16_t port, unsigned size)
{
	(void)cpu;
	(void)port;
	(void)size;
}

static uint64_t addr_reg(const struct soft_cpu *cpu, const struct insn *i, unsigned reg)
{
	return cpu->s.gpr[reg] & size_mask(i->addrsize);
}

/* Moves rSI or rDI past one element in the direction DF gives. */
static void advance(struct soft_cpu *cpu, const struct insn *i, unsigned reg, unsigned size)
{
	uint64_t v = addr_reg(cpu, i, reg);
	v = (cpu->s.rflags & FLAG_DF) ? v - size : v + size;
	reg_write(cpu, reg, i->addrsize, v, true);
}

static uint64_t src_read(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	return seg_read(cpu, i->seg, addr_reg(cpu, i, GPR_RSI), size);
}

static uint64_t dst_read(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	return seg_read(cpu, SEG_ES, addr_reg(cpu, i, GPR_RDI), size);
}

/* ---- one iteration of each instruction; accesses first, then updates ---- */

static void movs_once(struct soft_cpu *cpu, const struct insn *i)
{
	uint64_t v = src_read(cpu, i, i->opsize);
	seg_write(cpu, SEG_ES, addr_reg(cpu, i, GPR_RDI), i->opsize, v);
	advance(cpu, i, GPR_RSI, i->opsize);
	advance(cpu, i, GPR_RDI, i->opsize);
}

static void cmps_once(struct soft_cpu *cpu, const struct insn *i)
{
	uint64_t a = src_read(cpu, i, i->opsize);
	uint64_t b = dst_read(cpu, i, i->opsize);
	advance(cpu, i, GPR_RSI, i->opsize);
	advance(cpu, i, GPR_RDI, i->opsize);
	flags_set(cpu, LF_SUB, i->opsize, a - b, a, b);
}

static void stos_once(struct soft_cpu *cpu, const struct insn *i)
{
	seg_write(cpu, SEG_ES, addr_reg(cpu, i, GPR_RDI), i->opsize,
		  reg_read(cpu, GPR_RAX, i->opsize, true));
	advance(cpu, i, GPR_RDI, i->opsize);
}

static void lods_once(struct soft_cpu *cpu, const struct insn *i)
{
	uint64_t v = src_read(cpu, i, i->opsize);
	reg_write(cpu, GPR_RAX, i->opsize, v, true);
	advance(cpu, i, GPR_RSI, i->opsize);
}

static void scas_once(struct soft_cpu *cpu, const struct insn *i)
{
	uint64_t a = reg_read(cpu, GPR_RAX, i->opsize, true);
	uint64_t b = dst_read(cpu, i, i->opsize);
	advance(cpu, i, GPR_RDI, i->opsize);
	flags_set(cpu, LF_SUB, i->opsize, a - b, a, b);
}

/* INS and OUTS move at most a doubleword (REX.W does not widen them). */
static unsigned io_size(const struct insn *i) { return i->opsize > 4 ? 4 : i->opsize; }

static uint16_t io_port(const struct soft_cpu *cpu) { return (uint16_t)cpu->s.gpr[GPR_RDX]; }

/* The destination is checked before the port is read: a port read can
 * have side effects, so it must not happen for an iteration that faults. */
static void ins_once(struct soft_cpu *cpu, const struct insn *i)
{
	unsigned size = io_size(i);
	uint16_t port = io_port(cpu);
	uint8_t data[4] = {0};
	uint64_t off = addr_reg(cpu, i, GPR_RDI);

	soft_io_check(cpu, port, size);
	soft_probe_write(cpu, SEG_ES, off, size);
	soft_pio(cpu, port, size, false, data);
	uint64_t v = (uint64_t)data[0] | (uint64_t)data[1] << 8 | (uint64_t)data[2] << 16 |
		     (uint64_t)data[3] << 24;
	seg_write(cpu, SEG_ES, off, size, v);
	advance(cpu, i, GPR_RDI, size);
}

static void outs_once(struct soft_cpu *cpu, const struct insn *i)
{
	unsigned size = io_size(i);
	uint16_t port = io_port(cpu);

	soft_io_check(cpu, port, size);
	uint64_t v = src_read(cpu, i, size);
	uint8_t data[4];
	for (unsigned k = 0; k < 4; k++)
		data[k] = (uint8_t)(v >> (8 * k));
	soft_pio(cpu, port, size, true, data);
	advance(cpu, i, GPR_RSI, size);
}

/* ---- the repeat logic ---- */

typedef void (*string_once_fn)(struct soft_cpu *cpu, const struct insn *i);

#define RW_SI (1u << 0)
#define RW_DI (1u << 1)

struct string_op {
	string_once_fn once;
	bool tests_zf;        /* REPE/REPNE terminate on ZF (CMPS, SCAS) */
	unsigned zero_count;  /* RW_*: index registers rewritten when rCX = 0 */
};

/* Rewrites a register at the address size with its own value: a no-op
 * except that a 32-bit address size in 64-bit mode zero-extends it. */
static void rewrite(struct soft_cpu *cpu, const struct insn *i, unsigned reg)
{
	reg_write(cpu, reg, i->addrsize, addr_reg(cpu, i, reg), true);
}

/* A zero count performs no iteration, but Intel processors still write
 * back the count register, and for MOVS/STOS the pointers, at the address
 * size (measured: with an address-size prefix in 64-bit mode and rCX[31:0]
 * = 0, RCX[63:32] is cleared, as are RSI/RDI[63:32] for MOVS and RDI[63:32]
 * for STOS; LODS, CMPS and SCAS keep rSI/rDI). INS/OUTS could not be
 * measured and are given the common part, rCX only. */
static void zero_count(struct soft_cpu *cpu, const struct insn *i, unsigned regs)
{
	rewrite(cpu, i, GPR_RCX);
	if (regs & RW_SI)
		rewrite(cpu, i, GPR_RSI);
	if (regs & RW_DI)
		rewrite(cpu, i, GPR_RDI);
}

/* REP MOVS and REP STOS in bulk: as many iterations as stay within the
 * current source and destination pages at once, when both are RAM with
 * TLB hits, in 64-bit mode with DF = 0 and outside single-stepping (which
 * must see one iteration per step). Memory is then exactly as after that
 * many single iterations, and each page is done at once: the iterations
 * are restartable at page granularity and interrupts wait at most a page.
 * Overlapping copies (whose byte-by-byte result differs from memmove's)
 * and anything else take the one-iteration path. Returns the iterations
 * done, 0 for none. */
static uint64_t string_bulk(struct soft_cpu *cpu, const struct insn *i, bool is_movs,
			    uint64_t count)
{
	unsigned size = i->opsize;
	if (!cpu->string_bulk || !cpu->long64 || i->addrsize != 8 || (cpu->s.rflags & FLAG_DF) ||
	    count < 2)
		return 0;
	uint64_t dst = cpu->s.gpr[GPR_RDI], src = cpu->s.gpr[GPR_RSI];
	uint64_t n = (0x1000 - (dst & 0xfff)) / size;
	if (is_movs && (0x1000 - (src & 0xfff)) / size < n)
		n = (0x1000 - (src & 0xfff)) / size;
	if (n > count)
		n = count;
	if (n < 2)
		return 0;
	uint8_t *d = mem_fast(cpu, SEG_ES, dst, (unsigned)(n * size), ACC_WRITE);
	if (!d)
		return 0;
	if (is_movs) {
		const uint8_t *s = mem_fast(cpu, i->seg, src, (unsigned)(n * size), ACC_READ);
		if (!s || (d > s && d < s + n * size))
			return 0;
		memmove(d, s, n * size);
		cpu->s.gpr[GPR_RSI] = src + n * size;
	} else if (size == 1) {
		memset(d, (int)(cpu->s.gpr[GPR_RAX] & 0xff), n);
	} else {
		uint64_t v = cpu->s.gpr[GPR_RAX];
		for (uint64_t k = 0; k < n; k++)
			memcpy(d + k * size, &v, size);
	}
	cpu->s.gpr[GPR_RDI] = dst + n * size;
	return n;
}

static const struct string_op op_movs, op_stos;

/* Runs one iteration, or under REP one iteration and rCX - 1, re-running
 * the instruction while iterations remain. */
static void string_exec(struct soft_cpu *cpu, const struct insn *i, const struct string_op *op)
{
	if (!i->rep) {
		op->once(cpu, i);
		return;
	}
	uint64_t count = addr_reg(cpu, i, GPR_RCX);
	if (count == 0) {
		zero_count(cpu, i, op->zero_count);
		return;
	}
	uint64_t done = op == &op_movs || op == &op_stos ? string_bulk(cpu, i, op == &op_movs, count) : 0;
	if (!done) {
		op->once(cpu, i);
		done = 1;
	}
	count -= done;
	reg_write(cpu, GPR_RCX, i->addrsize, count, true);
	if (count == 0)
		return;
	if (op->tests_zf && flags_zf(cpu) != (i->rep == 0xf3))
		return;
	cpu->next_rip = cpu->s.rip; /* more to do: run this instruction again */
}

static const struct string_op op_movs = {movs_once, false, RW_SI | RW_DI};
static const struct string_op op_cmps = {cmps_once, true, 0};
static const struct string_op op_stos = {stos_once, false, RW_DI};
static const struct string_op op_lods = {lods_once, false, 0};
static const struct string_op op_scas = {scas_once, true, 0};
static const struct string_op op_ins = {ins_once, false, 0};
static const struct string_op op_outs = {outs_once, false, 0};

static void movs(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_movs); }
static void cmps(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_cmps); }
static void stos(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_stos); }
static void lods(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_lods); }
static void scas(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_scas); }
static void ins(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_ins); }
static void outs(struct soft_cpu *cpu, struct insn *i) { string_exec(cpu, i, &op_outs); }

#define B OPF_BYTE
const struct opdef soft_ops_string[] = {
    {OPMAP_1B, 0xa4, -1, -1, PFX_ANY, B, "movsb", movs},
    {OPMAP_1B, 0xa5, -1, -1, PFX_ANY, 0, "movs", movs},
    {OPMAP_1B, 0xa6, -1, -1, PFX_ANY, B, "cmpsb", cmps},
    {OPMAP_1B, 0xa7, -1, -1, PFX_ANY, 0, "cmps", cmps},
    {OPMAP_1B, 0xaa, -1, -1, PFX_ANY, B, "stosb", stos},
    {OPMAP_1B, 0xab, -1, -1, PFX_ANY, 0, "stos", stos},
    {OPMAP_1B, 0xac, -1, -1, PFX_ANY, B, "lodsb", lods},
    {OPMAP_1B, 0xad, -1, -1, PFX_ANY, 0, "lods", lods},
    {OPMAP_1B, 0xae, -1, -1, PFX_ANY, B, "scasb", scas},
    {OPMAP_1B, 0xaf, -1, -1, PFX_ANY, 0, "scas", scas},
    {OPMAP_1B, 0x6c, -1, -1, PFX_ANY, B, "insb", ins},
    {OPMAP_1B, 0x6d, -1, -1, PFX_ANY, 0, "ins", ins},
    {OPMAP_1B, 0x6e, -1, -1, PFX_ANY, B, "outsb", outs},
    {OPMAP_1B, 0x6f, -1, -1, PFX_ANY, 0, "outs", outs},
    OPDEF_END,
};
