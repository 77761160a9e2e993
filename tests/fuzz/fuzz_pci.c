/* Hostile configuration and MSI-X traffic against a host bridge with two
 * functions: 00:01.0 (a 32-bit memory BAR holding an MSI-X table and PBA,
 * an I/O BAR) and 00:02.0 (a 64-bit prefetchable BAR, a vendor capability).
 * Each 16-byte record is: operation, size selector, two flag bytes, a
 * 32-bit offset, a 64-bit value. Accesses go through the host's bus_ops
 * (CF8, CFC, ECAM) and the MSI-X table/PBA handlers. After every record:
 * identification registers are unchanged, no live MSI-X vector is left
 * pending, decoded BARs lie inside their address spaces, and each BAR's
 * remap callbacks chain (old address == previous new address). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "pci/host.h"
#include "pci/msix.h"

#define RECORD 16

struct fuzz_owner {
	struct msix *msix;
	uint64_t last[PCI_NUM_BARS];
};

struct fuzz_pci {
	struct pci_host host;
	struct pci_function f1, f2;
	struct fuzz_owner o1, o2;
	struct msix msix;
	struct irq_ctl irq;
	unsigned msis;
};

static void fuzz_remap(void *opaque, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct fuzz_owner *o = opaque;
	if (bar >= PCI_NUM_BARS || o->last[bar] != old_addr || old_addr == new_addr)
		__builtin_trap();
	o->last[bar] = new_addr;
}

static void fuzz_written(void *opaque, unsigned off, unsigned size)
{
	struct fuzz_owner *o = opaque;
	if (off >= PCI_CONFIG_SIZE || size == 0 || size > PCI_CONFIG_SIZE - off)
		__builtin_trap();
	if (o->msix)
		msix_config_written(o->msix, off, size);
}

static const struct pci_function_ops fuzz_ops = {.bar_remap = fuzz_remap, .config_written = fuzz_written};

static int fuzz_msi(void *opaque, uint64_t addr, uint32_t data)
{
	(void)addr;
	(void)data;
	((struct fuzz_pci *)opaque)->msis++;
	return 0;
}

static int fuzz_setup(struct fuzz_pci *p)
{
	static const struct pci_ids ids1 = {.vendor = 0x1af4, .device = 0x1041,
					    .class_code = 0x020000, .irq_pin = 1};
	static const struct pci_ids ids2 = {.vendor = 0x1af4, .device = 0x1042,
					    .class_code = 0x010000, .irq_pin = 2};
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		p->o1.last[i] = p->o2.last[i] = PCI_BAR_UNMAPPED;
	p->irq = (struct irq_ctl){.msi = fuzz_msi, .opaque = p};
	if (pci_host_init(&p->host) < 0 || pci_function_init(&p->f1, &ids1, &fuzz_ops, &p->o1) < 0 ||
	    pci_function_init(&p->f2, &ids2, &fuzz_ops, &p->o2) < 0)
		return -1;
	if (pci_bar_add(&p->f1, 0, PCI_BAR_MEM32, 0x2000, false) < 0 ||
	    pci_bar_add(&p->f1, 1, PCI_BAR_IO, 0x40, false) < 0 ||
	    msix_init(&p->msix, &p->f1, &p->irq, 70, 0, 0, 0, 0x1000) < 0)
		return -1;
	p->o1.msix = &p->msix;
	if (pci_bar_add(&p->f2, 2, PCI_BAR_MEM64, 0x4000, true) < 0 ||
	    pci_config_add_cap(&p->f2, PCI_CAP_ID_VNDR, 20) < 0)
		return -1;
	if (pci_host_add(&p->host, 1, 0, &p->f1) < 0 || pci_host_add(&p->host, 2, 0, &p->f2) < 0)
		return -1;
	return 0;
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t ecam_offset(const uint8_t *r, uint32_t off)
{
	/* half the time aim at bus 0, devices 0..3, so the fuzzer reaches them */
	if (r[2] & 1)
		return ((uint64_t)(r[3] & 3) << 15 | (uint64_t)((r[3] >> 2) & 1) << 12 | (off & 0xfff));
	return off % LAYOUT_ECAM_SIZE;
}

