#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"

_Static_assert(LAYOUT_RSDP_ADDR == LAYOUT_ACPI_ADDR, "the RSDP opens the ACPI region");
_Static_assert(LAYOUT_RSDP_ADDR % 16 == 0, "the RSDP must be 16-byte aligned (ACPI 6.4 §5.2.5.1)");
_Static_assert(LAYOUT_ACPI_ADDR + LAYOUT_ACPI_SIZE <= 0x100000, "tables must stay below 1 MiB");

#define ACPI_OEM_ID "SHRIKE"     /* 6 bytes */
#define ACPI_CREATOR_ID "SHRK"   /* 4 bytes */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_REVISION 1

/* Largest single table we build: the MADT for ACPI_MAX_CPUS vCPUs is about
 * 2.1 KiB. */
#define ACPI_TABLE_MAX 4096

/* System description table header (§5.2.6). */
#define SDT_HEADER_LEN 36
#define SDT_LENGTH 4
#define SDT_REVISION 8
#define SDT_CHECKSUM 9
#define SDT_OEM_ID 10
#define SDT_OEM_TABLE_ID 16
#define SDT_OEM_REVISION 24
#define SDT_CREATOR_ID 28
#define SDT_CREATOR_REVISION 32

/* RSDP (§5.2.5.3). */
#define RSDP_LEN 36
#define RSDP_CHECKSUM 8
#define RSDP_OEM_ID 9
#define RSDP_REVISION 15
#define RSDP_RSDT 16
#define RSDP_LENGTH 20
#define RSDP_XSDT 24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_LEN 20

/* FADT revision 6 (§5.2.9, Table 5.9). */
#define FADT_LEN 276
#define FADT_REVISION 6
#define FADT_MINOR_REVISION 0
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_PM_PROFILE 45
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_P_LVL2_LAT 96
#define FADT_P_LVL3_LAT 98
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_MINOR_VERSION 131
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM_TMR_BLK 208
#define FADT_HYPERVISOR_ID 268

/* FADT Fixed Feature Flags (Table 5.10). */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_FIX_RTC (1u << 6)    /* no RTC wake status in PM1 */

/* IA-PC Boot Architecture Flags (Table 5.11). The 8042 bit matters: Linux
 * skips probing the i8042 when a revision >= 2 FADT leaves it clear. */
#define FADT_BOOT_LEGACY_DEVICES (1u << 0)
#define FADT_BOOT_8042 (1u << 1)
#define FADT_BOOT_VGA_NOT_PRESENT (1u << 2)

/* P_LVL2_LAT > 100 and P_LVL3_LAT > 1000 say C2/C3 are not supported. */
#define FADT_NO_C2_LATENCY 0x0fff
#define FADT_NO_C3_LATENCY 0x0fff

/* Lengths of the PM register blocks (devices/acpi_pm.h implements them). */
#define PM1_EVT_LEN 4
#define PM1_CNT_LEN 2
#define PM_TMR_LEN 4

/* Generic Address Structure (§5.2.3.2). */
#define GAS_LEN 12
#define GAS_SPACE_SYSTEM_IO 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* FACS (§5.2.10, Table 5.14): no checksum; 64-byte aligned. */
#define FACS_LEN 64
#define FACS_ALIGN 64
#define FACS_VERSION_OFF 32
#define FACS_VERSION 2

/* MADT (§5.2.12). */
#define MADT_REVISION 5
#define MADT_LAPIC_ADDR 36
#define MADT_FLAGS 40
#define MADT_HEADER_LEN 44
#define MADT_PCAT_COMPAT 1u
#define MADT_TYPE_LAPIC 0
#define MADT_TYPE_IOAPIC 1
#define MADT_TYPE_ISO 2
#define MADT_TYPE_LAPIC_NMI 4
#define MADT_LAPIC_LEN 8
#define MADT_IOAPIC_LEN 12
#define MADT_ISO_LEN 10
#define MADT_LAPIC_NMI_LEN 6
#define MADT_LAPIC_ENABLED 1u
#define MADT_ALL_PROCESSORS 0xff
#define MADT_IOAPIC_ID 0 /* the reset value of KVM's in-kernel IOAPIC ID register */
/* MPS INTI flags (Table 5.26): polarity bits 1:0, trigger mode bits 3:2. */
#define MPS_ACTIVE_HIGH 0x1
#define MPS_EDGE (0x1 << 2)
#define MPS_LEVEL (0x3 << 2)

