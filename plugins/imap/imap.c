/*
 * The IMAP4rev1 backend (RFC 3501): log in, and for every configured folder
 * fetch the messages whose UIDs the state does not know, streaming each
 * literal into the host's delivery, then flag or delete on the server what
 * the host has committed.
 *
 * State is keyed by UIDVALIDITY and UID: when a folder's UIDVALIDITY
 * changes, the host drops the recorded UIDs of that folder and every
 * message in it is fetched again (duplicates, never losses).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pullmail/plugin.h>

#include "imap-parse.h"

#define IMAP_BATCH	50		/* messages per host commit */
#define IMAP_CHUNK	(64 * 1024)	/* literal bytes per read */
#define IMAP_SET_MAX	7900		/* bytes of UID set per command */

/* One connection to one account's server. */
struct imap {
	const struct pm_host *h;
	struct pm_session *s;
	const struct pm_account_info *acct;
	unsigned tagno;
	char tag[16];		/* tag of the command in flight */
	struct imap_caps caps;
	int have_caps;		/* caps came since they were last reset */
	int broken;		/* the dialogue is out of step: no LOGOUT */
	int logout;		/* LOGOUT sent: BYE is expected */
	char *buf;		/* IMAP_CHUNK bytes for literals */
	struct imap_msg *cur;	/* the message being fetched, or NULL */
	int dworst;		/* worst per-message delivery failure */
	char *dworst_err;	/* its reason */
};

/* The message a UID FETCH ... BODY.PEEK[] is bringing. */
struct imap_msg {
	const char *folder;
	uint32_t uid;
	char uidstr[16];
	struct pm_msg *m;	/* delivery in progress, or NULL */
	int state;		/* enum below */
	int dstatus;		/* delivery failure, or PM_OK */
	char *derr;		/* its reason */
};

enum {
	MSG_WAITING = 0,	/* no BODY[] seen yet */
	MSG_RECEIVED,		/* every byte was read */
	MSG_VANISHED		/* BODY[] NIL: expunged meanwhile */
};

/* What a command wants from the untagged responses it provokes. */
struct imap_cb {
	/* Each untagged response except FETCH and BYE. */
	int (*untagged)(struct imap *, const struct imap_resp *, void *,
	    char **);
	/* Each complete FETCH response. */
	int (*fetch)(struct imap *, const struct imap_fetch *, void *,
	    char **);
	void *arg;
};

/* A message of a folder listing. */
struct imap_entry {
	uint32_t uid;
	uint64_t size;
};

/* Mark the dialogue broken and pass status through. */
static int
imap_break(struct imap *im, int status)
{
	if (status != PM_OK)
		im->broken = 1;
	return status;
}

/* Describe a tagged or untagged status response for an error message. */
static char *
imap_describe(const struct imap_resp *r)
{
	char *code = NULL, *text, *out;

	text = pmp_clean(r->text, strlen(r->text), 200);
	if (r->code != NULL)
		code = pmp_clean(r->code, strlen(r->code), 100);
	out = pmp_xprintf("%s%s%s%s%s%s", r->word,
	    code != NULL ? " [" : "", code != NULL ? code : "",
	    code != NULL ? "]" : "", *text != '\0' ? " " : "", text);
	free(code);
	free(text);
	return out;
}

/* Take capabilities from a list; reports a broken list. */
static int
imap_set_caps(struct imap *im, const char *list, char **err)
{
	if (imap_parse_caps(list, &im->caps, err) != PM_OK) {
		im->have_caps = 0;
		return imap_break(im, PM_EPROTO);
	}
	im->have_caps = 1;
	return PM_OK;
}

/* Look at a status response's code: capabilities, alerts. */
static int
imap_code(struct imap *im, const struct imap_resp *r, char **err)
{
	char *t;

	if (r->code == NULL)
		return PM_OK;
	if (strncasecmp(r->code, "CAPABILITY ", 11) == 0)
		return imap_set_caps(im, r->code + 11, err);
	if (strcasecmp(r->code, "ALERT") == 0) {
		t = pmp_clean(r->text, strlen(r->text), 200);
		im->h->log(im->s, PM_LOG_WARN, "server alert: %s", t);
		free(t);
	}
	return PM_OK;
}

/* Read and parse one response line. */
static int
imap_read(struct imap *im, const char **line_r, size_t *len_r,
    struct imap_resp *r, char **err)
{
	int rc;

	rc = im->h->read_line(im->s, line_r, len_r, err);
	if (rc != PM_OK)
		return imap_break(im, rc);
	rc = imap_parse_resp(*line_r, *len_r, r, err);
	return imap_break(im, rc);
}

