/*
 * The POP3 backend (RFC 1939, CAPA and PIPELINING from RFC 2449, AUTH from
 * RFC 5034, STLS from RFC 2595), driven step by step by the core's fetch
 * engine: log in, list the maildrop with UIDL and LIST, stream the
 * messages the engine asks for through the dot-unstuffing filter into its
 * sink, mark messages with DELE, QUIT.  Which messages are new, which are
 * fetched and which deleted is the engine's business: this file only
 * speaks POP3.
 *
 * POP3 has one unnamed maildrop, selected as "", and no flags.  The server
 * applies DELE only at QUIT (PM_PLUGIN_DELETE_AT_CLOSE): close() fails when
 * messages were marked for deletion and the QUIT did not succeed, so the
 * engine knows the deletions did not take effect.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/plugin.h>

#include "pop3-parse.h"

#define POP3_CHUNK	(64 * 1024)	/* body bytes per read */
/*
 * Commands in flight with PIPELINING.  A server 20 ms away answers a 4 KB
 * RETR in far less than a round trip, so the window decides the rate:
 * 16 gave 60 % of mpop's time for 1,000 such messages, 256 less than half.
 * 256 RETR or DELE lines are under 4 KB, far below any socket buffer, so
 * sending them all before reading cannot deadlock (RFC 2449 6.6); the
 * answers wait in the kernel, not in pullmail.
 */
#ifndef POP3_WINDOW
#define POP3_WINDOW	256
#endif
#define POP3_NOUIDL	"no-uidl "	/* uid prefix without UIDL: a space,
					 * so no real UIDL looks like it */
#ifndef POP3_LIST_MAX
#define POP3_LIST_MAX	1000000		/* most messages a listing may name
					 * (Exchange Online holds at most a
					 * million items per folder); a
					 * server naming more is hostile */
#endif

/* A message of the maildrop. */
struct pop3_entry {
	unsigned long num;
	uint64_t size;
	char *uid;		/* the UIDL, or a made-up key without UIDL */
};

/* A growing maildrop listing. */
struct pop3_listing {
	struct pop3_entry *e;
	size_t n, cap;
};

/* One connection to one account's server: the plugin's pm_conn. */
struct pm_conn {
	const struct pm_host *h;
	struct pm_session *s;
	const struct pm_account_info *acct;
	struct pop3_caps caps;
	struct pm_sasl_proto sasl;
	int broken;		/* the dialogue is out of step: no QUIT */
	int authed;		/* logged in: a broken connection from now
				 * on is worth a new session at once */
	int hinted;		/* the host was told why the session fails */
	int refused;		/* the last reply was a well-formed
				 * transient refusal (pop3_transient()) */
	size_t window;		/* commands to keep in flight */
	size_t deleted;		/* messages marked with DELE */
	struct pop3_listing list;	/* the last listing, by number */
	int have_uidl;		/* it has the server's UIDLs */
	int strict_size;	/* refuse a message shorter than LIST said */
	struct pm_entry *view;	/* the listing as list() hands it out */
	char *buf;		/* POP3_CHUNK bytes read */
	char *out;		/* POP3_CHUNK + 1 bytes unstuffed */
	char *line;		/* POP3_STATUS_MAX + 2 bytes: a listing line */
};

/* Tell the host why the session is about to fail with PM_ETEMP (enum
 * pm_retry); the first reason counts. */
static void
pop3_hint(struct pm_conn *p, int kind, unsigned ms)
{
	if (p->hinted || p->h->retry_hint == NULL)
		return;
	p->hinted = 1;
	p->h->retry_hint(p->s, kind, ms);
}

/* Mark the dialogue broken and pass status through.  A connection lost
 * after login is worth a new session. */
static int
pop3_break(struct pm_conn *p, int status)
{
	if (status != PM_OK)
		p->broken = 1;
	if (status == PM_ETEMP && p->authed)
		pop3_hint(p, PM_RETRY_RECONNECT, 0);
	return status;
}

/* Exchange Online's -ERR that a new session gets past ("Request is
 * throttled..."), to any command: PM_ETEMP with the host told why, never
 * a refusal of the command or the login.  PM_OK for any other reply. */
static int
pop3_transient(struct pm_conn *p, int st, const char *text, char **err)
{
	unsigned ms;
	char *t;
	int kind, rc;

	if (st != POP3_ERR || (kind = pmp_transient(text, &ms)) == 0)
		return PM_OK;
	pop3_hint(p, kind, ms);
	p->refused = 1;
	t = pmp_clean(text, strlen(text), 200);
	rc = pmp_errf(err, PM_ETEMP, "the server turned a command away for "
	    "now: -ERR %s", t);
	free(t);
	return pop3_break(p, rc);
}