/* MCFG (PCI Firmware Spec 3.2 §4.1.2). */
#define MCFG_REVISION 1
#define MCFG_HEADER_LEN 44 /* SDT header + 8 reserved */
#define MCFG_ENTRY_LEN 16

#define XSDT_REVISION 1
#define RSDT_REVISION 1
#define DSDT_REVISION 2 /* 2: 64-bit AML integers */

#define ACPI_MAX_TABLES 4 /* pointed to by the XSDT: FADT, MADT, MCFG, + spare */

/* Where the next table goes; every placement is bounds-checked. */
struct acpi_ctx {
	const struct guest_mem *mem;
	uint64_t next;
	uint64_t end;
	struct errmsg *err;
};

static void put8(uint8_t *t, size_t off, uint8_t v) { t[off] = v; }

static void put16(uint8_t *t, size_t off, uint16_t v)
{
	t[off] = (uint8_t)v;
	t[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *t, size_t off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		t[off + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *t, size_t off, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		t[off + i] = (uint8_t)(v >> (8 * i));
}

/* The byte that makes the sum of t[0..len) zero modulo 256. */
static uint8_t acpi_checksum(const uint8_t *t, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + t[i]);
	return (uint8_t)(0x100 - sum);
}

/* Fills the header of an SDT; the OEM table ID is "SHRK" + signature so
 * each table is named uniquely. Length and checksum come at sdt_finish(). */
static void sdt_begin(uint8_t *t, const char sig[4], uint8_t revision)
{
	memcpy(t, sig, 4);
	put8(t, SDT_REVISION, revision);
	memcpy(t + SDT_OEM_ID, ACPI_OEM_ID, 6);
	memcpy(t + SDT_OEM_TABLE_ID, ACPI_CREATOR_ID, 4);
	memcpy(t + SDT_OEM_TABLE_ID + 4, sig, 4);
	put32(t, SDT_OEM_REVISION, ACPI_OEM_REVISION);
	memcpy(t + SDT_CREATOR_ID, ACPI_CREATOR_ID, 4);
	put32(t, SDT_CREATOR_REVISION, ACPI_CREATOR_REVISION);
}

static void sdt_finish(uint8_t *t, size_t len)
{
	put32(t, SDT_LENGTH, (uint32_t)len);
	put8(t, SDT_CHECKSUM, 0);
	put8(t, SDT_CHECKSUM, acpi_checksum(t, len));
}

static void put_gas_io(uint8_t *t, size_t off, uint16_t port, unsigned len, uint8_t access)
{
	put8(t, off, GAS_SPACE_SYSTEM_IO);
	put8(t, off + 1, (uint8_t)(len * 8)); /* register bit width */
	put8(t, off + 2, 0);                  /* bit offset */
	put8(t, off + 3, access);
	put64(t, off + 4, port);
}

/* Copies a finished table to the next free, aligned spot of the region. */
static int acpi_place(struct acpi_ctx *c, const char *what, const uint8_t *t, size_t len,
		      uint64_t align, uint64_t *gpa)
{
	uint64_t at = (c->next + align - 1) & ~(align - 1);
	if (at > c->end || len > c->end - at)
		return errmsg_set(c->err, ENOSPC, "ACPI: %s (%zu bytes) does not fit in the table area",
				  what, len);
	if (guest_mem_write(c->mem, at, t, len) < 0)
		return errmsg_set(c->err, EFAULT, "ACPI: table area %#llx is not guest RAM",
				  (unsigned long long)at);
	c->next = at + len;
	*gpa = at;
	return 0;
}

static int acpi_build_facs(struct acpi_ctx *c, uint64_t *gpa)
{
	uint8_t t[FACS_LEN] = {0};
	memcpy(t, "FACS", 4);
	put32(t, SDT_LENGTH, FACS_LEN);
	put8(t, FACS_VERSION_OFF, FACS_VERSION);
	return acpi_place(c, "FACS", t, sizeof(t), FACS_ALIGN, gpa);
}

/* ResourceTemplate(){IO(Decode16, port, port, 0, 8) IRQNoFlags(){irq}}
 * (§6.4.2.5 I/O port descriptor, §6.4.2.1 IRQ descriptor, §6.4.2.9 end tag;
 * an end-tag checksum of 0 means "not computed"). */
static void dsdt_uart_crs(struct aml *a, uint16_t port, unsigned irq)
{
	const uint8_t crs[] = {
	    0x47, 0x01, (uint8_t)port, (uint8_t)(port >> 8), (uint8_t)port, (uint8_t)(port >> 8),
	    0x00, 0x08, 0x22, (uint8_t)(1u << irq), (uint8_t)((1u << irq) >> 8), 0x79, 0x00,
	};
	aml_name(a, "_CRS");
	aml_buffer(a, crs, sizeof(crs));
}

/* ResourceTemplate(){IO(Decode16, port, port, 1, len) for each range,
 * IRQNoFlags(){irq}}, for the legacy ISA devices. */
struct io_range {
	uint16_t port;
	uint8_t len;
};

#define ISA_CRS_MAX_IO 2

static void dsdt_isa_crs(struct aml *a, const struct io_range *io, unsigned n, unsigned irq)
{
	uint8_t crs[ISA_CRS_MAX_IO * 8 + 3 + 2];
	size_t k = 0;
	for (unsigned i = 0; i < n && i < ISA_CRS_MAX_IO; i++) {
		const uint8_t d[] = {0x47, 0x01, (uint8_t)io[i].port, (uint8_t)(io[i].port >> 8),
				     (uint8_t)io[i].port, (uint8_t)(io[i].port >> 8), 0x01, io[i].len};
		memcpy(crs + k, d, sizeof(d));
		k += sizeof(d);
	}
	crs[k++] = 0x22;
	crs[k++] = (uint8_t)(1u << irq);
	crs[k++] = (uint8_t)((1u << irq) >> 8);
	crs[k++] = 0x79;
	crs[k++] = 0x00;
	aml_name(a, "_CRS");
	aml_buffer(a, crs, k);
}

/* An ISA device NAME with PNP id HID and its ports and IRQ. */
static void dsdt_isa_device(struct aml *a, const char *name, const char *hid,
			    const struct io_range *io, unsigned n, unsigned irq)
{
	aml_device_begin(a, name);
	aml_name(a, "_HID");
	aml_eisaid(a, hid);
	dsdt_isa_crs(a, io, n, irq);
	aml_end(a);
}

/* The i8042's keyboard port (PNP0303) and the CMOS RTC (PNP0B00), as PC
 * firmware describes them. Linux's i8042 driver then learns from PNP that
 * the controller has no AUX (mouse) port: probing for one directly costs a
 * second of boot in command timeouts, and rtc_cmos binds to its PNP device. */
static void dsdt_legacy_devices(struct aml *a)
{
	static const struct io_range kbd[] = {{PORT_I8042_DATA, 1}, {PORT_I8042_CMD, 1}};
	static const struct io_range rtc[] = {{PORT_RTC, 2}};
	dsdt_isa_device(a, "KBD_", "PNP0303", kbd, 2, IRQ_I8042_KBD);
	dsdt_isa_device(a, "RTC_", "PNP0B00", rtc, 1, IRQ_RTC);
}

/* ResourceTemplate(){Memory32Fixed(ReadWrite, base, size)} (§6.4.3.4). */
static void dsdt_mem32_crs(struct aml *a, uint32_t base, uint32_t size)
{
	uint8_t crs[14] = {0x86, 0x09, 0x00, 0x01};
	put32(crs, 4, base);
	put32(crs, 8, size);
	crs[12] = 0x79;
	crs[13] = 0x00;
	aml_name(a, "_CRS");
	aml_buffer(a, crs, sizeof(crs));
}

static uint64_t ecam_window_start(const struct acpi_ecam *e)
{
	return e->base + ((uint64_t)e->bus_start << 20);
}

static uint64_t ecam_window_size(const struct acpi_ecam *e)
{
	return ((uint64_t)e->bus_end - e->bus_start + 1) << 20;
}

/* Word Address Space Descriptor (§6.4.3.5.3): a producer range with fixed
 * minimum and maximum; type 1 I/O (ISA and non-ISA ranges), 2 bus numbers. */
static void dsdt_word_range(struct aml *a, uint8_t type, uint16_t min, uint16_t max)
{
	uint8_t d[16] = {0x88, 0x0d, 0x00, type, 0x0c, type == 1 ? 0x03 : 0x00};
	put16(d, 8, min);
	put16(d, 10, max);
	put16(d, 14, (uint16_t)(max - min + 1));
	aml_bytes(a, d, sizeof(d));
}

/* DWord Address Space Descriptor (§6.4.3.5.2): a read/write,
 * non-cacheable memory window with fixed minimum and maximum. */
static void dsdt_dword_mem(struct aml *a, uint32_t min, uint32_t max)
{
	uint8_t d[26] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01};
	put32(d, 10, min);
	put32(d, 14, max);
	put32(d, 22, max - min + 1);
	aml_bytes(a, d, sizeof(d));
}

