/* Polled virtio-blk driver; see vblk.h for the specifications and vpci.h
 * for the transport. */
#include "vblk.h"

#include "lib.h"
#include "vpci.h"

#define VIRTIO_BLK_DEVICE 0x1042u

#define VBLK_T_IN 0
#define VBLK_T_OUT 1
#define VBLK_S_OK 0
#define VBLK_DESCS 3u /* header, data, status */

static struct {
	struct vq_rings rings;
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr __attribute__((aligned(16)));
	uint8_t status;
} vq __attribute__((aligned(64)));

static struct vpci_dev dev;

const char *vblk_init(void)
{
	const char *err = vpci_open(&dev, VIRTIO_BLK_DEVICE);
	if (!err)
		err = vpci_negotiate(&dev);
	if (!err)
		err = vpci_queue_setup(&dev, &vq.rings, VBLK_DESCS);
	if (!err)
		err = vpci_driver_ok(&dev);
	if (err)
		dev.vq = NULL;
	return err;
}

const char *vblk_io(int write, uint64_t sector, void *buf, uint32_t n)
{
	if (!dev.vq)
		return "not initialized";
	if (n == 0 || n > VBLK_MAX_SECTORS)
		return "bad sector count";
	volatile struct vq_desc *d = vq.rings.desc;
	struct vq_used_elem used;
	vq.hdr.type = write ? VBLK_T_OUT : VBLK_T_IN;
	vq.hdr.reserved = 0;
	vq.hdr.sector = sector;
	vq.status = 0xff;
	d[0].addr = (uintptr_t)&vq.hdr;
	d[0].len = sizeof(vq.hdr);
	d[0].flags = VQ_DESC_F_NEXT;
	d[0].next = 1;
	d[1].addr = (uintptr_t)buf;
	d[1].len = n * VBLK_SECTOR;
	d[1].flags = (uint16_t)(VQ_DESC_F_NEXT | (write ? 0 : VQ_DESC_F_WRITE));
	d[1].next = 2;
	d[2].addr = (uintptr_t)&vq.status;
	d[2].len = 1;
	d[2].flags = VQ_DESC_F_WRITE;
	d[2].next = 0;
	const char *err = vpci_submit(&dev, 0, &used);
	if (err)
		return err;
	if (used.id != 0)
		return "bad used id";
	if (*(volatile uint8_t *)&vq.status != VBLK_S_OK)
		return "request failed";
	return NULL;
}
