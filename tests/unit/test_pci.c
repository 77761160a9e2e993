/* PCI core: configuration space masks, BAR sizing and remapping, the
 * capability list, MSI-X, and the host bridge's CF8/CFC and ECAM access. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "pci/config.h"
#include "pci/host.h"
#include "pci/msix.h"

static const struct pci_ids test_ids = {
	.vendor = 0x1af4,
	.device = 0x1041,
	.subsys_vendor = 0x1af4,
	.subsys = 0x0001,
	.class_code = 0x020000,
	.revision = 0x01,
	.irq_pin = 1,
	.irq_line = 10,
};

/* ---- recording callbacks ---- */

struct remap_log {
	unsigned count;
	unsigned bar;
	uint64_t old_addr, new_addr;
};

struct owner {
	struct remap_log remap;
	struct msix *msix;
	unsigned bar_accesses;
	unsigned last_bar;
	uint64_t last_off;
	uint64_t last_write;
};

static void owner_bar_remap(void *opaque, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct owner *o = opaque;
	o->remap.count++;
	o->remap.bar = bar;
	o->remap.old_addr = old_addr;
	o->remap.new_addr = new_addr;
}

static void owner_config_written(void *opaque, unsigned off, unsigned size)
{
	struct owner *o = opaque;
	if (o->msix)
		msix_config_written(o->msix, off, size);
}

static void owner_bar_read(void *opaque, unsigned bar, uint64_t off, uint8_t *data, unsigned size)
{
	struct owner *o = opaque;
	o->bar_accesses++;
	o->last_bar = bar;
	o->last_off = off;
	bus_data_put(data, size, 0xa5a5a5a5a5a5a5a5ULL);
}

static void owner_bar_write(void *opaque, unsigned bar, uint64_t off, const uint8_t *data,
			    unsigned size)
{
	struct owner *o = opaque;
	o->bar_accesses++;
	o->last_bar = bar;
	o->last_off = off;
	o->last_write = bus_data_get(data, size);
}

static const struct pci_function_ops owner_ops = {
	.bar_remap = owner_bar_remap,
	.config_written = owner_config_written,
	.bar_read = owner_bar_read,
	.bar_write = owner_bar_write,
};

#define MAX_MSIS 16
struct msi_log {
	unsigned count;
	uint64_t addr[MAX_MSIS];
	uint32_t data[MAX_MSIS];
};

static int record_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct msi_log *log = opaque;
	if (log->count < MAX_MSIS) {
		log->addr[log->count] = addr;
		log->data[log->count] = data;
	}
	log->count++;
	return 0;
}

static struct pci_function *new_function(struct owner *o)
{
	static struct pci_function fns[4]; /* test-only storage, reset per use */
	static unsigned next;
	struct pci_function *fn = &fns[next++ % 4];
	assert_int_equal(pci_function_init(fn, &test_ids, &owner_ops, o), 0);
	return fn;
}

/* ---- configuration header ---- */