/* _CRS of the root bridge: its bus range, CF8-CFF, the I/O below and above it
 * and the 32-bit BAR window. Emitted as a Buffer, as ASL's
 * ResourceTemplate compiles to. */
static void dsdt_pci_crs(struct aml *a, const struct acpi_ecam *e)
{
	static const uint8_t cf8[] = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
	static const uint8_t end[] = {0x79, 0x00};
	uint8_t buf[128];
	struct aml body;
	aml_init(&body, buf, sizeof(buf));
	dsdt_word_range(&body, 2, e->bus_start, e->bus_end);
	aml_bytes(&body, cf8, sizeof(cf8));
	dsdt_word_range(&body, 1, 0x0000, 0x0cf7);
	dsdt_word_range(&body, 1, 0x0d00, 0xffff);
	dsdt_dword_mem(&body, (uint32_t)LAYOUT_PCI_MMIO_START, (uint32_t)LAYOUT_PCI_MMIO_END - 1);
	aml_bytes(&body, end, sizeof(end));
	aml_name(a, "_CRS");
	aml_buffer(a, buf, body.len);
}

/* _PRT (§6.2.13): Package(){Address (slot << 16 | 0xffff), Pin, Source 0,
 * GSI} for every slot's four pins, per layout_pci_intx_gsi(). */
