/* MSI-X capability, table and PBA; see msix.h. */
#include "pci/msix.h"

#include <errno.h>
#include <string.h>

static uint64_t msix_table_len(const struct msix *m)
{
	return (uint64_t)m->nvec * MSIX_ENTRY_SIZE;
}

static uint64_t msix_pba_len(const struct msix *m)
{
	return ((uint64_t)m->nvec + 63) / 64 * 8;
}

static bool msix_region_ok(const struct pci_function *fn, unsigned bar, uint32_t off,
			   uint64_t len, unsigned align)
{
	if (bar >= PCI_NUM_BARS || (off % align))
		return false;
	enum pci_bar_type t = fn->bar[bar].type;
	if (t != PCI_BAR_MEM32 && t != PCI_BAR_MEM64)
		return false;
	return off <= fn->bar[bar].size && len <= fn->bar[bar].size - off;
}

static bool msix_regions_overlap(const struct msix *m)
{
	if (m->table_bar != m->pba_bar)
		return false;
	uint64_t t0 = m->table_off, t1 = t0 + msix_table_len(m);
	uint64_t p0 = m->pba_off, p1 = p0 + msix_pba_len(m);
	return t0 < p1 && p0 < t1;
}

int msix_init(struct msix *m, struct pci_function *fn, const struct irq_ctl *irq, unsigned nvec,
	      unsigned table_bar, uint32_t table_off, unsigned pba_bar, uint32_t pba_off)
{
	if (nvec == 0 || nvec > MSIX_MAX_VECTORS)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->fn = fn;
	m->irq = irq;
	m->nvec = nvec;
	m->table_bar = table_bar;
	m->table_off = table_off;
	m->pba_bar = pba_bar;
	m->pba_off = pba_off;
	/* BIR/offset share a dword: the offset's low 3 bits hold the BIR */
	if (!msix_region_ok(fn, table_bar, table_off, msix_table_len(m), 8) ||
	    !msix_region_ok(fn, pba_bar, pba_off, msix_pba_len(m), 8) || msix_regions_overlap(m))
		return -EINVAL;

	int cap = pci_config_add_cap(fn, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (cap < 0)
		return cap;
	m->cap = (unsigned)cap;
	pci_config_set(fn, m->cap + MSIX_CAP_CONTROL, 2, (nvec - 1) & MSIX_CONTROL_TABLE_SIZE);
	pci_config_set_masks(fn, m->cap + MSIX_CAP_CONTROL, 2,
			     MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK, 0);
	pci_config_set(fn, m->cap + MSIX_CAP_TABLE, 4, table_off | table_bar);
	pci_config_set(fn, m->cap + MSIX_CAP_PBA, 4, pba_off | pba_bar);
	for (unsigned v = 0; v < nvec; v++)
		m->table[v].control = MSIX_ENTRY_CONTROL_MASK; /* reset value, §6.8.2.9 */
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

void msix_destroy(struct msix *m)
{
	pthread_mutex_destroy(&m->lock);
}

static bool msix_vector_live(const struct msix *m, unsigned v)
{
	return m->enabled && !m->function_masked &&
	       !(m->table[v].control & MSIX_ENTRY_CONTROL_MASK);
}

static bool msix_pending_get(const struct msix *m, unsigned v)
{
	return (m->pending[v / 64] >> (v % 64)) & 1;
}

static void msix_pending_set(struct msix *m, unsigned v, bool on)
{
	uint64_t bit = 1ull << (v % 64);
	m->pending[v / 64] = on ? m->pending[v / 64] | bit : m->pending[v / 64] & ~bit;
}

/* Caller holds m->lock and has checked that v is live. */
static int msix_deliver(struct msix *m, unsigned v)
{
	const struct msix_entry *e = &m->table[v];
	msix_pending_set(m, v, false);
	return msi_send(m->irq, (uint64_t)e->addr_hi << 32 | e->addr_lo, e->data);
}

static void msix_deliver_pending_locked(struct msix *m, unsigned first, unsigned count)
{
	for (unsigned v = first; v < first + count && v < m->nvec; v++)
		if (msix_pending_get(m, v) && msix_vector_live(m, v))
			(void)msix_deliver(m, v);
}

void msix_config_written(struct msix *m, unsigned off, unsigned size)
{
	unsigned ctl = m->cap + MSIX_CAP_CONTROL;
	if (off >= ctl + 2 || off + size <= ctl)
		return;
	uint16_t control = (uint16_t)pci_config_get(m->fn, ctl, 2);
	pthread_mutex_lock(&m->lock);
	m->enabled = control & MSIX_CONTROL_ENABLE;
	m->function_masked = control & MSIX_CONTROL_FUNCTION_MASK;
	msix_deliver_pending_locked(m, 0, m->nvec);
	pthread_mutex_unlock(&m->lock);
}

int msix_notify(struct msix *m, unsigned vector)
{
	if (vector >= m->nvec)
		return -EINVAL;
	int ret = 0;
	pthread_mutex_lock(&m->lock);
	if (!m->enabled)
		; /* dropped: the function signals INTx, if anything */
	else if (msix_vector_live(m, vector))
		ret = msix_deliver(m, vector);
	else
		msix_pending_set(m, vector, true);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

bool msix_enabled(struct msix *m)
{
	pthread_mutex_lock(&m->lock);
	bool on = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return on;
}

bool msix_is_pending(struct msix *m, unsigned vector)
{
	if (vector >= m->nvec)
		return false;
	pthread_mutex_lock(&m->lock);
	bool on = msix_pending_get(m, vector);
	pthread_mutex_unlock(&m->lock);
	return on;
}

static bool msix_access_ok(uint64_t off, unsigned size, uint64_t len)
{
	return (size == 4 || size == 8) && off % size == 0 && off < len && size <= len - off;
}

static uint32_t msix_entry_word(const struct msix_entry *e, unsigned word)
{
	switch (word) {
	case 0:
		return e->addr_lo;
	case 1:
		return e->addr_hi;
	case 2:
		return e->data;
	default:
		return e->control;
	}
}

void msix_table_read(struct msix *m, uint64_t off, uint8_t *data, unsigned size)
{
	uint64_t value = 0;
	pthread_mutex_lock(&m->lock);
	if (msix_access_ok(off, size, msix_table_len(m))) {
		for (unsigned i = 0; i < size / 4; i++) {
			uint64_t o = off + 4 * i;
			uint32_t w = msix_entry_word(&m->table[o / MSIX_ENTRY_SIZE],
						     (unsigned)(o % MSIX_ENTRY_SIZE) / 4);
			value |= (uint64_t)w << (32 * i);
		}
	}
	pthread_mutex_unlock(&m->lock);
	bus_data_put(data, size, value);
}

/* Caller holds m->lock; o is a dword-aligned offset inside the table. */
static void msix_table_write_word(struct msix *m, uint64_t o, uint32_t w)
{
	unsigned v = (unsigned)(o / MSIX_ENTRY_SIZE);
	struct msix_entry *e = &m->table[v];
	switch ((o % MSIX_ENTRY_SIZE) / 4) {
	case 0:
		e->addr_lo = w & ~3u; /* dword-aligned address, §6.8.2.7 */
		break;
	case 1:
		e->addr_hi = w;
		break;
	case 2:
		e->data = w;
		break;
	default:
		e->control = w & MSIX_ENTRY_CONTROL_MASK; /* other bits reserved */
		if (msix_pending_get(m, v) && msix_vector_live(m, v))
			(void)msix_deliver(m, v);
		break;
	}
}

void msix_table_write(struct msix *m, uint64_t off, const uint8_t *data, unsigned size)
{
	uint64_t value = bus_data_get(data, size);
	pthread_mutex_lock(&m->lock);
	if (msix_access_ok(off, size, msix_table_len(m)))
		for (unsigned i = 0; i < size / 4; i++)
			msix_table_write_word(m, off + 4 * i, (uint32_t)(value >> (32 * i)));
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_read(struct msix *m, uint64_t off, uint8_t *data, unsigned size)
{
	uint64_t value = 0;
	pthread_mutex_lock(&m->lock);
	if (msix_access_ok(off, size, msix_pba_len(m))) {
		uint64_t q = m->pending[off / 8];
		value = size == 8 ? q : (uint32_t)(q >> (8 * (off % 8)));
	}
	pthread_mutex_unlock(&m->lock);
	bus_data_put(data, size, value);
}

void msix_pba_write(struct msix *m, uint64_t off, const uint8_t *data, unsigned size)
{
	/* read-only (§6.8.2.10): writes are ignored */
	(void)m;
	(void)off;
	(void)data;
	(void)size;
}

static bool msix_in(uint64_t off, unsigned size, unsigned bar, unsigned want_bar, uint32_t start,
		    uint64_t len)
{
	return bar == want_bar && off + size > start && off < start + len;
}

bool msix_mmio_read(struct msix *m, unsigned bar, uint64_t off, uint8_t *data, unsigned size)
{
	if (msix_in(off, size, bar, m->table_bar, m->table_off, msix_table_len(m))) {
		/* a straddling access gets a huge offset and reads as 0 */
		msix_table_read(m, off - m->table_off, data, size);
		return true;
	}
	if (msix_in(off, size, bar, m->pba_bar, m->pba_off, msix_pba_len(m))) {
		msix_pba_read(m, off - m->pba_off, data, size);
		return true;
	}
	return false;
}

bool msix_mmio_write(struct msix *m, unsigned bar, uint64_t off, const uint8_t *data,
		     unsigned size)
{
	if (msix_in(off, size, bar, m->table_bar, m->table_off, msix_table_len(m))) {
		msix_table_write(m, off - m->table_off, data, size);
		return true;
	}
	return msix_in(off, size, bar, m->pba_bar, m->pba_off, msix_pba_len(m));
}

static void msix_table_bus_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	msix_table_read(opaque, off, data, size);
}

static void msix_table_bus_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	msix_table_write(opaque, off, data, size);
}

static void msix_pba_bus_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	msix_pba_read(opaque, off, data, size);
}

static void msix_pba_bus_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	msix_pba_write(opaque, off, data, size);
}

const struct bus_ops msix_table_ops = {msix_table_bus_read, msix_table_bus_write};
const struct bus_ops msix_pba_ops = {msix_pba_bus_read, msix_pba_bus_write};
