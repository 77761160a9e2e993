/* 82093AA IOAPIC (devices/ioapic.c): register window, edge pins, level
 * pins with Remote IRR and EOI, hostile accesses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "devices/ioapic.h"

struct delivery {
	uint8_t dest, mode, vector;
	bool logical, level;
};

struct sink {
	unsigned count;
	struct delivery last;
};

static void record(void *opaque, uint8_t dest, bool logical, uint8_t mode, uint8_t vector,
		   bool level)
{
	struct sink *s = opaque;
	s->count++;
	s->last = (struct delivery){dest, mode, vector, logical, level};
}

static struct ioapic io;
static struct sink sink;

static int setup(void **state)
{
	(void)state;
	memset(&sink, 0, sizeof(sink));
	ioapic_init(&io, record, &sink);
	return 0;
}

static void mmio_write32(uint64_t off, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	ioapic_mmio_write(&io, off, b, 4);
}

static uint32_t mmio_read32(uint64_t off)
{
	uint8_t b[4];
	ioapic_mmio_read(&io, off, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint32_t reg_read(uint8_t index)
{
	mmio_write32(IOAPIC_REGSEL, index);
	return mmio_read32(IOAPIC_WINDOW);
}

static void reg_write(uint8_t index, uint32_t v)
{
	mmio_write32(IOAPIC_REGSEL, index);
	mmio_write32(IOAPIC_WINDOW, v);
}

static void program(unsigned pin, uint32_t low, uint8_t dest)
{
	reg_write((uint8_t)(0x11 + 2 * pin), (uint32_t)dest << 24);
	reg_write((uint8_t)(0x10 + 2 * pin), low);
}

static void test_identification(void **state)
{
	(void)state;
	assert_int_equal(reg_read(IOAPIC_REG_VER), 0x170011);
	reg_write(IOAPIC_REG_ID, 0xffffffff);
	assert_int_equal(reg_read(IOAPIC_REG_ID), 0x0f000000);
	assert_int_equal(reg_read(IOAPIC_REG_ARB), 0x0f000000);
	reg_write(IOAPIC_REG_VER, 0);
	assert_int_equal(reg_read(IOAPIC_REG_VER), 0x170011);
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
		assert_int_equal(reg_read((uint8_t)(0x10 + 2 * pin)), 0x10000); /* masked */
	assert_int_equal(reg_read(0x40), 0); /* past the table */
	assert_int_equal(reg_read(0xff), 0);
}

static void test_edge_pin(void **state)
{
	(void)state;
	program(4, 0x31, 1); /* vector 0x31, fixed, physical, edge, unmasked, dest 1 */
	ioapic_set_irq(&io, 4, 1);
	assert_int_equal(sink.count, 1);
	assert_int_equal(sink.last.vector, 0x31);
	assert_int_equal(sink.last.dest, 1);
	assert_false(sink.last.logical);
	assert_false(sink.last.level);
	ioapic_set_irq(&io, 4, 1); /* no new edge */
	assert_int_equal(sink.count, 1);
	ioapic_set_irq(&io, 4, 0);
	ioapic_set_irq(&io, 4, 1);
	assert_int_equal(sink.count, 2);

	program(4, 0x10031, 1); /* masked: edges are lost */
	ioapic_set_irq(&io, 4, 0);
	ioapic_set_irq(&io, 4, 1);
	program(4, 0x31, 1);
	assert_int_equal(sink.count, 2);
}

static void test_level_pin_remote_irr_and_eoi(void **state)
{
	(void)state;
	program(9, 0x8000 | 0x800 | 0x39, 0x03); /* level, logical, vector 0x39 */
	ioapic_set_irq(&io, 9, 1);
	assert_int_equal(sink.count, 1);
	assert_true(sink.last.level);
	assert_true(sink.last.logical);
	assert_int_equal(sink.last.dest, 3);
	assert_true(reg_read(0x10 + 18) & 0x4000); /* Remote IRR */

	ioapic_set_irq(&io, 9, 1); /* still waiting for the EOI */
	assert_int_equal(sink.count, 1);
	ioapic_eoi(&io, 0x40); /* other vector: nothing */
	assert_int_equal(sink.count, 1);
	ioapic_eoi(&io, 0x39); /* line still high: delivered again */
	assert_int_equal(sink.count, 2);
	assert_true(reg_read(0x10 + 18) & 0x4000);

	ioapic_set_irq(&io, 9, 0);
	ioapic_eoi(&io, 0x39);
	assert_int_equal(sink.count, 2);
	assert_false(reg_read(0x10 + 18) & 0x4000);
}

static void test_unmask_asserted_level_line(void **state)
{
	(void)state;
	program(20, 0x18000 | 0x50, 0); /* level, masked */
	ioapic_set_irq(&io, 20, 1);
	assert_int_equal(sink.count, 0);
	program(20, 0x8000 | 0x50, 0);
	assert_int_equal(sink.count, 1);
	assert_int_equal(sink.last.vector, 0x50);
}

static void test_read_only_bits(void **state)
{
	(void)state;
	program(2, 0x7000 | 0x30, 0); /* delivery status and Remote IRR written as 1 */
	assert_int_equal(reg_read(0x14) & 0x5000, 0);
	program(3, 0x8000 | 0x33, 0);
	ioapic_set_irq(&io, 3, 1);
	assert_true(reg_read(0x16) & 0x4000);
	program(3, 0x33, 0); /* switching to edge drops the Remote IRR */
	assert_false(reg_read(0x16) & 0x4000);
	ioapic_set_irq(&io, 99, 1); /* bad pin ignored */
}

static void test_narrow_and_odd_accesses(void **state)
{
	(void)state;
	uint8_t b[8];
	/* A one-byte IOREGSEL write and a two-byte IOWIN write. */
	b[0] = 0x12;
	ioapic_mmio_write(&io, IOAPIC_REGSEL, b, 1);
	b[0] = 0x44;
	b[1] = 0x00;
	ioapic_mmio_write(&io, IOAPIC_WINDOW, b, 2);
	assert_int_equal(reg_read(0x12), 0x10044); /* mask bit kept */
	/* An 8-byte read of the window returns the 32-bit register. */
	memset(b, 0xee, sizeof(b));
	ioapic_mmio_read(&io, IOAPIC_WINDOW, b, 8);
	assert_int_equal(b[0], 0x44);
	assert_int_equal(b[4], 0);
	/* Other offsets read zero and ignore writes. */
	ioapic_mmio_read(&io, 0x04, b, 4);
	assert_int_equal(b[0], 0);
	ioapic_mmio_write(&io, 0x40, b, 4);
	ioapic_mmio_read(&io, 0xfff, b, 1);
	assert_int_equal(b[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_identification, setup),
		cmocka_unit_test_setup(test_edge_pin, setup),
		cmocka_unit_test_setup(test_level_pin_remote_irr_and_eoi, setup),
		cmocka_unit_test_setup(test_unmask_asserted_level_line, setup),
		cmocka_unit_test_setup(test_read_only_bits, setup),
		cmocka_unit_test_setup(test_narrow_and_odd_accesses, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
