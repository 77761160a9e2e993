/* The host side of the serial console: guest output to a file descriptor
 * (stdout), host input from another (stdin) into the UART. On a terminal
 * the input is switched to raw mode and Ctrl-A x quits the VM (Ctrl-A
 * Ctrl-A sends a literal Ctrl-A), as with QEMU's -nographic. From a pipe
 * or file, input is passed through untouched until end of file.
 *
 * Threads: one input thread owned by the console; output is written by
 * whichever vCPU thread drives the UART (the UART's lock serializes it). */
#ifndef SHRIKE_VM_CONSOLE_H
#define SHRIKE_VM_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <termios.h>

#include "devices/uart8250.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

struct console {
	int in_fd, out_fd;
	bool raw;
	struct termios saved;
	bool running;
	pthread_t thread;
	int wake[2]; /* self-pipe that ends the input thread */
	bool escape_pending;
	struct char_input input;
	void (*quit)(void *opaque);
	void *quit_opaque;
};

void console_init(struct console *c, int in_fd, int out_fd);
struct char_sink console_sink(struct console *c);
int console_start(struct console *c, struct char_input input, void (*quit)(void *),
		  void *opaque);
void console_stop(struct console *c);

/* Filters a chunk of terminal input for the escape sequence; returns the
 * number of bytes left in buf to pass to the guest, sets *quit. */
size_t console_filter_escape(struct console *c, uint8_t *buf, size_t len, bool *quit);

#endif