/*
 * Read one status line.  *status_r is an enum pop3_status; *text_r (clean
 * server text, malloc'd) is set when text_r is not NULL.  A malformed line
 * breaks the dialogue.
 */
static int
pop3_reply(struct pm_conn *p, int sasl, int *status_r, char **text_r,
    char **err)
{
	const char *line, *text;
	size_t len;
	int rc;

	rc = p->h->read_line(p->s, &line, &len, err);
	if (rc != PM_OK)
		return pop3_break(p, rc);
	rc = pop3_parse_status(line, len, sasl, status_r, &text, err);
	if (rc != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_transient(p, *status_r, text, err)) != PM_OK)
		return rc;
	if (text_r != NULL)
		*text_r = pmp_clean(text, len - (size_t)(text - line), 200);
	return PM_OK;
}

/* Read a reply that must be +OK; -ERR is returned as nostatus with
 * "WHAT failed: -ERR text". */
static int
pop3_expect(struct pm_conn *p, const char *what, int nostatus, char **err)
{
	char *text;
	int rc, st;

	if ((rc = pop3_reply(p, 0, &st, &text, err)) != PM_OK)
		return rc;
	if (st == POP3_OK) {
		free(text);
		return PM_OK;
	}
	rc = pmp_errf(err, nostatus, "%s failed: -ERR %s", what, text);
	free(text);
	return rc;
}

/* Send a command and wait for its +OK. */
static int PM_PRINTF(5, 6)
pop3_command(struct pm_conn *p, const char *what, int nostatus, char **err,
    const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int rc;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	rc = p->h->send(p->s, err, "%s", cmd);
	free(cmd);
	if (rc != PM_OK)
		return pop3_break(p, rc);
	return pop3_expect(p, what, nostatus, err);
}

/*
 * Read the next chunk of a multi-line response into p->buf and unstuff it
 * into p->out[0..*olen_r); *done_r is 1 when its terminator came, and
 * what followed that is given back to the host for the next reply.
 */
static int
pop3_chunk(struct pm_conn *p, struct pop3_undot *u, size_t *olen_r,
    int *done_r, char **err)
{
	size_t got, used;
	int rc;

	rc = p->h->read_bytes(p->s, p->buf, POP3_CHUNK, &got, err);
	if (rc != PM_OK)
		return pop3_break(p, rc);
	if (got == 0 || got > POP3_CHUNK)
		return pop3_break(p, pmp_errf(err, PM_EINTERNAL,
		    "read_bytes returned %zu of %d bytes", got, POP3_CHUNK));
	*done_r = pop3_undot(u, p->buf, got, p->out, olen_r, &used);
	if (*done_r && used < got)
		p->h->unread(p->s, p->buf + used, got - used);
	return PM_OK;
}

/*
 * Read the lines of a multi-line response (CAPA, UIDL, LIST) up to its
 * CRLF "." CRLF with the reader RETR bodies go through (pop3_undot()), and
 * hand each unstuffed line, CRLF removed, to fn, tracing it.  A bare LF
 * is part of a line (the parsers refuse it).  A line longer than
 * POP3_STATUS_MAX breaks the dialogue.
 */
static int
pop3_lines(struct pm_conn *p, int (*fn)(struct pm_conn *, const char *,
    size_t, void *, char **), void *arg, char **err)
{
	struct pop3_undot u;
	size_t olen, i, llen = 0;
	int rc, done;

	pop3_undot_init(&u);
	do {
		if ((rc = pop3_chunk(p, &u, &olen, &done, err)) != PM_OK)
			return rc;
		for (i = 0; i < olen; i++) {
			if (llen == POP3_STATUS_MAX + 2)
				return pop3_break(p, pmp_errf(err, PM_EPROTO,
				    "a line of a multi-line response is longer "
				    "than %d bytes", POP3_STATUS_MAX));
			p->line[llen++] = p->out[i];
			if (p->out[i] != '\n' || llen < 2 ||
			    p->line[llen - 2] != '\r')
				continue;
			p->h->trace(p->s, p->line, llen - 2);
			if ((rc = fn(p, p->line, llen - 2, arg, err)) != PM_OK)
				return pop3_break(p, rc);
			llen = 0;
		}
	} while (!done);
	/* The terminator comes only after a CRLF: no line is left open. */
	p->h->trace(p->s, ".", 1);
	return PM_OK;
}

