/* guestlib: the small freestanding library shared by shrike's test guests.
 *
 * It implements just enough of the PC platform to report what a VMM gave
 * the guest:
 *   - 8250/16550 UART transmit (LSR bit 5 "THR empty", COM1 at 0x3F8);
 *   - QEMU fw_cfg legacy port interface (selector 0x510, data 0x511;
 *     QEMU docs/specs/fw_cfg.rst, keys 0x0000 signature, 0x0003 RAM size,
 *     0x0005 CPU count);
 *   - MC146818 CMOS/RTC (index 0x70, data 0x71; status A bit 7 = update
 *     in progress, status B bit 2 = binary instead of BCD);
 *   - ACPI 6.x table discovery (section 5.2.5 RSDP, 5.2.7 RSDT, 5.2.8 XSDT,
 *     5.2.9 FADT PM1a_CNT_BLK at offset 64, 7.4.2 \_S5 sleep type) and the
 *     PM1 control register sleep sequence (4.8.3.2.1: SLP_TYP bits 10-12,
 *     SLP_EN bit 13);
 *   - QEMU isa-debug-exit (a write of V makes the VMM exit with (V<<1)|1);
 *   - i8042 pulse-reset (0xFE to port 0x64) and a triple fault.
 *
 * The same source is compiled for 32-bit protected mode without paging and
 * for 64-bit long mode with the low 4 GiB identity-mapped, so a physical
 * address below 4 GiB is always a valid pointer (see guest_phys()).
 *
 * Invariants: everything the VMM hands over (pointers, counts, strings) is
 * treated as untrusted: strings are read up to GUEST_STR_MAX bytes, tables
 * are length-checked and every wait is bounded, so a broken VMM produces
 * wrong output, never a hang. Only general-purpose registers are used. */
#ifndef SHRIKE_TEST_GUEST_LIB_H
#define SHRIKE_TEST_GUEST_LIB_H

#include <stdint.h>
#include <stddef.h>

#define GUEST_STR_MAX     4096u          /* longest string ever read */
#define GUEST_PHYS_LIMIT  0x100000000ULL /* reachable physical addresses */

#define PORT_COM1         0x3f8
#define PORT_DEBUG_EXIT   0xf4
#define PORT_FW_CFG_SEL   0x510
#define PORT_FW_CFG_DATA  0x511
#define PORT_CMOS_INDEX   0x70
#define PORT_CMOS_DATA    0x71
#define PORT_I8042_CMD    0x64
#define PORT_UNCLAIMED    0x2e0 /* nothing lives here on a PC */

#define FW_CFG_SIGNATURE  0x0000
#define FW_CFG_RAM_SIZE   0x0003
#define FW_CFG_NB_CPUS    0x0005

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* MMIO: one plain mov of the given width, which every engine (and KVM's
 * instruction emulator) decodes; volatile keeps the compiler from merging
 * or reordering the accesses. */
static inline uint8_t mmio_read8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

/* Orders the compiler's accesses; x86 itself keeps stores in order and
 * loads in order, which is all the polled virtio driver needs. */
static inline void compiler_barrier(void)
{
	__asm__ volatile("" : : : "memory");
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

/* Reads a little-endian value from a possibly unaligned address. */
static inline uint32_t get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint16_t get_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint64_t get_le64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

/* A pointer to [pa, pa+len) if that range is reachable, else NULL.
 * Address 0 counts as "not provided". */
const void *guest_phys(uint64_t pa, uint64_t len);

/* Freestanding replacements the compiler may call. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t guest_strnlen(const char *s, size_t max);

/* Console on COM1. con_printf understands %s %c %u %x %llu %llx %% with an
 * optional zero-padded width (%08x); %s prints at most GUEST_STR_MAX bytes
 * and shows control characters as '?', so each call stays on its lines. */
void con_putc(char c);
void con_puts(const char *s);
void con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* fw_cfg: reads len bytes of item key into buf. */
void fwcfg_read(uint16_t key, void *buf, size_t len);
/* Reads a little-endian integer of len (<= 8) bytes from item key. */
uint64_t fwcfg_read_le(uint16_t key, size_t len);

/* CMOS register reg (0x00-0x7f). */
uint8_t cmos_read(uint8_t reg);
/* The RTC year as 2000+YY, honouring status B's binary/BCD bit. */
unsigned rtc_year(void);

/* Command lines: whitespace-separated words. cmdline may be NULL. */
int cmdline_has_word(const char *cmdline, const char *word);
/* Finds "key=<decimal>" and stores the number; 0 if found, -1 if absent or
 * malformed (overflow included). */
int cmdline_get_uint(const char *cmdline, const char *key, uint32_t *value);

/* Byte sums: the 32-bit wrapping sum of all bytes, and the 8-bit one used
 * by ACPI checksums (a valid table sums to 0). */
uint32_t byte_sum32(const void *p, size_t len);
uint8_t byte_sum8(const void *p, size_t len);

/* ACPI. acpi_rsdp_valid: "RSD PTR " signature and a valid ACPI 1.0 checksum
 * at pa. acpi_find_rsdp: hint if valid, else a scan of 0xE0000-0xFFFFF on
 * 16-byte boundaries; 0 if none. */
int acpi_rsdp_valid(uint64_t pa);
uint64_t acpi_find_rsdp(uint64_t hint);
/* PM1a_CNT port and the S5 SLP_TYP (from \_S5 in the DSDT, 5 if none).
 * 0 on success, -1 if there is no usable FADT. */
int acpi_poweroff_params(uint64_t rsdp, uint16_t *pm1a_cnt, uint16_t *slp_typ);

/* Never return. */
__attribute__((noreturn)) void cpu_halt_forever(void);
__attribute__((noreturn)) void debug_exit(uint32_t value);
__attribute__((noreturn)) void triple_fault(void);

/* The common ending of every test guest: prints "exit=<N>" (N from
 * "exit=N", default 0), then does what the words "poweroff", "reset" or
 * "triple" ask (printing the word first) or exits through port 0xF4 with N.
 * rsdp_hint is where the boot protocol says the RSDP is (0 if unknown). */
__attribute__((noreturn)) void guest_finish(const char *cmdline, uint64_t rsdp_hint);

#endif
