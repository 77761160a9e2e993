/* Multiboot v1 test guest (32-bit protected mode, paging off).
 *
 * Reports the multiboot information (Multiboot 0.6.96 section 3.3: flags
 * bit 0 mem_lower/upper, bit 2 cmdline, bit 3 modules, bit 6 memory map),
 * fw_cfg, the RTC year, an unclaimed port, and how many CPUs come online
 * when the BSP starts each AP with INIT-SIPI-SIPI (Intel SDM vol. 3A
 * 10.6.1 ICR, 8.4.4.1 MP initialization example). Output lines are
 * documented in README.md; tests grep them, so formats are fixed. */
#include "lib.h"

#define MB_BOOT_MAGIC     0x2BADB002u
#define MB_INFO_MEM       (1u << 0)
#define MB_INFO_CMDLINE   (1u << 2)
#define MB_INFO_MODS      (1u << 3)
#define MB_INFO_MMAP      (1u << 6)
#define MB_INFO_LEN       52u
#define MB_MOD_LEN        16u
#define MB_MODS_MAX       64u    /* modules looked at */
#define MB_MMAP_MAX_LEN   0x10000u
#define MB_MMAP_ENTRY_MIN 20u    /* base, length, type after the size field */
#define E820_RAM          1u

#define LAPIC_BASE        0xfee00000u
#define LAPIC_ID          0x020
#define LAPIC_SVR         0x0f0
#define LAPIC_ICR_LO      0x300
#define LAPIC_ICR_HI      0x310
#define LAPIC_SVR_ENABLE  0x100
#define ICR_INIT          0x00004500u /* level assert, delivery mode INIT */
#define ICR_STARTUP       0x00004600u /* delivery mode start-up */
#define ICR_BUSY          (1u << 12)
#define ICR_SPIN          100000u
#define INIT_DELAY_SPIN   5000u
#define AP_WAIT_SPIN      300000u
#define AP_TRAMPOLINE     0x8000u
#define AP_TRAMPOLINE_MAX 0x1000u
#define CPUS_MAX          64u

extern const uint8_t ap_tramp_start[], ap_tramp_end[];
extern volatile uint32_t ap_started;

void mb_main(uint32_t magic, uint32_t info_pa);

static const char *mb_string(uint32_t pa)
{
	const char *s = guest_phys(pa, 1);
	return s ? s : "";
}

static void print_mem(const uint8_t *info, uint32_t flags)
{
	uint32_t lower = 0, upper = 0;
	if (flags & MB_INFO_MEM) {
		lower = get_le32(info + 4);
		upper = get_le32(info + 8);
	}
	con_printf("mem_lower=%u mem_upper=%u\n", lower, upper);
}

static void print_mmap(const uint8_t *info, uint32_t flags)
{
	uint32_t entries = 0;
	uint64_t ram = 0;
	const uint8_t *map = NULL;
	uint32_t len = 0;
	if (flags & MB_INFO_MMAP) {
		len = get_le32(info + 44);
		map = guest_phys(get_le32(info + 48), len);
		if (len > MB_MMAP_MAX_LEN)
			map = NULL;
	}
	/* Each entry: u32 size (not counting itself), u64 base, u64 len, u32 type. */
	for (uint32_t off = 0; map && off + 4 + MB_MMAP_ENTRY_MIN <= len;) {
		uint32_t size = get_le32(map + off);
		if (size < MB_MMAP_ENTRY_MIN || size > len)
			break;
		if (get_le32(map + off + 20) == E820_RAM)
			ram += get_le64(map + off + 12);
		entries++;
		off += 4 + size;
	}
	con_printf("mmap: %u entries, ram=%llu\n", entries, (unsigned long long)(ram >> 10));
}

