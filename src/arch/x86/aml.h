/* A tiny emitter of ACPI Machine Language (ACPI 6.4 §20, "ACPI Machine
 * Language (AML) Specification"): just enough to write a static DSDT —
 * names, integers, packages, buffers, scopes and devices.
 *
 * Encodings used: NameString §20.2.2 (NameSeg, RootChar, DualNamePrefix,
 * MultiNamePrefix), PkgLength §20.2.4, integer constants §20.2.3
 * (ZeroOp/OneOp/BytePrefix/WordPrefix/DWordPrefix/QWordPrefix), NameOp
 * §20.2.5.1, ScopeOp §20.2.5.1, DeviceOp §20.2.5.2, PackageOp and BufferOp
 * §20.2.5.4; EISA ids per §19.6.35 (EISAID macro).
 *
 * Invariants: the emitter never writes past its caller's buffer. Any error
 * (buffer full, malformed name, unbalanced nesting) is sticky: later calls
 * do nothing and aml_finish() reports the first error. Objects with a
 * PkgLength are opened with a *_begin call and closed with aml_end(); the
 * length is filled in at aml_end(), when the contents are known. */
#ifndef SHRIKE_ARCH_X86_AML_H
#define SHRIKE_ARCH_X86_AML_H

#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml {
	uint8_t *data;
	size_t cap;
	size_t len;
	int err; /* 0 or the first negative errno */
	unsigned depth;
	size_t open[AML_MAX_DEPTH]; /* start offset of each open object's contents */
};

void aml_init(struct aml *a, uint8_t *data, size_t cap);

/* Raw bytes (resource descriptors, opcodes the emitter does not wrap). */
void aml_bytes(struct aml *a, const uint8_t *bytes, size_t n);

/* A NameString: optional leading '\' then 1..255 segments separated by '.',
 * each 1-4 characters [A-Z_][A-Z0-9_]*, padded with '_' to 4 ("_S5" ->
 * "_S5_", as ASL does). */
void aml_name_string(struct aml *a, const char *path);

/* The shortest constant encoding of value (ZeroOp, OneOp, Byte..QWord). */
void aml_integer(struct aml *a, uint64_t value);

/* DWordConst of an EISA id such as "PNP0501" (3 letters A-Z, 4 hex digits). */
void aml_eisaid(struct aml *a, const char *id);

/* Name(path, ...): the caller emits the data object next. */
void aml_name(struct aml *a, const char *path);

/* Buffer(){bytes}: a complete buffer object with an explicit size. */
void aml_buffer(struct aml *a, const uint8_t *bytes, size_t n);

/* Opened objects; each must be closed by aml_end(). For a package the
 * caller emits exactly nelems data objects before aml_end(). */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);
void aml_package_begin(struct aml *a, uint8_t nelems);
void aml_end(struct aml *a);

/* 0 and the number of bytes written in *len, or the first error
 * (-ENOSPC, -EINVAL); an object left open is -EINVAL. */
int aml_finish(const struct aml *a, size_t *len);

#endif
