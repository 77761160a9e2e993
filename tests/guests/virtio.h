/* A polled virtio-rng driver for the test guests: enough of virtio 1.2 to
 * fetch random bytes from a modern virtio-pci entropy device and to see
 * that the device's interrupts arrive.
 *
 *   PCI Local Bus 3.0 §3.2.2.3.2 configuration mechanism #1 (CF8/CFC),
 *     §6.2.5 BARs (sizing by writing all ones with decoding off),
 *     §6.7 capability list, §6.8.2 MSI-X capability and table;
 *   virtio 1.2 §4.1.2 PCI IDs (1af4:1044 is virtio-rng, device ID 4),
 *     §4.1.4 vendor capabilities (common 1, notify 2 with
 *     notify_off_multiplier, ISR 3), §4.1.4.3 common configuration,
 *     §4.1.4.4 notification address = cap offset + queue_notify_off *
 *     notify_off_multiplier, §4.1.4.5 ISR (read to clear),
 *     §4.1.5.1.2 MSI-X vector mapping (read back to check);
 *   virtio 1.2 §3.1.1 driver initialization (reset, ACKNOWLEDGE, DRIVER,
 *     features with VERSION_1 = bit 32 only, FEATURES_OK re-read, queues,
 *     DRIVER_OK), §2.7 split virtqueue (descriptor table 16-byte aligned,
 *     available ring 2, used ring 4), §5.4 entropy device (one requestq
 *     of device-writable buffers);
 *   Intel SDM vol. 3A §11.11 MSI address 0xFEE<dest>000 / data = vector,
 *     §11.8.3 IRR.
 *
 * What it does, in order: finds 1af4:1044 on bus 0, sizes and reads its
 * BARs, walks the capabilities, initializes the device with one queue of
 * RNG_QUEUE_SIZE entries in static, identity-mapped memory, and posts one
 * device-writable buffer of N bytes while MSI-X is disabled (INTx mode,
 * so the ISR's queue bit is checked), then, if the function has MSI-X,
 * programs table entry 0 for the local APIC with RNG_MSI_VECTOR, enables
 * MSI-X and posts a second buffer; with interrupts off, the vector must
 * become pending in the LAPIC's IRR. Finally it prints the status byte and
 * resets the device. The output lines are in README.md; they contain no
 * random values, so both engines print the same.
 *
 * Invariants: everything read from the device (IDs, capability pointers,
 * BARs, offsets, lengths, queue sizes, used ring entries) is checked
 * before use; every wait is bounded by a spin count and by RTC seconds,
 * so a broken device gives an error line, never a hang. Single-threaded
 * (BSP only), no interrupts taken. */
#ifndef SHRIKE_TEST_GUEST_VIRTIO_H
#define SHRIKE_TEST_GUEST_VIRTIO_H

#include <stdint.h>

#define RNG_MAX_BYTES 4096u /* largest rng=N */

/* Runs the driver for a request of n bytes and prints its "rng:" lines. */
void virtio_rng_test(uint32_t n);

#endif
