/* Split virtqueue, device side (virtio 1.x §2.7). See virtqueue.h for the
 * validation rules and invariants. */
#include "virtio/virtqueue.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

/* Ring fields are little-endian (virtio 1.x rings are little-endian); the
 * rings are accessed as native integers, which is only right on an LE host. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtqueue.c assumes a little-endian host"
#endif

#define DESC_SIZE 16u
#define AVAIL_RING_OFF 4u /* after le16 flags, le16 idx */
#define USED_RING_OFF 4u
#define USED_ELEM_SIZE 8u /* le32 id, le32 len */

/* One descriptor, copied out of guest memory (§2.7.5). */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

uint64_t vq_desc_bytes(uint32_t size) { return (uint64_t)DESC_SIZE * size; }
uint64_t vq_avail_bytes(uint32_t size) { return AVAIL_RING_OFF + 2ULL * size + 2; }
uint64_t vq_used_bytes(uint32_t size) { return USED_RING_OFF + (uint64_t)USED_ELEM_SIZE * size + 2; }

/* Pointers to ring words. The rings' alignment was checked at enable and
 * guest RAM regions start page-aligned in the host, so these are aligned. */
static uint16_t *avail_flags(const struct virtqueue *vq) { return (uint16_t *)vq->avail; }
static uint16_t *avail_idx(const struct virtqueue *vq) { return (uint16_t *)(vq->avail + 2); }
static uint16_t *avail_entry(const struct virtqueue *vq, uint16_t i)
{
	return (uint16_t *)(vq->avail + AVAIL_RING_OFF + 2u * (i & (vq->size - 1)));
}
static uint16_t *used_event(const struct virtqueue *vq)
{
	return (uint16_t *)(vq->avail + AVAIL_RING_OFF + 2u * vq->size);
}
static uint16_t *used_flags(const struct virtqueue *vq) { return (uint16_t *)vq->used; }
static uint16_t *used_idx_word(const struct virtqueue *vq) { return (uint16_t *)(vq->used + 2); }
static uint32_t *used_elem(const struct virtqueue *vq, uint16_t i)
{
	return (uint32_t *)(vq->used + USED_RING_OFF + USED_ELEM_SIZE * (i & (vq->size - 1)));
}
static uint16_t *avail_event(const struct virtqueue *vq)
{
	return (uint16_t *)(vq->used + USED_RING_OFF + USED_ELEM_SIZE * vq->size);
}

void vq_init(struct virtqueue *vq, const struct guest_mem *mem)
{
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
}

void vq_reset(struct virtqueue *vq)
{
	vq_init(vq, vq->mem);
}

bool vq_is_broken(const struct virtqueue *vq) { return vq->broken; }

static uint8_t *map_ring(const struct guest_mem *mem, uint64_t gpa, uint64_t bytes,
			 uint64_t align, const char *what)
{
	if (gpa & (align - 1)) {
		log_warn("virtqueue: %s ring at %#llx is not %llu-byte aligned", what,
			 (unsigned long long)gpa, (unsigned long long)align);
		return NULL;
	}
	uint8_t *p = guest_mem_ptr(mem, gpa, bytes);
	if (!p)
		log_warn("virtqueue: %s ring [%#llx, +%llu) is not in guest RAM", what,
			 (unsigned long long)gpa, (unsigned long long)bytes);
	return p;
}

int vq_enable(struct virtqueue *vq, uint32_t size, uint64_t desc_gpa, uint64_t avail_gpa,
	      uint64_t used_gpa, uint64_t features)
{
	vq_reset(vq);
	if (size == 0 || size > VQ_MAX_SIZE || (size & (size - 1))) {
		log_warn("virtqueue: size %u is not a power of two in 1..%u", size, VQ_MAX_SIZE);
		return -EINVAL;
	}
	uint8_t *desc = map_ring(vq->mem, desc_gpa, vq_desc_bytes(size), 16, "descriptor");
	uint8_t *avail = map_ring(vq->mem, avail_gpa, vq_avail_bytes(size), 2, "available");
	uint8_t *used = map_ring(vq->mem, used_gpa, vq_used_bytes(size), 4, "used");
	if (!desc || !avail || !used)
		return -EINVAL;
	vq->size = size;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->indirect = features & (1ULL << VIRTIO_F_INDIRECT_DESC);
	vq->event_idx = features & (1ULL << VIRTIO_F_EVENT_IDX);
	vq->notify_enabled = true;
	vq->enabled = true;
	return 0;
}

