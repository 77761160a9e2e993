/* Arbitrary port-I/O sequences from a hostile guest against every legacy
 * device on one bus. Each 4-byte record is: port selector, size, write
 * flag, value. Nothing may crash, hang or touch memory out of bounds. */
#include <stdint.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/debug_exit.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/uart8250.h"

static int no_irq(void *opaque, uint32_t gsi, int level)
{
	(void)opaque;
	(void)gsi;
	(void)level;
	return 0;
}

static void no_power(void *opaque, enum power_event ev, int code)
{
	(void)opaque;
	(void)ev;
	(void)code;
}

static void no_output(void *opaque, const uint8_t *data, size_t len)
{
	(void)opaque;
	(void)data;
	(void)len;
}

static const uint16_t ports[] = {PORT_COM1,       PORT_I8042_DATA, PORT_I8042_CMD,
				 PORT_RTC,        PORT_DEBUG_EXIT, PORT_EXIT_STATUS,
				 PORT_FW_CFG,     PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_CNT,
				 PORT_ACPI_PM_TMR};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct uart8250 uart;
	static struct i8042 kbd;
	static struct rtc rtc;
	static struct debug_exit dbg;
	static struct fw_cfg fw;
	static struct acpi_pm pm;
	struct irq_ctl irq = {.set_level = no_irq};
	struct power_ctl power = {.request = no_power};
	struct bus pio;

	bus_init(&pio, "pio");
	uart8250_init(&uart, &irq, IRQ_COM1, (struct char_sink){.write = no_output});
	i8042_init(&kbd, &power);
	rtc_init(&rtc, &irq);
	rtc.threadless = true; /* no timer thread per input; reads of C still set flags */
	debug_exit_init(&dbg, &power);
	fw_cfg_init(&fw, 64 << 20, 2);
	acpi_pm_init(&pm, &power, &irq);
	uart8250_attach(&uart, &pio, PORT_COM1);
	i8042_attach(&kbd, &pio);
	rtc_attach(&rtc, &pio);
	debug_exit_attach(&dbg, &pio);
	fw_cfg_attach(&fw, &pio);
	acpi_pm_attach(&pm, &pio);

	for (size_t i = 0; i + 4 <= size; i += 4) {
		uint16_t port = ports[data[i] % (sizeof(ports) / sizeof(ports[0]))] + (data[i] >> 4 & 7);
		unsigned len = 1u << (data[i + 1] % 4); /* 1, 2, 4, 8 */
		uint8_t buf[8];
		memset(buf, data[i + 3], sizeof(buf));
		if (data[i + 2] & 1)
			bus_write(&pio, port, buf, len);
		else
			bus_read(&pio, port, buf, len);
		if (data[i + 2] & 2)
			uart8250_receive(&uart, &data[i + 3], 1);
	}

	uart8250_destroy(&uart);
	i8042_destroy(&kbd);
	rtc_destroy(&rtc);
	fw_cfg_destroy(&fw);
	acpi_pm_destroy(&pm);
	return 0;
}
