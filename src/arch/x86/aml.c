#include "arch/x86/aml.h"

#include <errno.h>
#include <string.h>

/* Opcodes, ACPI 6.4 §20.2. */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* after ExtOpPrefix */
#define AML_ROOT_CHAR '\\'

#define AML_NAME_SEG_LEN 4
#define AML_MAX_SEGS 255
#define AML_PKG_LENGTH_MAX 0x0fffffffu /* 28 bits in the 4-byte form */

void aml_init(struct aml *a, uint8_t *data, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->data = data;
	a->cap = cap;
}

static void aml_fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

void aml_bytes(struct aml *a, const uint8_t *bytes, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memcpy(a->data + a->len, bytes, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b) { aml_bytes(a, &b, 1); }

static void aml_le(struct aml *a, uint64_t value, unsigned n)
{
	uint8_t b[8];
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	aml_bytes(a, b, n);
}

static int aml_is_lead_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
static int aml_is_name_char(char c) { return aml_is_lead_char(c) || (c >= '0' && c <= '9'); }

/* Validates one segment of 1..4 characters starting at s; returns its
 * length, or 0 if malformed. */
static size_t aml_seg_len(const char *s)
{
	size_t n = 0;
	if (!aml_is_lead_char(s[0]))
		return 0;
	while (n < AML_NAME_SEG_LEN && aml_is_name_char(s[n]))
		n++;
	if (s[n] != '\0' && s[n] != '.')
		return 0; /* too long or a bad character */
	return n;
}

/* Counts the segments of path (without the root char); 0 if malformed. */
static unsigned aml_count_segs(const char *path)
{
	unsigned count = 0;
	const char *s = path;
	for (;;) {
		size_t n = aml_seg_len(s);
		if (n == 0 || count == AML_MAX_SEGS)
			return 0;
		count++;
		s += n;
		if (*s == '\0')
			return count;
		s++; /* the '.' */
	}
}

void aml_name_string(struct aml *a, const char *path)
{
	if (a->err)
		return;
	if (*path == AML_ROOT_CHAR) {
		aml_byte(a, AML_ROOT_CHAR);
		path++;
	}
	unsigned nsegs = aml_count_segs(path);
	if (nsegs == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (nsegs == 2)
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	else if (nsegs > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)nsegs);
	}
	for (const char *s = path; nsegs > 0; nsegs--) {
		size_t n = aml_seg_len(s);
		uint8_t seg[AML_NAME_SEG_LEN] = {'_', '_', '_', '_'};
		memcpy(seg, s, n);
		aml_bytes(a, seg, sizeof(seg));
		s += n + (s[n] == '.');
	}
}

void aml_integer(struct aml *a, uint64_t value)
{
	if (value == 0)
		aml_byte(a, AML_ZERO_OP);
	else if (value == 1)
		aml_byte(a, AML_ONE_OP);
	else if (value <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, value, 1);
	} else if (value <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, value, 2);
	} else if (value <= 0xffffffffu) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, value, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, value, 8);
	}
}

static int aml_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The EISA id is three 5-bit letters ('A' = 1) and four hex digits, stored
 * big-endian in a DWord; the DWordConst itself is little-endian. */
void aml_eisaid(struct aml *a, const char *id)
{
	if (a->err)
		return;
	if (strlen(id) != 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	uint32_t v = 0;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			aml_fail(a, -EINVAL);
			return;
		}
		v = (v << 5) | (uint32_t)(id[i] - 'A' + 1);
	}
	for (int i = 3; i < 7; i++) {
		int d = aml_hex_digit(id[i]);
		if (d < 0) {
			aml_fail(a, -EINVAL);
			return;
		}
		v = (v << 4) | (uint32_t)d;
	}
	uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	aml_byte(a, AML_DWORD_PREFIX);
	aml_bytes(a, be, sizeof(be));
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, path);
}

/* Marks the start of an object's contents; the PkgLength goes there. */
static void aml_open(struct aml *a)
{
	if (a->err)
		return;
	if (a->depth == AML_MAX_DEPTH) {
		aml_fail(a, -EINVAL);
		return;
	}
	a->open[a->depth++] = a->len;
}

/* PkgLength counts its own bytes too (§20.2.4): one byte holds up to 63;
 * longer forms put the low nibble in the lead byte and the rest in 1-3
 * following bytes, with the count of following bytes in bits 7:6. */
static unsigned aml_pkg_length_size(size_t contents)
{
	if (contents + 1 <= 0x3f)
		return 1;
	if (contents + 2 <= 0xfff)
		return 2;
	if (contents + 3 <= 0xfffff)
		return 3;
	return 4;
}

void aml_end(struct aml *a)
{
	if (a->err)
		return;
	if (a->depth == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	size_t start = a->open[--a->depth];
	size_t contents = a->len - start;
	unsigned n = aml_pkg_length_size(contents);
	if (contents + n > AML_PKG_LENGTH_MAX) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	uint32_t total = (uint32_t)(contents + n);
	uint8_t enc[4];
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
		for (unsigned i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(a->data + start + n, a->data + start, contents);
	memcpy(a->data + start, enc, n);
	a->len += n;
}

void aml_buffer(struct aml *a, const uint8_t *bytes, size_t n)
{
	aml_byte(a, AML_BUFFER_OP);
	aml_open(a);
	aml_integer(a, n);
	aml_bytes(a, bytes, n);
	aml_end(a);
}

void aml_scope_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE_OP);
	aml_open(a);
	aml_name_string(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	aml_open(a);
	aml_name_string(a, path);
}

void aml_package_begin(struct aml *a, uint8_t nelems)
{
	aml_byte(a, AML_PACKAGE_OP);
	aml_open(a);
	aml_byte(a, nelems);
}

int aml_finish(const struct aml *a, size_t *len)
{
	if (a->err)
		return a->err;
	if (a->depth != 0)
		return -EINVAL;
	*len = a->len;
	return 0;
}