/* Hand bytes of the current message to the delivery, noting a failure
 * there without stopping the read (the dialogue must stay in step). */
static void
imap_deliver(struct imap *im, const void *buf, size_t len)
{
	struct imap_msg *c = im->cur;
	int rc;

	if (c->m == NULL || len == 0)
		return;
	rc = im->h->msg_write(c->m, buf, len, &c->derr);
	if (rc != PM_OK) {
		im->h->msg_abort(c->m);
		c->m = NULL;
		c->dstatus = rc;
	}
}

/* Read n bytes of a literal in bounded chunks, handing them to the
 * current message's delivery when deliver is set, else dropping them. */
static int
imap_read_literal(struct imap *im, uint64_t n, int deliver, char **err)
{
	size_t want, got;
	int rc;

	while (n > 0) {
		want = n > IMAP_CHUNK ? IMAP_CHUNK : (size_t)n;
		rc = im->h->read_bytes(im->s, im->buf, want, &got, err);
		if (rc != PM_OK)
			return imap_break(im, rc);
		if (got == 0 || got > want)
			return imap_break(im, pmp_errf(err, PM_EINTERNAL,
			    "read_bytes returned %zu of %zu bytes", got,
			    want));
		if (deliver)
			imap_deliver(im, im->buf, got);
		n -= got;
	}
	return PM_OK;
}

/* Skip the literals an untagged data response ends with, if any. */
static int
imap_skip_literals(struct imap *im, const char *line, size_t len,
    char **err)
{
	uint64_t n;
	int found, rc;

	for (;;) {
		rc = imap_literal(line, len, IMAP_LITERAL_MAX, &found, &n,
		    err);
		if (rc != PM_OK || !found)
			return imap_break(im, rc);
		if ((rc = imap_read_literal(im, n, 0, err)) != PM_OK)
			return rc;
		rc = im->h->read_line(im->s, &line, &len, err);
		if (rc != PM_OK)
			return imap_break(im, rc);
	}
}

/* Open the delivery of the current message. */
static void
imap_begin(struct imap *im, uint64_t size)
{
	struct imap_msg *c = im->cur;
	int rc;

	rc = im->h->msg_begin(im->s, c->folder, c->uidstr, size, &c->m,
	    &c->derr);
	if (rc != PM_OK) {
		c->m = NULL;
		c->dstatus = rc;
	}
}

/* Stream the BODY[] literal of the current message into the delivery. */
static int
imap_body(struct imap *im, uint64_t n, char **err)
{
	int rc;

	imap_begin(im, n);
	if ((rc = imap_read_literal(im, n, 1, err)) != PM_OK)
		return rc;
	im->cur->state = MSG_RECEIVED;
	return PM_OK;
}

/* Whether a FETCH response's body belongs to the message being fetched. */
static int
imap_wanted(struct imap *im, const struct imap_fetch *f)
{
	return im->cur != NULL && im->cur->state == MSG_WAITING &&
	    (!f->has_uid || f->uid == im->cur->uid);
}

/* Read a whole FETCH response that starts with line, with its literals. */
static int
imap_fetch_resp(struct imap *im, const char *line, size_t len,
    const struct imap_cb *cb, char **err)
{
	struct imap_fetch f;
	int rc, mine = 0;

	rc = imap_parse_fetch(line, len, IMAP_LITERAL_MAX, &f, err);
	while (rc == PM_OK && f.literal_pending) {
		if (f.literal_body && imap_wanted(im, &f)) {
			mine = 1;
			rc = imap_body(im, f.literal, err);
		} else
			rc = imap_read_literal(im, f.literal, 0, err);
		if (rc != PM_OK)
			break;
		rc = im->h->read_line(im->s, &line, &len, err);
		if (rc != PM_OK)
			break;
		rc = imap_parse_fetch_more(line, len, IMAP_LITERAL_MAX, &f,
		    err);
	}
	if (rc == PM_OK && imap_wanted(im, &f)) {
		if (f.body == IMAP_BODY_QUOTED) {
			mine = 1;
			imap_begin(im, f.quoted_len);
			imap_deliver(im, f.quoted, f.quoted_len);
			im->cur->state = MSG_RECEIVED;
		} else if (f.body == IMAP_BODY_NIL)
			im->cur->state = MSG_VANISHED;
	}
	if (rc == PM_OK && mine && f.has_uid && f.uid != im->cur->uid)
		rc = pmp_errf(err, PM_EPROTO, "FETCH of UID %u returned "
		    "UID %u", im->cur->uid, f.uid);
	if (rc == PM_OK && cb != NULL && cb->fetch != NULL)
		rc = cb->fetch(im, &f, cb->arg, err);
	imap_fetch_free(&f);
	return imap_break(im, rc);
}

