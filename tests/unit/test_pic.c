/* 8259A pair (devices/pic8259.c), programmed the way Linux's i8259.c
 * (init_8259A) programs it, then exercised through its ports. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/pic8259.h"

/* Linux init_8259A(auto_eoi): mask all, ICW1-4 on both chips, restore masks. */
static void linux_init(struct pic *pic, uint8_t master_base, uint8_t slave_base, bool aeoi)
{
	pic_write(pic, 0x21, 0xff);
	pic_write(pic, 0xa1, 0xff);
	pic_write(pic, 0x20, 0x11);       /* ICW1: edge, cascade, ICW4 needed */
	pic_write(pic, 0x21, master_base); /* ICW2 */
	pic_write(pic, 0x21, 1u << 2);    /* ICW3: slave on IR2 */
	pic_write(pic, 0x21, aeoi ? 0x03 : 0x01); /* ICW4: 8086, (auto-)EOI */
	pic_write(pic, 0xa0, 0x11);
	pic_write(pic, 0xa1, slave_base);
	pic_write(pic, 0xa1, 2);          /* ICW3: slave ID 2 */
	pic_write(pic, 0xa1, 0x01);
	pic_write(pic, 0x21, 0xfb);       /* everything masked but the cascade */
	pic_write(pic, 0xa1, 0xff);
}

static struct pic *setup_pic(void)
{
	static struct pic pic;
	pic_init(&pic);
	linux_init(&pic, 0x20, 0x28, false);
	return &pic;
}

static void test_init_sequence_and_masks(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	assert_int_equal(pic_read(pic, 0x21), 0xfb);
	assert_int_equal(pic_read(pic, 0xa1), 0xff);
	assert_int_equal(pic->chip[0].vector_base, 0x20);
	assert_int_equal(pic->chip[1].vector_base, 0x28);
	assert_int_equal(pic->chip[0].init_state, 0);

	pic_set_irq(pic, 1, 1); /* masked: latched in IRR, no INTR */
	assert_false(pic_intr(pic));
	pic_write(pic, 0x20, 0x0a); /* OCW3: read IRR */
	assert_int_equal(pic_read(pic, 0x20), 0x02);
	pic_write(pic, 0x21, 0xf9); /* unmask IRQ 1 */
	assert_true(pic_intr(pic));
	assert_int_equal(pic_pending_vector(pic), 0x21);
	assert_int_equal(pic_ack(pic), 0x21);
	pic_write(pic, 0x20, 0x0b); /* OCW3: read ISR */
	assert_int_equal(pic_read(pic, 0x20), 0x02);
	assert_false(pic_intr(pic));
	pic_write(pic, 0x20, 0x20); /* non-specific EOI */
	assert_int_equal(pic_read(pic, 0x20), 0x00);
}

static void test_cascade(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	pic_write(pic, 0xa1, 0xef); /* unmask IRQ 12 */
	pic_set_irq(pic, 12, 1);
	assert_true(pic_intr(pic));
	assert_int_equal(pic_ack(pic), 0x2c);
	assert_int_equal(pic->chip[0].isr, 1u << 2);
	assert_int_equal(pic->chip[1].isr, 1u << 4);
	pic_set_irq(pic, 12, 0);
	pic_write(pic, 0xa0, 0x20);
	pic_write(pic, 0x20, 0x20);
	assert_int_equal(pic->chip[0].isr, 0);
	assert_int_equal(pic->chip[1].isr, 0);
	assert_false(pic_intr(pic));
}

static void test_priority_and_nesting(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	pic_write(pic, 0x21, 0x00);
	pic_set_irq(pic, 3, 1);
	pic_set_irq(pic, 1, 1);
	assert_int_equal(pic_ack(pic), 0x21); /* IRQ 1 beats IRQ 3 */
	assert_false(pic_intr(pic));         /* 3 waits behind 1 in service */
	pic_set_irq(pic, 0, 1);
	assert_int_equal(pic_ack(pic), 0x20); /* 0 nests over 1 */
	pic_write(pic, 0x20, 0x20);          /* EOI clears 0, the highest */
	assert_int_equal(pic->chip[0].isr, 0x02);
	assert_false(pic_intr(pic));
	pic_write(pic, 0x20, 0x20);
	assert_int_equal(pic_ack(pic), 0x23);
}

static void test_specific_eoi_and_rotation(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	pic_write(pic, 0x21, 0x00);
	pic_set_irq(pic, 4, 1);
	assert_int_equal(pic_ack(pic), 0x24);
	pic_write(pic, 0x20, 0x60 | 4); /* specific EOI for 4 */
	assert_int_equal(pic->chip[0].isr, 0);

	pic_write(pic, 0x20, 0xc0 | 4); /* set priority: 4 lowest, 5 highest */
	pic_set_irq(pic, 4, 0);
	pic_set_irq(pic, 4, 1);
	pic_set_irq(pic, 6, 1);
	assert_int_equal(pic_ack(pic), 0x26);
	pic_write(pic, 0x20, 0xa0); /* rotate on non-specific EOI: 6 becomes lowest */
	assert_int_equal(pic->chip[0].highest, 7);
	assert_int_equal(pic_ack(pic), 0x24);
}