/* CAPA: one capability line. */
static int
pop3_capa_cb(struct pm_conn *p, const char *line, size_t len, void *arg,
    char **err)
{
	(void)arg;
	return pop3_caps_line(line, len, &p->caps, err);
}

/* Ask for the capabilities; a server without CAPA has none known. */
static int
pop3_capa(struct pm_conn *p, char **err)
{
	int rc, st;

	pop3_caps_reset(&p->caps);
	if ((rc = p->h->send(p->s, err, "CAPA")) != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_reply(p, 0, &st, NULL, err)) != PM_OK)
		return rc;
	if (st != POP3_OK)
		return PM_OK;
	if ((rc = pop3_lines(p, pop3_capa_cb, NULL, err)) != PM_OK)
		return rc;
	p->caps.known = 1;
	return PM_OK;
}

/* SASL: send AUTH, with the initial response if there is one. */
static int
pop3_sasl_start(void *ctx, const char *mech, const struct pm_secret *ir,
    char **err)
{
	struct pm_conn *p = ctx;
	char *prefix;
	int rc;

	if (ir == NULL)
		rc = p->h->send(p->s, err, "AUTH %s", mech);
	else {
		prefix = pmp_xprintf("AUTH %s ", mech);
		rc = p->h->send_secret(p->s, prefix, ir, err);
		free(prefix);
	}
	return pop3_break(p, rc);
}

/* SASL: send one response line. */
static int
pop3_sasl_respond(void *ctx, const struct pm_secret *resp, char **err)
{
	struct pm_conn *p = ctx;

	return pop3_break(p, p->h->send_secret(p->s, "", resp, err));
}

/* SASL: read the server's next reply to AUTH: "+ challenge", +OK, -ERR. */
static int
pop3_sasl_reply(void *ctx, int *kind_r, char **text_r, char **err)
{
	struct pm_conn *p = ctx;
	const char *line, *text;
	size_t len;
	int rc, st;

	*text_r = NULL;
	rc = p->h->read_line(p->s, &line, &len, err);
	if (rc != PM_OK)
		return pop3_break(p, rc);
	rc = pop3_parse_status(line, len, 1, &st, &text, err);
	if (rc != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_transient(p, st, text, err)) != PM_OK)
		return rc;
	len -= (size_t)(text - line);
	switch (st) {
	case POP3_CONT:
		*kind_r = PM_SASL_CONTINUE;
		*text_r = pmp_xstrndup(text, len);
		break;
	case POP3_OK:
		*kind_r = PM_SASL_SUCCESS;
		*text_r = pmp_clean(text, len, 200);
		break;
	default:
		*kind_r = PM_SASL_FAILURE;
		*text_r = pmp_clean(text, len, 200);
		break;
	}
	return PM_OK;
}

/* Whether len bytes hold a CR, LF or NUL, which no command can carry. */
static int
has_break(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL || memchr(s, '\r', len) != NULL ||
	    memchr(s, '\n', len) != NULL;
}

/* Log in with USER and PASS, for servers that offer no SASL mechanism. */
static int
pop3_user_pass(struct pm_conn *p, const struct pm_secret *pw, char **err)
{
	const char *data;
	char *text;
	size_t len;
	int rc, st;

	if (!p->h->tls_active(p->s) && p->acct->tls != PM_TLS_NONE)
		return pmp_errf(err, PM_ETLS, "refusing to send credentials "
		    "over an unencrypted connection (set tls = none to allow "
		    "it)");
	if (has_break(p->acct->user, strlen(p->acct->user)))
		return pmp_errf(err, PM_ECONFIG, "user name contains a line "
		    "break");
	data = p->h->secret_data(pw, &len);
	if (len == 0 || has_break(data, len))
		return pmp_errf(err, PM_ECONFIG, "the password is empty or "
		    "contains a line break or NUL, which POP3 PASS cannot "
		    "carry");
	rc = pop3_command(p, "USER", PM_EAUTH, err, "USER %s",
	    p->acct->user);
	if (rc != PM_OK)
		return rc;
	if ((rc = p->h->send_secret(p->s, "PASS ", pw, err)) != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_reply(p, 0, &st, &text, err)) != PM_OK)
		return rc;
	if (st != POP3_OK)
		rc = pmp_errf(err, PM_EAUTH, "server refused the USER/PASS "
		    "login for %s: %s", p->acct->user, text);
	free(text);
	return rc;
}

/*
 * Whether a message shorter than its LIST size is refused, given the
 * greeting's text.  Microsoft Exchange (Exchange Online included) gives
 * estimated sizes unless its admin asked for exact ones, so under
 * pop3_strict_size = auto its short messages are kept: the terminator,
 * which only CRLF "." CRLF makes, is what proves a message complete.
 */