/* Deal with one untagged response during a command. */
static int
imap_untagged(struct imap *im, const char *line, size_t len,
    const struct imap_resp *r, const struct imap_cb *cb, char **err)
{
	char *t;
	int rc;

	if (r->status == IMAP_BYE) {
		if (im->logout)
			return PM_OK;
		t = pmp_clean(r->text, strlen(r->text), 200);
		pmp_errf(err, PM_ETEMP, "server closed the session: %s", t);
		free(t);
		return imap_break(im, PM_ETEMP);
	}
	if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "FETCH") == 0)
		return imap_fetch_resp(im, line, len, cb, err);

	if (r->status == IMAP_DATA && !r->has_num &&
	    strcmp(r->word, "CAPABILITY") == 0) {
		if ((rc = imap_set_caps(im, r->text, err)) != PM_OK)
			return rc;
	} else if ((rc = imap_code(im, r, err)) != PM_OK)
		return rc;
	if (cb != NULL && cb->untagged != NULL) {
		if ((rc = cb->untagged(im, r, cb->arg, err)) != PM_OK)
			return rc;
	}
	if (r->status == IMAP_DATA)
		return imap_skip_literals(im, line, len, err);
	return PM_OK;
}

/*
 * Read responses to the command tagged im->tag until its tagged response.
 * A NO or BAD is returned as nostatus with "WHAT failed: NO text".
 */
static int
imap_wait(struct imap *im, const char *what, const struct imap_cb *cb,
    int nostatus, char **err)
{
	struct imap_resp r;
	const char *line;
	size_t len;
	char *d;
	int rc;

	for (;;) {
		if ((rc = imap_read(im, &line, &len, &r, err)) != PM_OK)
			return rc;
		switch (r.type) {
		case IMAP_UNTAGGED:
			rc = imap_untagged(im, line, len, &r, cb, err);
			imap_resp_free(&r);
			if (rc != PM_OK)
				return rc;
			continue;
		case IMAP_CONTINUE:
			imap_resp_free(&r);
			return imap_break(im, pmp_errf(err, PM_EPROTO,
			    "%s: unexpected continuation request", what));
		}
		if (strcmp(r.tag, im->tag) != 0) {
			d = pmp_clean(r.tag, strlen(r.tag), 20);
			imap_resp_free(&r);
			rc = pmp_errf(err, PM_EPROTO, "%s: response with "
			    "unexpected tag \"%s\"", what, d);
			free(d);
			return imap_break(im, rc);
		}
		if (r.status == IMAP_OK) {
			rc = imap_code(im, &r, err);
			imap_resp_free(&r);
			return rc;
		}
		d = imap_describe(&r);
		imap_resp_free(&r);
		rc = pmp_errf(err, nostatus, "%s failed: %s", what, d);
		free(d);
		return rc;
	}
}

/* Take the next tag. */
static const char *
imap_next_tag(struct imap *im)
{
	snprintf(im->tag, sizeof im->tag, "A%u", ++im->tagno);
	return im->tag;
}

/* Send a tagged command and wait for its completion. */
static int PM_PRINTF(6, 7)
imap_command(struct imap *im, const char *what, const struct imap_cb *cb,
    int nostatus, char **err, const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int rc;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	rc = im->h->send(im->s, err, "%s %s", imap_next_tag(im), cmd);
	free(cmd);
	if (rc != PM_OK)
		return imap_break(im, rc);
	return imap_wait(im, what, cb, nostatus, err);
}

/* SASL: send AUTHENTICATE, with the initial response if there is one. */
static int
imap_sasl_start(void *ctx, const char *mech, const struct pm_secret *ir,
    char **err)
{
	struct imap *im = ctx;
	char *prefix;
	int rc;

	imap_next_tag(im);
	if (ir == NULL)
		rc = im->h->send(im->s, err, "%s AUTHENTICATE %s", im->tag,
		    mech);
	else {
		prefix = pmp_xprintf("%s AUTHENTICATE %s ", im->tag, mech);
		rc = im->h->send_secret(im->s, prefix, ir, err);
		free(prefix);
	}
	return imap_break(im, rc);
}

/* SASL: send one response line. */
static int
imap_sasl_respond(void *ctx, const struct pm_secret *resp, char **err)
{
	struct imap *im = ctx;

	return imap_break(im, im->h->send_secret(im->s, "", resp, err));
}