/* Marks the queue broken (logged once: a broken queue never gets here
 * again) and returns -EIO for the caller to pass up. */
static int vq_fail(struct virtqueue *vq, const char *why, unsigned long long val)
{
	log_warn("virtqueue: malformed ring (%s %#llx); queue stopped", why, val);
	vq->broken = true;
	return -EIO;
}

/* Copies descriptor i of a table once; every later check uses this copy,
 * so a guest rewriting the table meanwhile cannot change what was checked.
 * memcpy, because an indirect table has no alignment requirement. */
static struct vq_desc desc_read(const uint8_t *table, uint32_t i)
{
	const uint8_t *p = table + (uint64_t)DESC_SIZE * i;
	struct vq_desc d;
	memcpy(&d.addr, p, 8);
	memcpy(&d.len, p + 8, 4);
	memcpy(&d.flags, p + 12, 2);
	memcpy(&d.next, p + 14, 2);
	return d;
}

/* Walk state for one chain: the chain being built and whether a writable
 * descriptor has been seen (after which a readable one is an error, §2.7.5
 * "device-writable descriptors after device-readable ones"). */
struct walk {
	struct virtqueue *vq;
	struct vq_chain *chain;
	bool seen_write;
};

/* Appends a data (non-indirect) descriptor to the chain after checking it. */
static int walk_add(struct walk *w, const struct vq_desc *d)
{
	struct vq_chain *c = w->chain;
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;

	if (!writable && w->seen_write)
		return vq_fail(w->vq, "readable descriptor after a writable one", c->head);
	w->seen_write |= writable;
	if (d->len == 0)
		return 0; /* carries no bytes: nothing to map, no segment */
	if (c->nseg >= VQ_MAX_SEGS)
		return vq_fail(w->vq, "too many segments in chain", c->head);
	if (c->read_len + c->write_len + d->len > VQ_MAX_CHAIN_BYTES)
		return vq_fail(w->vq, "chain longer than 4 GiB", c->head);
	uint8_t *host = guest_mem_ptr(w->vq->mem, d->addr, d->len);
	if (!host)
		return vq_fail(w->vq, "buffer outside guest RAM at", d->addr);
	c->seg[c->nseg++] = (struct vq_seg){.host = host, .len = d->len, .writable = writable};
	if (writable) {
		c->write_len += d->len;
	} else {
		c->nread++;
		c->read_len += d->len;
	}
	return 0;
}

/* Walks an indirect table (§2.7.5.3): entries chained from entry 0 through
 * `next`, at most one visit per entry, no nested INDIRECT. */