static void print_modules(const uint8_t *info, uint32_t flags)
{
	uint32_t count = 0;
	const uint8_t *mods = NULL;
	if (flags & MB_INFO_MODS) {
		count = get_le32(info + 20);
		uint32_t shown = count < MB_MODS_MAX ? count : MB_MODS_MAX;
		mods = guest_phys(get_le32(info + 24), (uint64_t)shown * MB_MOD_LEN);
	}
	con_printf("modules: %u\n", count);
	for (uint32_t i = 0; mods && i < count && i < MB_MODS_MAX; i++) {
		const uint8_t *m = mods + i * MB_MOD_LEN;
		uint32_t start = get_le32(m), end = get_le32(m + 4);
		uint32_t size = end >= start ? end - start : 0;
		const void *data = guest_phys(start, size);
		uint32_t sum = data ? byte_sum32(data, size) : 0;
		con_printf("module %u: size=%u sum=%08x name=%s\n", i, size, sum,
			   mb_string(get_le32(m + 8)));
	}
}

static uint32_t print_fw_cfg(void)
{
	char sig[5];
	fwcfg_read(FW_CFG_SIGNATURE, sig, 4);
	sig[4] = 0;
	uint32_t cpus = (uint32_t)fwcfg_read_le(FW_CFG_NB_CPUS, 2);
	uint64_t ram = fwcfg_read_le(FW_CFG_RAM_SIZE, 8);
	con_printf("fw_cfg: signature=%s cpus=%u ram=%llu\n", sig, cpus, (unsigned long long)ram);
	return cpus;
}

static volatile uint32_t *lapic_reg(uint32_t off)
{
	return (volatile uint32_t *)(uintptr_t)(LAPIC_BASE + off);
}

static void lapic_wait_idle(void)
{
	for (unsigned i = 0; i < ICR_SPIN && (*lapic_reg(LAPIC_ICR_LO) & ICR_BUSY); i++)
		cpu_relax();
}

static void lapic_send_ipi(uint32_t apic_id, uint32_t command)
{
	lapic_wait_idle();
	*lapic_reg(LAPIC_ICR_HI) = apic_id << 24;
	*lapic_reg(LAPIC_ICR_LO) = command; /* the low write sends */
	lapic_wait_idle();
}

static void spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		cpu_relax();
}

/* Starts APs 0..cpus-1 except the BSP and returns how many CPUs run. */
static uint32_t start_aps(uint32_t cpus)
{
	size_t tramp_len = (size_t)(ap_tramp_end - ap_tramp_start);
	if (cpus <= 1 || cpus > CPUS_MAX || tramp_len > AP_TRAMPOLINE_MAX)
		return 1;
	memcpy((void *)(uintptr_t)AP_TRAMPOLINE, ap_tramp_start, tramp_len);
	ap_started = 0;
	*lapic_reg(LAPIC_SVR) |= LAPIC_SVR_ENABLE;
	uint32_t bsp = *lapic_reg(LAPIC_ID) >> 24;
	for (uint32_t id = 0; id < cpus; id++) {
		if (id == bsp)
			continue;
		lapic_send_ipi(id, ICR_INIT);
		spin(INIT_DELAY_SPIN);
		lapic_send_ipi(id, ICR_STARTUP | (AP_TRAMPOLINE >> 12));
		lapic_send_ipi(id, ICR_STARTUP | (AP_TRAMPOLINE >> 12));
	}
	for (unsigned i = 0; i < AP_WAIT_SPIN && ap_started < cpus - 1; i++)
		cpu_relax();
	return 1 + ap_started;
}

void mb_main(uint32_t magic, uint32_t info_pa)
{
	const uint8_t *info = guest_phys(info_pa, MB_INFO_LEN);
	con_puts("shrike-test: multiboot\n");
	if (magic != MB_BOOT_MAGIC) {
		con_printf("multiboot: bad magic %08x\n", magic);
		info = NULL;
	}
	uint32_t flags = info ? get_le32(info) : 0;
	const char *cmdline = (flags & MB_INFO_CMDLINE) ? mb_string(get_le32(info + 16)) : "";

	con_printf("cmdline: %s\n", cmdline);
	print_mem(info, flags);
	print_mmap(info, flags);
	print_modules(info, flags);
	uint32_t cpus = print_fw_cfg();
	con_printf("rtc: year=%u\n", rtc_year());
	con_printf("unclaimed: %02x\n", inb(PORT_UNCLAIMED));
	con_printf("cpus online: %u\n", start_aps(cpus));
	guest_finish(cmdline, 0);
}
