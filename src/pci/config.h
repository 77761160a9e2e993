/* One PCI function's configuration space: PCI Local Bus Specification 3.0
 * §6.1 (organisation), §6.2 (type-0 header: §6.2.1 identification, §6.2.2
 * Command, §6.2.3 Status, §6.2.4 miscellaneous, §6.2.5.1 Base Address
 * Registers and their sizing protocol), §6.7 (capabilities list); PCI
 * Express Base 3.0 §7.2 for the 4 KiB extended space.
 *
 * Model: 4 KiB of bytes plus, per byte, a write mask (bits a guest may set
 * or clear) and a write-1-to-clear mask (bits a guest clears by writing 1).
 * A guest write of byte v to byte b becomes
 *     b = ((b & ~wmask) | (v & wmask)) & ~(v & w1cmask)
 * so every guest write, whatever its size and offset, has defined results.
 * Invariants:
 *   - wmask & w1cmask == 0 for every byte;
 *   - the header's identification, header type, capability pointer,
 *     interrupt pin and the BAR type bits are read-only;
 *   - a BAR's writable bits are exactly those at or above its size, so
 *     writing all-ones reads back ~(size - 1) with the type bits (the
 *     sizing protocol, §6.2.5.1); an unused BAR reads as 0;
 *   - bar[i].mapped is the address the BAR decodes at, or PCI_BAR_UNMAPPED
 *     when its decode is disabled in the Command register, its address is
 *     0, or its range does not fit its address space (which includes the
 *     all-ones value written while sizing). Every change is reported to
 *     ops->bar_remap.
 *
 * Locking: a pci_function has no lock of its own. Before the VM runs, its
 * owner sets it up; afterwards the host bridge (pci/host.h) serialises all
 * guest configuration accesses under its mutex, and the ops callbacks run
 * with that mutex held (they must not call back into the host).
 */
#ifndef SHRIKE_PCI_CONFIG_H
#define SHRIKE_PCI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_CONFIG_SIZE 4096u        /* PCIe configuration space */
#define PCI_CONFIG_LEGACY_SIZE 256u  /* reachable through CF8/CFC */
#define PCI_NUM_BARS 6u
#define PCI_BAR_UNMAPPED UINT64_MAX

/* Header offsets (§6.2). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_START 0x40 /* first byte after the type-0 header */

#define PCI_HEADER_TYPE_MULTI_FUNCTION 0x80

/* Command register bits (§6.2.2); the ones this model lets a guest write. */
#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_PARITY 0x0040
#define PCI_COMMAND_SERR 0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_COMMAND_WRITABLE                                                         \
	(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | \
	 PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)

/* Status register bits (§6.2.3). */
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_STATUS_MASTER_PARITY 0x0100
#define PCI_STATUS_SIG_TARGET_ABORT 0x0800
#define PCI_STATUS_REC_TARGET_ABORT 0x1000
#define PCI_STATUS_REC_MASTER_ABORT 0x2000
#define PCI_STATUS_SIG_SYSTEM_ERROR 0x4000
#define PCI_STATUS_DETECTED_PARITY 0x8000
#define PCI_STATUS_W1C                                                                   \
	(PCI_STATUS_MASTER_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT | \
	 PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)

/* BAR low bits (§6.2.5.1). */
#define PCI_BAR_SPACE_IO 0x1
#define PCI_BAR_MEM_TYPE_64 0x4
#define PCI_BAR_MEM_PREFETCH 0x8

/* Capability IDs (PCI Code and ID Assignment). */
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

enum pci_bar_type {
	PCI_BAR_NONE = 0,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64, /* uses this BAR and the next one (the upper half) */
	PCI_BAR_IO,
};

struct pci_bar {
	enum pci_bar_type type; /* PCI_BAR_NONE also for the upper half of a 64-bit BAR */
	uint64_t size;          /* power of two */
	uint64_t mapped;        /* decoded address or PCI_BAR_UNMAPPED */
};

/* Callbacks into the function's owner; all optional. The configuration
 * callbacks are called with the host bridge's mutex held, after the write
 * has been applied. */
