/* MSI-X (PCI Local Bus Specification 3.0 §6.8.2): the capability structure
 * (§6.8.2.1-6.8.2.5: Message Control with Table Size, Function Mask and
 * MSI-X Enable; Table Offset/BIR; PBA Offset/BIR), the MSI-X table
 * (§6.8.2.6-6.8.2.9: per-vector Message Address, Upper Address, Data and
 * Vector Control with its Mask bit) and the Pending Bit Array (§6.8.2.10).
 *
 * The table and the PBA live in BARs of the function; the owner routes
 * accesses to them with msix_mmio_read/msix_mmio_write (or the table/PBA
 * bus_ops with offsets relative to the table or PBA start). Only naturally
 * aligned 4- and 8-byte accesses are valid (§6.8.2); others read as 0 and
 * writes are ignored. Invariants:
 *   - nvec <= MSIX_MAX_VECTORS; a vector index from anywhere is checked;
 *   - a vector is delivered through msi_send() only while MSI-X is
 *     enabled, the function is not masked and the vector is not masked;
 *     a vector notified while masked has its pending bit set, and is
 *     delivered (and the bit cleared) as soon as it is unmasked by any
 *     of the three bits. A notification while MSI-X is disabled is
 *     dropped (the device would use INTx; see msix_enabled()).
 *
 * Locking: `lock` guards the table, the pending bits and the cached
 * enable/function-mask bits. Table/PBA accesses (vCPU threads),
 * msix_notify (any thread) and msix_config_written (called from the
 * function's config_written hook, with the host bridge's mutex held; lock
 * order host -> msix) may run concurrently. msi_send() is called with
 * `lock` held so that deliveries of one function stay ordered; the
 * irq_ctl must not call back into this device.
 */
#ifndef SHRIKE_PCI_MSIX_H
#define SHRIKE_PCI_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/config.h"
#include "vm/bus.h"
#include "vm/irq.h"

#define MSIX_MAX_VECTORS 128u
#define MSIX_ENTRY_SIZE 16u
#define MSIX_CAP_LEN 12u

/* Capability register offsets and bits. */
#define MSIX_CAP_CONTROL 2
#define MSIX_CAP_TABLE 4
#define MSIX_CAP_PBA 8
#define MSIX_CONTROL_TABLE_SIZE 0x07ff
#define MSIX_CONTROL_FUNCTION_MASK 0x4000
#define MSIX_CONTROL_ENABLE 0x8000

/* Table entry layout. */
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA 8
#define MSIX_ENTRY_CONTROL 12
#define MSIX_ENTRY_CONTROL_MASK 0x1u

struct msix_entry {
	uint32_t addr_lo, addr_hi, data, control;
};

struct msix {
	pthread_mutex_t lock;
	struct pci_function *fn;
	const struct irq_ctl *irq;
	unsigned cap; /* offset of the capability in fn's config space */
	unsigned nvec;
	unsigned table_bar, pba_bar;
	uint32_t table_off, pba_off; /* within their BARs */
	bool enabled, function_masked; /* cached from Message Control */
	struct msix_entry table[MSIX_MAX_VECTORS];
	uint64_t pending[MSIX_MAX_VECTORS / 64];
};

/* Adds the capability to `fn` and resets the table (every vector masked).
 * The table (nvec * 16 bytes) and the PBA (8-byte aligned, a qword per 64
 * vectors) must lie inside their BARs, which must be declared already and
 * be memory BARs, without overlapping each other.
 * Returns 0 or -EINVAL/-ENOSPC. */
int msix_init(struct msix *m, struct pci_function *fn, const struct irq_ctl *irq, unsigned nvec,
	      unsigned table_bar, uint32_t table_off, unsigned pba_bar, uint32_t pba_off);
void msix_destroy(struct msix *m);

/* Call from the function's config_written hook for every guest config
 * write; picks up Enable/Function Mask changes and delivers what became
 * unmasked. */
void msix_config_written(struct msix *m, unsigned off, unsigned size);

/* Signals `vector`: delivered, made pending, or dropped (see above).
 * Returns 0, -EINVAL for a bad vector, or msi_send()'s error. */
int msix_notify(struct msix *m, unsigned vector);

bool msix_enabled(struct msix *m);
bool msix_is_pending(struct msix *m, unsigned vector);

/* Table / PBA accesses, offsets relative to the table / PBA start. */
void msix_table_read(struct msix *m, uint64_t off, uint8_t *data, unsigned size);
void msix_table_write(struct msix *m, uint64_t off, const uint8_t *data, unsigned size);
void msix_pba_read(struct msix *m, uint64_t off, uint8_t *data, unsigned size);
void msix_pba_write(struct msix *m, uint64_t off, const uint8_t *data, unsigned size);

/* For owners dispatching a BAR: if [off, off + size) of BAR `bar` touches
 * the table or the PBA, handles the access and returns true. */
bool msix_mmio_read(struct msix *m, unsigned bar, uint64_t off, uint8_t *data, unsigned size);
bool msix_mmio_write(struct msix *m, unsigned bar, uint64_t off, const uint8_t *data,
		     unsigned size);

extern const struct bus_ops msix_table_ops; /* opaque: struct msix * */
extern const struct bus_ops msix_pba_ops;

#endif