static void test_level_via_elcr(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	pic_write(pic, 0x4d1, 0xff);
	assert_int_equal(pic_read(pic, 0x4d1), 0xde); /* IRQ 8 and 13 edge only */
	pic_write(pic, 0x4d0, 0xff);
	assert_int_equal(pic_read(pic, 0x4d0), 0xf8);
	pic_write(pic, 0x4d0, 0x00);
	pic_write(pic, 0x4d1, 0x02); /* IRQ 9 level (the ACPI SCI) */
	pic_write(pic, 0xa1, 0xfd);

	pic_set_irq(pic, 9, 1);
	assert_int_equal(pic_ack(pic), 0x29);
	pic_write(pic, 0xa0, 0x20);
	pic_write(pic, 0x20, 0x20);
	assert_int_equal(pic_pending_vector(pic), 0x29); /* still asserted */
	pic_set_irq(pic, 9, 0);
	assert_false(pic_intr(pic));
}

static void test_edge_needs_new_edge(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	pic_write(pic, 0x21, 0xfe);
	pic_set_irq(pic, 0, 1);
	assert_int_equal(pic_ack(pic), 0x20);
	pic_write(pic, 0x20, 0x20);
	pic_set_irq(pic, 0, 1); /* still high: no new edge */
	assert_false(pic_intr(pic));
	pic_set_irq(pic, 0, 0);
	pic_set_irq(pic, 0, 1);
	assert_true(pic_intr(pic));
}

static void test_auto_eoi(void **state)
{
	(void)state;
	static struct pic pic;
	pic_init(&pic);
	linux_init(&pic, 0x30, 0x38, true);
	pic_write(&pic, 0x21, 0xfe);
	pic_set_irq(&pic, 0, 1);
	assert_int_equal(pic_ack(&pic), 0x30);
	assert_int_equal(pic.chip[0].isr, 0);
}

static void test_spurious_and_poll(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	assert_int_equal(pic_ack(pic), 0x27); /* no request: IR7 of the master */
	assert_int_equal(pic->chip[0].isr, 0);

	pic_write(pic, 0x21, 0x00);
	pic_write(pic, 0x20, 0x0c); /* OCW3 poll */
	assert_int_equal(pic_read(pic, 0x20), 0x00);
	pic_set_irq(pic, 5, 1);
	pic_write(pic, 0x20, 0x0c);
	assert_int_equal(pic_read(pic, 0x20), 0x85);
	assert_int_equal(pic->chip[0].isr, 1u << 5);
	assert_int_equal(pic_read(pic, 0x21), 0x00); /* poll is one-shot */
}

static void test_special_mask_mode(void **state)
{
	(void)state;
	struct pic *pic = setup_pic();
	pic_write(pic, 0x21, 0x00);
	pic_set_irq(pic, 1, 1);
	assert_int_equal(pic_ack(pic), 0x21);
	pic_set_irq(pic, 5, 1);
	assert_false(pic_intr(pic));
	pic_write(pic, 0x21, 0x02); /* mask the in-service level ... */
	pic_write(pic, 0x20, 0x68); /* ... and enter special mask mode */
	assert_int_equal(pic_ack(pic), 0x25);
}

static void test_out_of_order_icws(void **state)
{
	(void)state;
	static struct pic pic;
	pic_init(&pic);
	pic_write(&pic, 0x21, 0x55); /* no ICW1 yet: OCW1 */
	assert_int_equal(pic_read(&pic, 0x21), 0x55);
	pic_write(&pic, 0x20, 0x13); /* ICW1, single, ICW4 */
	pic_write(&pic, 0x21, 0x47); /* ICW2 (low bits dropped) */
	pic_write(&pic, 0x21, 0x01); /* ICW4 (no ICW3 in single mode) */
	pic_write(&pic, 0x21, 0xaa); /* OCW1 */
	assert_int_equal(pic.chip[0].vector_base, 0x40);
	assert_int_equal(pic_read(&pic, 0x21), 0xaa);
	pic_write(&pic, 0x20, 0x10); /* ICW1 restarts at any time */
	assert_int_equal(pic_read(&pic, 0x21), 0x00);
	pic_set_irq(&pic, 99, 1); /* bad lines are ignored */
	pic_set_irq(&pic, 2, 1);
	assert_int_equal(pic_read(&pic, 0x1234), 0xff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_sequence_and_masks),
		cmocka_unit_test(test_cascade),
		cmocka_unit_test(test_priority_and_nesting),
		cmocka_unit_test(test_specific_eoi_and_rotation),
		cmocka_unit_test(test_level_via_elcr),
		cmocka_unit_test(test_edge_needs_new_edge),
		cmocka_unit_test(test_auto_eoi),
		cmocka_unit_test(test_spurious_and_poll),
		cmocka_unit_test(test_special_mask_mode),
		cmocka_unit_test(test_out_of_order_icws),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
