/* Fuzz target for the virtio-console and virtio-rng backends
 * (virtio/console.c, virtio/rng.c) behind the fake transport of
 * tests/unit/vdev_harness.h. The input picks a device, its queues' size,
 * features and ring placement, a short script of transport events, and
 * the bytes of a 64 KiB window of guest memory holding the rings,
 * descriptors, indirect tables and data.
 *
 * Header (HDR_SIZE bytes):
 *   0      device: bit 0 clear = rng, set = console
 *   1      queue size log2 (mod 7: 1..64 entries)
 *   2      features: bit 0 VIRTIO_F_INDIRECT_DESC, bit 1 VIRTIO_F_EVENT_IDX,
 *          bit 2 VIRTIO_CONSOLE_F_MULTIPORT (console only)
 *   3..26  per queue (up to 4): desc, avail, used offsets in the window
 *          (le16, reduced to aligned positions that keep each ring inside)
 *   27..58 script: 16 events of two bytes, kind and argument (run_op)
 * The window follows; a snapshot-load event reads its image from there.
 * Besides whatever the window's rings hold, script events can play a
 * well-behaved driver that adds buffers and control messages (the console
 * handshake of §5.3.6.2) to rings wherever the header placed them.
 *
 * The transport keeps the device contract: callbacks only while active
 * (after activate() succeeded and before failed()/reset), fd_ready() only
 * for the watched fd, config accesses inside config_size.
 *
 * Determinism: the window and the driver's buffer area are rewritten for
 * every input. Apart from control messages, both devices only ever write
 * zeros into guest memory here (the rng source gives zeros, console input
 * is zeros), so such writes outside the window leave memory as the next
 * input expects it: zero. After an input in which the console sent
 * control messages (wherever the rings pointed), all of guest memory is
 * dropped back to zero pages. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "util/log.h"
#include "vdev_harness.h"
#include "virtio/console.h"
#include "virtio/rng.h"

#define WIN_GPA 0x10000ULL
#define WIN_SIZE 0x10000u
#define BUF_GPA 0x30000ULL /* the script driver's buffers: 64 slots of 64 bytes */
#define BUF_SLOT 64u
#define BUF_SLOTS 64u
#define NQ 4u
#define SCRIPT_OFF 27u
#define SCRIPT_OPS 16u
#define SCRIPT_LEN (2 * SCRIPT_OPS)
#define HDR_SIZE (SCRIPT_OFF + SCRIPT_LEN)

struct fuzz {
	struct vh h;
	const struct virtio_device_ops *ops;
	void *dev;
	unsigned nq;
	bool active;
	uint32_t qsize;
	uint64_t features;
	unsigned next_slot;   /* script driver: next buffer slot */
	const uint8_t *win;   /* the input's window bytes */
	size_t win_len;
};

static struct fuzz fz;
static struct virtio_rng fuzz_rng;
static struct virtio_console fuzz_con;
static uint64_t sink_bytes;
static const uint8_t zeros[VIRTIO_CONSOLE_IN_BUF];

static ssize_t zero_source(void *opaque, void *buf, size_t len)
{
	(void)opaque;
	memset(buf, 0, len);
	return (ssize_t)len;
}

