/*
 * delay-relay: a delaying TCP relay for pullmail's benchmarks, a stand-in
 * for distance (not a server: it only passes bytes on, late).
 *
 * Listens on 127.0.0.1, one free port per --upstream, and forwards each
 * connection to its upstream port on 127.0.0.1 byte for byte (TLS passes
 * through untouched), holding every chunk back by --delay-ms in each
 * direction: a delay line, not stop-and-wait.  A chunk read at time t is
 * written at t + delay whatever happened to the chunks before it, order is
 * kept, and the round trip grows by twice the delay.  The bandwidth stays
 * that of loopback, except that a direction is not read while more than
 * MAX_HELD bytes are held back in it.  An end of stream is passed on the
 * same way: shutdown(SHUT_WR) once the data before it is written; the
 * connection is closed when both directions have ended (or failed).
 *
 * Written in C, single-threaded around epoll and a timerfd armed for the
 * earliest due chunk, because distance costs no CPU and the benchmarks it
 * serves are CPU-bound on two cores: what the relay still costs is mostly
 * the kernel's work for the extra TCP hop on loopback.
 * Many connections at once are fine (the scale benchmark opens a
 * thousand): the listen backlog is long and the open-file limit is raised
 * to its hard limit, two descriptors a connection.
 *
 * It writes the ports it listens on to --port-file (one a line, in the
 * order of the --upstream options) and ends by itself after --max-seconds,
 * or as soon as the process --parent-pid is gone.
 *
 *	delay-relay --delay-ms MS --port-file FILE [--max-seconds S]
 *		    [--parent-pid PID] --upstream PORT [--upstream PORT]...
 */
#define _GNU_SOURCE

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The most read from a socket at once. */
#define CHUNK 65536
/* Connections waiting to be accepted (a daemon starting opens hundreds). */
#define BACKLOG 4096
/* Reading stops while this much is held back in one direction (loopback
 * fills far more than a 10 ms delay line needs otherwise). */
#define MAX_HELD (8 * 1024 * 1024)
/* How often the parent is looked for, and paused listeners retried. */
#define WATCH_NS 500000000LL
#define MAX_EVENTS 256

/* What an epoll event points at: each of these structs starts with it. */
enum kind { K_LISTENER, K_END, K_TIMER };

/* A chunk held back: in its direction's queue until it is written, and in
 * the global due queue until its time comes. */
struct chunk {
	struct chunk *next;		/* the direction's queue */
	struct chunk *due_prev, *due_next; /* the global due queue */
	struct dir *dir;
	int queued;			/* in the global due queue */
	int64_t due;			/* when to write it, CLOCK_MONOTONIC ns */
	size_t len, off;		/* len 0: the end of the stream */
	unsigned char data[];
};

/* One socket of a relayed connection. */
struct end {
	enum kind kind;			/* K_END */
	int fd;
	int side;			/* 0: the client, 1: the upstream */
	struct conn *conn;
	uint32_t events;		/* the epoll interest; 0: not in epoll */
};

/* One direction: read from end[i], written to end[1 - i]. */
struct dir {
	struct end *from, *to;
	struct chunk *head, *tail;
	size_t held;			/* data bytes queued, not yet written */
	int reading;			/* from is read (no end of stream yet) */
	int blocked;			/* a write to to would block */
	int done;			/* the end passed on, or writing failed */
};

/* A relayed connection; dir[0] is client to upstream, dir[1] back. */
struct conn {
	struct end end[2];
	struct dir dir[2];
	int connecting;			/* the upstream connect is in progress */
	int dead;			/* closed; freed after this event batch */
	struct conn *next_dead;
};

struct listener {
	enum kind kind;			/* K_LISTENER */
	int fd;
	int upstream;			/* the port connections go to */
	int paused;			/* out of descriptors: off until the watch */
};

static int epfd;
static int64_t delay_ns;
static struct { enum kind kind; int fd; int64_t armed; } timer = { K_TIMER, -1, 0 };
static struct chunk *due_head, *due_tail;
static struct conn *graveyard;
static unsigned char buf[CHUNK];

/* Report what failed, with errno, and exit 1. */
static void __attribute__((noreturn))
die(const char *what)
{
	fprintf(stderr, "delay-relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Print the usage to F and exit with STATUS. */
static void __attribute__((noreturn))
usage(FILE *f, int status)
{
	fprintf(f, "usage: delay-relay --delay-ms MS --port-file FILE "
	    "[--max-seconds S]\n"
	    "                   [--parent-pid PID] --upstream PORT "
	    "[--upstream PORT]...\n"
	    "A delaying TCP relay for the benchmarks: --delay-ms is the delay "
	    "of each\ndirection (half the round trip).\n");
	exit(status);
}

/* The monotonic clock in nanoseconds. */
static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* malloc that aborts when memory runs out. */
static void *
xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL) {
		fprintf(stderr, "delay-relay: out of memory\n");
		abort();
	}
	return p;
}