static void dsdt_pci_prt(struct aml *a)
{
	aml_name(a, "_PRT");
	aml_package_begin(a, 31 * 4);
	for (unsigned slot = 1; slot < 32; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			aml_package_begin(a, 4);
			aml_integer(a, (uint64_t)slot << 16 | 0xffff);
			aml_integer(a, pin);
			aml_integer(a, 0);
			aml_integer(a, layout_pci_intx_gsi(slot, pin));
			aml_end(a);
		}
	}
	aml_end(a);
}

/* The PCI root bridge (PNP0A08, compatible PNP0A03) of segment 0, so the
 * guest enumerates bus 0 and routes INTx without a BIOS. */
static void dsdt_pci_root(struct aml *a, const struct acpi_ecam *e)
{
	aml_device_begin(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_SEG");
	aml_integer(a, e->segment);
	aml_name(a, "_BBN");
	aml_integer(a, e->bus_start);
	dsdt_pci_crs(a, e);
	dsdt_pci_prt(a);
	aml_end(a);
}

/* The namespace: \_S5 for poweroff (SLP_TYP 5, matching acpi_pm), COM1,
 * the keyboard controller and the RTC, and with ECAM the PCI root bridge and a motherboard-resource device
 * reserving the ECAM window. */
static void dsdt_body(struct aml *a, const struct acpi_config *cfg)
{
	aml_name(a, "\\_S5");
	aml_package_begin(a, 4);
	aml_integer(a, 5); /* PM1a_CNT.SLP_TYP */
	aml_integer(a, 5); /* PM1b_CNT.SLP_TYP */
	aml_integer(a, 0); /* reserved */
	aml_integer(a, 0); /* reserved */
	aml_end(a);

	aml_scope_begin(a, "\\_SB");
	aml_device_begin(a, "COM1");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, 1);
	dsdt_uart_crs(a, PORT_COM1, IRQ_COM1);
	aml_end(a);
	dsdt_legacy_devices(a);
	if (cfg->ecam.enabled) {
		dsdt_pci_root(a, &cfg->ecam);
		aml_device_begin(a, "ECAM");
		aml_name(a, "_HID");
		aml_eisaid(a, "PNP0C02");
		aml_name(a, "_UID");
		aml_integer(a, 0);
		dsdt_mem32_crs(a, (uint32_t)ecam_window_start(&cfg->ecam),
			       (uint32_t)ecam_window_size(&cfg->ecam));
		aml_end(a);
	}
	aml_end(a);
}

