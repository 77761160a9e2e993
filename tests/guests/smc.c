/* Self-modifying-code test guest (PVH, 64-bit): code patched by a store
 * in its own block, a few instructions ahead, in a later block of its
 * page, by its own loop, from another page, and by virtio-blk DMA into a
 * code page (vblk.h). It prints one line per case (README.md) whose
 * numbers only come out right when every store to code is seen by the
 * next execution of that code, on any engine. */
#include "lib.h"
#include "vblk.h"

#define PVH_MAGIC 0x336ec578u
#define ROUNDS 100u
#define DMA_SECTOR 8u

/* smc_code.S */
uint32_t smc_next(uint32_t v);
uint32_t smc_ahead(uint32_t v);
uint32_t smc_opcode(uint32_t opcode, uint32_t a, uint32_t b);
uint32_t smc_later(uint32_t v);
uint32_t smc_loop(uint32_t n);
extern uint8_t smc_other[], smc_dma_page[];

void pvh_main(uint64_t start_info_pa);

typedef uint32_t (*code_fn)(void);

/* Data and code addresses are the same in the identity-mapped guest. */
static uint32_t call_code(uint8_t *code) { return ((code_fn)(uintptr_t)code)(); }

/* `mov $value, %eax; ret` */
static void put_return(uint8_t *p, uint32_t value)
{
	p[0] = 0xb8;
	p[1] = (uint8_t)value;
	p[2] = (uint8_t)(value >> 8);
	p[3] = (uint8_t)(value >> 16);
	p[4] = (uint8_t)(value >> 24);
	p[5] = 0xc3;
}

static void same_page_cases(void)
{
	uint32_t sum = 0;
	for (uint32_t i = 0; i < ROUNDS; i++)
		sum += smc_next(i);
	con_printf("smc: next %u\n", sum);
	sum = 0;
	for (uint32_t i = 0; i < ROUNDS; i++)
		sum += smc_ahead(2 * i);
	con_printf("smc: ahead %u\n", sum);
	uint32_t a = 1000;
	for (uint32_t i = 0; i < ROUNDS; i++)
		a = smc_opcode(i % 3 == 0 ? 0x29 : 0x01, a, 7);
	con_printf("smc: opcode %u\n", a);
	sum = 0;
	for (uint32_t i = 0; i < ROUNDS; i++)
		sum += smc_later(i + 1);
	con_printf("smc: later block %u\n", sum);
	uint32_t l1 = smc_loop(1000);
	uint32_t l2 = smc_loop(10);
	con_printf("smc: own loop %u %u\n", l1, l2);
}

/* Stores from this page (C code) into smc_other's page. */
static void other_page_case(void)
{
	uint32_t sum = 0;
	for (uint32_t i = 0; i < ROUNDS; i++) {
		uint32_t v = 3 * i;
		volatile uint8_t *imm = smc_other + 1;
		imm[0] = (uint8_t)v;
		imm[1] = (uint8_t)(v >> 8);
		imm[2] = (uint8_t)(v >> 16);
		imm[3] = (uint8_t)(v >> 24);
		sum += call_code(smc_other);
	}
	uint8_t body[8];
	put_return(body, 0x4444);
	memcpy(smc_other, body, 6);
	compiler_barrier();
	con_printf("smc: other page %u %x\n", sum, call_code(smc_other));
}

/* virtio-blk writes code to the disk from a data buffer, then reads it
 * back over smc_dma_page, which has run before. */
static uint8_t sector_buf[VBLK_SECTOR] __attribute__((aligned(VBLK_SECTOR)));

static const char *dma_round(uint32_t value, uint32_t sector, uint32_t *got)
{
	memset(sector_buf, 0xcc, sizeof(sector_buf));
	put_return(sector_buf, value);
	const char *err = vblk_io(1, sector, sector_buf, 1);
	if (!err)
		err = vblk_io(0, sector, smc_dma_page, 1);
	compiler_barrier();
	if (!err)
		for (unsigned k = 0; k < 3; k++)
			*got = call_code(smc_dma_page);
	return err;
}

static void dma_case(void)
{
	uint32_t r0 = 0, r1 = 0, r2 = 0;
	for (unsigned k = 0; k < 3; k++)
		r0 = call_code(smc_dma_page);
	const char *err = vblk_init();
	if (!err)
		err = dma_round(0x2222, DMA_SECTOR, &r1);
	if (!err)
		err = dma_round(0x3333, DMA_SECTOR + 1, &r2);
	if (err)
		con_printf("smc: virtio-blk error %s\n", err);
	else
		con_printf("smc: virtio-blk %x %x %x\n", r0, r1, r2);
}

void pvh_main(uint64_t start_info_pa)
{
	const uint8_t *si = guest_phys(start_info_pa, 56);
	const char *cmdline = "";
	con_puts("shrike-test: smc\n");
	if (si && get_le32(si) == PVH_MAGIC) {
		const char *c = guest_phys(get_le64(si + 24), 1);
		if (c)
			cmdline = c;
	}
	same_page_cases();
	other_page_case();
	dma_case();
	guest_finish(cmdline, si ? get_le64(si + 32) : 0);
}