/* SASL: read the server's next reply to AUTHENTICATE. */
static int
imap_sasl_reply(void *ctx, int *kind_r, char **text_r, char **err)
{
	struct imap *im = ctx;
	struct imap_resp r;
	const char *line;
	size_t len;
	int rc;

	*text_r = NULL;
	for (;;) {
		if ((rc = imap_read(im, &line, &len, &r, err)) != PM_OK)
			return rc;
		if (r.type == IMAP_UNTAGGED) {
			rc = imap_untagged(im, line, len, &r, NULL, err);
			imap_resp_free(&r);
			if (rc != PM_OK)
				return rc;
			continue;
		}
		break;
	}
	if (r.type == IMAP_CONTINUE) {
		*kind_r = PM_SASL_CONTINUE;
		*text_r = r.text;
		r.text = NULL;
		imap_resp_free(&r);
		return PM_OK;
	}
	if (strcmp(r.tag, im->tag) != 0) {
		imap_resp_free(&r);
		return imap_break(im, pmp_errf(err, PM_EPROTO,
		    "AUTHENTICATE: response with unexpected tag"));
	}
	if (r.status == IMAP_OK) {
		*kind_r = PM_SASL_SUCCESS;
		rc = imap_code(im, &r, err);
		*text_r = pmp_clean(r.text, strlen(r.text), 200);
	} else {
		*kind_r = PM_SASL_FAILURE;
		/* Keep the response code: [AUTHENTICATIONFAILED] and
		 * friends say what went wrong. */
		*text_r = imap_describe(&r);
	}
	imap_resp_free(&r);
	if (rc != PM_OK) {
		free(*text_r);
		*text_r = NULL;
	}
	return rc;
}

/* Log in with LOGIN, for servers that offer no SASL mechanism. */
static int
imap_login(struct imap *im, const struct pm_secret *pw, char **err)
{
	struct pm_secret *quoted;
	const char *data;
	char *user, *prefix, *buf;
	size_t len, i, o = 0;
	int rc;

	if (im->caps.logindisabled)
		return pmp_errf(err, PM_ECONFIG, "server offers no SASL "
		    "mechanism and has LOGIN disabled");
	if ((user = imap_quote(im->acct->user)) == NULL)
		return pmp_errf(err, PM_ECONFIG, "user name contains a line "
		    "break");
	data = im->h->secret_data(pw, &len);
	if (memchr(data, '\0', len) != NULL || memchr(data, '\r', len) !=
	    NULL || memchr(data, '\n', len) != NULL) {
		free(user);
		return pmp_errf(err, PM_ECONFIG, "the password contains a "
		    "line break or NUL, which IMAP LOGIN cannot carry");
	}
	/* The password as an IMAP quoted string, built in a buffer that is
	 * wiped before it is freed. */
	buf = pmp_xmalloc(2 * len + 2);
	buf[o++] = '"';
	for (i = 0; i < len; i++) {
		if (data[i] == '"' || data[i] == '\\')
			buf[o++] = '\\';
		buf[o++] = data[i];
	}
	buf[o++] = '"';
	quoted = im->h->secret_new(buf, o);
	memset(buf, 0, o);
	__asm__ __volatile__("" : : "r"(buf) : "memory");
	free(buf);
	prefix = pmp_xprintf("%s LOGIN %s ", imap_next_tag(im), user);
	free(user);
	rc = im->h->send_secret(im->s, prefix, quoted, err);
	im->h->secret_free(quoted);
	free(prefix);
	if (rc != PM_OK)
		return imap_break(im, rc);
	return imap_wait(im, "LOGIN", NULL, PM_EAUTH, err);
}

/* Ask for the capabilities unless a response already brought them. */
static int
imap_capability(struct imap *im, char **err)
{
	int rc;

	if (im->have_caps)
		return PM_OK;
	rc = imap_command(im, "CAPABILITY", NULL, PM_EPROTO, err,
	    "CAPABILITY");
	if (rc == PM_OK && !im->have_caps)
		rc = imap_break(im, pmp_errf(err, PM_EPROTO,
		    "server sent no CAPABILITY response"));
	return rc;
}

/* The table the host's SASL engine drives IMAP with. */
static const struct pm_sasl_proto imap_sasl = {
	.start = imap_sasl_start,
	.respond = imap_sasl_respond,
	.reply = imap_sasl_reply,
	.max_line = 0,
	.overhead = sizeof "A0000 AUTHENTICATE  \r\n" - 1,
	.xoauth2_two_step = 0,
};

