/* outb PORT VALUE: write one byte to an x86 I/O port from the guest.
 *
 * The initramfs uses it to report the command's exit status to shrike on
 * port 0x4F4 before powering off. Busybox has no port I/O applet, and the
 * Debian cloud kernel is built without CONFIG_DEVPORT, so /dev/port does not
 * exist; ioperm(2) (CONFIG_X86_IOPL_IOPERM=y) plus an OUT instruction does.
 *
 * Freestanding (no libc): built with -nostdlib -static so the helper is a few
 * hundred bytes and needs nothing from the initramfs. PORT and VALUE are
 * decimal or 0x-prefixed hex; PORT must be below 0x10000, VALUE below 0x100.
 * Exit status: 0 on success, 1 on a usage error, 2 if ioperm fails. */

#define SYS_write 1
#define SYS_ioperm 173
#define SYS_exit_group 231

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static void die(const char *msg, long len, int status)
{
	sys3(SYS_write, 2, (long)msg, len);
	sys3(SYS_exit_group, status, 0, 0);
	for (;;)
		;
}

/* Parses decimal or 0x-hex; returns -1 on junk or a value above max. */
static long parse_number(const char *s, long max)
{
	long base = 10, v = 0;
	int digits = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (; *s; s++, digits++) {
		long d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -1;
		v = v * base + d;
		if (v > max) /* checked per digit, so v never overflows */
			return -1;
	}
	return digits ? v : -1;
}

__attribute__((used)) static void outb_main(long *sp)
{
	static const char usage[] = "usage: outb PORT VALUE\n";
	static const char denied[] = "outb: ioperm failed\n";
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	long port, value;

	if (argc != 3)
		die(usage, sizeof(usage) - 1, 1);
	port = parse_number(argv[1], 0xffff);
	value = parse_number(argv[2], 0xff);
	if (port < 0 || value < 0)
		die(usage, sizeof(usage) - 1, 1);
	if (sys3(SYS_ioperm, port, 1, 1) != 0)
		die(denied, sizeof(denied) - 1, 2);
	__asm__ volatile("outb %b0, %w1" : : "a"(value), "Nd"(port));
	sys3(SYS_exit_group, 0, 0, 0);
}

/* The kernel enters with argc at (%rsp); align the stack for the C call. */
__asm__(".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call outb_main\n"
	"	ud2\n");