static int acpi_build_dsdt(struct acpi_ctx *c, const struct acpi_config *cfg, uint64_t *gpa)
{
	uint8_t t[ACPI_TABLE_MAX] = {0};
	struct aml a;
	size_t body_len;

	sdt_begin(t, "DSDT", DSDT_REVISION);
	aml_init(&a, t + SDT_HEADER_LEN, sizeof(t) - SDT_HEADER_LEN);
	dsdt_body(&a, cfg);
	int ret = aml_finish(&a, &body_len);
	if (ret < 0)
		return errmsg_set(c->err, -ret, "ACPI: cannot encode the DSDT");
	sdt_finish(t, SDT_HEADER_LEN + body_len);
	return acpi_place(c, "DSDT", t, SDT_HEADER_LEN + body_len, 8, gpa);
}

/* ACPI is "already enabled" (SMI_CMD = 0), there is no reset register
 * (the i8042 resets), no GPE block and no C2/C3. */
static int acpi_build_fadt(struct acpi_ctx *c, uint64_t facs, uint64_t dsdt, uint64_t *gpa)
{
	uint8_t t[FADT_LEN] = {0};

	sdt_begin(t, "FACP", FADT_REVISION);
	/* At most one of FIRMWARE_CTRL / X_FIRMWARE_CTRL may be nonzero
	 * (§5.2.9, Table 5.9); the FACS is below 4 GiB, so the 32-bit one. */
	put32(t, FADT_FIRMWARE_CTRL, (uint32_t)facs);
	put64(t, FADT_X_FIRMWARE_CTRL, 0);
	put32(t, FADT_DSDT, (uint32_t)dsdt);
	put64(t, FADT_X_DSDT, dsdt);
	put8(t, FADT_PM_PROFILE, 0); /* unspecified */
	put16(t, FADT_SCI_INT, IRQ_ACPI_SCI);
	put32(t, FADT_SMI_CMD, 0);
	put32(t, FADT_PM1A_EVT_BLK, PORT_ACPI_PM1A_EVT);
	put32(t, FADT_PM1A_CNT_BLK, PORT_ACPI_PM1A_CNT);
	put32(t, FADT_PM_TMR_BLK, PORT_ACPI_PM_TMR);
	put8(t, FADT_PM1_EVT_LEN, PM1_EVT_LEN);
	put8(t, FADT_PM1_CNT_LEN, PM1_CNT_LEN);
	put8(t, FADT_PM_TMR_LEN, PM_TMR_LEN);
	put16(t, FADT_P_LVL2_LAT, FADT_NO_C2_LATENCY);
	put16(t, FADT_P_LVL3_LAT, FADT_NO_C3_LATENCY);
	put16(t, FADT_IAPC_BOOT_ARCH,
	      FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042 | FADT_BOOT_VGA_NOT_PRESENT);
	put32(t, FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_FIX_RTC);
	put8(t, FADT_MINOR_VERSION, FADT_MINOR_REVISION);
	put_gas_io(t, FADT_X_PM1A_EVT_BLK, PORT_ACPI_PM1A_EVT, PM1_EVT_LEN, GAS_ACCESS_WORD);
	put_gas_io(t, FADT_X_PM1A_CNT_BLK, PORT_ACPI_PM1A_CNT, PM1_CNT_LEN, GAS_ACCESS_WORD);
	put_gas_io(t, FADT_X_PM_TMR_BLK, PORT_ACPI_PM_TMR, PM_TMR_LEN, GAS_ACCESS_DWORD);
	memcpy(t + FADT_HYPERVISOR_ID, "SHRIKE\0\0", 8);
	sdt_finish(t, FADT_LEN);
	return acpi_place(c, "FADT", t, FADT_LEN, 8, gpa);
}