/* Connect, read the greeting, STARTTLS if configured, authenticate. */
static int
imap_open(struct imap *im, char **err)
{
	const struct pm_secret *pw;
	struct imap_resp r;
	const char *line;
	size_t len;
	int rc, preauth = 0;
	char *t, *mechs;

	if ((rc = im->h->connect(im->s, err)) != PM_OK)
		return imap_break(im, rc);
	if ((rc = imap_read(im, &line, &len, &r, err)) != PM_OK)
		return rc;
	if (r.type != IMAP_UNTAGGED || (r.status != IMAP_OK &&
	    r.status != IMAP_PREAUTH && r.status != IMAP_BYE)) {
		t = pmp_clean(line, len, 100);
		imap_resp_free(&r);
		rc = pmp_errf(err, PM_EPROTO, "unexpected greeting \"%s\"",
		    t);
		free(t);
		return imap_break(im, rc);
	}
	if (r.status == IMAP_BYE) {
		t = pmp_clean(r.text, strlen(r.text), 200);
		imap_resp_free(&r);
		rc = pmp_errf(err, PM_ETEMP, "server closed the session: %s",
		    t);
		free(t);
		return imap_break(im, rc);
	}
	preauth = r.status == IMAP_PREAUTH;
	rc = imap_code(im, &r, err);
	imap_resp_free(&r);
	if (rc != PM_OK || (rc = imap_capability(im, err)) != PM_OK)
		return rc;

	if (im->acct->tls == PM_TLS_STARTTLS) {
		/* Authenticated already, a session can no longer start TLS:
		 * going on would send everything in clear. */
		if (preauth)
			return pmp_errf(err, PM_ETLS, "server sent PREAUTH, "
			    "STARTTLS is impossible");
		if (!im->caps.starttls)
			return pmp_errf(err, PM_ETLS, "server does not offer "
			    "STARTTLS");
		rc = imap_command(im, "STARTTLS", NULL, PM_ETLS, err,
		    "STARTTLS");
		if (rc != PM_OK)
			return rc;
		if ((rc = im->h->starttls(im->s, err)) != PM_OK)
			return imap_break(im, rc);
		/* What the server said before TLS cannot be trusted. */
		im->have_caps = 0;
		if ((rc = imap_capability(im, err)) != PM_OK)
			return rc;
	}
	if (preauth) {
		im->h->log(im->s, PM_LOG_DEBUG, "server sent PREAUTH");
		return PM_OK;
	}

	/* Responses during the login may replace im->caps. */
	mechs = pmp_xstrndup(im->caps.mechs, strlen(im->caps.mechs));
	im->have_caps = 0;
	pw = im->h->password(im->s);
	if (*mechs == '\0' && pw != NULL)
		rc = imap_login(im, pw, err);
	else
		rc = im->h->sasl_auth(im->s, &imap_sasl, im, mechs,
		    im->caps.sasl_ir, err);
	free(mechs);
	if (rc != PM_OK)
		return rc;
	/* Capabilities change after login (UIDPLUS matters here). */
	return imap_capability(im, err);
}

/* What SELECT reports. */
struct imap_select {
	int has_exists;
	uint32_t exists;
	int has_validity;
	uint32_t validity;
};

/* SELECT: note EXISTS and UIDVALIDITY. */
static int
imap_select_cb(struct imap *im, const struct imap_resp *r, void *arg,
    char **err)
{
	struct imap_select *sel = arg;
	char *end;
	unsigned long v;

	if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "EXISTS") == 0) {
		sel->has_exists = 1;
		sel->exists = r->num;
	}
	if (r->status == IMAP_OK && r->code != NULL &&
	    strncasecmp(r->code, "UIDVALIDITY ", 12) == 0) {
		const char *p = r->code + 12;

		v = strtoul(p, &end, 10);
		if (*p < '0' || *p > '9' || *end != '\0' || v == 0 ||
		    v > UINT32_MAX)
			return imap_break(im, pmp_errf(err, PM_EPROTO,
			    "malformed UIDVALIDITY in SELECT response"));
		sel->has_validity = 1;
		sel->validity = (uint32_t)v;
	}
	return PM_OK;
}

/* A growing list of folder entries, bounded by the message count the
 * server reports (imap_list_limit()). */
struct imap_list {
	struct imap_entry *e;
	size_t n, cap;
	int has_exists;		/* the server reported a message count */
	uint32_t exists;	/* the highest it reported */
};

/* UID FETCH 1:*: an EXISTS while the listing runs (new mail) raises the
 * bound. */
