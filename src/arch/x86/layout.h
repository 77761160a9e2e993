/* The guest-physical address map shrike gives every x86 guest.
 *
 * Low memory holds the structures the VMM builds before entry; their
 * addresses are fixed so loaders, table builders and tests agree on them.
 * Between LOW_RAM_MAX and 4 GiB lies the 32-bit MMIO hole (PCI BARs, ECAM,
 * IOAPIC, LAPIC); RAM that does not fit below it continues at 4 GiB. */
#ifndef SHRIKE_ARCH_X86_LAYOUT_H
#define SHRIKE_ARCH_X86_LAYOUT_H

#include <stdint.h>

#define LAYOUT_GDT_ADDR        0x500ULL   /* boot GDT, 6 entries (boot_cpu.h) */
#define LAYOUT_BOOT_STACK_TOP  0x8ff0ULL  /* initial RSP/ESP for boot entry */
#define LAYOUT_ZERO_PAGE_ADDR  0x7000ULL  /* Linux boot_params */
#define LAYOUT_PML4_ADDR       0x9000ULL  /* identity page tables: PML4 ... */
#define LAYOUT_PDPT_ADDR       0xa000ULL  /* ... one PDPT ... */
#define LAYOUT_PD_ADDR         0xb000ULL  /* ... four PDs mapping 4 GiB with 2 MiB pages */
#define LAYOUT_CMDLINE_ADDR    0x20000ULL /* kernel command line */
#define LAYOUT_CMDLINE_MAX     0x10000ULL
#define LAYOUT_BOOTINFO_ADDR   0x30000ULL /* PVH start_info / multiboot info and lists */
#define LAYOUT_BOOTINFO_SIZE   0x10000ULL
#define LAYOUT_EBDA_ADDR       0x9fc00ULL /* start of the reserved area below 640 KiB */
#define LAYOUT_LOW_RAM_END     0xa0000ULL /* legacy VGA/ROM hole starts here */
#define LAYOUT_ACPI_ADDR       0xe0000ULL /* ACPI tables; RSDP first, where Linux scans */
#define LAYOUT_ACPI_SIZE       0x20000ULL
#define LAYOUT_RSDP_ADDR       LAYOUT_ACPI_ADDR
#define LAYOUT_HIGH_MEM_START  0x100000ULL /* 1 MiB: kernels load here */

#define LAYOUT_MMIO_HOLE_START 0xc0000000ULL /* RAM below 4 GiB ends here at most */
#define LAYOUT_PCI_MMIO_START  0xc0000000ULL
#define LAYOUT_PCI_MMIO_END    0xe0000000ULL
#define LAYOUT_ECAM_ADDR       0xe0000000ULL /* PCIe ECAM, 256 buses x 1 MiB */
#define LAYOUT_ECAM_SIZE       0x10000000ULL
#define LAYOUT_IOAPIC_ADDR     0xfec00000ULL
#define LAYOUT_LAPIC_ADDR      0xfee00000ULL
#define LAYOUT_4G              0x100000000ULL

/* Legacy I/O ports. */
#define PORT_COM1              0x3f8
#define PORT_I8042_DATA        0x60
#define PORT_I8042_CMD         0x64
#define PORT_RTC               0x70
#define PORT_DEBUG_EXIT        0xf4
#define PORT_EXIT_STATUS       0x4f4 /* shrike: status byte reported on poweroff */
#define PORT_FW_CFG            0x510
#define PORT_ACPI_PM_BASE      0x600 /* PM1a_EVT (4), PM1a_CNT (2), PM_TMR (4) */
#define PORT_ACPI_PM1A_EVT     0x600
#define PORT_ACPI_PM1A_CNT     0x604
#define PORT_ACPI_PM_TMR       0x608
#define IRQ_I8042_KBD          1
#define IRQ_COM1               4
#define IRQ_RTC                8
#define IRQ_ACPI_SCI           9

/* PCI I/O window for BARs (below it: legacy ports and CF8/CFC). */
#define LAYOUT_PCI_IO_START    0xc000u
#define LAYOUT_PCI_IO_END      0x10000u

/* Legacy INTx routing of bus 0, published in the DSDT's _PRT: slot s, pin
 * p (0 = INTA#) goes to IOAPIC input 16 + ((s + p) mod 8), level-triggered
 * and active-low as PCI interrupts are. Slots 1..8 get distinct GSIs for
 * INTA#, so single-function devices there never share a line. */
#define LAYOUT_PCI_GSI_BASE    16u
static inline uint32_t layout_pci_intx_gsi(unsigned slot, unsigned pin)
{
	return LAYOUT_PCI_GSI_BASE + ((slot + pin) & 7u);
}

#endif
