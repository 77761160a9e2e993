/* PCI host bridge for bus 0: configuration mechanism #1 (PCI Local Bus
 * Specification 3.0 §3.2.2.3.2: CONFIG_ADDRESS at port 0xCF8, a 32-bit
 * register with Enable in bit 31, bus 23:16, device 15:11, function 10:8,
 * register 7:2; CONFIG_DATA at ports 0xCFC-0xCFF, any size at any offset
 * inside), the PCI Express Enhanced Configuration Access Mechanism (PCI
 * Express Base 3.0 §7.2.2: 1 MiB per bus, 32 KiB per device, 4 KiB per
 * function, at LAYOUT_ECAM_ADDR), and firmware-style initial BAR
 * assignment over [LAYOUT_PCI_MMIO_START, LAYOUT_PCI_MMIO_END) and the I/O
 * window [PCI_HOST_IO_START, PCI_HOST_IO_END).
 *
 * The bridge itself is 00:00.0 (vendor 0x8086 device 0x29c0, class
 * 0x060000 host bridge). Invariants:
 *   - a configuration read of an absent function, of a bus other than 0, or
 *     through CF8/CFC with Enable clear, returns all-ones; such writes are
 *     ignored;
 *   - CF8/CFC reaches only the first 256 bytes of a function (the register
 *     field has 8 bits); the extended space is reachable only via ECAM;
 *   - only a 4-byte access at 0xCF8 touches CONFIG_ADDRESS (byte and word
 *     accesses to 0xCF8-0xCFB are other platform registers, e.g. the reset
 *     control at 0xCF9, and read as all-ones here);
 *   - ECAM accesses must not cross a dword: 1/2/4-byte accesses within a
 *     dword, or an 8-byte access split into two dwords; others read as
 *     all-ones and are ignored.
 *
 * Locking: `lock` serialises every configuration access (CF8 latch and the
 * functions' config spaces) from any vCPU thread. The functions' ops
 * callbacks run with it held. Functions are added before any vCPU runs;
 * the slot table is then read-only.
 */
#ifndef SHRIKE_PCI_HOST_H
#define SHRIKE_PCI_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "arch/x86/layout.h"
#include "pci/config.h"
#include "vm/bus.h"

#define PCI_HOST_PORT_ADDR 0xcf8
#define PCI_HOST_PORT_DATA 0xcfc
#define PCI_HOST_IO_START LAYOUT_PCI_IO_START
#define PCI_HOST_IO_END LAYOUT_PCI_IO_END
#define PCI_HOST_DEVICES 32u
#define PCI_HOST_FUNCTIONS 8u

#define PCI_CF8_ENABLE 0x80000000u
#define PCI_CF8_MASK 0x80fffffcu /* reserved bits 30:24 and 1:0 read as 0 */

#define PCI_HOST_VENDOR 0x8086
#define PCI_HOST_DEVICE 0x29c0
#define PCI_CLASS_HOST_BRIDGE 0x060000

struct pci_host {
	pthread_mutex_t lock;
	uint32_t cf8;
	struct pci_function bridge;
	struct pci_function *slot[PCI_HOST_DEVICES][PCI_HOST_FUNCTIONS];
	struct pci_function *present[PCI_HOST_DEVICES * PCI_HOST_FUNCTIONS];
	unsigned npresent;
	uint64_t mmio_next; /* BAR allocator cursors */
	uint64_t io_next;
};

int pci_host_init(struct pci_host *h);
void pci_host_destroy(struct pci_host *h);

/* Places `f` at 00:dev.fn, assigns its BARs firmware-style (each naturally
 * aligned, memory BARs at least 4 KiB apart, largest first) and enables
 * memory/I/O decoding for the kinds of BARs it has. A function other than
 * 0 needs function 0 of the same device, whose header then gets the
 * multi-function bit. Returns 0, -EINVAL, -EEXIST, -ENOENT or -ENOSPC
 * (window exhausted). Before any vCPU runs. */
int pci_host_add(struct pci_host *h, unsigned dev, unsigned fn, struct pci_function *f);

/* Locked configuration access by address; absent functions/buses read as
 * all-ones. `size` 1/2/4, within a dword of the function's space. */
uint32_t pci_host_config_read(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			      unsigned reg, unsigned size);
void pci_host_config_write(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			   unsigned reg, unsigned size, uint32_t value);

/* Registers CF8 (4 ports) and CFC (4 ports) on the port bus, the ECAM
 * window on the MMIO bus, and the BAR windows: [LAYOUT_PCI_MMIO_START,
 * LAYOUT_PCI_MMIO_END) on the MMIO bus and [PCI_HOST_IO_START,
 * PCI_HOST_IO_END) on the port bus. An access in a window goes to the
 * function whose enabled BAR decodes it (bar_read/bar_write), so BARs can
 * move at run time while the buses stay fixed; an access no BAR decodes,
 * or one straddling a BAR's end, reads as all-ones and is ignored. A BAR
 * the guest moves outside the windows decodes nothing. */
int pci_host_attach(struct pci_host *h, struct bus *pio, struct bus *mmio);

extern const struct bus_ops pci_host_cf8_ops; /* at PCI_HOST_PORT_ADDR, 4 ports */
extern const struct bus_ops pci_host_cfc_ops; /* at PCI_HOST_PORT_DATA, 4 ports */
extern const struct bus_ops pci_host_ecam_ops; /* at LAYOUT_ECAM_ADDR, LAYOUT_ECAM_SIZE */
extern const struct bus_ops pci_host_mmio_window_ops; /* at LAYOUT_PCI_MMIO_START */
extern const struct bus_ops pci_host_io_window_ops;   /* at PCI_HOST_IO_START */

#endif
