#include "util/snapbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void snapbuf_init_writer(struct snapbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void snapbuf_init_reader(struct snapbuf *b, const uint8_t *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->data = (uint8_t *)data; /* never written through: cap == 0 */
	b->len = len;
}

void snapbuf_free(struct snapbuf *b)
{
	if (b->cap)
		free(b->data);
	memset(b, 0, sizeof(*b));
}

static int snapbuf_grow(struct snapbuf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int snapbuf_put(struct snapbuf *b, const void *src, size_t len)
{
	if (b->err)
		return b->err;
	if (len > SIZE_MAX - b->len || (b->data && !b->cap)) {
		b->err = -EINVAL; /* overflow, or a writer call on a reader */
		return b->err;
	}
	int r = snapbuf_grow(b, b->len + len);
	if (r)
		return b->err = r;
	if (len)
		memcpy(b->data + b->len, src, len);
	b->len += len;
	return 0;
}

int snapbuf_get(struct snapbuf *b, void *dst, size_t len)
{
	if (b->err)
		return b->err;
	if (len > b->len - b->pos) {
		b->err = -EINVAL;
		return b->err;
	}
	if (len)
		memcpy(dst, b->data + b->pos, len);
	b->pos += len;
	return 0;
}

static int snapbuf_put_le(struct snapbuf *b, uint64_t v, unsigned n)
{
	uint8_t t[8];
	for (unsigned i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	return snapbuf_put(b, t, n);
}

static int snapbuf_get_le(struct snapbuf *b, uint64_t *v, unsigned n)
{
	uint8_t t[8];
	int r = snapbuf_get(b, t, n);
	*v = 0;
	for (unsigned i = 0; !r && i < n; i++)
		*v |= (uint64_t)t[i] << (8 * i);
	return r;
}

int snapbuf_put_u8(struct snapbuf *b, uint8_t v) { return snapbuf_put_le(b, v, 1); }
int snapbuf_put_u16(struct snapbuf *b, uint16_t v) { return snapbuf_put_le(b, v, 2); }
int snapbuf_put_u32(struct snapbuf *b, uint32_t v) { return snapbuf_put_le(b, v, 4); }
int snapbuf_put_u64(struct snapbuf *b, uint64_t v) { return snapbuf_put_le(b, v, 8); }

int snapbuf_get_u8(struct snapbuf *b, uint8_t *v)
{
	uint64_t t;
	int r = snapbuf_get_le(b, &t, 1);
	*v = (uint8_t)t;
	return r;
}

int snapbuf_get_u16(struct snapbuf *b, uint16_t *v)
{
	uint64_t t;
	int r = snapbuf_get_le(b, &t, 2);
	*v = (uint16_t)t;
	return r;
}

int snapbuf_get_u32(struct snapbuf *b, uint32_t *v)
{
	uint64_t t;
	int r = snapbuf_get_le(b, &t, 4);
	*v = (uint32_t)t;
	return r;
}

int snapbuf_get_u64(struct snapbuf *b, uint64_t *v) { return snapbuf_get_le(b, v, 8); }

int snapbuf_begin(struct snapbuf *b, const char tag[4], uint32_t version)
{
	snapbuf_put(b, tag, 4);
	return snapbuf_put_u32(b, version);
}

int snapbuf_expect(struct snapbuf *b, const char tag[4], uint32_t max_version,
		   uint32_t *version)
{
	char t[4];
	uint32_t v = 0;
	snapbuf_get(b, t, 4);
	int r = snapbuf_get_u32(b, &v);
	if (r)
		return r;
	if (memcmp(t, tag, 4) || v > max_version) {
		b->err = -EINVAL;
		return b->err;
	}
	if (version)
		*version = v;
	return 0;
}
