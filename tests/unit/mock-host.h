/*
 * One mock host for the plugins' unit tests: a scripted server (what the
 * server sends is fixed in advance; what the plugin sends is logged), a
 * small SASL engine and a sink that records what each message brought.
 * A plugin is tested through its pm_plugin table with these, with no
 * dlopen and no network.
 */
#ifndef PM_MOCK_HOST_H
#define PM_MOCK_HOST_H

#include <stddef.h>

#include <check.h>
#include <pullmail/plugin.h>

/* The scripted server and everything the plugin did. */
struct mock {
	const char *in;		/* what the server sends */
	size_t inlen, pos;
	size_t chunk;		/* most bytes read_bytes hands out */
	char line[70000];
	char *log;		/* one event per line */
	size_t loglen;
	char *delivered;	/* "IDX:bytes|" per complete message */
	size_t dlen;
	int open_msgs;		/* begun and not yet ended */
	int tls;		/* TLS is up */
	int no_tls;		/* connect() brings no TLS */
	size_t unread;		/* bytes given back */
	struct pm_account_info acct;
	struct pm_secret *pw;
	const char *flood;	/* once the script is read, read_line returns
				 * this line for ever (a server that never
				 * stops talking); NULL: closed */
	unsigned awaits;	/* await_input() calls */
	int await_ms;		/* the timeout of the last one */
	int hint, hint_ms;	/* the last retry_hint(), 0: none */
};

extern struct mock M;
extern const struct pm_host mock_host;
extern const struct pm_sink mock_sink;

/*
 * In a script, the marker AWAIT_0 (a line of its own, LF only) makes
 * await_input() return 0 once, as when the time is up or the core ends
 * the wait; it is not part of what the server sends.  Elsewhere
 * await_input() returns 1.
 */
#define AWAIT_0 "~AWAIT 0\n"

/*
 * Reset the mock for a dialogue in which the server says script: account
 * "test" of joe@example.test at 127.0.0.1:port with implicit TLS, no
 * password, read_bytes handing out 3 bytes at a time.
 */
void mock_reset(const char *script, unsigned port);

/*
 * Events, one per line, in the order they happened:
 *   CONNECT, TLS, DISCONNECT         transport
 *   C: line                          a command sent (secrets as <...>)
 *   SASL [mechs] ir=N ...            the SASL engine was asked to log in
 *   BEGIN idx / END idx complete=N   the sink
 *   MISSING idx status reason        the sink
 *   LOG text                         the plugin logged at INFO or above
 *   AWAIT -> 0                       await_input() ended a wait (AWAIT_0)
 *   HINT kind ms                     retry_hint(): enum pm_retry, the wait
 */
void mock_ev(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Offset of needle in the event log; fails the test when absent. */
size_t mock_at(const char *needle);
/* 1 when needle does not occur in the event log. */
int mock_absent(const char *needle);
/* The whole event log ("" when empty). */
const char *mock_log(void);

#endif