struct pci_function_ops {
	/* BAR `bar` moved from old_addr to new_addr (either may be
	 * PCI_BAR_UNMAPPED): the owner unmaps/maps its range. */
	void (*bar_remap)(void *owner, unsigned bar, uint64_t old_addr, uint64_t new_addr);
	/* A guest wrote `size` bytes at `off` (e.g. for MSI-X's message
	 * control: call msix_config_written() from here). */
	void (*config_written)(void *owner, unsigned off, unsigned size);
	/* A guest access to BAR `bar` at `off` (the whole access lies inside
	 * the BAR; size 1, 2, 4 or 8). Called without the host's mutex. */
	void (*bar_read)(void *owner, unsigned bar, uint64_t off, uint8_t *data, unsigned size);
	void (*bar_write)(void *owner, unsigned bar, uint64_t off, const uint8_t *data,
			  unsigned size);
};

struct pci_ids {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys;
	uint32_t class_code; /* 24 bits: base class, sub-class, programming interface */
	uint8_t revision;
	uint8_t irq_pin; /* 0 none, 1..4 INTA#..INTD# */
	uint8_t irq_line;
};

struct pci_function {
	uint8_t data[PCI_CONFIG_SIZE];
	uint8_t wmask[PCI_CONFIG_SIZE];
	uint8_t w1cmask[PCI_CONFIG_SIZE];
	uint8_t cap_last; /* offset of the last capability, 0 if none */
	uint8_t cap_free; /* next free dword-aligned offset for a capability */
	struct pci_bar bar[PCI_NUM_BARS];
	const struct pci_function_ops *ops;
	void *owner;
};

/* Zeroes the space and sets up a type-0 header with `ids`: only the
 * Command bits in PCI_COMMAND_WRITABLE, the Status bits in PCI_STATUS_W1C,
 * cache line size and interrupt line are writable. -EINVAL for a bad pin. */
int pci_function_init(struct pci_function *fn, const struct pci_ids *ids,
		      const struct pci_function_ops *ops, void *owner);

/* Guest accesses. Any size 1..4 at any offset with off + size within the
 * 4 KiB space; anything else reads as all-ones and is ignored on write. */
uint32_t pci_config_read(const struct pci_function *fn, unsigned off, unsigned size);
void pci_config_write(struct pci_function *fn, unsigned off, unsigned size, uint32_t value);

/* Host-side (owner) helpers: little-endian stores and loads that ignore the
 * masks, and mask setup. Out-of-range requests do nothing / return 0. */
void pci_config_set(struct pci_function *fn, unsigned off, unsigned size, uint32_t value);
uint32_t pci_config_get(const struct pci_function *fn, unsigned off, unsigned size);
void pci_config_set_masks(struct pci_function *fn, unsigned off, unsigned size, uint32_t wmask,
			  uint32_t w1cmask);

/* Appends a capability with `id` and `len` bytes (header included, at
 * least 2) to the list in the conventional space; its body is read-only
 * until the caller sets masks. Returns its offset or -EINVAL/-ENOSPC. */
int pci_config_add_cap(struct pci_function *fn, uint8_t id, unsigned len);

/* Finds capability `id` by walking from 0x34 (at most 48 steps, so a
 * looping list ends). Returns its offset or -ENOENT. */
int pci_config_find_cap(const struct pci_function *fn, uint8_t id);

/* Declares BAR `bar` (a 64-bit BAR also takes bar + 1). size must be a
 * power of two: 16 B..2 GiB for 32-bit, 16 B..2^63 for 64-bit memory,
 * 4..256 B for I/O. -EINVAL on a bad argument, -EBUSY if taken. */
int pci_bar_add(struct pci_function *fn, unsigned bar, enum pci_bar_type type, uint64_t size,
		bool prefetchable);

/* The address programmed into BAR `bar` (whether or not it decodes). */
uint64_t pci_bar_address(const struct pci_function *fn, unsigned bar);

/* Host-side: programs the address of BAR `bar` (firmware assignment) and
 * re-evaluates the mappings. -EINVAL if not a declared BAR or misaligned. */
int pci_bar_set_address(struct pci_function *fn, unsigned bar, uint64_t addr);

/* Host-side: sets Command bits (e.g. firmware enabling decode) and
 * re-evaluates the mappings. */
void pci_command_set(struct pci_function *fn, uint16_t bits);

#endif