static void test_header_read_only(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	static const unsigned ro[] = {PCI_VENDOR_ID, PCI_REVISION_ID, 0x0c, PCI_BAR0,
				      0x28, PCI_SUBSYSTEM_VENDOR_ID, PCI_ROM_ADDRESS,
				      PCI_CAPABILITY_LIST, 0x38};
	for (unsigned i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		uint32_t before = pci_config_read(fn, ro[i], 4);
		pci_config_write(fn, ro[i], 4, 0xffffffff);
		pci_config_write(fn, ro[i], 4, 0);
		uint32_t after = pci_config_read(fn, ro[i], 4);
		if (ro[i] == 0x0c) /* only the cache line size byte is writable */
			assert_int_equal(after & 0xffffff00, before & 0xffffff00);
		else if (ro[i] != PCI_BAR0)
			assert_int_equal(after, before);
		else
			assert_int_equal(after, 0); /* unused BAR: hardwired 0 */
	}
	assert_int_equal(pci_config_read(fn, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(pci_config_read(fn, PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(pci_config_read(fn, PCI_CLASS_PROG, 1), 0x00);
	assert_int_equal(pci_config_read(fn, 0x0a, 2), 0x0200);
	assert_int_equal(pci_config_read(fn, PCI_INTERRUPT_PIN, 1), 1);
	/* interrupt line and cache line size are read/write */
	pci_config_write(fn, PCI_INTERRUPT_LINE, 2, 0xffff);
	assert_int_equal(pci_config_read(fn, PCI_INTERRUPT_LINE, 2), 0x01ff);
	pci_config_write(fn, PCI_CACHE_LINE_SIZE, 1, 0x10);
	assert_int_equal(pci_config_read(fn, PCI_CACHE_LINE_SIZE, 1), 0x10);
	/* a bad pin is refused */
	struct pci_ids bad = test_ids;
	bad.irq_pin = 5;
	assert_int_equal(pci_function_init(fn, &bad, NULL, NULL), -EINVAL);
}

static void test_command_register(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	pci_config_write(fn, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(pci_config_read(fn, PCI_COMMAND, 2), PCI_COMMAND_WRITABLE);
	pci_config_write(fn, PCI_COMMAND, 1, 0x00);
	assert_int_equal(pci_config_read(fn, PCI_COMMAND, 2), PCI_COMMAND_WRITABLE & 0xff00);
	pci_config_write(fn, PCI_COMMAND, 2, PCI_COMMAND_MASTER | 0x0008 /* special cycles: RO */);
	assert_int_equal(pci_config_read(fn, PCI_COMMAND, 2), PCI_COMMAND_MASTER);
	pci_config_write(fn, PCI_COMMAND, 2, 0);
	assert_int_equal(pci_config_read(fn, PCI_COMMAND, 2), 0);
}

static void test_status_w1c(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	pci_config_set(fn, PCI_STATUS, 2, PCI_STATUS_W1C | PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
	/* writing 0 changes nothing */
	pci_config_write(fn, PCI_STATUS, 2, 0);
	assert_int_equal(pci_config_read(fn, PCI_STATUS, 2),
			 PCI_STATUS_W1C | PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
	/* one bit cleared by writing 1 to it */
	pci_config_write(fn, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
	assert_int_equal(pci_config_read(fn, PCI_STATUS, 2),
			 (PCI_STATUS_W1C & ~PCI_STATUS_REC_MASTER_ABORT) | PCI_STATUS_CAP_LIST |
				 PCI_STATUS_INTERRUPT);
	/* a dword write to command+status: command set, all W1C bits cleared,
	 * read-only status bits kept */
	pci_config_write(fn, PCI_COMMAND, 4, 0xffff0000u | PCI_COMMAND_MASTER);
	assert_int_equal(pci_config_read(fn, PCI_STATUS, 2),
			 PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
	assert_int_equal(pci_config_read(fn, PCI_COMMAND, 2), PCI_COMMAND_MASTER);
	/* writing 1s never sets a W1C bit */
	pci_config_write(fn, PCI_STATUS, 2, 0xffff);
	assert_int_equal(pci_config_read(fn, PCI_STATUS, 2),
			 PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
}

/* ---- BARs ---- */

static uint32_t size_bar(struct pci_function *fn, unsigned off)
{
	uint32_t saved = pci_config_read(fn, off, 4);
	pci_config_write(fn, off, 4, 0xffffffff);
	uint32_t mask = pci_config_read(fn, off, 4);
	pci_config_write(fn, off, 4, saved);
	assert_int_equal(pci_config_read(fn, off, 4), saved);
	return mask;
}

static void test_bar_sizing(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	assert_int_equal(pci_bar_add(fn, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_bar_add(fn, 1, PCI_BAR_IO, 0x20, false), 0);
	assert_int_equal(pci_bar_add(fn, 2, PCI_BAR_MEM64, 0x4000, true), 0);
	assert_int_equal(pci_bar_add(fn, 4, PCI_BAR_MEM64, 1ull << 33, false), 0);

	assert_int_equal(size_bar(fn, 0x10), 0xfffff000);
	assert_int_equal(size_bar(fn, 0x14), 0x0000ffe1);
	assert_int_equal(size_bar(fn, 0x18), 0xffffc00c);
	assert_int_equal(size_bar(fn, 0x1c), 0xffffffff); /* upper half */
	assert_int_equal(size_bar(fn, 0x20), 0x00000004);
	assert_int_equal(size_bar(fn, 0x24), 0xfffffffe); /* 8 GiB */

	/* the Linux way: size both halves, then reprogram */
	pci_config_write(fn, 0x18, 4, 0xffffffff);
	pci_config_write(fn, 0x1c, 4, 0xffffffff);
	assert_int_equal(pci_config_read(fn, 0x18, 4), 0xffffc00c);
	assert_int_equal(pci_config_read(fn, 0x1c, 4), 0xffffffff);
	pci_config_write(fn, 0x18, 4, 0xc0004000);
	pci_config_write(fn, 0x1c, 4, 0x1);
	assert_int_equal(pci_bar_address(fn, 2), 0x1c0004000ull);
	/* sub-size bits are not writable, type bits not changeable */
	pci_config_write(fn, 0x10, 4, 0xd0000fff);
	assert_int_equal(pci_config_read(fn, 0x10, 4), 0xd0000000);
	pci_config_write(fn, 0x10, 2, 0xffff); /* partial write: byte lanes */
	assert_int_equal(pci_config_read(fn, 0x10, 4), 0xd000f000);

	/* bad declarations */
	assert_int_equal(pci_bar_add(fn, 0, PCI_BAR_MEM32, 0x1000, false), -EBUSY);
	assert_int_equal(pci_bar_add(fn, 3, PCI_BAR_MEM32, 0x1000, false), -EBUSY);
	struct pci_function *g = new_function(&o);
	assert_int_equal(pci_bar_add(g, 5, PCI_BAR_MEM64, 0x1000, false), -EINVAL);
	assert_int_equal(pci_bar_add(g, 6, PCI_BAR_MEM32, 0x1000, false), -EINVAL);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_MEM32, 0x1800, false), -EINVAL);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_MEM32, 8, false), -EINVAL);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_IO, 512, false), -EINVAL);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_IO, 16, true), -EINVAL);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_NONE, 16, false), -EINVAL);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_MEM32, 1ull << 32, false), -EINVAL);
}