static int
pop3_strict_size(struct pm_conn *p, const char *greeting)
{
	switch (p->acct->strict_size) {
	case PM_STRICT_SIZE_YES:
		return 1;
	case PM_STRICT_SIZE_NO:
		return 0;
	default:
		if (strstr(greeting, "Microsoft Exchange") == NULL)
			return 1;
		p->h->log(p->s, PM_LOG_DEBUG, "Microsoft Exchange: LIST "
		    "sizes may be estimates, a shorter message is kept "
		    "(pop3_strict_size = auto)");
		return 0;
	}
}

/* Connect, read the greeting, STLS if configured, authenticate, and learn
 * the capabilities that hold after login. */
static int
pop3_login(struct pm_conn *p, char **err)
{
	const struct pm_secret *pw;
	char *text, *mechs;
	int rc, st;

	if ((rc = p->h->connect(p->s, err)) != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_reply(p, 0, &st, &text, err)) != PM_OK)
		return rc;
	if (st != POP3_OK) {
		rc = pmp_errf(err, PM_ETEMP, "server refused the session: "
		    "-ERR %s", text);
		free(text);
		return pop3_break(p, rc);
	}
	p->strict_size = pop3_strict_size(p, text);
	free(text);
	if ((rc = pop3_capa(p, err)) != PM_OK)
		return rc;

	if (p->acct->tls == PM_TLS_STARTTLS) {
		if (p->caps.known && !p->caps.stls)
			return pmp_errf(err, PM_ETLS, "server does not offer "
			    "STLS");
		if ((rc = pop3_command(p, "STLS", PM_ETLS, err, "STLS")) !=
		    PM_OK)
			return rc;
		if ((rc = p->h->starttls(p->s, err)) != PM_OK)
			return pop3_break(p, rc);
		/* What the server said before TLS cannot be trusted. */
		if ((rc = pop3_capa(p, err)) != PM_OK)
			return rc;
	}

	mechs = pmp_xstrndup(p->caps.mechs, strlen(p->caps.mechs));
	pw = p->h->password(p->s);
	if (*mechs == '\0' && pw != NULL)
		rc = pop3_user_pass(p, pw, err);
	else
		/* RFC 5034: every POP3 server takes an initial response. */
		rc = p->h->sasl_auth(p->s, &p->sasl, p, mechs, 1, err);
	free(mechs);
	if (rc != PM_OK)
		return rc;
	p->authed = 1;
	/* Capabilities may change after login (PIPELINING matters). */
	if ((rc = pop3_capa(p, err)) != PM_OK)
		return rc;
	p->window = p->caps.pipelining ? POP3_WINDOW : 1;
	return PM_OK;
}

/* Free a maildrop listing and its UIDs and leave it empty. */
static void
listing_free(struct pop3_listing *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->e[i].uid);
	free(l->e);
	memset(l, 0, sizeof *l);
}

/* Drop the connection's listing (select() and list() invalidate it). */
static void
pop3_forget(struct pm_conn *p)
{
	listing_free(&p->list);
	free(p->view);
	p->view = NULL;
	p->have_uidl = 0;
}

/* Free a connection (already disconnected). */
static void
pop3_free(struct pm_conn *p)
{
	pop3_forget(p);
	pop3_caps_free(&p->caps);
	free(p->buf);
	free(p->out);
	free(p->line);
	free(p);
}

/* Refuse to go on with a dialogue that is out of step (a bug in the
 * caller: after a failure only close() may follow). */
static int
pop3_in_step(struct pm_conn *p, char **err)
{
	if (p->broken)
		return pmp_errf(err, PM_EINTERNAL, "the POP3 dialogue is out "
		    "of step after an earlier failure");
	return PM_OK;
}

/* Check that idx[0..n) are indexes into the listing. */
static int
pop3_check_set(struct pm_conn *p, const size_t *idx, size_t n, char **err)
{
	size_t i;
	int rc;

	if ((rc = pop3_in_step(p, err)) != PM_OK)
		return rc;
	for (i = 0; i < n; i++) {
		if (idx[i] >= p->list.n)
			return pmp_errf(err, PM_EINTERNAL, "message index %zu "
			    "is not in the listing of %zu messages", idx[i],
			    p->list.n);
	}
	return PM_OK;
}

/*
 * End the session with QUIT.  The server applies the deletions only now:
 * a refused QUIT after DELEs says so (the messages stay on the server).
 */