static size_t madt_lapic(uint8_t *t, size_t off, uint8_t id)
{
	put8(t, off, MADT_TYPE_LAPIC);
	put8(t, off + 1, MADT_LAPIC_LEN);
	put8(t, off + 2, id); /* ACPI processor UID */
	put8(t, off + 3, id); /* APIC ID */
	put32(t, off + 4, MADT_LAPIC_ENABLED);
	return off + MADT_LAPIC_LEN;
}

static size_t madt_ioapic(uint8_t *t, size_t off)
{
	put8(t, off, MADT_TYPE_IOAPIC);
	put8(t, off + 1, MADT_IOAPIC_LEN);
	put8(t, off + 2, MADT_IOAPIC_ID);
	put8(t, off + 3, 0);
	put32(t, off + 4, (uint32_t)LAYOUT_IOAPIC_ADDR);
	put32(t, off + 8, 0); /* GSI base */
	return off + MADT_IOAPIC_LEN;
}

static size_t madt_iso(uint8_t *t, size_t off, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	put8(t, off, MADT_TYPE_ISO);
	put8(t, off + 1, MADT_ISO_LEN);
	put8(t, off + 2, 0); /* bus: ISA */
	put8(t, off + 3, irq);
	put32(t, off + 4, gsi);
	put16(t, off + 8, flags);
	return off + MADT_ISO_LEN;
}

static size_t madt_lapic_nmi(uint8_t *t, size_t off)
{
	put8(t, off, MADT_TYPE_LAPIC_NMI);
	put8(t, off + 1, MADT_LAPIC_NMI_LEN);
	put8(t, off + 2, MADT_ALL_PROCESSORS);
	put16(t, off + 3, MPS_ACTIVE_HIGH | MPS_EDGE);
	put8(t, off + 5, 1); /* LINT1 */
	return off + MADT_LAPIC_NMI_LEN;
}

