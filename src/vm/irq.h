/* The one interrupt API devices use (design.md, "Interrupts"). The VM
 * fills in the callbacks for its engine (KVM_IRQ_LINE/KVM_SIGNAL_MSI under
 * KVM, software APIC models under the soft engine); devices receive a
 * pointer at creation and never know which engine runs. */
#ifndef SHRIKE_VM_IRQ_H
#define SHRIKE_VM_IRQ_H

#include <stdint.h>

struct irq_ctl {
	int (*set_level)(void *opaque, uint32_t gsi, int level);
	int (*msi)(void *opaque, uint64_t addr, uint32_t data);
	void *opaque;
};

static inline int irq_set_level(const struct irq_ctl *irq, uint32_t gsi, int level)
{
	return irq && irq->set_level ? irq->set_level(irq->opaque, gsi, level) : 0;
}

static inline int msi_send(const struct irq_ctl *irq, uint64_t addr, uint32_t data)
{
	return irq && irq->msi ? irq->msi(irq->opaque, addr, data) : 0;
}

#endif