static void run_record(struct fuzz_pci *p, const uint8_t *r)
{
	unsigned size = 1u << (r[1] % 4);
	uint32_t off = (uint32_t)get_le(r + 4, 4);
	uint64_t value = get_le(r + 8, 8);
	uint8_t buf[8];
	bus_data_put(buf, size, value);
	struct pci_host *h = &p->host;

	switch (r[0] % 12) {
	case 0: /* mostly well-formed CONFIG_ADDRESS for our devices */
		if (r[2] & 1) {
			uint32_t a = PCI_CF8_ENABLE | (uint32_t)(r[3] & 3) << 11 | (off & 0x7fc);
			bus_data_put(buf, 4, a);
			pci_host_cf8_ops.write(h, 0, buf, 4);
		} else {
			pci_host_cf8_ops.write(h, off % 4, buf, size);
		}
		break;
	case 1:
		pci_host_cf8_ops.read(h, off % 4, buf, size);
		break;
	case 2:
		pci_host_cfc_ops.write(h, off % 4, buf, size);
		break;
	case 3:
		pci_host_cfc_ops.read(h, off % 4, buf, size);
		break;
	case 4:
		pci_host_ecam_ops.write(h, ecam_offset(r, off), buf, size);
		break;
	case 5:
		pci_host_ecam_ops.read(h, ecam_offset(r, off), buf, size);
		break;
	case 6:
		msix_mmio_write(&p->msix, r[2] % 2, off % 0x2000, buf, size);
		break;
	case 7:
		msix_mmio_read(&p->msix, r[2] % 2, off % 0x2000, buf, size);
		break;
	case 8:
		msix_notify(&p->msix, off % 72); /* includes bad vectors */
		break;
	case 9: /* MSI-X Message Control through the locked accessor */
		pci_host_config_write(h, 0, 1, 0, p->msix.cap + MSIX_CAP_CONTROL, 2,
				      (uint32_t)value);
		break;
	case 10: /* the BAR windows, wherever the guest has moved the BARs */
		if (r[2] & 1)
			pci_host_mmio_window_ops.write(h, off % (LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO_START),
						       buf, size);
		else
			pci_host_mmio_window_ops.read(h, off % (LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO_START),
						      buf, size);
		break;
	case 11:
		if (r[2] & 1)
			pci_host_io_window_ops.write(h, off % (PCI_HOST_IO_END - PCI_HOST_IO_START), buf, size);
		else
			pci_host_io_window_ops.read(h, off % (PCI_HOST_IO_END - PCI_HOST_IO_START), buf, size);
		break;
	}
}

static bool bar_ok(const struct pci_function *f, unsigned i)
{
	const struct pci_bar *b = &f->bar[i];
	if (b->mapped == PCI_BAR_UNMAPPED)
		return true;
	uint64_t limit = b->type == PCI_BAR_IO ? 0xffff : b->type == PCI_BAR_MEM32 ? UINT32_MAX
										      : UINT64_MAX;
	return b->type != PCI_BAR_NONE && b->mapped % b->size == 0 && b->mapped != 0 &&
	       b->mapped < limit - (b->size - 1);
}

static void check_invariants(struct fuzz_pci *p)
{
	struct pci_host *h = &p->host;
	if (pci_host_config_read(h, 0, 1, 0, 0, 4) != 0x10411af4 ||
	    pci_host_config_read(h, 0, 2, 0, 0, 4) != 0x10421af4 ||
	    pci_host_config_read(h, 0, 0, 0, 0, 4) != 0x29c08086 ||
	    pci_host_config_read(h, 0, 3, 0, 0, 4) != UINT32_MAX)
		__builtin_trap();
	struct msix *m = &p->msix;
	for (unsigned v = 0; v < m->nvec; v++) {
		bool pending = (m->pending[v / 64] >> (v % 64)) & 1;
		bool live = m->enabled && !m->function_masked &&
			    !(m->table[v].control & MSIX_ENTRY_CONTROL_MASK);
		if (pending && live)
			__builtin_trap();
	}
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (!bar_ok(&p->f1, i) || !bar_ok(&p->f2, i) || p->o1.last[i] != p->f1.bar[i].mapped ||
		    p->o2.last[i] != p->f2.bar[i].mapped)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_pci *p = calloc(1, sizeof(*p));
	if (!p)
		return 0;
	if (fuzz_setup(p) < 0)
		__builtin_trap();
	for (size_t i = 0; i + RECORD <= size && i < 4096 * RECORD; i += RECORD) {
		run_record(p, data + i);
		check_invariants(p);
	}
	msix_destroy(&p->msix);
	pci_host_destroy(&p->host);
	free(p);
	return 0;
}
