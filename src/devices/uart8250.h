/* 8250/16550A UART (National Semiconductor PC16550D data sheet: register
 * map §8, interrupt priorities in table 4 "Interrupt Control Functions").
 *
 * Output goes to an injected char_sink (the terminal or stdout); input is
 * pushed by a host-side thread with uart_receive(). Owner/lock: all state
 * is guarded by `lock`; vCPU threads (register accesses) and the console
 * input thread (uart_receive) both take it. The IRQ line is raised and
 * lowered from inside the lock so its level always matches IIR. */
#ifndef SHRIKE_DEVICES_UART8250_H
#define SHRIKE_DEVICES_UART8250_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/irq.h"

#define UART_RX_BUF 4096 /* a deep FIFO: the host side can't pace itself to the guest */

struct char_sink {
	void (*write)(void *opaque, const uint8_t *data, size_t len);
	void *opaque;
};

/* Where host console input goes (the UART or virtio-console): accepts up
 * to len bytes and returns how many it took; thread-safe. */
struct char_input {
	size_t (*receive)(void *opaque, const uint8_t *data, size_t len);
	void *opaque;
};

struct uart8250 {
	pthread_mutex_t lock;
	const struct irq_ctl *irq;
	uint32_t gsi;
	struct char_sink out;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	uint8_t thr_empty_pending; /* THRE interrupt pending until IIR is read or THR written */
	int irq_level;
	uint8_t rx[UART_RX_BUF];
	size_t rx_head, rx_len;
};

void uart8250_init(struct uart8250 *u, const struct irq_ctl *irq, uint32_t gsi,
		   struct char_sink out);
void uart8250_destroy(struct uart8250 *u);
int uart8250_attach(struct uart8250 *u, struct bus *pio, uint16_t base);

/* Queues host input; returns how many bytes fit (the rest must be retried). */
size_t uart8250_receive(struct uart8250 *u, const uint8_t *data, size_t len);
size_t uart8250_rx_space(struct uart8250 *u);

extern const struct bus_ops uart8250_ops;

#endif