static int
pop3_quit(struct pm_conn *p, char **err)
{
	int rc;

	/* The session is over: a connection lost now needs no new one. */
	p->authed = 0;
	rc = pop3_command(p, "QUIT", PM_ETEMP, err, "QUIT");
	if (rc != PM_OK && p->deleted > 0)
		rc = pmp_errf(err, rc, "%s; messages marked for deletion stay "
		    "on the server until the next run", *err);
	return rc;
}

/* Slot open(): connect and log in; on failure nothing is left open. */
static int
pop3_open(const struct pm_host *host, struct pm_session *s,
    struct pm_conn **conn_r, char **err)
{
	struct pm_conn *p;
	char *qerr = NULL;
	int rc;

	*conn_r = NULL;
	p = pmp_xmalloc(sizeof *p);
	memset(p, 0, sizeof *p);
	p->h = host;
	p->s = s;
	p->acct = host->account(s);
	p->window = 1;
	p->buf = pmp_xmalloc(POP3_CHUNK);
	p->out = pmp_xmalloc(POP3_CHUNK + 1);
	p->line = pmp_xmalloc(POP3_STATUS_MAX + 2);
	p->sasl.start = pop3_sasl_start;
	p->sasl.respond = pop3_sasl_respond;
	p->sasl.reply = pop3_sasl_reply;
	p->sasl.max_line = 255;		/* RFC 5034 4 */
	p->sasl.overhead = sizeof "AUTH  \r\n" - 1;
	p->sasl.xoauth2_two_step = p->acct->xoauth2_two_step;
	pop3_caps_reset(&p->caps);

	if ((rc = pop3_login(p, err)) != PM_OK) {
		/* Still in step (say, a refused login): leave politely. */
		if (!p->broken)
			(void)pop3_quit(p, &qerr);
		free(qerr);
		host->disconnect(s);
		pop3_free(p);
		return rc;
	}
	*conn_r = p;
	return PM_OK;
}

/* Slot select(): POP3 has one maildrop, named "". */
static int
pop3_select(struct pm_conn *p, const char *folder, struct pm_folder *f_r,
    char **err)
{
	char *name;
	int rc;

	memset(f_r, 0, sizeof *f_r);
	pop3_forget(p);
	if (*folder != '\0') {
		name = pmp_clean(folder, strlen(folder), 100);
		rc = pmp_errf(err, PM_ECONFIG, "POP3 has no folders: cannot "
		    "select \"%s\"", name);
		free(name);
		return rc;
	}
	return PM_OK;
}

/* Add an entry for message num; NULL (with *err set) when the listing
 * grows past POP3_LIST_MAX. */
static struct pop3_entry *
listing_add(struct pop3_listing *l, unsigned long num, const char *what,
    char **err)
{
	struct pop3_entry *e;

	if (l->n >= POP3_LIST_MAX) {
		pmp_errf(err, PM_EPROTO, "the %s listing names more than %d "
		    "messages", what, POP3_LIST_MAX);
		return NULL;
	}
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 256 : l->cap * 2;
		l->e = pmp_xreallocarray(l->e, l->cap, sizeof *l->e);
	}
	e = &l->e[l->n++];
	memset(e, 0, sizeof *e);
	e->num = num;
	return e;
}

