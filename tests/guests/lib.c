/* guestlib: see lib.h for what it implements and its invariants. */
#include <stdarg.h>

#include "lib.h"
#include "virtio.h"

#define UART_THR        0   /* transmit holding register (DLAB=0) */
#define UART_LSR        5   /* line status register */
#define UART_LSR_THRE   0x20
#define UART_SPIN_MAX   100000u /* bound on waiting for THR empty */

#define CMOS_STATUS_A   0x0a
#define CMOS_STATUS_B   0x0b
#define CMOS_YEAR       0x09
#define CMOS_A_UIP      0x80
#define CMOS_B_BINARY   0x04
#define CMOS_UIP_SPIN   10000u

#define ACPI_SCAN_START 0xe0000u
#define ACPI_SCAN_END   0x100000u
#define ACPI_HDR_LEN    36u
#define ACPI_TABLE_MAX  0x100000u /* larger tables are rejected */
#define ACPI_ROOT_MAX   256u      /* entries looked at in the RSDT/XSDT */
#define FADT_DSDT       40u
#define FADT_PM1A_CNT   64u
#define FADT_X_DSDT     140u
#define ACPI_SLP_EN     (1u << 13)
#define ACPI_SLP_TYP_SHIFT 10
#define ACPI_S5_DEFAULT 5u        /* what shrike's PM device expects */

#define I8042_PULSE_RESET 0xfe
#define AFTER_ACTION_SPIN 200000u /* how long a poweroff/reset may take */

const void *guest_phys(uint64_t pa, uint64_t len)
{
	if (pa == 0 || len > GUEST_PHYS_LIMIT || pa > GUEST_PHYS_LIMIT - len)
		return NULL;
	return (const void *)(uintptr_t)pa;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;
	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t guest_strnlen(const char *s, size_t max)
{
	size_t n = 0;
	if (!s)
		return 0;
	while (n < max && s[n])
		n++;
	return n;
}

/* ---- console ---- */

void con_putc(char c)
{
	/* An absent UART reads 0xFF, which has THRE set: no hang either way. */
	for (unsigned i = 0; i < UART_SPIN_MAX; i++) {
		if (inb(PORT_COM1 + UART_LSR) & UART_LSR_THRE)
			break;
		cpu_relax();
	}
	outb(PORT_COM1 + UART_THR, (uint8_t)c);
}

void con_puts(const char *s)
{
	size_t n = guest_strnlen(s, GUEST_STR_MAX);
	for (size_t i = 0; i < n; i++)
		con_putc(s[i]);
}

/* Printable, single-line rendering of untrusted strings. */
static void con_put_safe_str(const char *s)
{
	size_t n = guest_strnlen(s, GUEST_STR_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		con_putc(c >= 0x20 && c < 0x7f ? c : '?');
	}
}

static void con_put_padded(const char *digits, unsigned len, unsigned width, char pad)
{
	while (width > len) {
		con_putc(pad);
		width--;
	}
	for (unsigned i = 0; i < len; i++)
		con_putc(digits[i]);
}

static void con_put_hex(uint64_t v, unsigned width, char pad)
{
	char buf[16];
	unsigned len = 0;
	do {
		buf[15 - len] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
		len++;
	} while (v && len < 16);
	con_put_padded(buf + 16 - len, len, width, pad);
}

/* Decimal without 64-bit division, which 32-bit code would need libgcc for. */
static void con_put_dec(uint64_t v, unsigned width, char pad)
{
	static const uint64_t pow10[] = {
		10000000000000000000ULL, 1000000000000000000ULL, 100000000000000000ULL,
		10000000000000000ULL, 1000000000000000ULL, 100000000000000ULL,
		10000000000000ULL, 1000000000000ULL, 100000000000ULL, 10000000000ULL,
		1000000000ULL, 100000000ULL, 10000000ULL, 1000000ULL, 100000ULL,
		10000ULL, 1000ULL, 100ULL, 10ULL, 1ULL,
	};
	char buf[20];
	unsigned len = 0;
	for (unsigned i = 0; i < sizeof(pow10) / sizeof(pow10[0]); i++) {
		char digit = '0';
		while (v >= pow10[i]) { /* at most 9 rounds, except 1 for 10^19 */
			v -= pow10[i];
			digit++;
		}
		if (len || digit != '0' || pow10[i] == 1)
			buf[len++] = digit;
	}
	con_put_padded(buf, len, width, pad);
}

void con_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			con_putc(*p);
			continue;
		}
		p++;
		char pad = ' ';
		unsigned width = 0;
		int is_long_long = 0;
		if (*p == '0') {
			pad = '0';
			p++;
		}
		while (*p >= '0' && *p <= '9' && width < 64)
			width = width * 10 + (unsigned)(*p++ - '0');
		if (p[0] == 'l' && p[1] == 'l') {
			is_long_long = 1;
			p += 2;
		}
		switch (*p) {
		case 's':
			con_put_safe_str(va_arg(ap, const char *));
			break;
		case 'c':
			con_putc((char)va_arg(ap, int));
			break;
		case 'u':
			con_put_dec(is_long_long ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned),
				    width, pad);
			break;
		case 'x':
			con_put_hex(is_long_long ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned),
				    width, pad);
			break;
		case '%':
			con_putc('%');
			break;
		default: /* unknown conversion or a trailing '%': stop, never overrun */
			va_end(ap);
			return;
		}
	}
	va_end(ap);
}

