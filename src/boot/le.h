/* Little-endian field access for the boot formats. Every on-disk and
 * in-guest structure the loaders handle (Linux boot_params, ELF with
 * EI_DATA = ELFDATA2LSB, Xen hvm_start_info, multiboot info) is
 * little-endian, so fields are read and written byte by byte instead of by
 * casting buffers to structs: no alignment or host-endianness assumptions.
 *
 * Invariant: callers check that [off, off+width) lies inside the buffer
 * before calling; these helpers do no bounds checks of their own. */
#ifndef SHRIKE_BOOT_LE_H
#define SHRIKE_BOOT_LE_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t le_get16(const uint8_t *p, size_t off)
{
	return (uint16_t)(p[off] | (p[off + 1] << 8));
}

static inline uint32_t le_get32(const uint8_t *p, size_t off)
{
	return (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
	       (uint32_t)p[off + 3] << 24;
}

static inline uint64_t le_get64(const uint8_t *p, size_t off)
{
	return (uint64_t)le_get32(p, off) | (uint64_t)le_get32(p, off + 4) << 32;
}

static inline void le_put16(uint8_t *p, size_t off, uint16_t v)
{
	p[off] = (uint8_t)v;
	p[off + 1] = (uint8_t)(v >> 8);
}

static inline void le_put32(uint8_t *p, size_t off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static inline void le_put64(uint8_t *p, size_t off, uint64_t v)
{
	le_put32(p, off, (uint32_t)v);
	le_put32(p, off + 4, (uint32_t)(v >> 32));
}

#endif