/* Order entries by message number. */
static int
entry_num_cmp(const void *a, const void *b)
{
	const struct pop3_entry *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

/* Order entry pointers by UIDL. */
static int
entry_uid_cmp(const void *a, const void *b)
{
	const struct pop3_entry *const *x = a, *const *y = b;

	return strcmp((*x)->uid, (*y)->uid);
}

/* UIDL: one "NUM UID" line. */
static int
pop3_uidl_cb(struct pm_conn *p, const char *line, size_t len, void *arg,
    char **err)
{
	struct pop3_listing *l = arg;
	struct pop3_entry *e;
	const char *uid;
	unsigned long num;
	size_t ulen;
	int rc;

	(void)p;
	if ((rc = pop3_parse_uidl(line, len, &num, &uid, &ulen, err)) !=
	    PM_OK)
		return rc;
	if ((e = listing_add(l, num, "UIDL", err)) == NULL)
		return PM_EPROTO;
	e->uid = pmp_xstrndup(uid, ulen);
	return PM_OK;
}

/* LIST: one "NUM SIZE" line. */
static int
pop3_list_cb(struct pm_conn *p, const char *line, size_t len, void *arg,
    char **err)
{
	struct pop3_listing *l = arg;
	struct pop3_entry *e;
	unsigned long num;
	uint64_t size;
	int rc;

	(void)p;
	if ((rc = pop3_parse_list(line, len, &num, &size, err)) != PM_OK)
		return rc;
	if ((e = listing_add(l, num, "LIST", err)) == NULL)
		return PM_EPROTO;
	e->size = size;
	return PM_OK;
}

/*
 * Read the maildrop's listing into l: numbers, sizes and UIDLs, sorted by
 * number.  *have_uidl_r is 0 when the server refused UIDL (the entries
 * then have no uid).  With PIPELINING, UIDL and LIST go out together;
 * without it, one at a time (RFC 2449).
 */
static int
pop3_read_listing(struct pm_conn *p, struct pop3_listing *l,
    int *have_uidl_r, char **err)
{
	struct pop3_listing sizes;
	struct pop3_entry key, *found, **byuid;
	size_t i;
	int rc, st;

	memset(&sizes, 0, sizeof sizes);
	*have_uidl_r = 0;
	if ((rc = p->h->send(p->s, err, "UIDL")) != PM_OK)
		return pop3_break(p, rc);
	if (p->caps.pipelining &&
	    (rc = p->h->send(p->s, err, "LIST")) != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_reply(p, 0, &st, NULL, err)) != PM_OK)
		return rc;
	if (st == POP3_OK) {
		*have_uidl_r = 1;
		if ((rc = pop3_lines(p, pop3_uidl_cb, l, err)) != PM_OK)
			return rc;
	}
	if (!p->caps.pipelining &&
	    (rc = p->h->send(p->s, err, "LIST")) != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_expect(p, "LIST", PM_EPROTO, err)) != PM_OK)
		return rc;
	if ((rc = pop3_lines(p, pop3_list_cb, &sizes, err)) != PM_OK)
		goto out;

	if (sizes.n > 0)
		qsort(sizes.e, sizes.n, sizeof *sizes.e, entry_num_cmp);
	for (i = 1; i < sizes.n; i++) {
		if (sizes.e[i].num == sizes.e[i - 1].num) {
			rc = pmp_errf(err, PM_EPROTO, "LIST names message "
			    "%lu twice", sizes.e[i].num);
			goto out;
		}
	}
	if (!*have_uidl_r) {
		/* The listing is LIST's. */
		listing_free(l);
		*l = sizes;
		return PM_OK;
	}
	if (l->n > 0)
		qsort(l->e, l->n, sizeof *l->e, entry_num_cmp);
	if (l->n != sizes.n) {
		rc = pmp_errf(err, PM_EPROTO, "UIDL lists %zu messages, LIST "
		    "%zu", l->n, sizes.n);
		goto out;
	}
	for (i = 0; i < l->n; i++) {
		key.num = l->e[i].num;
		found = bsearch(&key, sizes.e, sizes.n, sizeof *sizes.e,
		    entry_num_cmp);
		if (found == NULL) {
			rc = pmp_errf(err, PM_EPROTO, "message %lu is in the "
			    "UIDL listing but not in LIST", key.num);
			goto out;
		}
		l->e[i].size = found->size;
	}
	/* Two messages with one UIDL could not be told apart. */
	byuid = pmp_xreallocarray(NULL, l->n, sizeof *byuid);
	for (i = 0; i < l->n; i++)
		byuid[i] = &l->e[i];
	if (l->n > 0)
		qsort(byuid, l->n, sizeof *byuid, entry_uid_cmp);
	for (i = 1; i < l->n && rc == PM_OK; i++) {
		if (strcmp(byuid[i]->uid, byuid[i - 1]->uid) == 0)
			rc = pmp_errf(err, PM_EPROTO, "messages %lu and %lu "
			    "have the same UIDL", byuid[i - 1]->num,
			    byuid[i]->num);
	}
	free(byuid);
out:
	listing_free(&sizes);
	return rc;
}

/*
 * Slot list(): the maildrop by message number, each message under its
 * UIDL, or without UIDL under a key made up from its number.
 */
static int
pop3_list(struct pm_conn *p, const struct pm_entry **e_r, size_t *n_r,
    int *have_uids_r, char **err)
{
	struct pop3_entry *e;
	size_t i;
	int rc;

	*e_r = NULL;
	*n_r = 0;
	*have_uids_r = 0;
	if ((rc = pop3_in_step(p, err)) != PM_OK)
		return rc;
	pop3_forget(p);
	if ((rc = pop3_read_listing(p, &p->list, &p->have_uidl, err)) !=
	    PM_OK) {
		pop3_forget(p);
		return rc;
	}
	p->view = pmp_xreallocarray(NULL, p->list.n, sizeof *p->view);
	for (i = 0; i < p->list.n; i++) {
		e = &p->list.e[i];
		if (!p->have_uidl)
			e->uid = pmp_xprintf(POP3_NOUIDL "%lu", e->num);
		p->view[i].uid = e->uid;
		p->view[i].size = e->size;
	}
	*e_r = p->view;
	*n_r = p->list.n;
	*have_uids_r = p->have_uidl;
	return PM_OK;
}