static void test_bar_remap_callback(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	assert_int_equal(pci_bar_add(fn, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_bar_add(fn, 1, PCI_BAR_IO, 0x20, false), 0);
	pci_config_write(fn, 0x10, 4, 0xc0001000);
	assert_int_equal(o.remap.count, 0); /* decode still disabled */
	pci_config_write(fn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(o.remap.count, 1);
	assert_int_equal(o.remap.bar, 0);
	assert_int_equal(o.remap.old_addr, PCI_BAR_UNMAPPED);
	assert_int_equal(o.remap.new_addr, 0xc0001000);
	/* sizing with decode on: the all-ones value never decodes */
	pci_config_write(fn, 0x10, 4, 0xffffffff);
	assert_int_equal(o.remap.count, 2);
	assert_int_equal(o.remap.new_addr, PCI_BAR_UNMAPPED);
	pci_config_write(fn, 0x10, 4, 0xc0002000);
	assert_int_equal(o.remap.count, 3);
	assert_int_equal(o.remap.old_addr, PCI_BAR_UNMAPPED);
	assert_int_equal(o.remap.new_addr, 0xc0002000);
	/* I/O BAR follows the I/O enable bit */
	pci_config_write(fn, 0x14, 4, 0xc040);
	assert_int_equal(o.remap.count, 3);
	pci_config_write(fn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	assert_int_equal(o.remap.count, 4);
	assert_int_equal(o.remap.bar, 1);
	assert_int_equal(o.remap.new_addr, 0xc040);
	assert_int_equal(fn->bar[1].mapped, 0xc040);
	/* rewriting the same values reports nothing */
	pci_config_write(fn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	pci_config_write(fn, 0x10, 4, 0xc0002000);
	assert_int_equal(o.remap.count, 4);
	/* disabling memory decode unmaps BAR 0 */
	pci_config_write(fn, PCI_COMMAND, 1, PCI_COMMAND_IO);
	assert_int_equal(o.remap.count, 5);
	assert_int_equal(o.remap.bar, 0);
	assert_int_equal(o.remap.old_addr, 0xc0002000);
	assert_int_equal(o.remap.new_addr, PCI_BAR_UNMAPPED);
}

/* ---- capabilities ---- */

static void test_capability_walk(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	assert_int_equal(pci_config_read(fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	assert_int_equal(pci_config_find_cap(fn, PCI_CAP_ID_VNDR), -ENOENT);
	static const uint8_t ids[] = {PCI_CAP_ID_VNDR, PCI_CAP_ID_MSIX, PCI_CAP_ID_MSI};
	static const unsigned lens[] = {17, 12, 10};
	int offs[3];
	for (unsigned i = 0; i < 3; i++) {
		offs[i] = pci_config_add_cap(fn, ids[i], lens[i]);
		assert_true(offs[i] >= PCI_CAP_START && offs[i] % 4 == 0);
	}
	assert_true(pci_config_read(fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* walk as a guest does, through config reads */
	unsigned off = pci_config_read(fn, PCI_CAPABILITY_LIST, 1), found = 0;
	for (unsigned steps = 0; off && steps < 48; steps++) {
		assert_int_equal(off, offs[found]);
		assert_int_equal(pci_config_read(fn, off, 1), ids[found]);
		found++;
		off = pci_config_read(fn, off + 1, 1);
	}
	assert_int_equal(off, 0);
	assert_int_equal(found, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pci_config_find_cap(fn, ids[i]), offs[i]);
	/* the list is read-only to the guest */
	pci_config_write(fn, (unsigned)offs[0], 4, 0xffffffff);
	assert_int_equal(pci_config_read(fn, (unsigned)offs[0], 2), ids[0] | (unsigned)offs[1] << 8);
	/* a looping list (corrupted by the owner) still ends */
	pci_config_set(fn, (unsigned)offs[2] + 1, 1, (unsigned)offs[0]);
	assert_int_equal(pci_config_find_cap(fn, 0x42), -ENOENT);
}

static void test_capability_full(void **state)
{
	(void)state;
	struct owner o = {0};
	struct pci_function *fn = new_function(&o);
	assert_int_equal(pci_config_add_cap(fn, PCI_CAP_ID_VNDR, 1), -EINVAL);
	assert_int_equal(pci_config_add_cap(fn, PCI_CAP_ID_VNDR, 300), -EINVAL);
	assert_int_equal(pci_config_add_cap(fn, PCI_CAP_ID_VNDR, 186), 0x40);
	assert_int_equal(pci_config_add_cap(fn, PCI_CAP_ID_VNDR, 8), -ENOSPC);
	assert_int_equal(pci_config_add_cap(fn, PCI_CAP_ID_VNDR, 4), 0x100 - 4);
	assert_int_equal(pci_config_add_cap(fn, PCI_CAP_ID_VNDR, 2), -ENOSPC);
}

/* ---- MSI-X ---- */

struct msix_fixture {
	struct owner o;
	struct pci_function *fn;
	struct msix m;
	struct msi_log log;
	struct irq_ctl irq;
	unsigned cap;
};

static struct msix_fixture *msix_fixture_new(void)
{
	struct msix_fixture *f = test_calloc(1, sizeof(*f));
	f->fn = new_function(&f->o);
	f->irq = (struct irq_ctl){.msi = record_msi, .opaque = &f->log};
	assert_int_equal(pci_bar_add(f->fn, 0, PCI_BAR_MEM32, 0x2000, false), 0);
	assert_int_equal(msix_init(&f->m, f->fn, &f->irq, 4, 0, 0x0, 0, 0x1000), 0);
	f->o.msix = &f->m;
	f->cap = f->m.cap;
	return f;
}

static void msix_fixture_free(struct msix_fixture *f)
{
	msix_destroy(&f->m);
	test_free(f);
}

static void table_write32(struct msix *m, uint64_t off, uint32_t v)
{
	uint8_t b[4];
	bus_data_put(b, 4, v);
	assert_true(msix_mmio_write(m, 0, off, b, 4));
}

static uint64_t table_read(struct msix *m, uint64_t off, unsigned size)
{
	uint8_t b[8];
	memset(b, 0xaa, sizeof(b));
	assert_true(msix_mmio_read(m, 0, off, b, size));
	return bus_data_get(b, size);
}

static void program_vector(struct msix *m, unsigned v, uint32_t data)
{
	table_write32(m, v * 16 + 0, 0xfee00000 | v << 12);
	table_write32(m, v * 16 + 4, 0);
	table_write32(m, v * 16 + 8, data);
}

static void test_msix_capability(void **state)
{
	(void)state;
	struct msix_fixture *f = msix_fixture_new();
	assert_int_equal(pci_config_find_cap(f->fn, PCI_CAP_ID_MSIX), (int)f->cap);
	assert_int_equal(pci_config_read(f->fn, f->cap + 2, 2), 3); /* table size N-1 */
	assert_int_equal(pci_config_read(f->fn, f->cap + 4, 4), 0x0);
	assert_int_equal(pci_config_read(f->fn, f->cap + 8, 4), 0x1000);
	/* only enable and function mask are writable */
	pci_config_write(f->fn, f->cap, 4, 0xffffffff);
	assert_int_equal(pci_config_read(f->fn, f->cap + 2, 2),
			 MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK | 3);
	pci_config_write(f->fn, f->cap + 4, 4, 0xffffffff);
	pci_config_write(f->fn, f->cap + 8, 4, 0xffffffff);
	assert_int_equal(pci_config_read(f->fn, f->cap + 4, 4), 0x0);
	assert_int_equal(pci_config_read(f->fn, f->cap + 8, 4), 0x1000);
	assert_true(msix_enabled(&f->m));
	/* bad set-ups */
	struct msix m2;
	struct pci_function *g = new_function(&f->o);
	assert_int_equal(msix_init(&m2, g, &f->irq, 4, 0, 0, 0, 0x1000), -EINVAL); /* no BAR */
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_bar_add(g, 1, PCI_BAR_IO, 0x100, false), 0);
	assert_int_equal(msix_init(&m2, g, &f->irq, 0, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(msix_init(&m2, g, &f->irq, 129, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(msix_init(&m2, g, &f->irq, 4, 0, 0, 0, 0x20), -EINVAL);   /* overlap */
	assert_int_equal(msix_init(&m2, g, &f->irq, 4, 0, 0xff8, 0, 0), -EINVAL); /* too long */
	assert_int_equal(msix_init(&m2, g, &f->irq, 4, 0, 4, 0, 0x800), -EINVAL);   /* unaligned */
	assert_int_equal(msix_init(&m2, g, &f->irq, 4, 1, 0, 0, 0x800), -EINVAL);   /* I/O BAR */
	msix_fixture_free(f);
}

static void test_msix_table(void **state)
{
	(void)state;
	struct msix_fixture *f = msix_fixture_new();
	struct msix *m = &f->m;
	/* reset: every vector masked, zero address/data */
	for (unsigned v = 0; v < 4; v++) {
		assert_int_equal(table_read(m, v * 16 + 12, 4), MSIX_ENTRY_CONTROL_MASK);
		assert_int_equal(table_read(m, v * 16, 8), 0);
	}
	program_vector(m, 2, 0x4041);
	assert_int_equal(table_read(m, 32, 4), 0xfee02000);
	assert_int_equal(table_read(m, 40, 4), 0x4041);
	assert_int_equal(table_read(m, 32, 8), 0xfee02000);
	assert_int_equal(table_read(m, 40, 8), 0x0000000100004041ull);
	/* 8-byte write of address; low two bits are forced to 0 */
	uint8_t b[8];
	bus_data_put(b, 8, 0x00000001fee0300bull);
	assert_true(msix_mmio_write(m, 0, 48, b, 8));
	assert_int_equal(table_read(m, 48, 8), 0x00000001fee03008ull);
	/* reserved control bits read 0 */
	table_write32(m, 12, 0xfffffffe);
	assert_int_equal(table_read(m, 12, 4), 0);
	/* unaligned and small accesses read 0 and are ignored */
	table_write32(m, 12, 1);
	assert_int_equal(table_read(m, 2, 4), 0);
	assert_int_equal(table_read(m, 4, 8), 0);
	assert_int_equal(table_read(m, 40, 2), 0);
	assert_int_equal(table_read(m, 40, 1), 0);
	bus_data_put(b, 2, 0);
	assert_true(msix_mmio_write(m, 0, 44, b, 2));
	bus_data_put(b, 4, 0);
	assert_true(msix_mmio_write(m, 0, 41, b, 4));
	assert_int_equal(table_read(m, 40, 4), 0x4041);
	assert_int_equal(table_read(m, 44, 4), 1);
	/* outside table and PBA: not claimed; straddling the table start: claimed, reads 0 */
	assert_false(msix_mmio_read(m, 0, 0x800, b, 4));
	assert_false(msix_mmio_read(m, 1, 0, b, 4));
	assert_false(msix_mmio_write(m, 0, 64, b, 4));
	/* bus_ops view with table-relative offsets */
	uint8_t r[4];
	msix_table_ops.read(m, 40, r, 4);
	assert_int_equal(bus_data_get(r, 4), 0x4041);
	msix_table_ops.read(m, 64, r, 4); /* beyond the 4 entries */
	assert_int_equal(bus_data_get(r, 4), 0);
	msix_fixture_free(f);
}

static void test_msix_delivery(void **state)
{
	(void)state;
	struct msix_fixture *f = msix_fixture_new();
	struct msix *m = &f->m;
	for (unsigned v = 0; v < 4; v++)
		program_vector(m, v, 0x40 + v);

	/* disabled: dropped, not pending */
	assert_int_equal(msix_notify(m, 1), 0);
	assert_int_equal(f->log.count, 0);
	assert_false(msix_is_pending(m, 1));
	assert_int_equal(msix_notify(m, 4), -EINVAL);

	pci_config_write(f->fn, f->cap + 3, 1, MSIX_CONTROL_ENABLE >> 8);
	assert_true(msix_enabled(m));
	/* vector masked (reset state): pending, visible in the PBA */
	assert_int_equal(msix_notify(m, 1), 0);
	assert_int_equal(f->log.count, 0);
	assert_true(msix_is_pending(m, 1));
	assert_int_equal(table_read(m, 0x1000, 8), 0x2);
	assert_int_equal(table_read(m, 0x1000, 4), 0x2);
	assert_int_equal(table_read(m, 0x1004, 4), 0);
	/* the PBA is read-only */
	uint8_t z[8] = {0};
	assert_true(msix_mmio_write(m, 0, 0x1000, z, 8));
	assert_true(msix_is_pending(m, 1));
	/* unmasking the vector delivers it and clears the pending bit */
	table_write32(m, 1 * 16 + 12, 0);
	assert_int_equal(f->log.count, 1);
	assert_int_equal(f->log.addr[0], 0xfee01000);
	assert_int_equal(f->log.data[0], 0x41);
	assert_false(msix_is_pending(m, 1));
	/* unmasked: delivered at once */
	assert_int_equal(msix_notify(m, 1), 0);
	assert_int_equal(f->log.count, 2);
	/* function mask holds everything back, even unmasked vectors */
	pci_config_write(f->fn, f->cap + 2, 2, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
	table_write32(m, 3 * 16 + 12, 0);
	assert_int_equal(msix_notify(m, 1), 0);
	assert_int_equal(msix_notify(m, 3), 0);
	assert_int_equal(msix_notify(m, 0), 0); /* also vector-masked */
	assert_int_equal(f->log.count, 2);
	assert_int_equal(table_read(m, 0x1000, 8), 0xb);
	/* clearing the function mask delivers 1 and 3; 0 stays pending */
	pci_config_write(f->fn, f->cap + 2, 2, MSIX_CONTROL_ENABLE);
	assert_int_equal(f->log.count, 4);
	assert_int_equal(f->log.data[2], 0x41);
	assert_int_equal(f->log.data[3], 0x43);
	assert_int_equal(table_read(m, 0x1000, 8), 0x1);
	/* disabling keeps pending bits; re-enabling with the vector unmasked delivers */
	pci_config_write(f->fn, f->cap + 2, 2, 0);
	table_write32(m, 0 * 16 + 12, 0);
	assert_int_equal(f->log.count, 4);
	pci_config_write(f->fn, f->cap, 4, (uint32_t)MSIX_CONTROL_ENABLE << 16);
	assert_int_equal(f->log.count, 5);
	assert_int_equal(f->log.data[4], 0x40);
	assert_int_equal(table_read(m, 0x1000, 8), 0);
	msix_fixture_free(f);
}

/* ---- host bridge ---- */

struct host_fixture {
	struct pci_host h;
	struct owner o;
	struct pci_function *fn;
};

static struct host_fixture *host_fixture_new(void)
{
	struct host_fixture *f = test_calloc(1, sizeof(*f));
	assert_int_equal(pci_host_init(&f->h), 0);
	f->fn = new_function(&f->o);
	assert_int_equal(pci_bar_add(f->fn, 0, PCI_BAR_MEM64, 0x4000, true), 0);
	assert_int_equal(pci_bar_add(f->fn, 2, PCI_BAR_IO, 0x40, false), 0);
	assert_int_equal(pci_bar_add(f->fn, 3, PCI_BAR_MEM32, 0x100000, false), 0);
	assert_int_equal(pci_config_add_cap(f->fn, PCI_CAP_ID_VNDR, 16), 0x40);
	pci_config_set(f->fn, 0x100, 4, 0x12345678); /* extended space */
	assert_int_equal(pci_host_add(&f->h, 3, 0, f->fn), 0);
	return f;
}

static void host_fixture_free(struct host_fixture *f)
{
	pci_host_destroy(&f->h);
	test_free(f);
}

static void cf8_write(struct pci_host *h, uint32_t v)
{
	uint8_t b[4];
	bus_data_put(b, 4, v);
	pci_host_cf8_ops.write(h, 0, b, 4);
}

static uint32_t cf8_read(struct pci_host *h)
{
	uint8_t b[4];
	pci_host_cf8_ops.read(h, 0, b, 4);
	return (uint32_t)bus_data_get(b, 4);
}

static uint32_t cfc_read(struct pci_host *h, unsigned off, unsigned size)
{
	uint8_t b[4];
	pci_host_cfc_ops.read(h, off, b, size);
	return (uint32_t)bus_data_get(b, size);
}

static void cfc_write(struct pci_host *h, unsigned off, unsigned size, uint32_t v)
{
	uint8_t b[4];
	bus_data_put(b, size, v);
	pci_host_cfc_ops.write(h, off, b, size);
}

static uint64_t ecam_read(struct pci_host *h, uint64_t off, unsigned size)
{
	uint8_t b[8];
	pci_host_ecam_ops.read(h, off, b, size);
	return bus_data_get(b, size);
}

static void ecam_write(struct pci_host *h, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t b[8];
	bus_data_put(b, size, v);
	pci_host_ecam_ops.write(h, off, b, size);
}

static uint32_t cf8_addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
	return PCI_CF8_ENABLE | bus << 16 | dev << 11 | fn << 8 | reg;
}

static uint64_t ecam_off(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
	return (uint64_t)bus << 20 | dev << 15 | fn << 12 | reg;
}

static void test_host_bridge_identity(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	cf8_write(&f->h, cf8_addr(0, 0, 0, 0));
	assert_int_equal(cfc_read(&f->h, 0, 4), 0x29c08086);
	cf8_write(&f->h, cf8_addr(0, 0, 0, 8));
	assert_int_equal(cfc_read(&f->h, 0, 4) >> 8, 0x060000);
	cf8_write(&f->h, cf8_addr(0, 3, 0, 0));
	assert_int_equal(cfc_read(&f->h, 0, 4), 0x10411af4);
	host_fixture_free(f);
}

static void test_cf8_all_offsets(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	static const unsigned sizes[] = {1, 2, 4};
	for (unsigned reg = 0; reg < 256; reg += 4) {
		cf8_write(&f->h, cf8_addr(0, 3, 0, reg));
		for (unsigned s = 0; s < 3; s++)
			for (unsigned off = 0; off + sizes[s] <= 4; off++)
				assert_int_equal(cfc_read(&f->h, off, sizes[s]),
						 pci_config_get(f->fn, reg + off, sizes[s]));
	}
	/* byte/word writes through CFC land at reg + offset */
	cf8_write(&f->h, cf8_addr(0, 3, 0, PCI_CACHE_LINE_SIZE));
	cfc_write(&f->h, 0, 1, 0x20);
	assert_int_equal(pci_config_get(f->fn, PCI_CACHE_LINE_SIZE, 1), 0x20);
	cf8_write(&f->h, cf8_addr(0, 3, 0, PCI_INTERRUPT_LINE));
	cfc_write(&f->h, 0, 2, 0xff0b); /* pin byte read-only */
	assert_int_equal(cfc_read(&f->h, 0, 2), 0x010b);
	cf8_write(&f->h, cf8_addr(0, 3, 0, PCI_COMMAND));
	cfc_write(&f->h, 1, 1, 0xff);
	/* the host enabled decoding when it assigned the BARs */
	assert_int_equal(cfc_read(&f->h, 0, 2), 0x0500 | PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	cfc_write(&f->h, 2, 2, PCI_STATUS_W1C); /* status via offset 2 */
	assert_int_equal(cfc_read(&f->h, 2, 2), PCI_STATUS_CAP_LIST);
	/* bad sizes / offsets on the data port */
	assert_int_equal(cfc_read(&f->h, 3, 2), 0xffff);
	host_fixture_free(f);
}

static void test_cf8_register(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	/* reserved bits read 0 */
	cf8_write(&f->h, 0xffffffff);
	assert_int_equal(cf8_read(&f->h), PCI_CF8_MASK);
	/* byte/word accesses do not touch the latch and read all-ones */
	uint8_t b[4] = {0, 0, 0, 0};
	pci_host_cf8_ops.write(&f->h, 0, b, 1);
	pci_host_cf8_ops.write(&f->h, 1, b, 2);
	assert_int_equal(cf8_read(&f->h), PCI_CF8_MASK);
	pci_host_cf8_ops.read(&f->h, 1, b, 1);
	assert_int_equal(b[0], 0xff);
	/* enable clear: all-ones, writes ignored */
	cf8_write(&f->h, cf8_addr(0, 3, 0, 0) & ~PCI_CF8_ENABLE);
	assert_int_equal(cfc_read(&f->h, 0, 4), 0xffffffff);
	assert_int_equal(cfc_read(&f->h, 1, 1), 0xff);
	cf8_write(&f->h, cf8_addr(0, 3, 0, PCI_INTERRUPT_LINE) & ~PCI_CF8_ENABLE);
	cfc_write(&f->h, 0, 1, 0x55);
	assert_int_equal(pci_config_get(f->fn, PCI_INTERRUPT_LINE, 1), 10);
	/* absent device, absent function, other bus: all-ones, writes ignored */
	unsigned absent[][3] = {{0, 4, 0}, {0, 3, 1}, {0, 31, 7}, {1, 3, 0}, {255, 0, 0}};
	for (unsigned i = 0; i < 5; i++) {
		cf8_write(&f->h, cf8_addr(absent[i][0], absent[i][1], absent[i][2], 0x3c));
		cfc_write(&f->h, 0, 4, 0);
		assert_int_equal(cfc_read(&f->h, 0, 4), 0xffffffff);
		assert_int_equal(cfc_read(&f->h, 2, 2), 0xffff);
		assert_int_equal(cfc_read(&f->h, 3, 1), 0xff);
	}
	assert_int_equal(pci_config_get(f->fn, PCI_INTERRUPT_LINE, 1), 10);
	host_fixture_free(f);
}

static void test_ecam_matches_cf8(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	for (unsigned dev = 0; dev < 32; dev++)
		for (unsigned fn = 0; fn < 8; fn++)
			for (unsigned reg = 0; reg < 256; reg += 4) {
				cf8_write(&f->h, cf8_addr(0, dev, fn, reg));
				uint32_t v = cfc_read(&f->h, 0, 4);
				assert_int_equal(ecam_read(&f->h, ecam_off(0, dev, fn, reg), 4), v);
				assert_int_equal(ecam_read(&f->h, ecam_off(0, dev, fn, reg + 1), 2),
						 (v >> 8) & 0xffff);
				assert_int_equal(ecam_read(&f->h, ecam_off(0, dev, fn, reg + 3), 1),
						 v >> 24);
			}
	/* extended space only through ECAM; CF8 register field wraps in 256 */
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 0x100), 4), 0x12345678);
	cf8_write(&f->h, cf8_addr(0, 3, 0, 0) | 0x0f000000); /* AMD-style ext bits: reserved */
	assert_int_equal(cf8_read(&f->h), cf8_addr(0, 3, 0, 0));
	assert_int_equal(cfc_read(&f->h, 0, 4), 0x10411af4);
	/* ECAM writes */
	ecam_write(&f->h, ecam_off(0, 3, 0, PCI_INTERRUPT_LINE), 1, 0x0e);
	assert_int_equal(pci_config_get(f->fn, PCI_INTERRUPT_LINE, 1), 0x0e);
	/* 8-byte access: two dwords */
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 0), 8),
			 (uint64_t)pci_config_get(f->fn, 4, 4) << 32 | 0x10411af4);
	host_fixture_free(f);
}

static void test_out_of_range(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	struct pci_function *fn = f->fn;
	assert_int_equal(pci_config_read(fn, 4095, 2), 0xffffffff);
	assert_int_equal(pci_config_read(fn, 4096, 1), 0xffffffff);
	assert_int_equal(pci_config_read(fn, UINT32_MAX, 4), 0xffffffff);
	assert_int_equal(pci_config_read(fn, 0, 0), 0xffffffff);
	assert_int_equal(pci_config_read(fn, 0, 8), 0xffffffff);
	assert_int_equal(pci_config_read(fn, 4092, 4), 0);
	pci_config_set_masks(fn, 4092, 4, 0xffffffff, 0);
	pci_config_write(fn, 4094, 4, 0xffffffff);
	assert_int_equal(pci_config_read(fn, 4092, 4), 0);
	pci_config_write(fn, 4092, 4, 0xabcdef01);
	assert_int_equal(pci_config_read(fn, 4092, 4), 0xabcdef01);
	/* ECAM: crossing a dword, misaligned qword, beyond the window, other buses */
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 2), 4), 0xffffffff);
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 3), 2), 0xffff);
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 4), 8), UINT64_MAX);
	assert_int_equal(ecam_read(&f->h, LAYOUT_ECAM_SIZE, 4), 0xffffffff);
	assert_int_equal(ecam_read(&f->h, ecam_off(1, 3, 0, 0), 4), 0xffffffff);
	ecam_write(&f->h, ecam_off(0, 3, 0, 0x3a), 4, 0); /* crosses into 0x3c: ignored */
	assert_int_equal(pci_config_get(fn, PCI_INTERRUPT_LINE, 1), 10);
	ecam_write(&f->h, ecam_off(0, 3, 0, 4095), 2, 0x1212); /* crosses the end */
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 4092), 4), 0xabcdef01);
	ecam_write(&f->h, ecam_off(0, 3, 0, 4092), 1, 0x12);
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 0, 4092), 4), 0xabcdef12);
	/* locked accessor with nonsense coordinates */
	assert_int_equal(pci_host_config_read(&f->h, 0, 32, 0, 0, 4), 0xffffffff);
	assert_int_equal(pci_host_config_read(&f->h, 0, 3, 8, 0, 4), 0xffffffff);
	assert_int_equal(pci_host_config_read(&f->h, 0, 3, 0, 4096, 1), 0xff);
	assert_int_equal(pci_host_config_read(&f->h, 0, 3, 0, 0, 3), 0xffffff);
	pci_host_config_write(&f->h, 0, 3, 0, PCI_INTERRUPT_LINE, 1, 7);
	assert_int_equal(pci_host_config_read(&f->h, 0, 3, 0, PCI_INTERRUPT_LINE, 1), 7);
	host_fixture_free(f);
}

