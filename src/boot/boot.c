#include "boot/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/bzimage.h"
#include "boot/elf.h"
#include "boot/le.h"
#include "boot/multiboot.h"

enum boot_format boot_detect(const uint8_t *data, size_t size)
{
	struct elf_info elf;
	size_t mb_off;

	if (!data)
		return BOOT_FORMAT_UNKNOWN;
	if (size >= BZ_HEADER + 4 && le_get16(data, BZ_BOOT_FLAG) == BZ_BOOT_FLAG_MAGIC &&
	    le_get32(data, BZ_HEADER) == BZ_HEADER_MAGIC)
		return BOOT_FORMAT_BZIMAGE;
	if (elf_is_elf(data, size) && elf_parse(data, size, &elf, NULL) == 0 && elf.has_pvh)
		return BOOT_FORMAT_PVH;
	if (multiboot_find_header(data, size, &mb_off) == 0)
		return BOOT_FORMAT_MULTIBOOT;
	return BOOT_FORMAT_UNKNOWN;
}

const char *boot_format_name(enum boot_format format)
{
	switch (format) {
	case BOOT_FORMAT_BZIMAGE:
		return "bzImage";
	case BOOT_FORMAT_PVH:
		return "ELF (PVH)";
	case BOOT_FORMAT_MULTIBOOT:
		return "multiboot";
	case BOOT_FORMAT_UNKNOWN:
		break;
	}
	return "unknown";
}

/* An unknown image gets the most specific explanation we can give. */
static int explain_unknown(const struct boot_blob *k, struct errmsg *err)
{
	struct elf_info elf;
	struct errmsg why;

	if (elf_is_elf(k->data, k->size)) {
		if (elf_parse(k->data, k->size, &elf, &why))
			return errmsg_set(err, EINVAL, "%s", why.text);
		return errmsg_set(err, EINVAL,
				  "ELF file has neither a Xen PVH note "
				  "(XEN_ELFNOTE_PHYS32_ENTRY, CONFIG_PVH) nor a multiboot "
				  "header");
	}
	return errmsg_set(err, EINVAL, "not a bzImage, ELF with a PVH note, or multiboot kernel");
}

static int dispatch(const struct guest_mem *mem, const struct boot_input *in,
		    struct cpu_state *entry, struct errmsg *err)
{
	switch (boot_detect(in->kernel.data, in->kernel.size)) {
	case BOOT_FORMAT_BZIMAGE:
		return bzimage_load(mem, in, entry, err);
	case BOOT_FORMAT_PVH:
		return elf_pvh_load(mem, in, entry, err);
	case BOOT_FORMAT_MULTIBOOT:
		return multiboot_load(mem, in, entry, err);
	case BOOT_FORMAT_UNKNOWN:
		break;
	}
	return explain_unknown(&in->kernel, err);
}

int boot_load(const struct guest_mem *mem, const struct boot_input *in,
	      struct cpu_state *entry, struct errmsg *err)
{
	const char *name = in->kernel.name ? in->kernel.name : "kernel";
	struct boot_input local = *in;
	struct e820_map map;
	struct errmsg why = {{0}};

	if (!in->kernel.data || in->kernel.size == 0)
		return errmsg_set(err, EINVAL, "%s: empty kernel image", name);
	if (in->ninitrd > BOOT_MAX_INITRDS)
		return errmsg_set(err, EINVAL, "at most %d initrds are supported",
				  BOOT_MAX_INITRDS);
	if (!local.e820) {
		e820_build(&map, mem);
		local.e820 = &map;
	}
	int rc = dispatch(mem, &local, entry, &why);
	if (rc)
		errmsg_set(err, -rc, "%s: %s", name, why.text);
	return rc;
}

/* Reads exactly size bytes, retrying short reads and EINTR. */
static int read_all(int fd, uint8_t *buf, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		done += (size_t)n;
	}
	return 0;
}

static int read_open_file(int fd, struct boot_blob *blob, const char *path, size_t max,
			  struct errmsg *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;
		return errmsg_set(err, e, "cannot stat %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return errmsg_set(err, EINVAL, "%s is not a regular file", path);
	if (st.st_size == 0)
		return errmsg_set(err, EINVAL, "%s is empty", path);
	if ((uint64_t)st.st_size > max)
		return errmsg_set(err, EFBIG, "%s is larger than %zu bytes", path, max);
	size_t size = (size_t)st.st_size;
	uint8_t *data = malloc(size);
	if (!data)
		return errmsg_set(err, ENOMEM, "cannot allocate %zu bytes for %s", size, path);
	int rc = read_all(fd, data, size);
	if (rc) {
		free(data);
		return errmsg_set(err, -rc, "cannot read %s: %s", path, strerror(-rc));
	}
	blob->data = data;
	blob->size = size;
	return 0;
}

int boot_blob_read(struct boot_blob *blob, const char *path, size_t max, struct errmsg *err)
{
	memset(blob, 0, sizeof(*blob));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return errmsg_set(err, e, "cannot open %s: %s", path, strerror(e));
	}
	int rc = read_open_file(fd, blob, path, max, err);
	close(fd);
	if (rc == 0)
		blob->name = path;
	return rc;
}

void boot_blob_free(struct boot_blob *blob)
{
	free(blob->data);
	blob->data = NULL;
	blob->size = 0;
}