/* Parse a number from 0 to MAX for OPT or exit with usage. */
static double
parse_num(const char *opt, const char *s, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= max)) {
		fprintf(stderr, "delay-relay: --%s: not a number from 0 to "
		    "%g: %s\n", opt, max, s);
		usage(stderr, 2);
	}
	return v;
}

/* Parse an integer in [lo, hi] for OPT or exit with usage. */
static long
parse_int(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "delay-relay: --%s: not an integer from %ld "
		    "to %ld: %s\n", opt, lo, hi, s);
		usage(stderr, 2);
	}
	return v;
}

/* The open-file limit up to its hard limit. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			fprintf(stderr, "delay-relay: raising the open-file "
			    "limit: %s\n", strerror(errno));
	}
}

/* Chunks go out as they come: no Nagle on FD. */
static void
set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* 127.0.0.1:PORT into SA. */
static void
loopback(struct sockaddr_in *sa, int port)
{
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* Set FD's epoll interest to WANT (0: out of epoll), from *EVENTS. */
static void
interest(int fd, void *ptr, uint32_t *events, uint32_t want)
{
	struct epoll_event ev;
	int op;

	if (want == *events)
		return;
	if (want == 0)
		op = EPOLL_CTL_DEL;
	else if (*events == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	memset(&ev, 0, sizeof ev);
	ev.events = want;
	ev.data.ptr = ptr;
	if (epoll_ctl(epfd, op, fd, &ev) != 0)
		die("epoll_ctl");
	*events = want;
}

/* Bring the epoll interest of both ends of C in line with its state. */
static void
conn_update(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct end *e = &c->end[i];
		struct dir *in = &c->dir[i], *out = &c->dir[1 - i];
		uint32_t want = 0;

		if (c->connecting) {
			if (i == 1)
				want = EPOLLOUT;
		} else {
			if (in->reading && in->held < MAX_HELD)
				want |= EPOLLIN;
			if (out->blocked)
				want |= EPOLLOUT;
		}
		interest(e->fd, e, &e->events, want);
	}
}

/* Take K out of the global due queue. */
static void
due_unlink(struct chunk *k)
{
	if (k->due_prev != NULL)
		k->due_prev->due_next = k->due_next;
	else
		due_head = k->due_next;
	if (k->due_next != NULL)
		k->due_next->due_prev = k->due_prev;
	else
		due_tail = k->due_prev;
	k->queued = 0;
}

/* Drop the chunks D still holds. */
static void
dir_drop(struct dir *d)
{
	struct chunk *k;

	while ((k = d->head) != NULL) {
		d->head = k->next;
		if (k->queued)
			due_unlink(k);
		free(k);
	}
	d->tail = NULL;
	d->held = 0;
}

/* Close C; it is freed once the current batch of events is handled. */
static void
conn_kill(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		dir_drop(&c->dir[i]);
		if (c->end[i].fd >= 0)
			close(c->end[i].fd);
		c->end[i].fd = -1;
	}
	c->dead = 1;
	c->next_dead = graveyard;
	graveyard = c;
}

/* Queue LEN bytes of buf on D (0: the end of the stream), due a delay
 * from now.  Every chunk is due the same delay after it was read, so the
 * global queue stays in order by appending. */
static void
dir_push(struct dir *d, size_t len)
{
	struct chunk *k = xmalloc(sizeof *k + len);

	memcpy(k->data, buf, len);
	k->len = len;
	k->off = 0;
	k->dir = d;
	k->due = now_ns() + delay_ns;
	k->next = NULL;
	if (d->tail != NULL)
		d->tail->next = k;
	else
		d->head = k;
	d->tail = k;
	d->held += len;
	k->queued = 1;
	k->due_next = NULL;
	k->due_prev = due_tail;
	if (due_tail != NULL)
		due_tail->due_next = k;
	else
		due_head = k;
	due_tail = k;
}

/* Read what D's source has (once: the loop is level-triggered). */
static void
dir_read(struct dir *d)
{
	ssize_t n = recv(d->from->fd, buf, sizeof buf, 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		/* The end of the stream, or an error: passed on as an end. */
		d->reading = 0;
		dir_push(d, 0);
	} else
		dir_push(d, (size_t)n);
}

/* Write D's chunks that are due, in order, until the socket is full.
 * Returns 0 when the connection was closed. */