static void test_host_bar_assignment(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	struct pci_function *fn = f->fn;
	/* enabled decode and assigned, naturally aligned addresses in the windows */
	uint16_t cmd = (uint16_t)pci_config_get(fn, PCI_COMMAND, 2);
	assert_int_equal(cmd & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	static const unsigned bars[] = {0, 2, 3};
	for (unsigned i = 0; i < 3; i++) {
		unsigned b = bars[i];
		uint64_t a = pci_bar_address(fn, b);
		assert_int_equal(a % fn->bar[b].size, 0);
		assert_int_equal(fn->bar[b].mapped, a);
		if (fn->bar[b].type == PCI_BAR_IO) {
			assert_true(a >= PCI_HOST_IO_START && a + fn->bar[b].size <= PCI_HOST_IO_END);
		} else {
			assert_true(a >= LAYOUT_PCI_MMIO_START);
			assert_true(a + fn->bar[b].size <= LAYOUT_PCI_MMIO_END);
		}
	}
	/* the two memory BARs do not overlap */
	uint64_t a0 = pci_bar_address(fn, 0), a3 = pci_bar_address(fn, 3);
	assert_true(a0 + 0x4000 <= a3 || a3 + 0x100000 <= a0);
	assert_int_equal(f->o.remap.count, 3);

	/* second function of device 3: multi-function bit on function 0 */
	struct owner o2 = {0};
	struct pci_function *g = new_function(&o2);
	assert_int_equal(pci_bar_add(g, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_host_add(&f->h, 3, 1, g), 0);
	assert_int_equal(pci_config_get(fn, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_MULTI_FUNCTION);
	uint64_t ga = pci_bar_address(g, 0);
	assert_true(ga + 0x1000 <= a0 || ga >= a0 + 0x4000);
	assert_true(ga + 0x1000 <= a3 || ga >= a3 + 0x100000);
	assert_int_equal(ecam_read(&f->h, ecam_off(0, 3, 1, 0), 4), 0x10411af4);

	/* errors */
	assert_int_equal(pci_host_add(&f->h, 0, 0, g), -EEXIST);
	assert_int_equal(pci_host_add(&f->h, 3, 1, g), -EEXIST);
	assert_int_equal(pci_host_add(&f->h, 32, 0, g), -EINVAL);
	assert_int_equal(pci_host_add(&f->h, 1, 8, g), -EINVAL);
	assert_int_equal(pci_host_add(&f->h, 5, 2, g), -ENOENT);
	struct pci_function *big = new_function(&o2);
	assert_int_equal(pci_bar_add(big, 0, PCI_BAR_MEM64, 1ull << 30, false), 0);
	assert_int_equal(pci_host_add(&f->h, 6, 0, big), -ENOSPC);
	host_fixture_free(f);
}

static void test_host_attach(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	struct bus pio, mmio;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	assert_int_equal(pci_host_attach(&f->h, &pio, &mmio), 0);
	uint8_t b[4];
	bus_data_put(b, 4, cf8_addr(0, 3, 0, 0));
	assert_true(bus_write(&pio, 0xcf8, b, 4) >= 0);
	assert_true(bus_read(&pio, 0xcfe, b, 2) >= 0);
	assert_int_equal(bus_data_get(b, 2), 0x1041);
	assert_true(bus_read(&mmio, LAYOUT_ECAM_ADDR + ecam_off(0, 3, 0, 2), b, 2) >= 0);
	assert_int_equal(bus_data_get(b, 2), 0x1041);
	host_fixture_free(f);
}

/* BAR windows: accesses reach the BAR that decodes them, follow the BAR
 * when the guest moves it, and stop when decoding is disabled. */
static void test_host_bar_windows(void **state)
{
	(void)state;
	struct host_fixture *f = host_fixture_new();
	struct bus pio, mmio;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	assert_int_equal(pci_host_attach(&f->h, &pio, &mmio), 0);
	uint64_t bar3 = f->fn->bar[3].mapped, io = f->fn->bar[2].mapped;
	assert_true(bar3 >= LAYOUT_PCI_MMIO_START && bar3 < LAYOUT_PCI_MMIO_END);
	uint8_t b[8];
	assert_true(bus_read(&mmio, bar3 + 0x10, b, 4) >= 0);
	assert_int_equal(bus_data_get(b, 4), 0xa5a5a5a5);
	assert_int_equal(f->o.last_bar, 3);
	assert_int_equal(f->o.last_off, 0x10);
	bus_data_put(b, 2, 0x1234);
	assert_true(bus_write(&pio, io + 6, b, 2) >= 0);
	assert_int_equal(f->o.last_bar, 2);
	assert_int_equal(f->o.last_off, 6);
	assert_int_equal(f->o.last_write, 0x1234);

	/* Straddling the BAR's end: nobody is called, reads are all-ones. */
	unsigned before = f->o.bar_accesses;
	assert_true(bus_read(&mmio, bar3 + 0x100000 - 2, b, 4) >= 0);
	assert_int_equal(bus_data_get(b, 4), 0xffffffff);
	assert_int_equal(f->o.bar_accesses, before);

	/* The guest moves BAR 3: the old address decodes nothing. */
	uint64_t moved = LAYOUT_PCI_MMIO_END - 0x100000;
	pci_host_config_write(&f->h, 0, 3, 0, PCI_BAR0 + 12, 4, (uint32_t)moved);
	assert_int_equal(f->fn->bar[3].mapped, moved);
	assert_true(bus_read(&mmio, bar3, b, 4) >= 0);
	assert_int_equal(bus_data_get(b, 4), 0xffffffff);
	assert_true(bus_read(&mmio, moved + 8, b, 8) >= 0);
	assert_int_equal(f->o.last_off, 8);

	/* Memory decode off: nothing decodes. */
	before = f->o.bar_accesses;
	pci_host_config_write(&f->h, 0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_IO);
	assert_true(bus_read(&mmio, moved + 8, b, 4) >= 0);
	assert_int_equal(bus_data_get(b, 4), 0xffffffff);
	assert_int_equal(f->o.bar_accesses, before);
	host_fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_read_only),
		cmocka_unit_test(test_command_register),
		cmocka_unit_test(test_status_w1c),
		cmocka_unit_test(test_bar_sizing),
		cmocka_unit_test(test_bar_remap_callback),
		cmocka_unit_test(test_capability_walk),
		cmocka_unit_test(test_capability_full),
		cmocka_unit_test(test_msix_capability),
		cmocka_unit_test(test_msix_table),
		cmocka_unit_test(test_msix_delivery),
		cmocka_unit_test(test_host_bridge_identity),
		cmocka_unit_test(test_cf8_all_offsets),
		cmocka_unit_test(test_cf8_register),
		cmocka_unit_test(test_ecam_matches_cf8),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_host_bar_assignment),
		cmocka_unit_test(test_host_attach),
		cmocka_unit_test(test_host_bar_windows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