/* ---- fw_cfg ---- */

void fwcfg_read(uint16_t key, void *buf, size_t len)
{
	uint8_t *b = buf;
	outw(PORT_FW_CFG_SEL, key);
	for (size_t i = 0; i < len; i++)
		b[i] = inb(PORT_FW_CFG_DATA);
}

uint64_t fwcfg_read_le(uint16_t key, size_t len)
{
	uint8_t buf[8];
	uint64_t v = 0;
	if (len > sizeof(buf))
		len = sizeof(buf);
	fwcfg_read(key, buf, len);
	for (size_t i = len; i > 0; i--)
		v = v << 8 | buf[i - 1];
	return v;
}

/* ---- CMOS / RTC ---- */

uint8_t cmos_read(uint8_t reg)
{
	outb(PORT_CMOS_INDEX, reg & 0x7f);
	return inb(PORT_CMOS_DATA);
}

unsigned rtc_year(void)
{
	/* Avoid reading mid-update; give up after a bounded wait. */
	for (unsigned i = 0; i < CMOS_UIP_SPIN; i++) {
		if (!(cmos_read(CMOS_STATUS_A) & CMOS_A_UIP))
			break;
		cpu_relax();
	}
	uint8_t year = cmos_read(CMOS_YEAR);
	if (!(cmos_read(CMOS_STATUS_B) & CMOS_B_BINARY))
		year = (uint8_t)((year >> 4) * 10 + (year & 0xf));
	return 2000u + year;
}

/* ---- command line ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Calls back for each word; stops early when the callback returns nonzero. */
static int cmdline_for_each_word(const char *cmdline,
				 int (*fn)(const char *word, size_t len, void *ctx), void *ctx)
{
	size_t n = guest_strnlen(cmdline, GUEST_STR_MAX);
	size_t i = 0;
	while (i < n) {
		while (i < n && is_space(cmdline[i]))
			i++;
		size_t start = i;
		while (i < n && !is_space(cmdline[i]))
			i++;
		if (i > start) {
			int r = fn(cmdline + start, i - start, ctx);
			if (r)
				return r;
		}
	}
	return 0;
}

static int word_equals(const char *word, size_t len, void *ctx)
{
	const char *want = ctx;
	return guest_strnlen(want, GUEST_STR_MAX) == len && memcmp(word, want, len) == 0;
}

int cmdline_has_word(const char *cmdline, const char *word)
{
	return cmdline_for_each_word(cmdline, word_equals, (void *)word);
}

struct key_lookup {
	const char *key;
	uint32_t value;
	int found;
};

