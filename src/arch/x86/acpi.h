/* ACPI platform tables for x86 guests (ACPI 6.4 §5.2: RSDP §5.2.5.3,
 * RSDT §5.2.7, XSDT §5.2.8, FADT §5.2.9 (revision 6), FACS §5.2.10,
 * DSDT §5.2.11.1, MADT §5.2.12; MCFG from the PCI Firmware Specification
 * 3.2 §4.1.2).
 *
 * What the guest sees: one Local APIC per vCPU (APIC ID = ACPI processor
 * UID = index), one I/O APIC (id 0, GSI base 0) with ISA IRQ0 -> GSI 2 and
 * the SCI (IRQ 9) level-triggered; the fixed PM registers of
 * devices/acpi_pm.h at PORT_ACPI_PM1A_EVT/CNT/TMR; a DSDT with \_S5 (sleep
 * type 5) and COM1 (PNP0501); with ECAM configured also MCFG and a PNP0C02
 * device reserving the ECAM window (Linux only uses MMCONFIG whose window
 * is reserved in E820 or by a motherboard resource).
 *
 * Invariants: every table lies in [LAYOUT_ACPI_ADDR, +LAYOUT_ACPI_SIZE)
 * (which the E820 map reserves) and carries a valid checksum; the RSDP is
 * at LAYOUT_RSDP_ADDR (16-byte aligned, inside the 0xE0000-0xFFFFF area
 * Linux scans); the FACS is 64-byte aligned. acpi_build() clears the whole
 * region first, so it may be called again (e.g. on reset). */
#ifndef SHRIKE_ARCH_X86_ACPI_H
#define SHRIKE_ARCH_X86_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#include "util/errmsg.h"
#include "vm/memory.h"

/* xAPIC IDs 0..254; 255 is the broadcast ID (x2APIC entries would be
 * needed beyond it). */
#define ACPI_MAX_CPUS 255

/* PCIe enhanced configuration space. base is the address of bus 0 even
 * when bus_start > 0 (PCI Firmware Spec 3.2 Table 4-3; that is how Linux
 * reads it); the window actually used is
 * [base + (bus_start << 20), base + ((bus_end + 1) << 20)). */
struct acpi_ecam {
	bool enabled;
	uint64_t base;    /* 1 MiB aligned; the used window must end below 4 GiB */
	uint16_t segment; /* PCI segment group */
	uint8_t bus_start;
	uint8_t bus_end;
};

struct acpi_config {
	unsigned ncpus; /* 1..ACPI_MAX_CPUS */
	struct acpi_ecam ecam;
};

/* Writes all tables into guest memory. Returns 0, or -EINVAL (bad config)
 * / -ENOSPC (tables would overflow the region) / -EFAULT (region not in
 * guest RAM) with a message in err. */
int acpi_build(const struct guest_mem *mem, const struct acpi_config *cfg, struct errmsg *err);

#endif
