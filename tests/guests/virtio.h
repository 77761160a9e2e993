/* A polled virtio-rng driver for the test guests: enough of virtio 1.2 to
 * fetch random bytes from a modern virtio-pci entropy device and to see
 * that the device's interrupts arrive. The transport (PCI, capabilities,
 * initialization, the split virtqueue) is vpci.h.
 *
 *   virtio 1.2 §4.1.2 PCI IDs (1af4:1044 is virtio-rng, device ID 4),
 *     §4.1.4.5 ISR (read to clear), §4.1.5.1.2 MSI-X vector mapping
 *     (read back to check), §5.4 entropy device (one requestq of
 *     device-writable buffers);
 *   PCI Local Bus 3.0 §6.8.2 MSI-X capability and table;
 *   Intel SDM vol. 3A §11.11 MSI address 0xFEE<dest>000 / data = vector,
 *     §11.8.3 IRR.
 *
 * What it does, in order: finds 1af4:1044 on bus 0, sizes and reads its
 * BARs, walks the capabilities (an ISR structure is required),
 * initializes the device with one queue of VQ_SIZE entries, and posts one
 * device-writable buffer of N bytes while MSI-X is disabled (INTx mode,
 * so the ISR's queue bit is checked), then, if the function has MSI-X,
 * programs table entry 0 for the local APIC with RNG_MSI_VECTOR, enables
 * MSI-X and posts a second buffer; with interrupts off, the vector must
 * become pending in the LAPIC's IRR. Finally it prints the status byte and
 * resets the device. The output lines are in README.md; they contain no
 * random values, so both engines print the same.
 *
 * Invariants: those of vpci.h, and the used ring's entries are checked
 * before use. Single-threaded (BSP only), no interrupts taken. */
#ifndef SHRIKE_TEST_GUEST_VIRTIO_H
#define SHRIKE_TEST_GUEST_VIRTIO_H

#include <stdint.h>

#define RNG_MAX_BYTES 4096u /* largest rng=N */

/* Runs the driver for a request of n bytes and prints its "rng:" lines. */
void virtio_rng_test(uint32_t n);

#endif
