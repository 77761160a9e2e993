/* Translation between shrike's cpu_state and KVM's kvm_regs/kvm_sregs.
 * The field meanings are identical (both follow the SDM), so this is a
 * straight copy, kept in one place. */
#include <string.h>

#include "engine/kvm/kvm_internal.h"

static void seg_to_kvm(const struct segment *s, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->base = s->base;
	k->limit = s->limit;
	k->selector = s->selector;
	k->type = s->type;
	k->s = s->s;
	k->dpl = s->dpl;
	k->present = s->present;
	k->avl = s->avl;
	k->l = s->l;
	k->db = s->db;
	k->g = s->g;
	k->unusable = s->unusable;
}

static void seg_from_kvm(struct segment *s, const struct kvm_segment *k)
{
	memset(s, 0, sizeof(*s));
	s->base = k->base;
	s->limit = k->limit;
	s->selector = k->selector;
	s->type = k->type;
	s->s = k->s;
	s->dpl = k->dpl;
	s->present = k->present;
	s->avl = k->avl;
	s->l = k->l;
	s->db = k->db;
	s->g = k->g;
	s->unusable = k->unusable;
}

/* kvm_sregs names segments; cpu_state indexes them in encoding order. */
static struct kvm_segment *sregs_seg(struct kvm_sregs *sr, enum seg_reg r)
{
	struct kvm_segment *map[SEG_COUNT] = {
	    [SEG_ES] = &sr->es, [SEG_CS] = &sr->cs, [SEG_SS] = &sr->ss, [SEG_DS] = &sr->ds,
	    [SEG_FS] = &sr->fs, [SEG_GS] = &sr->gs, [SEG_LDTR] = &sr->ldt, [SEG_TR] = &sr->tr,
	};
	return map[r];
}

void kvm_state_to_kvm(const struct cpu_state *s, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	regs->rax = s->gpr[GPR_RAX];
	regs->rcx = s->gpr[GPR_RCX];
	regs->rdx = s->gpr[GPR_RDX];
	regs->rbx = s->gpr[GPR_RBX];
	regs->rsp = s->gpr[GPR_RSP];
	regs->rbp = s->gpr[GPR_RBP];
	regs->rsi = s->gpr[GPR_RSI];
	regs->rdi = s->gpr[GPR_RDI];
	regs->r8 = s->gpr[GPR_R8];
	regs->r9 = s->gpr[GPR_R9];
	regs->r10 = s->gpr[GPR_R10];
	regs->r11 = s->gpr[GPR_R11];
	regs->r12 = s->gpr[GPR_R12];
	regs->r13 = s->gpr[GPR_R13];
	regs->r14 = s->gpr[GPR_R14];
	regs->r15 = s->gpr[GPR_R15];
	regs->rip = s->rip;
	regs->rflags = s->rflags;

	for (int r = 0; r < SEG_COUNT; r++)
		seg_to_kvm(&s->seg[r], sregs_seg(sregs, (enum seg_reg)r));
	sregs->gdt.base = s->gdt.base;
	sregs->gdt.limit = s->gdt.limit;
	sregs->idt.base = s->idt.base;
	sregs->idt.limit = s->idt.limit;
	sregs->cr0 = s->cr0;
	sregs->cr2 = s->cr2;
	sregs->cr3 = s->cr3;
	sregs->cr4 = s->cr4;
	sregs->cr8 = s->cr8;
	sregs->efer = s->efer;
	sregs->apic_base = s->apic_base;
}

void kvm_state_from_kvm(struct cpu_state *s, const struct kvm_regs *regs,
			const struct kvm_sregs *sregs)
{
	struct kvm_sregs copy = *sregs;

	s->gpr[GPR_RAX] = regs->rax;
	s->gpr[GPR_RCX] = regs->rcx;
	s->gpr[GPR_RDX] = regs->rdx;
	s->gpr[GPR_RBX] = regs->rbx;
	s->gpr[GPR_RSP] = regs->rsp;
	s->gpr[GPR_RBP] = regs->rbp;
	s->gpr[GPR_RSI] = regs->rsi;
	s->gpr[GPR_RDI] = regs->rdi;
	s->gpr[GPR_R8] = regs->r8;
	s->gpr[GPR_R9] = regs->r9;
	s->gpr[GPR_R10] = regs->r10;
	s->gpr[GPR_R11] = regs->r11;
	s->gpr[GPR_R12] = regs->r12;
	s->gpr[GPR_R13] = regs->r13;
	s->gpr[GPR_R14] = regs->r14;
	s->gpr[GPR_R15] = regs->r15;
	s->rip = regs->rip;
	s->rflags = regs->rflags;

	for (int r = 0; r < SEG_COUNT; r++)
		seg_from_kvm(&s->seg[r], sregs_seg(&copy, (enum seg_reg)r));
	s->gdt.base = sregs->gdt.base;
	s->gdt.limit = sregs->gdt.limit;
	s->idt.base = sregs->idt.base;
	s->idt.limit = sregs->idt.limit;
	s->cr0 = sregs->cr0;
	s->cr2 = sregs->cr2;
	s->cr3 = sregs->cr3;
	s->cr4 = sregs->cr4;
	s->cr8 = sregs->cr8;
	s->efer = sregs->efer;
	s->apic_base = sregs->apic_base;
}
