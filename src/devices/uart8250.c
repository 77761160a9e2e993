#include "devices/uart8250.h"

#include <string.h>

enum { REG_DATA, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };

#define LCR_DLAB 0x80
#define IER_RDI 0x01 /* received data available */
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

void uart8250_init(struct uart8250 *u, const struct irq_ctl *irq, uint32_t gsi,
		   struct char_sink out)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->irq = irq;
	u->gsi = gsi;
	u->out = out;
	u->dll = 12; /* 9600 baud, as after a PC's firmware */
	u->lcr = 0x03;
	u->mcr = MCR_OUT2;
}

void uart8250_destroy(struct uart8250 *u) { pthread_mutex_destroy(&u->lock); }

static uint8_t uart_iir(const struct uart8250 *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
	if ((u->ier & IER_RDI) && u->rx_len)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thr_empty_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

/* Called with the lock held after every state change. */
static void uart_update_irq(struct uart8250 *u)
{
	int level = !(uart_iir(u) & IIR_NONE);
	if (level != u->irq_level) {
		u->irq_level = level;
		irq_set_level(u->irq, u->gsi, level);
	}
}

static size_t uart_push_rx(struct uart8250 *u, const uint8_t *data, size_t len)
{
	size_t n = 0;
	while (n < len && u->rx_len < UART_RX_BUF) {
		u->rx[(u->rx_head + u->rx_len) % UART_RX_BUF] = data[n++];
		u->rx_len++;
	}
	return n;
}

static uint8_t uart_pop_rx(struct uart8250 *u)
{
	if (!u->rx_len)
		return 0;
	uint8_t c = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_BUF;
	u->rx_len--;
	return c;
}

/* In loopback mode the modem outputs are wired to the modem inputs; Linux's
 * 8250 probe checks exactly this mapping. */
static uint8_t uart_msr(const struct uart8250 *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_CTS | MSR_DSR | MSR_DCD;
	uint8_t msr = 0;
	if (u->mcr & MCR_RTS)
		msr |= MSR_CTS;
	if (u->mcr & MCR_DTR)
		msr |= MSR_DSR;
	if (u->mcr & MCR_OUT1)
		msr |= MSR_RI;
	if (u->mcr & MCR_OUT2)
		msr |= MSR_DCD;
	return msr;
}

static uint8_t uart_read_reg(struct uart8250 *u, unsigned reg)
{
	bool dlab = u->lcr & LCR_DLAB;
	uint8_t v;

	switch (reg) {
	case REG_DATA:
		return dlab ? u->dll : uart_pop_rx(u);
	case REG_IER:
		return dlab ? u->dlm : u->ier;
	case REG_IIR_FCR:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRI)
			u->thr_empty_pending = 0; /* reading IIR acknowledges THRE */
		return v;
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		return LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0);
	case REG_MSR:
		return uart_msr(u);
	default:
		return u->scr;
	}
}

static void uart_transmit(struct uart8250 *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP)
		uart_push_rx(u, &c, 1);
	else if (u->out.write)
		u->out.write(u->out.opaque, &c, 1);
	/* Transmission is instantaneous: the holding register is empty again. */
	u->thr_empty_pending = 1;
}

static void uart_write_reg(struct uart8250 *u, unsigned reg, uint8_t v)
{
	bool dlab = u->lcr & LCR_DLAB;

	switch (reg) {
	case REG_DATA:
		if (dlab)
			u->dll = v;
		else
			uart_transmit(u, v);
		break;
	case REG_IER:
		if (dlab) {
			u->dlm = v;
		} else {
			/* Enabling THRI with an empty THR raises it at once. */
			if (!(u->ier & IER_THRI) && (v & IER_THRI))
				u->thr_empty_pending = 1;
			u->ier = v & 0x0f;
		}
		break;
	case REG_IIR_FCR:
		u->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX)
			u->rx_len = 0;
		break;
	case REG_LCR:
		u->lcr = v;
		break;
	case REG_MCR:
		u->mcr = v & 0x1f;
		break;
	case REG_SCR:
		u->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

static void uart_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct uart8250 *u = opaque;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++)
		data[i] = offset + i < 8 ? uart_read_reg(u, (unsigned)(offset + i)) : 0xff;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct uart8250 *u = opaque;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++)
		if (offset + i < 8)
			uart_write_reg(u, (unsigned)(offset + i), data[i]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

const struct bus_ops uart8250_ops = {.read = uart_read, .write = uart_write};

int uart8250_attach(struct uart8250 *u, struct bus *pio, uint16_t base)
{
	return bus_register(pio, base, 8, "uart8250", &uart8250_ops, u);
}

size_t uart8250_receive(struct uart8250 *u, const uint8_t *data, size_t len)
{
	pthread_mutex_lock(&u->lock);
	size_t n = uart_push_rx(u, data, len);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t uart8250_rx_space(struct uart8250 *u)
{
	pthread_mutex_lock(&u->lock);
	size_t space = UART_RX_BUF - u->rx_len;
	pthread_mutex_unlock(&u->lock);
	return space;
}
