/* Base64 encoding (RFC 4648 §4, with padding). */
#ifndef SHRIKE_UTIL_BASE64_H
#define SHRIKE_UTIL_BASE64_H

#include <stddef.h>

/* Bytes needed for the encoding of len bytes, terminating NUL included. */
size_t base64_encoded_size(size_t len);
/* Writes the NUL-terminated encoding into out (base64_encoded_size bytes). */
void base64_encode(const void *data, size_t len, char *out);

#endif