/* Stream a multi-line body through the unstuffing filter into m and give
 * back what follows its terminator.  *bytes_r is the message's size as
 * the server counts it (unstuffed, CRLF line ends). */
static int
pop3_body(struct pm_conn *p, const struct pm_sink *sink, struct pm_msg *m,
    uint64_t *bytes_r, char **err)
{
	struct pop3_undot u;
	size_t olen;
	int rc, done;

	*bytes_r = 0;
	pop3_undot_init(&u);
	do {
		if ((rc = pop3_chunk(p, &u, &olen, &done, err)) != PM_OK)
			return rc;
		if (olen > 0)
			sink->write(m, p->out, olen);
		*bytes_r += olen;
	} while (!done);
	return PM_OK;
}

/* Put "RETR num: " in front of *err and return rc. */
static int
pop3_retr_err(const struct pop3_entry *e, int rc, char **err)
{
	return pmp_errf(err, rc, "RETR %lu: %s", e->num, *err);
}

/*
 * Check the size of message e, which arrived whole as bytes bytes,
 * against LIST's.  Returns NULL when it may be kept, else why not
 * (malloc'd).  Shorter than LIST said: refused unless the account says
 * the server's sizes are estimates (pop3_strict_size = no).  Longer: kept
 * and noted only in the debug log, since servers that count LF line ends
 * (Dovecot with pop3_fast_size_lookups, many others) announce less than
 * they send on every message, and the terminator, not the size, is what
 * proves the message complete.
 */
static char *
pop3_size_check(struct pm_conn *p, const struct pop3_entry *e,
    uint64_t bytes)
{
	if (bytes == e->size)
		return NULL;
	if (bytes < e->size && p->strict_size)
		return pmp_xprintf("RETR %lu: the server sent %llu bytes where "
		    "LIST announced %llu, so the message may be cut short; it "
		    "stays on the server (if this server's LIST sizes are only "
		    "estimates, as old Microsoft Exchange and HP OpenMail "
		    "give, set pop3_strict_size = no)", e->num,
		    (unsigned long long)bytes, (unsigned long long)e->size);
	p->h->log(p->s, PM_LOG_DEBUG, "RETR %lu: %llu bytes where LIST "
	    "announced %llu", e->num, (unsigned long long)bytes,
	    (unsigned long long)e->size);
	return NULL;
}

/* A message whose body arrived whole, not yet ended (pop3_retr_resp()). */
struct pop3_held {
	struct pm_msg *m;	/* NULL: none */
	unsigned long num;	/* its message number */
};

/*
 * Read the response to the RETR of message idx into sink: the message,
 * or missing() when the server refused it (the dialogue goes on).  *held
 * is the message before it, whole but not yet ended: a message is ended
 * complete only once what follows it on the wire (this status line) was
 * well formed, since a server out of step with its replies may have cut
 * it short and sent the rest as this reply.  This message is held in its
 * turn unless last (the final response of the set: nothing more is due).
 * A connection or protocol failure ends the message incomplete.
 */
static int
pop3_retr_resp(struct pm_conn *p, size_t idx, int last,
    const struct pm_sink *sink, struct pm_fetch *f, struct pop3_held *held,
    char **err)
{
	const struct pop3_entry *e = &p->list.e[idx];
	struct pm_msg *m;
	uint64_t bytes;
	char *text, *why;
	int rc, st;

	rc = pop3_reply(p, 0, &st, &text, err);
	if (held->m != NULL) {
		/* A throttling -ERR is a well-formed reply too. */
		sink->end(held->m, rc == PM_OK || p->refused);
		held->m = NULL;
		if (rc != PM_OK)
			return pmp_errf(err, rc, "RETR %lu: %s; message %lu "
			    "before it stays on the server, as no well-formed "
			    "reply followed it", e->num, *err, held->num);
	}
	if (rc != PM_OK)
		return pop3_retr_err(e, rc, err);
	if (st != POP3_OK) {
		if (p->have_uidl)
			why = pmp_xprintf("RETR %lu (UIDL %s) failed: -ERR %s",
			    e->num, e->uid, text);
		else
			why = pmp_xprintf("RETR %lu failed: -ERR %s", e->num,
			    text);
		sink->missing(f, idx, PM_ETEMP, why);
		free(why);
		free(text);
		return PM_OK;
	}
	free(text);
	m = sink->begin(f, idx);
	rc = pop3_body(p, sink, m, &bytes, err);
	if (rc != PM_OK) {
		sink->end(m, 0);
		return pop3_retr_err(e, rc, err);
	}
	if ((why = pop3_size_check(p, e, bytes)) != NULL) {
		sink->end(m, 0);
		sink->missing(f, idx, PM_ETEMP, why);
		free(why);
	} else if (last)
		sink->end(m, 1);
	else {
		held->m = m;
		held->num = e->num;
	}
	return PM_OK;
}