/* Touches both ends of every piece so ASan checks the range it was given. */
static void sink_write(void *opaque, const uint8_t *data, size_t len)
{
	(void)opaque;
	if (len == 0 || data == NULL)
		__builtin_trap();
	volatile uint8_t x = data[0];
	x = data[len - 1];
	(void)x;
	sink_bytes += len;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* A ring offset inside the window, aligned as §2.7 requires. */
static uint64_t place(const uint8_t *p, uint64_t bytes, unsigned align)
{
	uint64_t slots = (WIN_SIZE - bytes) / align + 1;
	return WIN_GPA + (le16(p) % slots) * align;
}

static void enable_queues(void)
{
	for (unsigned q = 0; q < fz.nq; q++) {
		vq_reset(&fz.h.vq[q]);
		/* Placement keeps the rings aligned and inside RAM: must work. */
		if (vqd_enable(&fz.h.drv[q], &fz.h.vq[q], fz.features))
			__builtin_trap();
	}
}

static void activate(void)
{
	fz.h.failed_calls = 0;
	fz.h.ctx.features = fz.features;
	fz.active = fz.ops->activate(fz.dev, &fz.h.ctx) == 0;
}

static void reset(void)
{
	fz.ops->reset(fz.dev);
	if (fz.h.watched_fd >= 0)
		__builtin_trap(); /* reset must stop watching */
	fz.active = false;
}

static void snapshot_roundtrip(void)
{
	struct snapbuf out, in;
	snapbuf_init_writer(&out);
	if (fz.ops->save(fz.dev, &out) == 0) {
		snapbuf_init_reader(&in, out.data, out.len);
		if (fz.ops->load(fz.dev, &in) != 0 || in.pos != out.len)
			__builtin_trap();
	}
	snapbuf_free(&out);
}

/* A snapshot image from the window: whatever load() accepts must leave
 * the device sound. */
static void snapshot_hostile(uint8_t arg)
{
	size_t off = (size_t)arg * 16 % fz.win_len;
	struct snapbuf in;
	snapbuf_init_reader(&in, fz.win + off, fz.win_len - off);
	(void)fz.ops->load(fz.dev, &in);
}

/* arg: bits 0-1 log2 of the size, bit 2 write, bits 3-7 offset. */
static void config_access(uint8_t arg)
{
	uint32_t cs = fz.ops->config_size;
	unsigned len = 1u << (arg & 3);
	if (len > cs)
		return;
	uint32_t off = (uint32_t)(arg >> 3) % (cs - len + 1);
	uint8_t d[8] = {'!', 0, 0, 0, 0, 0, 0, 0};
	if (arg & 4)
		fz.ops->config_write(fz.dev, off, d, len);
	else
		fz.ops->config_read(fz.dev, off, d, len);
}

/* The script driver adds a one-descriptor chain of len bytes at the next
 * buffer slot to queue q, as a driver would: descriptor avail->idx % size
 * (whatever the window held there is overwritten), then the ring entry,
 * then avail->idx. Returns the slot's address. */
static uint64_t driver_add(unsigned q, uint32_t len, bool writable)
{
	uint64_t buf = BUF_GPA + BUF_SLOT * (fz.next_slot++ % BUF_SLOTS);
	struct vqd *d = &fz.h.drv[q];
	/* The window's bytes, not ours, say where the driver is. */
	d->avail_idx = vqd_get16(&fz.h.mem, d->avail + 2);
	uint16_t slot = (uint16_t)(d->avail_idx & (d->size - 1));
	if (vqd_set_desc(d, slot, buf, len, writable ? VIRTQ_DESC_F_WRITE : 0, 0) ||
	    vqd_publish(d, slot))
		__builtin_trap(); /* the placement keeps the rings inside RAM */
	return buf;
}

/* arg: bits 0-3 event, bits 4-5 value (3 = 0x8001), bit 6 id 1 instead of
 * 0 (DEVICE_READY: 0xffffffff, as Linux sends it), bit 7 a 7-byte
 * message. On the control transmitq, then notified. */
static void driver_control(uint8_t arg)
{
	if (fz.nq < NQ)
		return;
	static const uint16_t values[4] = {0, 1, 2, 0x8001};
	uint16_t event = arg & 15, value = values[(arg >> 4) & 3];
	uint32_t id = arg & 64 ? (event == VIRTIO_CONSOLE_DEVICE_READY ? 0xffffffffu : 1) : 0;
	uint8_t m[8] = {(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24),
			(uint8_t)event, (uint8_t)(event >> 8), (uint8_t)value, (uint8_t)(value >> 8)};
	uint64_t buf = driver_add(VIRTIO_CONSOLE_CTRL_TX, arg & 128 ? 7 : 8, false);
	guest_mem_write(&fz.h.mem, buf, m, sizeof(m));
	if (fz.active && fz.h.failed_calls == 0)
		fz.ops->queue_notify(fz.dev, VIRTIO_CONSOLE_CTRL_TX);
}

/* Events (op & 7): 0 notify queue arg % queues, after the script driver
 * added a (arg >> 3) + 1 byte writable buffer to it when bit 2 is set; 1 a
 * control message from the script driver (driver_control); 2 host input of a few zeros;
 * 3 the watched fd, if readable; 4 device reset and reactivation (the
 * queues re-enabled on the same rings); 5 save/load round trip; 6 load of
 * a hostile image; 7 a configuration access. */
static void run_op(uint8_t op, uint8_t arg)
{
	switch (op & 7) {
	case 0:
		if (arg & 4)
			driver_add(arg % fz.nq, (arg >> 3) + 1u, true);
		if (fz.active && fz.h.failed_calls == 0)
			fz.ops->queue_notify(fz.dev, arg % fz.nq);
		break;
	case 1:
		if (fz.dev == &fuzz_con)
			driver_control(arg);
		break;
	case 2:
		if (fz.dev == &fuzz_con) {
			size_t n = (size_t)arg * 97 % (sizeof(zeros) + 1);
			if (virtio_console_input(&fuzz_con, zeros, n) > n)
				__builtin_trap();
		}
		break;
	case 3:
		if (fz.active && fz.h.failed_calls == 0 && fz.h.watched_fd >= 0 &&
		    fz.ops->fd_ready && vh_fd_readable(fz.h.watched_fd))
			fz.ops->fd_ready(fz.dev, fz.h.watched_fd);
		break;
	case 4:
		reset();
		enable_queues();
		activate();
		break;
	case 5:
		snapshot_roundtrip();
		break;
	case 6:
		snapshot_hostile(arg);
		break;
	case 7:
		config_access(arg);
		break;
	}
}

static void setup_device(uint8_t which)
{
	if (which & 1) {
		struct char_sink out = {.write = sink_write};
		if (virtio_console_init(&fuzz_con, out))
			__builtin_trap(); /* e.g. an eventfd leaked per input */
		fz.ops = &virtio_console_ops;
		fz.dev = &fuzz_con;
	} else {
		struct virtio_rng_source src = {.read = zero_source};
		if (virtio_rng_init(&fuzz_rng, &src))
			__builtin_trap();
		fz.ops = &virtio_rng_ops;
		fz.dev = &fuzz_rng;
	}
	fz.nq = fz.ops->num_queues;
	fz.h.ctx.nvq = fz.nq;
}

static void teardown_device(void)
{
	reset();
	if (fz.dev == &fuzz_con) {
		if (fuzz_con.in_len > VIRTIO_CONSOLE_IN_BUF ||
		    fuzz_con.in_head >= VIRTIO_CONSOLE_IN_BUF ||
		    fuzz_con.ctrl_len > VIRTIO_CONSOLE_CTRL_PENDING ||
		    fuzz_con.ctrl_head >= VIRTIO_CONSOLE_CTRL_PENDING || fuzz_con.multiport ||
		    fuzz_con.port_open || fuzz_con.ctrl_len)
			__builtin_trap(); /* reset (above) forgets the port state */
		virtio_console_destroy(&fuzz_con);
	} else {
		virtio_rng_destroy(&fuzz_rng);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz.h.mem.base) {
		log_set_level(LOG_ERROR); /* malformed rings are the point here */
		if (vh_init(&fz.h, NQ))
			return 0;
	}
	if (size < HDR_SIZE)
		return 0;
	uint8_t *win = guest_mem_ptr(&fz.h.mem, WIN_GPA, WIN_SIZE);
	memset(guest_mem_ptr(&fz.h.mem, BUF_GPA, BUF_SLOT * BUF_SLOTS), 0, BUF_SLOT * BUF_SLOTS);
	fz.next_slot = 0;
	size_t body = size - HDR_SIZE < WIN_SIZE ? size - HDR_SIZE : WIN_SIZE;
	memset(win, 0, WIN_SIZE);
	memcpy(win, data + HDR_SIZE, body);
	fz.win = data + HDR_SIZE;
	fz.win_len = body ? body : 1;
	if (!body)
		fz.win = zeros;

	fz.qsize = 1u << (data[1] % 7);
	fz.features = 0;
	if (data[2] & 1)
		fz.features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (data[2] & 2)
		fz.features |= 1ULL << VIRTIO_F_EVENT_IDX;
	if ((data[2] & 4) && (data[0] & 1))
		fz.features |= 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
	for (unsigned q = 0; q < NQ; q++) {
		const uint8_t *p = data + 3 + 6 * q;
		vqd_init(&fz.h.drv[q], &fz.h.mem, place(p, vq_desc_bytes(fz.qsize), 16),
			 place(p + 2, vq_avail_bytes(fz.qsize), 2),
			 place(p + 4, vq_used_bytes(fz.qsize), 4), fz.qsize);
	}
	memset(fz.h.used_calls, 0, sizeof(fz.h.used_calls));
	fz.h.failed_calls = 0;
	fz.h.watched_fd = -1;

	setup_device(data[0]);
	enable_queues();
	activate();
	if (!fz.active)
		__builtin_trap(); /* a good context must be accepted */
	for (unsigned i = 0; i < SCRIPT_OPS; i++)
		run_op(data[SCRIPT_OFF + 2 * i], data[SCRIPT_OFF + 2 * i + 1]);
	teardown_device();
	if (fz.h.used_calls[VIRTIO_CONSOLE_CTRL_RX] &&
	    madvise(fz.h.mem.base, VH_RAM, MADV_DONTNEED)) /* zero pages again */
		__builtin_trap();
	return 0;
}