static int
dir_flush(struct dir *d)
{
	struct conn *c = d->from->conn;
	struct chunk *k;
	int64_t now = now_ns();

	d->blocked = 0;
	while ((k = d->head) != NULL && k->due <= now) {
		if (k->len == 0) {
			shutdown(d->to->fd, SHUT_WR);
			d->done = 1;
			dir_drop(d);
			break;
		}
		ssize_t n = send(d->to->fd, k->data + k->off, k->len - k->off,
		    MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				d->blocked = 1;
				break;
			}
			/* The peer is gone: stop this direction. */
			d->done = 1;
			d->reading = 0;
			dir_drop(d);
			break;
		}
		k->off += (size_t)n;
		if (k->off < k->len) {
			d->blocked = 1;
			break;
		}
		d->held -= k->len;
		d->head = k->next;
		if (d->head == NULL)
			d->tail = NULL;
		if (k->queued)
			due_unlink(k);
		free(k);
	}
	if (c->dir[0].done && c->dir[1].done) {
		conn_kill(c);
		return 0;
	}
	return 1;
}

/* The upstream connect of C finished (or failed). */
static void
conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->end[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err != 0) {
		conn_kill(c);
		return;
	}
	c->connecting = 0;
	set_nodelay(c->end[1].fd);
	conn_update(c);
}

/* Relay client socket FD to UPSTREAM. */
static void
conn_start(int fd, int upstream)
{
	struct conn *c;
	struct sockaddr_in sa;
	int i, up;

	set_nodelay(fd);
	up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (up < 0) {
		fprintf(stderr, "delay-relay: socket: %s\n", strerror(errno));
		close(fd);
		return;
	}
	c = xmalloc(sizeof *c);
	memset(c, 0, sizeof *c);
	for (i = 0; i < 2; i++) {
		c->end[i].kind = K_END;
		c->end[i].side = i;
		c->end[i].conn = c;
		c->dir[i].from = &c->end[i];
		c->dir[i].to = &c->end[1 - i];
		c->dir[i].reading = 1;
	}
	c->end[0].fd = fd;
	c->end[1].fd = up;
	loopback(&sa, upstream);
	if (connect(up, (struct sockaddr *)&sa, sizeof sa) == 0) {
		set_nodelay(up);
	} else if (errno == EINPROGRESS) {
		c->connecting = 1;
	} else {
		conn_kill(c);
		return;
	}
	conn_update(c);
}

/* Accept what L has waiting. */
static void
listener_accept(struct listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_start(fd, l->upstream);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		fprintf(stderr, "delay-relay: accept: %s (pausing)\n",
		    strerror(errno));
		/* Out of descriptors or memory: retried at the next watch. */
		l->paused = 1;
		if (epoll_ctl(epfd, EPOLL_CTL_DEL, l->fd, NULL) != 0)
			die("epoll_ctl");
		return;
	}
}

/* Handle the events EV on end E. */
static void
end_event(struct end *e, uint32_t ev)
{
	struct conn *c = e->conn;

	if (c->dead)
		return;
	if (c->connecting) {
		conn_connected(c);
		return;
	}
	if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
	    c->dir[1 - e->side].blocked && !dir_flush(&c->dir[1 - e->side]))
		return;
	if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (e->events & EPOLLIN) &&
	    c->dir[e->side].reading)
		dir_read(&c->dir[e->side]);
	conn_update(c);
}

/* Write every chunk whose time has come. */
static void
timer_fire(void)
{
	uint64_t expirations;
	int64_t now = now_ns();
	struct chunk *k;

	if (read(timer.fd, &expirations, sizeof expirations) < 0 &&
	    errno != EAGAIN)
		die("read timerfd");
	timer.armed = 0;
	while ((k = due_head) != NULL && k->due <= now) {
		struct conn *c = k->dir->from->conn;

		due_unlink(k);
		if (k->dir->blocked)
			continue;	/* written when the socket has room */
		if (dir_flush(k->dir))
			conn_update(c);
	}
}

/* Arm the timer for the earliest chunk still to come. */
static void
timer_arm(void)
{
	struct itimerspec its;

	if (due_head == NULL || due_head->due == timer.armed)
		return;
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = due_head->due / 1000000000LL;
	its.it_value.tv_nsec = due_head->due % 1000000000LL;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	if (timerfd_settime(timer.fd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
		die("timerfd_settime");
	timer.armed = due_head->due;
}

/* A listening socket on a free port of 127.0.0.1 for UPSTREAM; its port
 * goes to *PORT_R. */
static struct listener *
listener_open(int upstream, int *port_r)
{
	struct listener *l = xmalloc(sizeof *l);
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	struct epoll_event ev;

	l->kind = K_LISTENER;
	l->upstream = upstream;
	l->paused = 0;
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		die("socket");
	loopback(&sa, 0);
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("bind 127.0.0.1");
	if (listen(l->fd, BACKLOG) != 0)
		die("listen");
	if (getsockname(l->fd, (struct sockaddr *)&sa, &len) != 0)
		die("getsockname");
	*port_r = ntohs(sa.sin_port);
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = l;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, l->fd, &ev) != 0)
		die("epoll_ctl");
	return l;
}

