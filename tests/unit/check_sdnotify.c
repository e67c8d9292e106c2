/* The sd_notify protocol: the exact datagrams sent to a socket the test
 * binds (a path and the abstract namespace), no-ops without
 * $NOTIFY_SOCKET, a missing socket, and $WATCHDOG_USEC/$WATCHDOG_PID. */
#include "autoconf.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sdnotify.h"
#include "suites.h"
#include "util.h"

static char *dir;
static int sock = -1;

static void
setup(void)
{
	dir = test_tmpdir();
}

static void
teardown(void)
{
	if (sock >= 0)
		close(sock);
	sock = -1;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	test_rm_rf(dir);
	free(dir);
}

/* Bind a datagram socket at name (a path or "@abstract") and point
 * $NOTIFY_SOCKET at it. */
static void
listen_at(const char *name)
{
	struct sockaddr_un sun;
	socklen_t len;
	size_t n = strlen(name);

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, n);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	else
		len++;
	sock = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ge(sock, 0);
	ck_assert_int_eq(bind(sock, (struct sockaddr *)&sun, len), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
}

/* The next datagram on the test's socket (malloc'd); NULL after 2 s. */
static char *
next_datagram(void)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	if (poll(&pfd, 1, 2000) != 1)
		return NULL;
	n = recv(sock, buf, sizeof buf - 1, 0);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return xstrdup(buf);
}

/* Whether a datagram is waiting (none should be). */
static int
pending(void)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	return poll(&pfd, 1, 100) == 1;
}

static void
expect(const char *want)
{
	char *got = next_datagram();

	ck_assert_msg(got != NULL, "no datagram (wanted \"%s\")", want);
	ck_assert_str_eq(got, want);
	free(got);
}

/* Every message, byte for byte, at a path and at an abstract name. */
static void
check_messages(void)
{
	ck_assert_int_eq(sdnotify_ready(), 1);
	expect("READY=1");
	ck_assert_int_eq(sdnotify_status("%d accounts, %s", 3, "1 idling"), 1);
	expect("STATUS=3 accounts, 1 idling");
	ck_assert_int_eq(sdnotify_stopping(), 1);
	expect("STOPPING=1");
	ck_assert_int_eq(sdnotify_watchdog(), 1);
	expect("WATCHDOG=1");
	ck_assert_int_eq(sdnotify_send("STATUS=x\nWATCHDOG=1"), 1);
	expect("STATUS=x\nWATCHDOG=1");
	ck_assert(!pending());
}

START_TEST(test_path_socket)
{
	char *path = xasprintf("%s/notify", dir);

	listen_at(path);
	check_messages();
	free(path);
}
END_TEST

START_TEST(test_abstract_socket)
{
	char *name = xasprintf("@pullmail-test-%ld-%ld", (long)getpid(),
	    (long)time(NULL));

	listen_at(name);
	check_messages();
	free(name);
}
END_TEST

/* A newline in the status text must not smuggle in an assignment. */
START_TEST(test_status_one_line)
{
	char *path = xasprintf("%s/notify", dir);

	listen_at(path);
	ck_assert_int_eq(sdnotify_status("%s", "bad\nREADY=1\r\tx"), 1);
	expect("STATUS=bad READY=1  x");
	free(path);
}
END_TEST

START_TEST(test_reloading)
{
	struct timespec ts;
	unsigned long long then, now, usec;
	char *path = xasprintf("%s/notify", dir), *got, *end;
	const char *prefix = "RELOADING=1\nMONOTONIC_USEC=";

	listen_at(path);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	then = (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
	ck_assert_int_eq(sdnotify_reloading(), 1);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
	got = next_datagram();
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(strncmp(got, prefix, strlen(prefix)), 0);
	usec = strtoull(got + strlen(prefix), &end, 10);
	ck_assert_int_eq(*end, '\0');
	ck_assert(usec >= then && usec <= now);
	free(got);
	free(path);
}
END_TEST

/* Without $NOTIFY_SOCKET (unset or empty) nothing is sent: 0. */
START_TEST(test_no_socket)
{
	char *path = xasprintf("%s/notify", dir);

	listen_at(path);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(sdnotify_ready(), 0);
	ck_assert_int_eq(sdnotify_status("x"), 0);
	ck_assert_int_eq(sdnotify_watchdog(), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(sdnotify_stopping(), 0);
	ck_assert_int_eq(sdnotify_reloading(), 0);
	ck_assert(!pending());
	free(path);
}
END_TEST

/* A socket that is gone, or a name that is no socket name: -1, no crash. */
START_TEST(test_missing_socket)
{
	char *path = xasprintf("%s/gone", dir);
	char *name = xasprintf("@pullmail-test-none-%ld", (long)getpid());
	char longname[200];

	setenv("NOTIFY_SOCKET", path, 1);
	errno = 0;
	ck_assert_int_eq(sdnotify_ready(), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(sdnotify_status("still %s", "fine"), -1);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(sdnotify_watchdog(), -1);
	setenv("NOTIFY_SOCKET", "relative/name", 1);
	ck_assert_int_eq(sdnotify_ready(), -1);
	memset(longname, 'x', sizeof longname - 1);
	longname[0] = '/';
	longname[sizeof longname - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	ck_assert_int_eq(sdnotify_ready(), -1);
	ck_assert_int_eq(errno, EINVAL);
	free(name);
	free(path);
}
END_TEST

static const struct {
	const char *usec, *pid;	/* NULL: unset; "self": getpid() */
	uint64_t want;
} watchdog_cases[] = {
	{ NULL, NULL, 0 },
	{ "30000000", NULL, 30000000 },
	{ "30000000", "self", 30000000 },
	{ "30000000", "1", 0 },		/* meant for another process */
	{ "30000000", "", 30000000 },
	{ "30000000", "x", 0 },
	{ "0", NULL, 0 },
	{ "", NULL, 0 },
	{ "-5", NULL, 0 },
	{ "12abc", NULL, 0 },
	{ " 5", NULL, 0 },
	{ "99999999999999999999999", NULL, 0 },
};

START_TEST(test_watchdog_usec)
{
	char pid[32];

	if (watchdog_cases[_i].usec != NULL)
		setenv("WATCHDOG_USEC", watchdog_cases[_i].usec, 1);
	else
		unsetenv("WATCHDOG_USEC");
	if (watchdog_cases[_i].pid == NULL)
		unsetenv("WATCHDOG_PID");
	else if (strcmp(watchdog_cases[_i].pid, "self") == 0) {
		snprintf(pid, sizeof pid, "%ld", (long)getpid());
		setenv("WATCHDOG_PID", pid, 1);
	} else
		setenv("WATCHDOG_PID", watchdog_cases[_i].pid, 1);
	ck_assert_uint_eq(sdnotify_watchdog_usec(), watchdog_cases[_i].want);
}
END_TEST

Suite *
suite_sdnotify(void)
{
	Suite *s = suite_create("sdnotify");
	TCase *tc = tcase_create("sdnotify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_path_socket);
	tcase_add_test(tc, test_abstract_socket);
	tcase_add_test(tc, test_status_one_line);
	tcase_add_test(tc, test_reloading);
	tcase_add_test(tc, test_no_socket);
	tcase_add_test(tc, test_missing_socket);
	tcase_add_loop_test(tc, test_watchdog_usec, 0,
	    sizeof watchdog_cases / sizeof watchdog_cases[0]);
	suite_add_tcase(s, tc);
	return s;
}
