/* A byte buffer for device state (design.md rule 10): a writer that grows
 * and a reader that never reads past the end. Integers are little-endian.
 *
 * Errors are sticky: after the first failure (out of memory on write, a
 * short buffer on read) every call does nothing and returns the same
 * negative errno, so save/load code can run straight through and check
 * once at the end. A section is framed by snapbuf_begin/snapbuf_end with a
 * four-character tag and a version, so a loader can reject foreign or
 * newer data. */
#ifndef SHRIKE_UTIL_SNAPBUF_H
#define SHRIKE_UTIL_SNAPBUF_H

#include <stddef.h>
#include <stdint.h>

struct snapbuf {
	uint8_t *data;
	size_t len;  /* bytes written, or the size of the data being read */
	size_t cap;  /* writer: allocated; reader: 0 */
	size_t pos;  /* reader position */
	int err;
};

/* Writer: starts empty; snapbuf_free() releases it. */
void snapbuf_init_writer(struct snapbuf *b);
/* Reader over caller-owned bytes. */
void snapbuf_init_reader(struct snapbuf *b, const uint8_t *data, size_t len);
void snapbuf_free(struct snapbuf *b);

int snapbuf_put(struct snapbuf *b, const void *src, size_t len);
int snapbuf_put_u8(struct snapbuf *b, uint8_t v);
int snapbuf_put_u16(struct snapbuf *b, uint16_t v);
int snapbuf_put_u32(struct snapbuf *b, uint32_t v);
int snapbuf_put_u64(struct snapbuf *b, uint64_t v);

int snapbuf_get(struct snapbuf *b, void *dst, size_t len);
int snapbuf_get_u8(struct snapbuf *b, uint8_t *v);
int snapbuf_get_u16(struct snapbuf *b, uint16_t *v);
int snapbuf_get_u32(struct snapbuf *b, uint32_t *v);
int snapbuf_get_u64(struct snapbuf *b, uint64_t *v);

/* Section header: tag (4 chars) and version. On read, -EINVAL unless the
 * tag matches and the version is <= max_version; *version gets it. */
int snapbuf_begin(struct snapbuf *b, const char tag[4], uint32_t version);
int snapbuf_expect(struct snapbuf *b, const char tag[4], uint32_t max_version,
		   uint32_t *version);

#endif