static int
imap_list_untagged(struct imap *im, const struct imap_resp *r, void *arg,
    char **err)
{
	struct imap_list *l = arg;

	(void)im;
	(void)err;
	if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "EXISTS") == 0 &&
	    (!l->has_exists || r->num > l->exists)) {
		l->has_exists = 1;
		l->exists = r->num;
	}
	return PM_OK;
}

/* UID FETCH 1:* (UID RFC822.SIZE): collect every UID with its size. */
static int
imap_list_cb(struct imap *im, const struct imap_fetch *f, void *arg,
    char **err)
{
	struct imap_list *l = arg;
	size_t max;

	if (!f->has_uid)
		return PM_OK;	/* an unsolicited flag update */
	max = imap_list_limit(l->has_exists, l->exists);
	if (l->n >= max) {
		if (l->has_exists)
			return pmp_errf(err, PM_EPROTO, "UID FETCH 1:*: the "
			    "server sent more than %zu messages for a folder "
			    "of %u (EXISTS)", max, l->exists);
		return pmp_errf(err, PM_EPROTO, "UID FETCH 1:*: the server "
		    "sent more than %zu messages", max);
	}
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 256 : l->cap * 2;
		l->e = pmp_xreallocarray(l->e, l->cap, sizeof *l->e);
	}
	l->e[l->n].uid = f->uid;
	l->e[l->n].size = f->has_size ? f->size : 0;
	l->n++;
	return PM_OK;
}

