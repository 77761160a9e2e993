/* The guest E820 map (arch/x86/e820.c) for the memory sizes that exercise
 * each layout case: small, exactly filling low memory, spilling above 4 GiB. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "vm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* Below 1 MiB only [0, EBDA) is RAM: the EBDA, the VGA/ROM hole and the
 * BIOS area (where the ACPI tables live) are not. */
#define LOW_HOLES (LAYOUT_HIGH_MEM_START - LAYOUT_EBDA_ADDR)

static void build(struct guest_mem *mem, struct e820_map *map, uint64_t size)
{
	int ret = guest_mem_init(mem, size);
	if (ret != 0)
		skip(); /* host refused even a MAP_NORESERVE mapping */
	e820_build(map, mem);
}

static void check_sorted_disjoint(const struct e820_map *map)
{
	assert_true(map->count > 0 && map->count <= E820_MAX_ENTRIES);
	for (unsigned i = 0; i < map->count; i++) {
		const struct e820_entry *e = &map->entry[i];
		assert_true(e->size > 0);
		assert_true(e->addr + e->size > e->addr); /* no wrap */
		assert_true(e->type >= E820_RAM && e->type <= E820_NVS);
		if (i > 0) {
			const struct e820_entry *p = &map->entry[i - 1];
			assert_true(p->addr < e->addr);
			assert_true(p->addr + p->size <= e->addr);
		}
	}
}

static uint64_t ram_total(const struct e820_map *map)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < map->count; i++)
		if (map->entry[i].type == E820_RAM)
			total += map->entry[i].size;
	return total;
}

/* Whether [lo, hi) is wholly covered by one entry of the given type. */
static bool covered(const struct e820_map *map, uint64_t lo, uint64_t hi, uint32_t type)
{
	for (unsigned i = 0; i < map->count; i++) {
		const struct e820_entry *e = &map->entry[i];
		if (e->type == type && e->addr <= lo && hi <= e->addr + e->size)
			return true;
	}
	return false;
}

/* Every RAM entry must be backed by guest memory, end to end. */
static void check_ram_backed(const struct e820_map *map, const struct guest_mem *mem)
{
	for (unsigned i = 0; i < map->count; i++) {
		const struct e820_entry *e = &map->entry[i];
		if (e->type == E820_RAM)
			assert_non_null(guest_mem_ptr(mem, e->addr, e->size));
	}
}

static void check_common(const struct e820_map *map, const struct guest_mem *mem, uint64_t size)
{
	check_sorted_disjoint(map);
	check_ram_backed(map, mem);
	assert_int_equal(ram_total(map), size - LOW_HOLES);
	assert_int_equal(e820_ram_between(map, 0, ~0ULL), size - LOW_HOLES);
	assert_int_equal(e820_ram_between(map, 0, LAYOUT_HIGH_MEM_START), LAYOUT_EBDA_ADDR);
	/* Nothing the VMM or firmware owns is RAM: EBDA, VGA hole, ACPI area,
	 * the 32-bit MMIO hole. */
	assert_int_equal(e820_ram_between(map, LAYOUT_EBDA_ADDR, LAYOUT_HIGH_MEM_START), 0);
	assert_int_equal(e820_ram_between(map, LAYOUT_MMIO_HOLE_START, LAYOUT_4G), 0);
	assert_true(covered(map, LAYOUT_ACPI_ADDR, LAYOUT_ACPI_ADDR + LAYOUT_ACPI_SIZE, E820_RESERVED) ||
		    covered(map, LAYOUT_ACPI_ADDR, LAYOUT_ACPI_ADDR + LAYOUT_ACPI_SIZE, E820_ACPI));
	assert_true(covered(map, LAYOUT_EBDA_ADDR, LAYOUT_LOW_RAM_END, E820_RESERVED));
	/* The low structures the loaders write are in RAM. */
	assert_true(covered(map, 0, LAYOUT_EBDA_ADDR, E820_RAM));
}

static void test_16m(void **state)
{
	(void)state;
	struct guest_mem mem;
	struct e820_map map;
	build(&mem, &map, 16 * MiB);
	check_common(&map, &mem, 16 * MiB);
	assert_true(covered(&map, LAYOUT_HIGH_MEM_START, 16 * MiB, E820_RAM));
	assert_int_equal(e820_ram_between(&map, 16 * MiB, ~0ULL), 0);
	guest_mem_destroy(&mem);
}

/* Exactly fills RAM below the MMIO hole: nothing above 4 GiB. */
static void test_3g(void **state)
{
	(void)state;
	struct guest_mem mem;
	struct e820_map map;
	build(&mem, &map, 3 * GiB);
	check_common(&map, &mem, 3 * GiB);
	assert_true(covered(&map, LAYOUT_HIGH_MEM_START, LAYOUT_MMIO_HOLE_START, E820_RAM));
	assert_int_equal(e820_ram_between(&map, LAYOUT_4G, ~0ULL), 0);
	guest_mem_destroy(&mem);
}

static void check_above_4g(uint64_t size)
{
	struct guest_mem mem;
	struct e820_map map;
	build(&mem, &map, size);
	check_common(&map, &mem, size);
	uint64_t low = LAYOUT_MMIO_HOLE_START;
	assert_true(covered(&map, LAYOUT_HIGH_MEM_START, low, E820_RAM));
	assert_true(covered(&map, LAYOUT_4G, LAYOUT_4G + (size - low), E820_RAM));
	assert_int_equal(e820_ram_between(&map, LAYOUT_4G, ~0ULL), size - low);
	assert_int_equal(e820_ram_between(&map, LAYOUT_4G + (size - low), ~0ULL), 0);
	guest_mem_destroy(&mem);
}

static void test_4g(void **state)
{
	(void)state;
	check_above_4g(4 * GiB);
}

static void test_8g(void **state)
{
	(void)state;
	check_above_4g(8 * GiB);
}

/* e820_ram_between clips partial overlaps and handles empty ranges. */
static void test_ram_between(void **state)
{
	(void)state;
	struct guest_mem mem;
	struct e820_map map;
	build(&mem, &map, 16 * MiB);
	assert_int_equal(e820_ram_between(&map, 0x1000, 0x2000), 0x1000);
	assert_int_equal(e820_ram_between(&map, LAYOUT_EBDA_ADDR - 0x10, LAYOUT_HIGH_MEM_START + 0x10),
			 0x20);
	assert_int_equal(e820_ram_between(&map, 0x5000, 0x5000), 0);
	assert_int_equal(e820_ram_between(&map, 0x6000, 0x5000), 0);
	guest_mem_destroy(&mem);
}

/* Rebuilding into a used map starts from scratch. */
static void test_rebuild_resets(void **state)
{
	(void)state;
	struct guest_mem big, small;
	struct e820_map map;
	build(&big, &map, 8 * GiB);
	unsigned big_count = map.count;
	build(&small, &map, 16 * MiB);
	assert_true(map.count < big_count);
	check_common(&map, &small, 16 * MiB);
	guest_mem_destroy(&big);
	guest_mem_destroy(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_16m),         cmocka_unit_test(test_3g),
	    cmocka_unit_test(test_4g),          cmocka_unit_test(test_8g),
	    cmocka_unit_test(test_ram_between), cmocka_unit_test(test_rebuild_resets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
