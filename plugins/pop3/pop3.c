/*
 * The POP3 backend (RFC 1939, CAPA and PIPELINING from RFC 2449, AUTH from
 * RFC 5034, STLS from RFC 2595): log in, list the maildrop with UIDL and
 * LIST, stream every message whose UIDL the state does not know into the
 * host's delivery, and delete what the host has committed when keep = no.
 *
 * State is kept by UIDL under the mailbox name "".  POP3 applies DELE only
 * at QUIT: a connection lost after DELE and before QUIT leaves the messages
 * on the server, already recorded as delivered, so the next run deletes
 * them without delivering them again.  After a QUIT the server accepted,
 * the UIDLs of the deleted messages are forgotten at once, so a later
 * message that reuses one (some servers derive UIDLs from a hash of the
 * headers) is fetched as new rather than deleted undelivered.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pullmail/plugin.h>

#include "pop3-parse.h"

#define POP3_BATCH	50		/* messages per host commit */
#define POP3_CHUNK	(64 * 1024)	/* body bytes per read */
#define POP3_WINDOW	16		/* commands in flight with PIPELINING */
#define POP3_NOUIDL	"no-uidl "	/* uid prefix without UIDL: a space,
					 * so no real UIDL looks like it */
#ifndef POP3_LIST_MAX
#define POP3_LIST_MAX	1000000		/* most messages a listing may name
					 * (Exchange Online holds at most a
					 * million items per folder); a
					 * server naming more is hostile */
#endif

/* One connection to one account's server. */
struct pop3 {
	const struct pm_host *h;
	struct pm_session *s;
	const struct pm_account_info *acct;
	struct pop3_caps caps;
	struct pm_sasl_proto sasl;
	int broken;		/* the dialogue is out of step: no QUIT */
	size_t window;		/* commands to keep in flight */
	size_t deleted;		/* messages marked with DELE */
	char *buf;		/* POP3_CHUNK bytes read */
	char *out;		/* POP3_CHUNK + 1 bytes unstuffed */
};

/* A message of the maildrop. */
struct pop3_entry {
	unsigned long num;
	uint64_t size;
	int has_size;
	int deleted;		/* DELE answered +OK */
	char *uid;
};

/* Mark the dialogue broken and pass status through. */
static int
pop3_break(struct pop3 *p, int status)
{
	if (status != PM_OK)
		p->broken = 1;
	return status;
}

/*
 * Read one status line.  *status_r is an enum pop3_status; *text_r (clean
 * server text, malloc'd) is set when text_r is not NULL.  A malformed line
 * breaks the dialogue.
 */
static int
pop3_reply(struct pop3 *p, int sasl, int *status_r, char **text_r,
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
	if (text_r != NULL)
		*text_r = pmp_clean(text, len - (size_t)(text - line), 200);
	return PM_OK;
}

/* Read a reply that must be +OK; -ERR is returned as nostatus with
 * "WHAT failed: -ERR text". */
static int
pop3_expect(struct pop3 *p, const char *what, int nostatus, char **err)
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
pop3_command(struct pop3 *p, const char *what, int nostatus, char **err,
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

/* Read the lines of a multi-line response up to its ".", handing each
 * unstuffed line to fn. */
static int
pop3_lines(struct pop3 *p, int (*fn)(struct pop3 *, const char *, size_t,
    void *, char **), void *arg, char **err)
{
	const char *line, *data;
	size_t len, dlen;
	int rc;

	for (;;) {
		rc = p->h->read_line(p->s, &line, &len, err);
		if (rc != PM_OK)
			return pop3_break(p, rc);
		if (pop3_multiline(line, len, &data, &dlen))
			return PM_OK;
		if ((rc = fn(p, data, dlen, arg, err)) != PM_OK)
			return pop3_break(p, rc);
	}
}

/* CAPA: one capability line. */
static int
pop3_capa_cb(struct pop3 *p, const char *line, size_t len, void *arg,
    char **err)
{
	(void)arg;
	return pop3_caps_line(line, len, &p->caps, err);
}

/* Ask for the capabilities; a server without CAPA has none known. */
static int
pop3_capa(struct pop3 *p, char **err)
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
	struct pop3 *p = ctx;
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
	struct pop3 *p = ctx;

	return pop3_break(p, p->h->send_secret(p->s, "", resp, err));
}