/* Order entries by UID. */
static int
imap_entry_cmp(const void *a, const void *b)
{
	const struct imap_entry *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Order UIDs. */
static int
imap_uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Flag or delete uids[0..n) on the server, as the account says. */
static int
imap_dispose(struct imap *im, const char *folder, uint32_t *uids, size_t n,
    char **err)
{
	const char *flag;
	size_t i, k;
	char *set;
	int rc = PM_OK;

	if (n == 0 || (im->acct->keep && !im->acct->mark_seen))
		return PM_OK;
	qsort(uids, n, sizeof *uids, imap_uid_cmp);
	flag = im->acct->keep ? "\\Seen" : "\\Deleted";
	for (i = 0; i < n && rc == PM_OK; i += k) {
		k = imap_uidset(uids + i, n - i, IMAP_SET_MAX, &set);
		if (k == 0)
			return pmp_errf(err, PM_EINTERNAL, "cannot build a "
			    "UID set");
		rc = imap_command(im, "UID STORE", NULL, PM_EPROTO, err,
		    "UID STORE %s +FLAGS.SILENT (%s)", set, flag);
		free(set);
	}
	if (rc != PM_OK || im->acct->keep) {
		if (rc == PM_OK)
			im->h->log(im->s, PM_LOG_DEBUG, "%s: %zu messages "
			    "marked seen", folder, n);
		return rc;
	}
	if (im->caps.uidplus) {
		for (i = 0; i < n && rc == PM_OK; i += k) {
			k = imap_uidset(uids + i, n - i, IMAP_SET_MAX, &set);
			if (k == 0)
				return pmp_errf(err, PM_EINTERNAL, "cannot "
				    "build a UID set");
			rc = imap_command(im, "UID EXPUNGE", NULL, PM_EPROTO,
			    err, "UID EXPUNGE %s", set);
			free(set);
		}
	} else {
		/*
		 * Without UIDPLUS only a plain EXPUNGE exists.  It also
		 * removes every other message flagged \Deleted in this
		 * folder, whoever flagged it; fetchmail does the same.
		 */
		rc = imap_command(im, "EXPUNGE", NULL, PM_EPROTO, err,
		    "EXPUNGE");
	}
	if (rc == PM_OK)
		im->h->log(im->s, PM_LOG_DEBUG, "%s: %zu messages deleted",
		    folder, n);
	return rc;
}

/* Make the finished messages durable, then dispose of them and of the
 * pending known ones.  *n_r is reset when the batch is done with. */
static int
imap_flush(struct imap *im, const char *folder, uint32_t *uids, size_t *n_r,
    char **err)
{
	int rc;

	if ((rc = im->h->commit(im->s, err)) != PM_OK)
		return rc;
	rc = imap_dispose(im, folder, uids, *n_r, err);
	*n_r = 0;
	return rc;
}

/*
 * Fetch one message into the delivery.  *got_r is 1 when it was finished,
 * 0 when it had vanished.  *delivery_r is 1 when the failure returned is
 * the delivery's (the dialogue is still in step).
 */
static int
imap_fetch_one(struct imap *im, const char *folder, uint32_t uid,
    int *got_r, int *delivery_r, char **err)
{
	struct imap_msg c;
	char *what;
	int rc;

	*got_r = 0;
	*delivery_r = 0;
	memset(&c, 0, sizeof c);
	c.folder = folder;
	c.uid = uid;
	snprintf(c.uidstr, sizeof c.uidstr, "%u", uid);
	what = pmp_xprintf("UID FETCH %u", uid);
	im->cur = &c;
	rc = imap_command(im, what, NULL, PM_ETEMP, err,
	    "UID FETCH %u (BODY.PEEK[])", uid);
	im->cur = NULL;
	free(what);
	if (rc != PM_OK) {
		if (c.m != NULL)
			im->h->msg_abort(c.m);
		free(c.derr);
		return rc;
	}
	if (c.dstatus != PM_OK) {
		*delivery_r = 1;
		free(*err);
		*err = c.derr != NULL ? c.derr :
		    pmp_xprintf("delivery of UID %u failed", uid);
		return c.dstatus;
	}
	if (c.state != MSG_RECEIVED) {
		im->h->log(im->s, PM_LOG_DEBUG, "%s: UID %u vanished",
		    folder, uid);
		return PM_OK;
	}
	/* msg_finish() frees the message whatever it returns. */
	if ((rc = im->h->msg_finish(c.m, err)) != PM_OK) {
		*delivery_r = 1;
		return rc;
	}
	*got_r = 1;
	return PM_OK;
}

/* Remember a failed delivery of one message (the worst one is reported
 * when the run ends) and log it; takes *err. */
static void
imap_note_failure(struct imap *im, const char *folder, uint32_t uid, int rc,
    char **err)
{
	im->h->log(im->s, PM_LOG_ERR, "%s: UID %u left on the server: %s",
	    folder, uid, *err != NULL ? *err : "delivery failed");
	if (im->dworst == PM_OK ||
	    (rc == PM_EDELIVER && im->dworst != PM_EDELIVER)) {
		free(im->dworst_err);
		im->dworst = rc;
		im->dworst_err = *err;
	} else
		free(*err);
	*err = NULL;
}

/* Fetch the new messages of one folder and dispose of them.  A message
 * whose delivery failed (PM_ETEMP, PM_EDELIVER) is left on the server and
 * noted in im->dworst; the others go on. */
static int
imap_folder(struct imap *im, const char *folder, char **err)
{
	const struct pm_account_info *a = im->acct;
	struct imap_select sel;
	struct imap_list l;
	struct imap_cb cb;
	const char **present = NULL;
	char *quoted, *what, *names = NULL, validity[16], *ferr = NULL;
	uint32_t *fresh = NULL, *batch = NULL;
	size_t i, j, nfresh = 0, nbatch = 0, nskip = 0, nfetched = 0;
	int rc, got, delivery;

	memset(&sel, 0, sizeof sel);
	memset(&l, 0, sizeof l);
	if ((quoted = imap_quote(folder)) == NULL)
		return pmp_errf(err, PM_ECONFIG, "folder name contains a "
		    "line break");
	what = pmp_xprintf("SELECT %s", quoted);
	memset(&cb, 0, sizeof cb);
	cb.untagged = imap_select_cb;
	cb.arg = &sel;
	rc = imap_command(im, what, &cb, PM_EPROTO, err, "SELECT %s",
	    quoted);
	free(quoted);
	if (rc == PM_OK && !sel.has_validity)
		rc = pmp_errf(err, PM_EPROTO, "%s: server sent no "
		    "UIDVALIDITY", what);
	free(what);
	if (rc != PM_OK)
		return rc;
	snprintf(validity, sizeof validity, "%u", sel.validity);
	rc = im->h->state_validity(im->s, folder, validity, err);
	if (rc != PM_OK)
		return rc;

	if (!sel.has_exists || sel.exists > 0) {
		l.has_exists = sel.has_exists;
		l.exists = sel.exists;
		memset(&cb, 0, sizeof cb);
		cb.untagged = imap_list_untagged;
		cb.fetch = imap_list_cb;
		cb.arg = &l;
		rc = imap_command(im, "UID FETCH 1:*", &cb, PM_EPROTO, err,
		    "UID FETCH 1:* (UID RFC822.SIZE)");
		if (rc != PM_OK)
			goto out;
	}
	if (l.n > 0)
		qsort(l.e, l.n, sizeof *l.e, imap_entry_cmp);
	for (i = j = 0; i < l.n; i++) {
		if (j == 0 || l.e[i].uid != l.e[j - 1].uid)
			l.e[j++] = l.e[i];
	}
	l.n = j;

	/* The complete list, so the state can forget what is gone. */
	present = pmp_xreallocarray(NULL, l.n, sizeof *present);
	names = pmp_xreallocarray(NULL, l.n, 11);
	for (i = 0; i < l.n; i++) {
		snprintf(names + 11 * i, 11, "%u", l.e[i].uid);
		present[i] = names + 11 * i;
	}
	rc = im->h->state_prune(im->s, folder, present, l.n, err);
	if (rc != PM_OK)
		goto out;

	/* Known UIDs still on the server with keep = no: a run committed
	 * them but did not get to delete them.  They go with the first
	 * batch. */
	fresh = pmp_xreallocarray(NULL, l.n, sizeof *fresh);
	batch = pmp_xreallocarray(NULL, l.n + IMAP_BATCH, sizeof *batch);
	for (i = 0; i < l.n; i++) {
		if (im->h->state_known(im->s, folder, present[i])) {
			if (!a->keep)
				batch[nbatch++] = l.e[i].uid;
			continue;
		}
		if (a->size_limit > 0 && l.e[i].size > a->size_limit) {
			im->h->skipped(im->s, folder, present[i],
			    l.e[i].size);
			nskip++;
			continue;
		}
		fresh[nfresh++] = l.e[i].uid;
	}
	im->h->log(im->s, PM_LOG_INFO, "%s: %zu new of %zu messages",
	    folder, nfresh, l.n);
	if (nskip > 0)
		im->h->log(im->s, PM_LOG_INFO, "%s: %zu messages over the "
		    "size limit skipped", folder, nskip);

	for (i = 0; i < nfresh; i++) {
		rc = imap_fetch_one(im, folder, fresh[i], &got, &delivery,
		    err);
		if (rc != PM_OK && delivery &&
		    (rc == PM_ETEMP || rc == PM_EDELIVER)) {
			/* This message alone failed: it stays on the server
			 * (not recorded, not disposed of); go on. */
			imap_note_failure(im, folder, fresh[i], rc, err);
			continue;
		}
		if (rc != PM_OK) {
			if (delivery) {
				/* Keep what was delivered before. */
				if (imap_flush(im, folder, batch, &nbatch,
				    &ferr) != PM_OK) {
					im->h->log(im->s, PM_LOG_ERR, "%s",
					    ferr);
					free(ferr);
				}
			} else if (im->h->commit(im->s, &ferr) != PM_OK) {
				/* Record what was delivered; the server is
				 * told nothing. */
				im->h->log(im->s, PM_LOG_ERR, "%s", ferr);
				free(ferr);
			}
			goto out;
		}
		if (got) {
			batch[nbatch++] = fresh[i];
			nfetched++;
		}
		if (got && nfetched % IMAP_BATCH == 0) {
			if ((rc = imap_flush(im, folder, batch, &nbatch,
			    err)) != PM_OK)
				goto out;
		}
	}
	rc = imap_flush(im, folder, batch, &nbatch, err);
	if (rc == PM_OK)
		im->h->log(im->s, PM_LOG_DEBUG, "%s: %zu messages fetched",
		    folder, nfetched);

out:
	free(l.e);
	free(present);
	free(names);
	free(fresh);
	free(batch);
	return rc;
}

/* Say goodbye; errors do not matter any more. */
static void
imap_logout(struct imap *im)
{
	char *err = NULL;

	im->logout = 1;
	(void)imap_command(im, "LOGOUT", NULL, PM_ETEMP, &err, "LOGOUT");
	free(err);
}

/* The plugin's entry: fetch every folder of the session's account. */
static int
imap_fetch(const struct pm_host *host, struct pm_session *s, char **err)
{
	struct imap im;
	size_t i;
	int rc;

	memset(&im, 0, sizeof im);
	im.h = host;
	im.s = s;
	im.acct = host->account(s);
	im.buf = pmp_xmalloc(IMAP_CHUNK);

	rc = imap_open(&im, err);
	for (i = 0; rc == PM_OK && i < im.acct->nfolders; i++)
		rc = imap_folder(&im, im.acct->folders[i], err);
	if (!im.broken)
		imap_logout(&im);
	host->disconnect(s);
	imap_caps_free(&im.caps);
	free(im.buf);
	if (rc == PM_OK && im.dworst != PM_OK) {
		rc = im.dworst;
		*err = im.dworst_err;
	} else
		free(im.dworst_err);
	return rc;
}

PM_PLUGIN_EXPORT const struct pm_plugin pullmail_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "imap",
	.port_tls = 993,
	.port_plain = 143,
	.fetch = imap_fetch,
};