/* The ports, one a line, into FILE (written aside, then renamed). */
static void
write_ports(const char *file, const int *ports, int n)
{
	size_t len = strlen(file) + 5;
	char *tmp = xmalloc(len);
	FILE *f;
	int i;

	snprintf(tmp, len, "%s.tmp", file);
	f = fopen(tmp, "w");
	if (f == NULL)
		die(tmp);
	for (i = 0; i < n; i++)
		fprintf(f, "%d\n", ports[i]);
	if (ferror(f)) {
		errno = EIO;
		die(tmp);
	}
	if (fclose(f) != 0)
		die(tmp);
	if (rename(tmp, file) != 0)
		die(file);
	free(tmp);
}

/* Parse the options, listen, write the port file, and relay until the time
 * is up or the parent is gone. */
int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "port-file", required_argument, NULL, 'f' },
		{ "max-seconds", required_argument, NULL, 'm' },
		{ "parent-pid", required_argument, NULL, 'p' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct listener **ls;
	struct epoll_event evs[MAX_EVENTS];
	const char *port_file = NULL;
	double delay_ms = -1, max_seconds = 3600;
	long parent = 0;
	int *upstreams = NULL, *ports, nup = 0, opt, i;
	int64_t end_at, next_watch;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			delay_ms = parse_num("delay-ms", optarg, 1e6);
			break;
		case 'f':
			port_file = optarg;
			break;
		case 'm':
			max_seconds = parse_num("max-seconds", optarg, 1e9);
			break;
		case 'p':
			parent = parse_int("parent-pid", optarg, 0, INT32_MAX);
			break;
		case 'u':
			upstreams = realloc(upstreams,
			    (size_t)(nup + 1) * sizeof *upstreams);
			if (upstreams == NULL)
				die("realloc");
			upstreams[nup++] = (int)parse_int("upstream", optarg,
			    1, 65535);
			break;
		case 'h':
			usage(stdout, 0);
			break;
		default:
			usage(stderr, 2);
		}
	}
	if (optind != argc || delay_ms < 0 || port_file == NULL || nup == 0) {
		fprintf(stderr, "delay-relay: --delay-ms, --port-file and "
		    "--upstream are required, nothing else\n");
		usage(stderr, 2);
	}
	delay_ns = (int64_t)(delay_ms * 1e6 + 0.5);

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (timer.fd < 0)
		die("timerfd_create");
	memset(&evs[0], 0, sizeof evs[0]);
	evs[0].events = EPOLLIN;
	evs[0].data.ptr = &timer;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, timer.fd, &evs[0]) != 0)
		die("epoll_ctl");

	ls = xmalloc((size_t)nup * sizeof *ls);
	ports = xmalloc((size_t)nup * sizeof *ports);
	for (i = 0; i < nup; i++)
		ls[i] = listener_open(upstreams[i], &ports[i]);
	write_ports(port_file, ports, nup);

	end_at = now_ns() + (int64_t)(max_seconds * 1e9);
	next_watch = now_ns();
	for (;;) {
		int64_t now = now_ns(), wake;
		int n, timeout;

		if (now >= end_at)
			break;
		if (now >= next_watch) {
			if (parent > 0 && kill((pid_t)parent, 0) != 0 &&
			    errno == ESRCH)
				break;
			for (i = 0; i < nup; i++) {
				struct epoll_event ev;

				if (!ls[i]->paused)
					continue;
				memset(&ev, 0, sizeof ev);
				ev.events = EPOLLIN;
				ev.data.ptr = ls[i];
				if (epoll_ctl(epfd, EPOLL_CTL_ADD, ls[i]->fd,
				    &ev) != 0)
					die("epoll_ctl");
				ls[i]->paused = 0;
			}
			next_watch = now + WATCH_NS;
		}
		timer_arm();
		wake = next_watch < end_at ? next_watch : end_at;
		timeout = (int)((wake - now + 999999) / 1000000);
		n = epoll_wait(epfd, evs, MAX_EVENTS, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			enum kind *k = evs[i].data.ptr;

			if (*k == K_LISTENER)
				listener_accept((struct listener *)k);
			else if (*k == K_END)
				end_event((struct end *)k, evs[i].events);
			else
				timer_fire();
		}
		while (graveyard != NULL) {
			struct conn *c = graveyard;

			graveyard = c->next_dead;
			free(c);
		}
	}
	return 0;
}