static int acpi_build_madt(struct acpi_ctx *c, unsigned ncpus, uint64_t *gpa)
{
	uint8_t t[ACPI_TABLE_MAX] = {0};
	size_t need = MADT_HEADER_LEN + (size_t)ncpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN +
		      2 * MADT_ISO_LEN + MADT_LAPIC_NMI_LEN;
	if (need > sizeof(t))
		return errmsg_set(c->err, ENOSPC, "ACPI: MADT for %u vCPUs too large", ncpus);

	sdt_begin(t, "APIC", MADT_REVISION);
	put32(t, MADT_LAPIC_ADDR, (uint32_t)LAYOUT_LAPIC_ADDR);
	put32(t, MADT_FLAGS, MADT_PCAT_COMPAT);
	size_t off = MADT_HEADER_LEN;
	for (unsigned i = 0; i < ncpus; i++)
		off = madt_lapic(t, off, (uint8_t)i);
	off = madt_ioapic(t, off);
	/* The PIT's IRQ0 arrives at IOAPIC pin 2, as on every PC. */
	off = madt_iso(t, off, 0, 2, MPS_ACTIVE_HIGH | MPS_EDGE);
	off = madt_iso(t, off, IRQ_ACPI_SCI, IRQ_ACPI_SCI, MPS_ACTIVE_HIGH | MPS_LEVEL);
	off = madt_lapic_nmi(t, off);
	sdt_finish(t, off);
	return acpi_place(c, "MADT", t, off, 8, gpa);
}

static int acpi_build_mcfg(struct acpi_ctx *c, const struct acpi_ecam *e, uint64_t *gpa)
{
	uint8_t t[MCFG_HEADER_LEN + MCFG_ENTRY_LEN] = {0};
	size_t off = MCFG_HEADER_LEN;

	sdt_begin(t, "MCFG", MCFG_REVISION);
	put64(t, off, e->base);
	put16(t, off + 8, e->segment);
	put8(t, off + 10, e->bus_start);
	put8(t, off + 11, e->bus_end);
	sdt_finish(t, sizeof(t));
	return acpi_place(c, "MCFG", t, sizeof(t), 8, gpa);
}

static int acpi_build_xsdt(struct acpi_ctx *c, const uint64_t *tables, unsigned n, uint64_t *gpa)
{
	uint8_t t[SDT_HEADER_LEN + 8 * ACPI_MAX_TABLES] = {0};
	sdt_begin(t, "XSDT", XSDT_REVISION);
	for (unsigned i = 0; i < n; i++)
		put64(t, SDT_HEADER_LEN + 8 * i, tables[i]);
	sdt_finish(t, SDT_HEADER_LEN + 8 * n);
	return acpi_place(c, "XSDT", t, SDT_HEADER_LEN + 8 * n, 8, gpa);
}

/* An RSDT too, for ACPI 1.0 readers (all tables are below 1 MiB). */
static int acpi_build_rsdt(struct acpi_ctx *c, const uint64_t *tables, unsigned n, uint64_t *gpa)
{
	uint8_t t[SDT_HEADER_LEN + 4 * ACPI_MAX_TABLES] = {0};
	sdt_begin(t, "RSDT", RSDT_REVISION);
	for (unsigned i = 0; i < n; i++)
		put32(t, SDT_HEADER_LEN + 4 * i, (uint32_t)tables[i]);
	sdt_finish(t, SDT_HEADER_LEN + 4 * n);
	return acpi_place(c, "RSDT", t, SDT_HEADER_LEN + 4 * n, 8, gpa);
}

static int acpi_write_rsdp(struct acpi_ctx *c, uint64_t rsdt, uint64_t xsdt)
{
	uint8_t t[RSDP_LEN] = {0};
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + RSDP_OEM_ID, ACPI_OEM_ID, 6);
	put8(t, RSDP_REVISION, 2);
	put32(t, RSDP_RSDT, (uint32_t)rsdt);
	put32(t, RSDP_LENGTH, RSDP_LEN);
	put64(t, RSDP_XSDT, xsdt);
	put8(t, RSDP_CHECKSUM, acpi_checksum(t, RSDP_V1_LEN));
	put8(t, RSDP_EXT_CHECKSUM, acpi_checksum(t, RSDP_LEN));
	if (guest_mem_write(c->mem, LAYOUT_RSDP_ADDR, t, sizeof(t)) < 0)
		return errmsg_set(c->err, EFAULT, "ACPI: RSDP address is not guest RAM");
	return 0;
}

