#include "vm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

void console_init(struct console *c, int in_fd, int out_fd)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->wake[0] = c->wake[1] = -1;
}

static void console_write(void *opaque, const uint8_t *data, size_t len)
{
	struct console *c = opaque;
	while (len) {
		ssize_t n = write(c->out_fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* output closed: the guest keeps running, its output is lost */
		data += n;
		len -= (size_t)n;
	}
}

struct char_sink console_sink(struct console *c)
{
	return (struct char_sink){.write = console_write, .opaque = c};
}

size_t console_filter_escape(struct console *c, uint8_t *buf, size_t len, bool *quit)
{
	size_t out = 0;
	*quit = false;
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = buf[i];
		if (c->escape_pending) {
			c->escape_pending = false;
			if (ch == 'x' || ch == 'X') {
				*quit = true;
				return out;
			}
			if (ch != CONSOLE_ESCAPE)
				continue; /* unknown escape: swallow both bytes */
		} else if (ch == CONSOLE_ESCAPE) {
			c->escape_pending = true;
			continue;
		}
		buf[out++] = ch;
	}
	return out;
}

/* Hands bytes to the console device, waiting while its buffer is full. */
static bool console_feed(struct console *c, const uint8_t *buf, size_t len)
{
	while (len) {
		size_t n = c->input.receive(c->input.opaque, buf, len);
		buf += n;
		len -= n;
		if (len) {
			struct pollfd p = {.fd = c->wake[0], .events = POLLIN};
			if (poll(&p, 1, 5) > 0)
				return false;
		}
	}
	return true;
}

static void *console_thread(void *arg)
{
	struct console *c = arg;
	uint8_t buf[256];

	for (;;) {
		struct pollfd p[2] = {{.fd = c->in_fd, .events = POLLIN},
				      {.fd = c->wake[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		ssize_t n = read(c->in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* end of input: the guest just sees no more bytes */
		size_t len = (size_t)n;
		bool quit = false;
		if (c->raw)
			len = console_filter_escape(c, buf, len, &quit);
		if (!console_feed(c, buf, len))
			break;
		if (quit) {
			c->quit(c->quit_opaque);
			break;
		}
	}
	return NULL;
}

static void console_enter_raw(struct console *c)
{
	struct termios t;
	if (!isatty(c->in_fd) || tcgetattr(c->in_fd, &c->saved) < 0)
		return;
	t = c->saved;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR; /* keep output line endings sane for the host */
	if (tcsetattr(c->in_fd, TCSANOW, &t) == 0)
		c->raw = true;
}

int console_start(struct console *c, struct char_input input, void (*quit)(void *),
		  void *opaque)
{
	c->input = input;
	c->quit = quit;
	c->quit_opaque = opaque;
	if (fcntl(c->in_fd, F_GETFD) < 0)
		return 0; /* no input at all (stdin closed): output only */
	if (pipe2(c->wake, O_CLOEXEC) < 0)
		return -errno;
	console_enter_raw(c);
	int r = pthread_create(&c->thread, NULL, console_thread, c);
	if (r) {
		console_stop(c);
		return -r;
	}
	c->running = true;
	return 0;
}

void console_stop(struct console *c)
{
	if (c->running) {
		ssize_t n = write(c->wake[1], "", 1);
		(void)n;
		pthread_join(c->thread, NULL);
		c->running = false;
	}
	if (c->raw) {
		tcsetattr(c->in_fd, TCSANOW, &c->saved);
		c->raw = false;
	}
	for (int i = 0; i < 2; i++) {
		if (c->wake[i] >= 0)
			close(c->wake[i]);
		c->wake[i] = -1;
	}
}