/* SASL: read the server's next reply to AUTH: "+ challenge", +OK, -ERR. */
static int
pop3_sasl_reply(void *ctx, int *kind_r, char **text_r, char **err)
{
	struct pop3 *p = ctx;
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
pop3_user_pass(struct pop3 *p, const struct pm_secret *pw, char **err)
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

/* Connect, read the greeting, STLS if configured, authenticate. */
static int
pop3_open(struct pop3 *p, char **err)
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
	/* Capabilities may change after login (PIPELINING matters). */
	if ((rc = pop3_capa(p, err)) != PM_OK)
		return rc;
	p->window = p->caps.pipelining ? POP3_WINDOW : 1;
	return PM_OK;
}

/* A growing maildrop listing. */
struct pop3_list {
	struct pop3_entry *e;
	size_t n, cap;
};

/* Add an entry for message num; NULL (with *err set) when the listing
 * grows past POP3_LIST_MAX. */
static struct pop3_entry *
list_add(struct pop3_list *l, unsigned long num, const char *what,
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

/* Free a maildrop listing and its UIDs and leave it empty. */
static void
list_free(struct pop3_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->e[i].uid);
	free(l->e);
	memset(l, 0, sizeof *l);
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
pop3_uidl_cb(struct pop3 *p, const char *line, size_t len, void *arg,
    char **err)
{
	struct pop3_list *l = arg;
	struct pop3_entry *e;
	const char *uid;
	unsigned long num;
	size_t ulen;
	int rc;

	(void)p;
	if ((rc = pop3_parse_uidl(line, len, &num, &uid, &ulen, err)) !=
	    PM_OK)
		return rc;
	if ((e = list_add(l, num, "UIDL", err)) == NULL)
		return PM_EPROTO;
	e->uid = pmp_xstrndup(uid, ulen);
	return PM_OK;
}

/* LIST: one "NUM SIZE" line. */
static int
pop3_list_cb(struct pop3 *p, const char *line, size_t len, void *arg,
    char **err)
{
	struct pop3_list *l = arg;
	struct pop3_entry *e;
	unsigned long num;
	uint64_t size;
	int rc;

	(void)p;
	if ((rc = pop3_parse_list(line, len, &num, &size, err)) != PM_OK)
		return rc;
	if ((e = list_add(l, num, "LIST", err)) == NULL)
		return PM_EPROTO;
	e->size = size;
	e->has_size = 1;
	return PM_OK;
}

/*
 * List the maildrop: numbers, sizes, and UIDLs.  *have_uidl_r is 0 when
 * the server refused UIDL (the entries then have no uid).
 */
static int
pop3_listing(struct pop3 *p, struct pop3_list *l, int *have_uidl_r,
    char **err)
{
	struct pop3_list sizes;
	struct pop3_entry key, *found, **byuid;
	size_t i;
	int rc, st;

	memset(&sizes, 0, sizeof sizes);
	*have_uidl_r = 0;
	if ((rc = p->h->send(p->s, err, "UIDL")) != PM_OK)
		return pop3_break(p, rc);
	if ((rc = pop3_reply(p, 0, &st, NULL, err)) != PM_OK)
		return rc;
	if (st == POP3_OK) {
		*have_uidl_r = 1;
		if ((rc = pop3_lines(p, pop3_uidl_cb, l, err)) != PM_OK)
			return rc;
	}
	if ((rc = p->h->send(p->s, err, "LIST")) != PM_OK)
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
		list_free(l);
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
		l->e[i].has_size = 1;
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
	list_free(&sizes);
	return rc;
}

/* The message a RETR is bringing. */
struct pop3_msg {
	const struct pop3_entry *e;
	struct pm_msg *m;	/* delivery in progress, or NULL */
	int dstatus;		/* delivery failure, or PM_OK */
	char *derr;		/* its reason */
};

/* Hand bytes to the delivery, noting a failure there without stopping the
 * read (the dialogue must stay in step). */
static void
pop3_deliver(struct pop3 *p, struct pop3_msg *c, const char *buf,
    size_t len)
{
	int rc;

	if (c->m == NULL || len == 0)
		return;
	rc = p->h->msg_write(c->m, buf, len, &c->derr);
	if (rc != PM_OK) {
		p->h->msg_abort(c->m);
		c->m = NULL;
		c->dstatus = rc;
	}
}

/* Stream a multi-line body into c (or nowhere when c->m is NULL) and give
 * back what follows its terminator. */
static int
pop3_body(struct pop3 *p, struct pop3_msg *c, char **err)
{
	struct pop3_undot u;
	size_t got, olen, used;
	int rc, done;

	pop3_undot_init(&u);
	for (;;) {
		rc = p->h->read_bytes(p->s, p->buf, POP3_CHUNK, &got, err);
		if (rc != PM_OK)
			return pop3_break(p, rc);
		if (got == 0 || got > POP3_CHUNK)
			return pop3_break(p, pmp_errf(err, PM_EINTERNAL,
			    "read_bytes returned %zu of %d bytes", got,
			    POP3_CHUNK));
		done = pop3_undot(&u, p->buf, got, p->out, &olen, &used);
		pop3_deliver(p, c, p->out, olen);
		if (done) {
			if (used < got)
				p->h->unread(p->s, p->buf + used, got - used);
			return PM_OK;
		}
	}
}

/*
 * Read the response to "RETR e->num" and deliver the message.  *got_r is
 * 1 when it was finished.  *dstatus_r is a failure that concerns this
 * message alone, with *derr_r its reason, while the dialogue stays in
 * step: the delivery's, or PM_ETEMP when the server refused the RETR (the
 * message stays on the server and must not look fetched).
 */
static int
pop3_retr_resp(struct pop3 *p, const struct pop3_entry *e, const char *uid,
    int *got_r, int *dstatus_r, char **derr_r, char **err)
{
	struct pop3_msg c;
	char *text, *what;
	int rc, st;

	*got_r = 0;
	*dstatus_r = PM_OK;
	if ((rc = pop3_reply(p, 0, &st, &text, err)) != PM_OK) {
		what = pmp_xprintf("RETR %lu: %s", e->num, *err);
		free(*err);
		*err = what;
		return rc;
	}
	if (st != POP3_OK) {
		*dstatus_r = PM_ETEMP;
		*derr_r = pmp_xprintf("RETR %lu (UIDL %s) failed: -ERR %s",
		    e->num, uid, text);
		free(text);
		return PM_OK;
	}
	free(text);
	memset(&c, 0, sizeof c);
	c.e = e;
	rc = p->h->msg_begin(p->s, "", uid, e->size, &c.m, &c.derr);
	if (rc != PM_OK) {
		c.m = NULL;
		c.dstatus = rc;
	}
	if ((rc = pop3_body(p, &c, err)) != PM_OK) {
		if (c.m != NULL)
			p->h->msg_abort(c.m);
		free(c.derr);
		what = pmp_xprintf("RETR %lu: %s", e->num, *err);
		free(*err);
		*err = what;
		return rc;
	}
	if (c.dstatus != PM_OK) {
		*dstatus_r = c.dstatus;
		*derr_r = c.derr != NULL ? c.derr :
		    pmp_xprintf("delivery of message %lu failed", e->num);
		return PM_OK;
	}
	/* msg_finish() frees the message whatever it returns. */
	if ((rc = p->h->msg_finish(c.m, derr_r)) != PM_OK) {
		*dstatus_r = rc;
		return PM_OK;
	}
	*got_r = 1;
	return PM_OK;
}

/* The uid a message is delivered and recorded under. */
static char *
entry_uid(const struct pop3_entry *e)
{
	if (e->uid != NULL)
		return pmp_xstrndup(e->uid, strlen(e->uid));
	return pmp_xprintf(POP3_NOUIDL "%lu", e->num);
}

/*
 * Fetch the messages fresh[0..n) with up to p->window RETR commands in
 * flight.  The finished ones are appended to done[] (*ndone_r).  A message
 * whose RETR is refused or whose delivery fails is logged and left on the
 * server; the others go on.
 * The worst delivery failure (PM_EDELIVER over PM_ETEMP) is returned with
 * *delivery_r set and *err describing it.
 */
static int
pop3_retr_batch(struct pop3 *p, struct pop3_entry *const *fresh, size_t n,
    struct pop3_entry **done, size_t *ndone_r, int *delivery_r, char **err)
{
	char *uid, *derr = NULL;
	size_t sent = 0, recvd = 0;
	int rc, got, dstatus, fail = PM_OK;

	*delivery_r = 0;
	while (recvd < n) {
		while (sent < n && sent - recvd < p->window) {
			rc = p->h->send(p->s, err, "RETR %lu",
			    fresh[sent]->num);
			if (rc != PM_OK)
				return pop3_break(p, rc);
			sent++;
		}
		if (recvd == sent)
			break;
		uid = entry_uid(fresh[recvd]);
		rc = pop3_retr_resp(p, fresh[recvd], uid, &got,
		    &dstatus, &derr, err);
		free(uid);
		if (rc != PM_OK) {
			free(derr);
			return rc;
		}
		if (got)
			done[(*ndone_r)++] = fresh[recvd];
		if (dstatus != PM_OK) {
			p->h->log(p->s, PM_LOG_WARN, "%s; the message stays "
			    "on the server", derr != NULL ? derr :
			    "delivery failed");
			if (fail == PM_OK || dstatus == PM_EDELIVER) {
				fail = dstatus;
				free(*err);
				*err = derr;
				derr = NULL;
			}
		}
		free(derr);
		derr = NULL;
		recvd++;
	}
	if (fail != PM_OK)
		*delivery_r = 1;
	return fail;
}

/* Delete messages del[0..n) with up to p->window DELE commands in
 * flight, marking those the server accepted.  A refused DELE is logged:
 * the message stays, and is deleted on a later run (it is recorded). */
static int
pop3_dele(struct pop3 *p, struct pop3_entry *const *del, size_t n,
    char **err)
{
	size_t sent = 0, recvd = 0;
	char *text;
	int rc, st;

	if (n == 0 || p->acct->keep)
		return PM_OK;
	while (recvd < n) {
		while (sent < n && sent - recvd < p->window) {
			rc = p->h->send(p->s, err, "DELE %lu", del[sent]->num);
			if (rc != PM_OK)
				return pop3_break(p, rc);
			sent++;
		}
		if ((rc = pop3_reply(p, 0, &st, &text, err)) != PM_OK)
			return rc;
		if (st != POP3_OK)
			p->h->log(p->s, PM_LOG_WARN, "DELE %lu failed: -ERR "
			    "%s", del[recvd]->num, text);
		else {
			del[recvd]->deleted = 1;
			p->deleted++;
		}
		free(text);
		recvd++;
	}
	p->h->log(p->s, PM_LOG_DEBUG, "%zu messages marked for deletion", n);
	return PM_OK;
}

/* Make the finished messages durable, then mark them for deletion.
 * *n_r is reset when the batch is done with. */
static int
pop3_flush(struct pop3 *p, struct pop3_entry **done, size_t *n_r,
    char **err)
{
	int rc;

	if ((rc = p->h->commit(p->s, err)) != PM_OK)
		return rc;
	rc = pop3_dele(p, done, *n_r, err);
	*n_r = 0;
	return rc;
}

/* Fetch the new messages of the maildrop and dispose of them.  The
 * listing is left in l (*have_uidl_r as pop3_listing()) for the caller,
 * which frees it. */
static int
pop3_maildrop(struct pop3 *p, struct pop3_list *l, int *have_uidl_r,
    char **err)
{
	const struct pm_account_info *a = p->acct;
	struct pop3_entry **fresh = NULL, **done = NULL;
	const char **present = NULL;
	char *ferr = NULL, *werr = NULL;
	size_t i, k, nfresh = 0, ndone = 0, nskip = 0, nfetched = 0;
	int rc, have_uidl, delivery, worst = PM_OK;

	rc = pop3_listing(p, l, have_uidl_r, err);
	have_uidl = *have_uidl_r;
	if (rc != PM_OK)
		goto out;
	if (!have_uidl && !a->fetch_all) {
		rc = pmp_errf(err, PM_ECONFIG, "the server does not support "
		    "UIDL, so messages cannot be told apart from one run to "
		    "the next; set fetch_all = yes to fetch every message on "
		    "each run (with keep = no they are deleted after "
		    "delivery)");
		goto out;
	}
	if (!have_uidl && a->keep)
		p->h->log(p->s, PM_LOG_WARN, "the server does not support "
		    "UIDL: with fetch_all = yes and keep = yes every message "
		    "is fetched again on each run");

	if (have_uidl) {
		/* The complete list, so the state can forget what is
		 * gone. */
		present = pmp_xreallocarray(NULL, l->n, sizeof *present);
		for (i = 0; i < l->n; i++)
			present[i] = l->e[i].uid;
		rc = p->h->state_prune(p->s, "", present, l->n, err);
		if (rc != PM_OK)
			goto out;
	}

	/* Known messages still there with keep = no: a run recorded them
	 * but its DELE never reached a QUIT (after a QUIT the deleted UIDLs
	 * are forgotten: pop3_forget_deleted()).  They go first,
	 * undelivered. */
	fresh = pmp_xreallocarray(NULL, l->n, sizeof *fresh);
	done = pmp_xreallocarray(NULL, l->n, sizeof *done);
	for (i = 0; i < l->n; i++) {
		if (have_uidl && p->h->state_known(p->s, "", l->e[i].uid)) {
			if (!a->keep)
				done[ndone++] = &l->e[i];
			continue;
		}
		if (a->size_limit > 0 && l->e[i].size > a->size_limit) {
			char *uid = entry_uid(&l->e[i]);

			p->h->skipped(p->s, "", uid, l->e[i].size);
			free(uid);
			nskip++;
			continue;
		}
		fresh[nfresh++] = &l->e[i];
	}
	p->h->log(p->s, PM_LOG_INFO, "%zu new of %zu messages", nfresh, l->n);
	if (nskip > 0)
		p->h->log(p->s, PM_LOG_INFO, "%zu messages over the size "
		    "limit skipped", nskip);
	if (ndone > 0) {
		p->h->log(p->s, PM_LOG_INFO, "deleting %zu messages "
		    "delivered by an earlier run", ndone);
		if ((rc = pop3_dele(p, done, ndone, err)) != PM_OK)
			goto out;
		ndone = 0;
	}

	for (i = 0; i < nfresh; i += k) {
		k = nfresh - i > POP3_BATCH ? POP3_BATCH : nfresh - i;
		rc = pop3_retr_batch(p, fresh + i, k, done, &ndone,
		    &delivery, err);
		nfetched += ndone;
		if (rc != PM_OK && delivery) {
			/* Those messages stay on the server; go on with the
			 * rest and report the worst failure at the end. */
			if (worst == PM_OK || rc == PM_EDELIVER) {
				worst = rc;
				free(werr);
				werr = *err;
				*err = NULL;
			}
			rc = PM_OK;
		}
		if (rc != PM_OK) {
			if (!p->broken) {
				/* Keep and dispose of what was delivered. */
				if (pop3_flush(p, done, &ndone, &ferr) !=
				    PM_OK) {
					p->h->log(p->s, PM_LOG_ERR, "%s",
					    ferr);
					free(ferr);
				}
			} else if (p->h->commit(p->s, &ferr) != PM_OK) {
				/* Record what was delivered; the server is
				 * told nothing. */
				p->h->log(p->s, PM_LOG_ERR, "%s", ferr);
				free(ferr);
			}
			goto out;
		}
		if ((rc = pop3_flush(p, done, &ndone, err)) != PM_OK)
			goto out;
	}
	if (worst != PM_OK) {
		rc = worst;
		free(*err);
		*err = werr;
		werr = NULL;
		goto out;
	}
	/* Save the pruned state even when nothing was fetched. */
	if (nfresh == 0 && (rc = p->h->commit(p->s, err)) != PM_OK)
		goto out;
	p->h->log(p->s, PM_LOG_DEBUG, "%zu messages fetched", nfetched);

out:
	free(werr);
	free(present);
	free(fresh);
	free(done);
	return rc;
}

/*
 * End the session.  The server applies the deletions only now: a refused
 * QUIT is an error (the messages stay, recorded, and are deleted next run).
 */
static int
pop3_quit(struct pop3 *p, char **err)
{
	int rc;

	rc = pop3_command(p, "QUIT", PM_ETEMP, err, "QUIT");
	if (rc != PM_OK && p->deleted > 0)
		rc = pmp_errf(err, rc, "%s; messages marked for deletion stay "
		    "on the server until the next run", *err);
	return rc;
}

/*
 * After a QUIT the server accepted, the messages whose DELE it accepted
 * are gone: forget their UIDLs and save the state.  A UIDL the state still
 * holds and the server still lists is then one whose delete never took
 * effect, never a new message that reuses the UIDL of a deleted one
 * (which a later run would otherwise delete undelivered).
 */
static int
pop3_forget_deleted(struct pop3 *p, const struct pop3_list *l, char **err)
{
	const char **present;
	size_t i, n = 0;
	int rc;

	present = pmp_xreallocarray(NULL, l->n, sizeof *present);
	for (i = 0; i < l->n; i++) {
		if (!l->e[i].deleted)
			present[n++] = l->e[i].uid;
	}
	rc = p->h->state_prune(p->s, "", present, n, err);
	free(present);
	if (rc == PM_OK)
		rc = p->h->commit(p->s, err);
	return rc;
}

/* The plugin's entry: fetch the account's maildrop. */
static int
pop3_fetch(const struct pm_host *host, struct pm_session *s, char **err)
{
	struct pop3 p;
	struct pop3_list l;
	char *qerr = NULL;
	int rc, qrc, have_uidl = 0;

	memset(&p, 0, sizeof p);
	memset(&l, 0, sizeof l);
	p.h = host;
	p.s = s;
	p.acct = host->account(s);
	p.window = 1;
	p.buf = pmp_xmalloc(POP3_CHUNK);
	p.out = pmp_xmalloc(POP3_CHUNK + 1);
	p.sasl.start = pop3_sasl_start;
	p.sasl.respond = pop3_sasl_respond;
	p.sasl.reply = pop3_sasl_reply;
	p.sasl.max_line = 255;		/* RFC 5034 4 */
	p.sasl.overhead = sizeof "AUTH  \r\n" - 1;
	p.sasl.xoauth2_two_step = p.acct->xoauth2_two_step;
	pop3_caps_reset(&p.caps);

	rc = pop3_open(&p, err);
	if (rc == PM_OK)
		rc = pop3_maildrop(&p, &l, &have_uidl, err);
	if (!p.broken) {
		qrc = pop3_quit(&p, &qerr);
		if (qrc == PM_OK && have_uidl && p.deleted > 0)
			qrc = pop3_forget_deleted(&p, &l, &qerr);
		if (rc == PM_OK && qrc != PM_OK) {
			rc = qrc;
			free(*err);
			*err = qerr;
			qerr = NULL;
		} else if (qrc != PM_OK)
			host->log(s, PM_LOG_WARN, "%s", qerr);
		free(qerr);
	}
	host->disconnect(s);
	list_free(&l);
	pop3_caps_free(&p.caps);
	free(p.buf);
	free(p.out);
	return rc;
}

PM_PLUGIN_EXPORT const struct pm_plugin pullmail_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "pop3",
	.port_tls = 995,
	.port_plain = 110,
	.fetch = pop3_fetch,
};