static int acpi_check_config(const struct acpi_config *cfg, struct errmsg *err)
{
	if (cfg->ncpus == 0 || cfg->ncpus > ACPI_MAX_CPUS)
		return errmsg_set(err, EINVAL, "ACPI: %u vCPUs is outside 1..%u", cfg->ncpus,
				  ACPI_MAX_CPUS);
	const struct acpi_ecam *e = &cfg->ecam;
	if (!e->enabled)
		return 0;
	if (e->bus_start > e->bus_end)
		return errmsg_set(err, EINVAL, "ACPI: ECAM bus range %u-%u is empty", e->bus_start,
				  e->bus_end);
	if (e->base & ((1ULL << 20) - 1))
		return errmsg_set(err, EINVAL, "ACPI: ECAM base %#llx is not 1 MiB aligned",
				  (unsigned long long)e->base);
	/* Checked before adding so the sum cannot wrap; the window must fit a
	 * Memory32Fixed descriptor. */
	if (e->base >= LAYOUT_4G || ecam_window_start(e) + ecam_window_size(e) > LAYOUT_4G)
		return errmsg_set(err, EINVAL, "ACPI: ECAM window at %#llx must end below 4 GiB",
				  (unsigned long long)e->base);
	return 0;
}

/* The tables the XSDT/RSDT point to; returns how many in *n. The FACS and
 * DSDT come first because the FADT points to them. */
static int acpi_build_described(struct acpi_ctx *c, const struct acpi_config *cfg,
				uint64_t tables[ACPI_MAX_TABLES], unsigned *n)
{
	uint64_t facs = 0, dsdt = 0;
	int ret;

	*n = 0;
	if ((ret = acpi_build_facs(c, &facs)) < 0)
		return ret;
	if ((ret = acpi_build_dsdt(c, cfg, &dsdt)) < 0)
		return ret;
	if ((ret = acpi_build_fadt(c, facs, dsdt, &tables[(*n)++])) < 0)
		return ret;
	if ((ret = acpi_build_madt(c, cfg->ncpus, &tables[(*n)++])) < 0)
		return ret;
	if (cfg->ecam.enabled && (ret = acpi_build_mcfg(c, &cfg->ecam, &tables[(*n)++])) < 0)
		return ret;
	return 0;
}

int acpi_build(const struct guest_mem *mem, const struct acpi_config *cfg, struct errmsg *err)
{
	int ret = acpi_check_config(cfg, err);
	if (ret < 0)
		return ret;

	uint8_t *area = guest_mem_ptr(mem, LAYOUT_ACPI_ADDR, LAYOUT_ACPI_SIZE);
	if (!area)
		return errmsg_set(err, EFAULT, "ACPI: table area is not guest RAM");
	memset(area, 0, LAYOUT_ACPI_SIZE);

	/* Tables follow the RSDP, which keeps its fixed place at the start. */
	struct acpi_ctx c = {mem, LAYOUT_RSDP_ADDR + RSDP_LEN, LAYOUT_ACPI_ADDR + LAYOUT_ACPI_SIZE, err};
	uint64_t tables[ACPI_MAX_TABLES] = {0}, xsdt = 0, rsdt = 0;
	unsigned n = 0;

	if ((ret = acpi_build_described(&c, cfg, tables, &n)) < 0)
		return ret;
	if ((ret = acpi_build_xsdt(&c, tables, n, &xsdt)) < 0)
		return ret;
	if ((ret = acpi_build_rsdt(&c, tables, n, &rsdt)) < 0)
		return ret;
	return acpi_write_rsdp(&c, rsdt, xsdt);
}