static int walk_indirect(struct walk *w, const struct vq_desc *ind)
{
	struct virtqueue *vq = w->vq;

	if (!vq->indirect)
		return vq_fail(vq, "INDIRECT without VIRTIO_F_INDIRECT_DESC", w->chain->head);
	if (ind->flags & VIRTQ_DESC_F_NEXT)
		return vq_fail(vq, "INDIRECT combined with NEXT", w->chain->head);
	if (ind->len == 0 || ind->len % DESC_SIZE)
		return vq_fail(vq, "indirect table length not a nonzero multiple of 16", ind->len);
	if (ind->len / DESC_SIZE > VQ_MAX_SEGS)
		return vq_fail(vq, "indirect table too large", ind->len);
	const uint8_t *table = guest_mem_ptr(vq->mem, ind->addr, ind->len);
	if (!table)
		return vq_fail(vq, "indirect table outside guest RAM at", ind->addr);

	uint32_t n = ind->len / DESC_SIZE;
	uint32_t i = 0;
	for (uint32_t steps = 1;; steps++) {
		/* More steps than entries means an entry was revisited: a loop. */
		if (steps > n)
			return vq_fail(vq, "loop in indirect table", w->chain->head);
		struct vq_desc d = desc_read(table, i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return vq_fail(vq, "nested indirect table", w->chain->head);
		int ret = walk_add(w, &d);
		if (ret < 0)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return vq_fail(vq, "indirect next out of range", d.next);
		i = d.next;
	}
}

/* Walks a chain from `head` in the descriptor table: zero or more direct
 * descriptors, optionally ending in one INDIRECT descriptor (§2.7.5.3.2). */
static int walk_chain(struct virtqueue *vq, uint16_t head, struct vq_chain *out)
{
	struct walk w = {.vq = vq, .chain = out};
	uint32_t i = head;

	out->head = head;
	out->nseg = out->nread = 0;
	out->read_len = out->write_len = 0;
	for (uint32_t steps = 1;; steps++) {
		/* A chain can visit each of `size` descriptors once; one more
		 * step means a loop (§2.7.5.2: chains are at most queue size). */
		if (steps > vq->size)
			return vq_fail(vq, "chain longer than the queue (loop?) from head", head);
		struct vq_desc d = desc_read(vq->desc, i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return walk_indirect(&w, &d);
		int ret = walk_add(&w, &d);
		if (ret < 0)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= vq->size)
			return vq_fail(vq, "next out of range", d.next);
		i = d.next;
	}
}

int vq_pop(struct virtqueue *vq, struct vq_chain *out)
{
	if (vq->broken)
		return -EIO;
	if (!vq->enabled)
		return 0;
	/* Acquire: the ring entry and the descriptors the driver published
	 * before bumping avail->idx are read only after this load (§2.7.13). */
	uint16_t idx = __atomic_load_n(avail_idx(vq), __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(idx - vq->last_avail_idx);
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return vq_fail(vq, "available index ran ahead by", pending);

	uint16_t head = __atomic_load_n(avail_entry(vq, vq->last_avail_idx), __ATOMIC_RELAXED);
	if (head >= vq->size)
		return vq_fail(vq, "head index out of range", head);
	int ret = walk_chain(vq, head, out);
	if (ret < 0)
		return ret;
	vq->last_avail_idx++;
	/* Event index: ask for a notification once the driver passes what we
	 * consumed. Ordering against the driver's next avail->idx read is the
	 * job of the full fence in vq_set_notify() before sleeping. */
	if (vq->event_idx && vq->notify_enabled)
		__atomic_store_n(avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
	return 1;
}

/* The device wrote up to `len` bytes into the writable segments: decoded
 * guest code there is stale (vm/memory.h, code stamps). Done before the
 * used element is published, so the guest can only run the new bytes. */
static void note_code_written(const struct virtqueue *vq, const struct vq_chain *chain,
			      uint32_t len)
{
	for (unsigned k = chain->nread; k < chain->nseg && len; k++) {
		uint32_t n = chain->seg[k].len < len ? chain->seg[k].len : len;
		guest_mem_code_written_host(vq->mem, chain->seg[k].host, n);
		len -= n;
	}
}

void vq_push(struct virtqueue *vq, const struct vq_chain *chain, uint32_t written_len)
{
	if (!vq->enabled || vq->broken)
		return;
	if (chain->head >= vq->size) {
		log_error("virtqueue: push of head %u beyond queue size %u", chain->head, vq->size);
		return;
	}
	/* The device must not report more than the writable length (§2.7.8.1). */
	uint32_t len = written_len;
	if (len > chain->write_len)
		len = (uint32_t)chain->write_len;
	/* All of the writable part, not just what the device reports: a
	 * device that fails after writing reports less than it wrote. */
	note_code_written(vq, chain, chain->write_len > UINT32_MAX ? UINT32_MAX : (uint32_t)chain->write_len);
	uint32_t *elem = used_elem(vq, vq->used_idx);
	__atomic_store_n(&elem[0], (uint32_t)chain->head, __ATOMIC_RELAXED);
	__atomic_store_n(&elem[1], len, __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the used element above, and the data the device wrote
	 * into the chain's buffers, are visible before the new used->idx. */
	__atomic_store_n(used_idx_word(vq), vq->used_idx, __ATOMIC_RELEASE);
}

/* §2.7.7 (used_event): interrupt iff used_event lies in [old, new), all mod 2^16. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool vq_should_notify(struct virtqueue *vq)
{
	if (!vq->enabled || vq->broken)
		return false;
	/* Full fence: our used->idx store is ordered before the read of the
	 * driver's suppression state, pairing with the driver's fence between
	 * writing used_event/flags and re-reading used->idx; otherwise both
	 * sides could miss each other's update and the interrupt be lost. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx) {
		uint16_t flags = __atomic_load_n(avail_flags(vq), __ATOMIC_RELAXED);
		return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	uint16_t old_idx = vq->signalled_used;
	bool valid = vq->signalled_used_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true; /* nothing signalled yet: do not risk a lost interrupt */
	uint16_t event = __atomic_load_n(used_event(vq), __ATOMIC_RELAXED);
	return need_event(event, vq->used_idx, old_idx);
}

void vq_set_notify(struct virtqueue *vq, bool enable)
{
	if (!vq->enabled || vq->broken)
		return;
	vq->notify_enabled = enable;
	if (vq->event_idx) {
		/* With event index the driver reads only avail_event; "off" is
		 * simply not advancing it (the driver then stays silent). */
		if (enable)
			__atomic_store_n(avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(used_flags(vq), enable ? 0 : VIRTQ_USED_F_NO_NOTIFY,
				 __ATOMIC_RELAXED);
	}
	/* Full fence: the store above is ordered before the avail->idx read
	 * in a following vq_has_avail(), pairing with the driver's fence
	 * between writing avail->idx and reading our suppression state. */
	if (enable)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool vq_has_avail(struct virtqueue *vq)
{
	if (!vq->enabled || vq->broken)
		return false;
	/* Acquire, as in vq_pop(): a following pop sees the published entries. */
	return __atomic_load_n(avail_idx(vq), __ATOMIC_ACQUIRE) != vq->last_avail_idx;
}

/* Copies between buf and bytes [offset, offset+len) of segments
 * seg[first .. first+count), whose lengths sum to `total`. */
static int chain_copy(const struct vq_chain *chain, unsigned first, unsigned count,
		      uint64_t total, uint64_t offset, uint8_t *buf, uint64_t len, bool to_chain)
{
	if (offset > total || len > total - offset)
		return -EFAULT;
	for (unsigned i = first; i < first + count && len > 0; i++) {
		const struct vq_seg *s = &chain->seg[i];
		if (offset >= s->len) {
			offset -= s->len;
			continue;
		}
		uint64_t n = s->len - offset;
		if (n > len)
			n = len;
		if (to_chain)
			memcpy(s->host + offset, buf, n);
		else
			memcpy(buf, s->host + offset, n);
		buf += n;
		len -= n;
		offset = 0;
	}
	return 0;
}

int vq_chain_read(const struct vq_chain *chain, uint64_t offset, void *buf, uint64_t len)
{
	return chain_copy(chain, 0, chain->nread, chain->read_len, offset, buf, len, false);
}

int vq_chain_write(const struct vq_chain *chain, uint64_t offset, const void *buf, uint64_t len)
{
	return chain_copy(chain, chain->nread, chain->nseg - chain->nread, chain->write_len, offset,
			  (uint8_t *)buf, len, true);
}