static int parse_u32(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		uint32_t d = (uint32_t)(s[i] - '0');
		if (v > (UINT32_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int word_is_key(const char *word, size_t len, void *ctx)
{
	struct key_lookup *k = ctx;
	size_t klen = guest_strnlen(k->key, GUEST_STR_MAX);
	if (len <= klen || memcmp(word, k->key, klen) != 0 || word[klen] != '=')
		return 0;
	k->found = parse_u32(word + klen + 1, len - klen - 1, &k->value) == 0;
	return 1; /* the first "key=" decides, valid or not */
}

int cmdline_get_uint(const char *cmdline, const char *key, uint32_t *value)
{
	struct key_lookup k = { key, 0, 0 };
	cmdline_for_each_word(cmdline, word_is_key, &k);
	if (!k.found)
		return -1;
	*value = k.value;
	return 0;
}

/* ---- sums ---- */

/* Word-at-a-time: each 16-bit lane of two accumulators collects one byte
 * per word, so 256 words (256 * 255 < 65536) fit before lanes are folded.
 * The guest may run emulated at ~1.5 M instructions/s, so this matters. */
uint32_t byte_sum32(const void *p, size_t len)
{
	const uint8_t *b = p;
	const unsigned long lanes = ~0UL / 0xffff * 0xff; /* 0x00ff00ff... */
	uint32_t sum = 0;

	while (len && ((uintptr_t)b & (sizeof(unsigned long) - 1))) {
		sum += *b++;
		len--;
	}
	while (len >= sizeof(unsigned long)) {
		size_t words = len / sizeof(unsigned long);
		if (words > 256)
			words = 256;
		const unsigned long *w = (const unsigned long *)b;
		unsigned long even = 0, odd = 0;
		for (size_t i = 0; i < words; i++) {
			even += w[i] & lanes;
			odd += (w[i] >> 8) & lanes;
		}
		for (unsigned s = 0; s < sizeof(unsigned long) * 8; s += 16)
			sum += (uint32_t)((even >> s) & 0xffff) + (uint32_t)((odd >> s) & 0xffff);
		b += words * sizeof(unsigned long);
		len -= words * sizeof(unsigned long);
	}
	while (len--)
		sum += *b++;
	return sum;
}

uint8_t byte_sum8(const void *p, size_t len)
{
	return (uint8_t)byte_sum32(p, len);
}

/* ---- ACPI ---- */

int acpi_rsdp_valid(uint64_t pa)
{
	const uint8_t *r = guest_phys(pa, 20);
	return r && memcmp(r, "RSD PTR ", 8) == 0 && byte_sum8(r, 20) == 0;
}

uint64_t acpi_find_rsdp(uint64_t hint)
{
	if (acpi_rsdp_valid(hint))
		return hint;
	for (uint32_t pa = ACPI_SCAN_START; pa < ACPI_SCAN_END; pa += 16)
		if (acpi_rsdp_valid(pa))
			return pa;
	return 0;
}

/* A checksummed table of at least min_len bytes at pa, or NULL. */
static const uint8_t *acpi_table(uint64_t pa, uint32_t min_len)
{
	const uint8_t *h = guest_phys(pa, ACPI_HDR_LEN);
	if (!h)
		return NULL;
	uint32_t len = get_le32(h + 4);
	if (len < ACPI_HDR_LEN || len < min_len || len > ACPI_TABLE_MAX || !guest_phys(pa, len))
		return NULL;
	if (byte_sum8(h, len) != 0)
		return NULL;
	return h;
}

static const uint8_t *acpi_find_table(uint64_t rsdp_pa, const char sig[4])
{
	const uint8_t *rsdp = guest_phys(rsdp_pa, 36);
	if (!rsdp)
		return NULL;
	const uint8_t *root = NULL;
	uint32_t entry_size = 4;
	/* ACPI 2.0+: the XSDT, covered by the extended checksum over 36 bytes. */
	if (rsdp[15] >= 2 && get_le32(rsdp + 20) >= 36 && byte_sum8(rsdp, 36) == 0 &&
	    get_le64(rsdp + 24) != 0) {
		root = acpi_table(get_le64(rsdp + 24), ACPI_HDR_LEN);
		entry_size = 8;
	}
	if (!root) {
		root = acpi_table(get_le32(rsdp + 16), ACPI_HDR_LEN);
		entry_size = 4;
	}
	if (!root)
		return NULL;
	uint32_t count = (get_le32(root + 4) - ACPI_HDR_LEN) / entry_size;
	if (count > ACPI_ROOT_MAX)
		count = ACPI_ROOT_MAX;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = root + ACPI_HDR_LEN + i * entry_size;
		uint64_t pa = entry_size == 8 ? get_le64(e) : get_le32(e);
		const uint8_t *t = acpi_table(pa, ACPI_HDR_LEN);
		if (t && memcmp(t, sig, 4) == 0)
			return t;
	}
	return NULL;
}

/* SLP_TYPa from "_S5_" Name(_S5_, Package(){a, b, ...}) in the DSDT (AML,
 * ACPI 20.2.5.4 PackageOp 0x12, PkgLength, NumElements, then BytePrefix
 * 0x0A + byte, ZeroOp 0x00 or OneOp 0x01). Falls back to 5. */
static uint16_t acpi_s5_slp_typ(const uint8_t *fadt)
{
	uint32_t flen = get_le32(fadt + 4);
	uint64_t dsdt_pa = get_le32(fadt + FADT_DSDT);
	if (flen >= FADT_X_DSDT + 8 && get_le64(fadt + FADT_X_DSDT) != 0)
		dsdt_pa = get_le64(fadt + FADT_X_DSDT);
	const uint8_t *dsdt = acpi_table(dsdt_pa, ACPI_HDR_LEN);
	if (!dsdt || memcmp(dsdt, "DSDT", 4) != 0)
		return ACPI_S5_DEFAULT;
	uint32_t len = get_le32(dsdt + 4);
	for (uint32_t i = ACPI_HDR_LEN; i + 4 + 8 <= len; i++) {
		if (memcmp(dsdt + i, "_S5_", 4) != 0)
			continue;
		const uint8_t *p = dsdt + i + 4;
		if (p[0] != 0x12)
			continue;
		p += 1 + 1 + (p[1] >> 6) + 1; /* PackageOp, PkgLength, NumElements */
		if (p + 2 > dsdt + len)
			break;
		if (p[0] == 0x0a)
			return p[1] & 7;
		if (p[0] == 0x00 || p[0] == 0x01)
			return p[0];
	}
	return ACPI_S5_DEFAULT;
}

int acpi_poweroff_params(uint64_t rsdp, uint16_t *pm1a_cnt, uint16_t *slp_typ)
{
	const uint8_t *fadt = acpi_find_table(rsdp, "FACP");
	if (!fadt || get_le32(fadt + 4) < FADT_PM1A_CNT + 4)
		return -1;
	uint32_t port = get_le32(fadt + FADT_PM1A_CNT);
	if (port == 0 || port > 0xffff)
		return -1;
	*pm1a_cnt = (uint16_t)port;
	*slp_typ = acpi_s5_slp_typ(fadt);
	return 0;
}

/* ---- endings ---- */

void cpu_halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void debug_exit(uint32_t value)
{
	outb(PORT_DEBUG_EXIT, (uint8_t)value);
	cpu_halt_forever();
}

void triple_fault(void)
{
	/* An empty IDT: int3 raises #GP, which raises #DF, which shuts down. */
	struct __attribute__((packed)) {
		uint16_t limit;
		uintptr_t base;
	} idtr = { 0, 0 };
	__asm__ volatile("lidt %0; int3" : : "m"(idtr));
	cpu_halt_forever();
}

static void spin_a_while(void)
{
	for (volatile unsigned i = 0; i < AFTER_ACTION_SPIN; i++)
		cpu_relax();
}

static void acpi_poweroff(uint64_t rsdp_hint)
{
	uint16_t port, slp_typ;
	uint64_t rsdp = acpi_find_rsdp(rsdp_hint);
	if (!rsdp) {
		con_puts("poweroff: no RSDP\n");
		return;
	}
	if (acpi_poweroff_params(rsdp, &port, &slp_typ) != 0) {
		con_puts("poweroff: no FADT\n");
		return;
	}
	outw(port, (uint16_t)(slp_typ << ACPI_SLP_TYP_SHIFT | ACPI_SLP_EN));
	spin_a_while();
	con_puts("poweroff: failed\n");
}

void guest_finish(const char *cmdline, uint64_t rsdp_hint)
{
	uint32_t code = 0, ioloop = 0;
	cmdline_get_uint(cmdline, "exit", &code);
	/* ioloop=N: N port writes to 0x80, one VM exit each, for bench/io-exit.sh. */
	cmdline_get_uint(cmdline, "ioloop", &ioloop);
	for (uint32_t i = 0; i < ioloop; i++)
		outb(0x80, 0);
	/* rng=N: fetch N random bytes from the virtio-rng device (virtio.h). */
	uint32_t rng = 0;
	if (cmdline_get_uint(cmdline, "rng", &rng) == 0)
		virtio_rng_test(rng);
	/* spin=N: N rounds of xorshift32, a CPU-bound loop for bench/soft-mips.sh
	 * whose result both engines must agree on. */
	uint32_t spin = 0;
	if (cmdline_get_uint(cmdline, "spin", &spin) == 0) {
		uint32_t x = 2463534242u;
		for (uint32_t i = 0; i < spin; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
		}
		con_printf("spin: %x\n", x);
	}
	con_printf("exit=%u\n", code);
	if (cmdline_has_word(cmdline, "poweroff")) {
		con_puts("poweroff\n");
		acpi_poweroff(rsdp_hint);
	} else if (cmdline_has_word(cmdline, "reset")) {
		con_puts("reset\n");
		outb(PORT_I8042_CMD, I8042_PULSE_RESET);
		spin_a_while();
		con_puts("reset: failed\n");
	} else if (cmdline_has_word(cmdline, "triple")) {
		con_puts("triple\n");
		triple_fault();
	}
	debug_exit(code);
}