/* Slot fetch(): RETR the messages idx[0..n) with up to p->window commands
 * in flight. */
static int
pop3_fetch(struct pm_conn *p, const size_t *idx, size_t n,
    const struct pm_sink *sink, struct pm_fetch *f, char **err)
{
	struct pop3_held held = { NULL, 0 };
	size_t sent = 0, recvd = 0;
	int rc;

	if ((rc = pop3_check_set(p, idx, n, err)) != PM_OK)
		return rc;
	while (recvd < n) {
		while (sent < n && sent - recvd < p->window) {
			rc = p->h->send(p->s, err, "RETR %lu",
			    p->list.e[idx[sent]].num);
			if (rc != PM_OK) {
				rc = pop3_break(p, rc);
				goto out;
			}
			sent++;
		}
		rc = pop3_retr_resp(p, idx[recvd], recvd + 1 == n, sink, f,
		    &held, err);
		if (rc != PM_OK)
			goto out;
		recvd++;
	}
out:
	/* Only a failure leaves a message held: it is not kept. */
	if (held.m != NULL)
		sink->end(held.m, 0);
	return rc;
}

/*
 * Slot dispose(): POP3 has no flags, so only PM_DISPOSE_DELETE does
 * anything: DELE with up to p->window commands in flight.  A refused DELE
 * is logged and the message left; the deletions take effect at QUIT.
 */
static int
pop3_dispose(struct pm_conn *p, int action, const size_t *idx, size_t n,
    unsigned char *done_r, char **err)
{
	const struct pop3_entry *e;
	size_t sent = 0, recvd = 0, marked = 0;
	char *text;
	int rc, st;

	if (n > 0)
		memset(done_r, 0, n);
	if ((rc = pop3_check_set(p, idx, n, err)) != PM_OK)
		return rc;
	if (action == PM_DISPOSE_SEEN)
		return PM_OK;
	if (action != PM_DISPOSE_DELETE)
		return pmp_errf(err, PM_EINTERNAL, "unknown disposal %d",
		    action);
	while (recvd < n) {
		while (sent < n && sent - recvd < p->window) {
			rc = p->h->send(p->s, err, "DELE %lu",
			    p->list.e[idx[sent]].num);
			if (rc != PM_OK)
				return pop3_break(p, rc);
			sent++;
		}
		e = &p->list.e[idx[recvd]];
		if ((rc = pop3_reply(p, 0, &st, &text, err)) != PM_OK)
			return pmp_errf(err, rc, "DELE %lu: %s", e->num,
			    *err);
		if (st != POP3_OK)
			p->h->log(p->s, PM_LOG_WARN, "DELE %lu failed: -ERR "
			    "%s", e->num, text);
		else {
			done_r[recvd] = 1;
			p->deleted++;
			marked++;
		}
		free(text);
		recvd++;
	}
	p->h->log(p->s, PM_LOG_DEBUG, "%zu of %zu messages marked for "
	    "deletion", marked, n);
	return PM_OK;
}

/*
 * Slot close(): QUIT unless the dialogue is out of step, disconnect,
 * free.  Messages marked with DELE are deleted only by a QUIT the server
 * accepted: anything else with deletions pending is a failure.
 */
static int
pop3_close(struct pm_conn *p, char **err)
{
	int rc = PM_OK;

	if (!p->broken)
		rc = pop3_quit(p, err);
	else if (p->deleted > 0)
		rc = pmp_errf(err, PM_ETEMP, "the connection broke off before "
		    "QUIT; messages marked for deletion stay on the server "
		    "until the next run");
	p->h->disconnect(p->s);
	pop3_free(p);
	return rc;
}

PM_PLUGIN_EXPORT const struct pm_plugin pullmail_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "pop3",
	.port_tls = 995,
	.port_plain = 110,
	.flags = PM_PLUGIN_DELETE_AT_CLOSE,
	.open = pop3_open,
	.select = pop3_select,
	.list = pop3_list,
	.fetch = pop3_fetch,
	.dispose = pop3_dispose,
	.can_wait = NULL,
	.wait = NULL,
	.close = pop3_close,
};
