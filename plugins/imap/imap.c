/*
 * The IMAP4rev1 backend (RFC 3501), driven step by step by the core's
 * fetch engine: log in, select a folder, list its messages with their
 * UIDs and sizes, fetch sets of them with several UID FETCH commands in
 * flight, flag or delete sets of them, wait for new mail with IDLE, log
 * out.
 *
 * Which messages to fetch, when they are durable and what becomes of them
 * on the server is the engine's business; this file only speaks IMAP.  A
 * message body is handed to the sink as the message it was asked for only
 * when the response carries that message's UID: never by the order of
 * the responses, and a sequence number is only ever a guess to be checked.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pullmail/plugin.h>

#include "imap-parse.h"

#define IMAP_CHUNK	(16 * 1024)	/* literal bytes per read: a TLS record
				 * holds at most 16 KiB, so more buys
				 * nothing but memory per connection */
#define IMAP_SET_MAX	7900		/* bytes of UID set per command */
#define IMAP_CMD_MSGS	32		/* messages per UID FETCH command */
#define IMAP_CMD_BYTES	(2 * 1024 * 1024) /* listed bytes per UID FETCH
					 * command; a larger message is
					 * its own command */
#define IMAP_INFLIGHT	8		/* commands outstanding at once */
#define IMAP_IDLE_MAX_MS (29 * 60 * 1000) /* longest IDLE: servers may log
					 * out a client silent for 30
					 * minutes (RFC 2177) */
#define IMAP_IDLE_SLACK	100000		/* responses a server may send
					 * after IDLE or DONE beyond two
					 * per message of the folder */

struct imap_fx;

/* A message of a folder listing. */
struct imap_entry {
	uint32_t uid;
	uint64_t size;
};

/* One connection to one account's server: the plugin's pm_conn. */
struct imap {
	const struct pm_host *h;
	struct pm_session *s;
	const struct pm_account_info *acct;
	unsigned tagno;
	char tag[16];		/* tag of the last command sent */
	struct imap_caps caps;
	int have_caps;		/* caps came since they were last reset */
	int broken;		/* the dialogue is out of step: no LOGOUT */
	int logout;		/* LOGOUT sent: BYE is expected */
	int authed;		/* logged in: a broken connection from now
				 * on is worth a new session at once */
	int hinted;		/* the host was told why the session fails */
	char *buf;		/* IMAP_CHUNK bytes for literals, while
				 * they come; NULL in between */

	/* The selected folder. */
	char *folder;		/* its name, or NULL before select() */
	char validity[16];	/* UIDVALIDITY in decimal */
	int has_exists;		/* the server reported a message count */
	uint32_t exists;	/* the count, following EXISTS and EXPUNGE */
	uint32_t recent;	/* the last RECENT count, 0 before one */
	int grew;		/* an EXISTS or RECENT raised its count since
				 * the last list() began: new mail */
	uint32_t *seq;		/* seq[i]: UID of message i + 1, 0 when
				 * unknown; from the listing, kept up to date
				 * by EXPUNGE and EXISTS */
	size_t nseq, seqcap;

	/* The last listing, sorted by UID. */
	struct imap_entry *ent;
	struct pm_entry *pe;	/* what list() handed out */
	char *names;		/* every pe[].uid, one allocation */
	size_t nent;

	struct imap_fx *fx;	/* the fetch() running, or NULL */
};

/* A message fetch() was asked for. */
struct imap_want {
	size_t idx;		/* into the listing */
	uint32_t uid;
	uint64_t size;		/* as listed */
	int state;		/* enum below */
};

enum {
	WANT_QUEUED = 0,	/* no command asked for it yet */
	WANT_SENT,		/* a command in flight asked for it */
	WANT_BEGUN,		/* its body is being streamed to the sink */
	WANT_DONE		/* the sink was told: end() or missing() */
};

/* A running fetch(): what was asked for and where it goes. */
struct imap_fx {
	struct imap_want *w;	/* ascending by UID */
	uint32_t *uids;		/* the same UIDs, for imap_uidset() */
	size_t n;
	const struct pm_sink *sink;
	struct pm_fetch *f;
	int lost;		/* a body came with no UID: whose it was is
				 * unknown */
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

/*
 * A run of commands over the items [0, total) of some request, at most
 * window of them in flight (RFC 3501 5.5: commands on UIDs that do not
 * depend on each other may be pipelined).
 */
struct imap_pipe {
	const char *what;	/* command name for errors */
	size_t total;
	size_t window;		/* 1..IMAP_INFLIGHT */
	/*
	 * Send the command for the items from first on.  *n_r is how many
	 * it covers (at least 1), *set_r a malloc'd description of them for
	 * the log (the UID set), or NULL.
	 */
	int (*send)(struct imap *, void *, size_t first, size_t *n_r,
	    char **set_r, char **err);
	/* The command over [first, first + n) completed with r (OK or NO). */
	int (*done)(struct imap *, void *, size_t first, size_t n,
	    const char *set, const struct imap_resp *r, char **err);
	const struct imap_cb *cb;
	void *arg;
};

/* Tell the host why the session is about to fail with PM_ETEMP (enum
 * pm_retry); the first reason counts. */
static void
imap_hint(struct imap *im, int kind, unsigned ms)
{
	if (im->hinted || im->h->retry_hint == NULL)
		return;
	im->hinted = 1;
	im->h->retry_hint(im->s, kind, ms);
}

/* Mark the dialogue broken and pass status through.  A connection lost
 * after login is worth a new session. */
static int
imap_break(struct imap *im, int status)
{
	if (status != PM_OK)
		im->broken = 1;
	if (status == PM_ETEMP && im->authed && !im->logout)
		imap_hint(im, PM_RETRY_RECONNECT, 0);
	return status;
}

/* The name of the selected folder, for log messages. */
static const char *
imap_folder(const struct imap *im)
{
	return im->folder != NULL ? im->folder : "-";
}

/* Describe a tagged or untagged status response for an error message. */
static char *
imap_describe(const struct imap_resp *r)
{
	char *code = NULL, *text, *out;

	text = imap_clean_text(r->text, 200);
	if (r->code != NULL)
		code = imap_clean_text(r->code, 100);
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
	if (r->code == NULL)
		return PM_OK;
	if (strncasecmp(r->code, "CAPABILITY ", 11) == 0)
		return imap_set_caps(im, r->code + 11, err);
	/* The host's log escapes the text; only its length is ours. */
	if (strcasecmp(r->code, "ALERT") == 0)
		im->h->log(im->s, PM_LOG_WARN, "server alert: %.200s%s",
		    r->text, strlen(r->text) > 200 ? "..." : "");
	return PM_OK;
}

/* Note the UID of message number seqno (a FETCH response said so). */
static void
imap_seq_set(struct imap *im, uint32_t seqno, uint32_t uid)
{
	size_t n;

	/* A number beyond the count is the server's mistake: no guess is
	 * better than a wrong one, and no map larger than a listing. */
	if (seqno == 0 || seqno > IMAP_LIST_MAX ||
	    (im->has_exists && seqno > im->exists))
		return;
	if (seqno > im->nseq) {
		if (seqno > im->seqcap) {
			n = im->seqcap == 0 ? 256 : im->seqcap;
			while (n < seqno)
				n *= 2;
			im->seq = pmp_xreallocarray(im->seq, n,
			    sizeof *im->seq);
			im->seqcap = n;
		}
		memset(im->seq + im->nseq, 0, (seqno - im->nseq) *
		    sizeof *im->seq);
		im->nseq = seqno;
	}
	im->seq[seqno - 1] = uid;
}

/* The UID message number seqno had when last heard of, or 0. */
static uint32_t
imap_seq_uid(const struct imap *im, uint32_t seqno)
{
	if (seqno == 0 || seqno > im->nseq)
		return 0;
	return im->seq[seqno - 1];
}

/* "* n EXISTS": the folder holds n messages. */
static void
imap_exists(struct imap *im, uint32_t n)
{
	if (n > im->exists)
		im->grew = 1;
	im->has_exists = 1;
	im->exists = n;
	if (im->nseq > n)
		im->nseq = n;
}

/* "* n RECENT": n messages are new to this session.  Dovecot sends it
 * also after an EXPUNGE, with a count that went down. */
static void
imap_recent(struct imap *im, uint32_t n)
{
	if (n > im->recent)
		im->grew = 1;
	im->recent = n;
}

/* "* n EXPUNGE": message n is gone and the numbers above it move down. */
static void
imap_expunge(struct imap *im, uint32_t n)
{
	if (n == 0)
		return;
	if (im->exists > 0)
		im->exists--;
	if (n <= im->nseq) {
		memmove(im->seq + n - 1, im->seq + n, (im->nseq - n) *
		    sizeof *im->seq);
		im->nseq--;
	}
}

/* Read and parse one response line. */
static int
imap_read(struct imap *im, const char **line_r, size_t *len_r,
    struct imap_resp *r, char **err)
{
	char *d;
	unsigned ms;
	int rc, kind;

	rc = im->h->read_line(im->s, line_r, len_r, err);
	if (rc != PM_OK)
		return imap_break(im, rc);
	rc = imap_parse_resp(*line_r, *len_r, r, err);
	if (rc != PM_OK)
		return imap_break(im, rc);
	/* Exchange Online's NO or BAD that a new session gets past, to any
	 * command: never a refusal of the command or the login. */
	if (r->type != IMAP_TAGGED || (r->status != IMAP_NO &&
	    r->status != IMAP_BAD) || (kind = pmp_transient(r->text,
	    &ms)) == 0)
		return PM_OK;
	d = imap_describe(r);
	imap_resp_free(r);
	imap_hint(im, kind, ms);
	rc = pmp_errf(err, PM_ETEMP, "the server turned a command away for "
	    "now: %s", d);
	free(d);
	return imap_break(im, rc);
}

/* Read n bytes of a literal in bounded chunks, streaming them into the
 * running fetch's message m, or dropping them when m is NULL. */
static int
imap_read_literal(struct imap *im, uint64_t n, struct pm_msg *m,
    char **err)
{
	size_t want, got;
	int rc;

	/* Made when a literal comes, given back after a fetch: a session
	 * that idles holds no chunk. */
	if (im->buf == NULL)
		im->buf = pmp_xmalloc(IMAP_CHUNK);
	while (n > 0) {
		want = n > IMAP_CHUNK ? IMAP_CHUNK : (size_t)n;
		rc = im->h->read_bytes(im->s, im->buf, want, &got, err);
		if (rc != PM_OK)
			return imap_break(im, rc);
		if (got == 0 || got > want)
			return imap_break(im, pmp_errf(err, PM_EINTERNAL,
			    "read_bytes returned %zu of %zu bytes", got,
			    want));
		if (m != NULL)
			im->fx->sink->write(m, im->buf, got);
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
		if ((rc = imap_read_literal(im, n, NULL, err)) != PM_OK)
			return rc;
		rc = im->h->read_line(im->s, &line, &len, err);
		if (rc != PM_OK)
			return imap_break(im, rc);
	}
}

/* The message of the running fetch with this UID, or NULL. */
static struct imap_want *
imap_want_find(struct imap_fx *fx, uint32_t uid)
{
	size_t lo = 0, hi = fx->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (fx->w[mid].uid == uid)
			return &fx->w[mid];
		if (fx->w[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * The message a FETCH response's body is for, as far as is known when the
 * body starts: by the UID when it came first, else (Exchange sends the UID
 * after the body) the UID the sequence number had, a guess that is
 * checked when the response ends.  NULL when no message asked for and not
 * yet received matches.
 */
static struct imap_want *
imap_body_target(struct imap *im, const struct imap_fetch *f)
{
	struct imap_want *w;
	uint32_t uid;

	uid = f->has_uid ? f->uid : imap_seq_uid(im, f->seq);
	if (uid == 0 || (w = imap_want_find(im->fx, uid)) == NULL)
		return NULL;
	return w->state == WANT_SENT ? w : NULL;
}

/*
 * A complete FETCH response during fetch(): end the message its body was
 * streamed to, complete only when the response carried that message's
 * UID, or report what the response says about a message asked for.  w
 * and m are the message the body went to, if any; body is 1 when the
 * response had a BODY[] literal.
 */
static void
imap_settle(struct imap *im, const struct imap_fetch *f,
    struct imap_want *w, struct pm_msg *m, int body)
{
	struct imap_fx *fx = im->fx;
	struct imap_want *x = NULL;

	/* The message the response's UID names, if it still waits. */
	if (f->has_uid && (x = imap_want_find(fx, f->uid)) != NULL &&
	    x->state != WANT_SENT)
		x = NULL;
	if (m == NULL && !body) {
		if (x != NULL && f->body == IMAP_BODY_QUOTED) {
			x->state = WANT_DONE;
			m = fx->sink->begin(fx->f, x->idx);
			if (f->quoted_len > 0)
				fx->sink->write(m, f->quoted, f->quoted_len);
			fx->sink->end(m, 1);
		} else if (x != NULL && f->body == IMAP_BODY_NIL) {
			im->h->log(im->s, PM_LOG_DEBUG, "%s: UID %u vanished",
			    imap_folder(im), x->uid);
			x->state = WANT_DONE;
			fx->sink->missing(fx->f, x->idx, PM_OK,
			    "expunged meanwhile");
		} else if (f->body == IMAP_BODY_QUOTED && !f->has_uid) {
			im->h->log(im->s, PM_LOG_WARN, "%s: FETCH response "
			    "%u with a body and no UID dropped",
			    imap_folder(im), f->seq);
			fx->lost = 1;
		}
		return;
	}
	if (m != NULL) {
		w->state = WANT_DONE;
		if (f->has_uid && f->uid == w->uid) {
			fx->sink->end(m, 1);
			return;
		}
		fx->sink->end(m, 0);
		fx->lost |= !f->has_uid;
		if (f->has_uid)
			im->h->log(im->s, PM_LOG_WARN, "%s: FETCH response "
			    "%u taken for UID %u carried UID %u: discarded",
			    imap_folder(im), f->seq, w->uid, f->uid);
		else
			im->h->log(im->s, PM_LOG_WARN, "%s: FETCH response "
			    "%u taken for UID %u carried no UID: discarded",
			    imap_folder(im), f->seq, w->uid);
	} else if (!f->has_uid) {
		im->h->log(im->s, PM_LOG_WARN, "%s: FETCH response %u with "
		    "a body and no UID dropped", imap_folder(im), f->seq);
		fx->lost = 1;
	} else if (x != NULL)
		im->h->log(im->s, PM_LOG_WARN, "%s: FETCH response %u: the "
		    "body of UID %u came before its UID and was dropped",
		    imap_folder(im), f->seq, x->uid);
	/* A body that came under another message's number or before its
	 * UID was that message's own, lost here: it stays on the server. */
	if (x != NULL) {
		x->state = WANT_DONE;
		fx->sink->missing(fx->f, x->idx, PM_ETEMP, "its FETCH "
		    "response could not be matched to it");
	}
}

/* Read a whole FETCH response that starts with line, with its literals;
 * during fetch() its body goes to the sink (imap_body_target()). */
static int
imap_fetch_resp(struct imap *im, const char *line, size_t len,
    const struct imap_cb *cb, char **err)
{
	struct imap_fx *fx = im->fx;
	struct imap_want *w = NULL;
	struct pm_msg *m = NULL, *into;
	struct imap_fetch f;
	int rc, body = 0;

	rc = imap_parse_fetch(line, len, IMAP_LITERAL_MAX, &f, err);
	while (rc == PM_OK && f.literal_pending) {
		into = NULL;
		if (f.literal_body && !body) {
			/* The first BODY[] only; a second is dropped. */
			body = 1;
			if (fx != NULL &&
			    (w = imap_body_target(im, &f)) != NULL) {
				w->state = WANT_BEGUN;
				m = into = fx->sink->begin(fx->f, w->idx);
			}
		}
		if ((rc = imap_read_literal(im, f.literal, into, err)) !=
		    PM_OK)
			break;
		rc = im->h->read_line(im->s, &line, &len, err);
		if (rc != PM_OK)
			break;
		rc = imap_parse_fetch_more(line, len, IMAP_LITERAL_MAX, &f,
		    err);
	}
	if (rc != PM_OK) {
		if (m != NULL) {
			w->state = WANT_DONE;
			fx->sink->end(m, 0);
		}
		imap_fetch_free(&f);
		return imap_break(im, rc);
	}
	if (f.has_uid)
		imap_seq_set(im, f.seq, f.uid);
	if (fx != NULL)
		imap_settle(im, &f, w, m, body);
	if (cb != NULL && cb->fetch != NULL)
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
	unsigned ms;
	int rc, kind;

	if (r->status == IMAP_BYE) {
		if (im->logout)
			return PM_OK;
		/* Exchange ends a session whose token expired so; any BYE
		 * ends this session only. */
		if ((kind = pmp_transient(r->text, &ms)) == 0)
			kind = PM_RETRY_RECONNECT;
		imap_hint(im, kind, ms);
		t = pmp_clean(r->text, strlen(r->text), 200);
		pmp_errf(err, PM_ETEMP, "server closed the session: %s", t);
		free(t);
		return imap_break(im, PM_ETEMP);
	}
	if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "FETCH") == 0)
		return imap_fetch_resp(im, line, len, cb, err);

	if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "EXISTS") == 0)
		imap_exists(im, r->num);
	else if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "EXPUNGE") == 0)
		imap_expunge(im, r->num);
	else if (r->status == IMAP_DATA && r->has_num &&
	    strcmp(r->word, "RECENT") == 0)
		imap_recent(im, r->num);
	else if (r->status == IMAP_DATA && !r->has_num &&
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

/* Read responses, dealing with the untagged ones, up to the next tagged
 * one, which is left in *r (imap_resp_free() it). */
static int
imap_next(struct imap *im, const char *what, const struct imap_cb *cb,
    struct imap_resp *r, char **err)
{
	const char *line;
	size_t len;
	int rc;

	for (;;) {
		if ((rc = imap_read(im, &line, &len, r, err)) != PM_OK)
			return rc;
		if (r->type == IMAP_TAGGED)
			return PM_OK;
		if (r->type == IMAP_CONTINUE) {
			imap_resp_free(r);
			return imap_break(im, pmp_errf(err, PM_EPROTO,
			    "%s: unexpected continuation request", what));
		}
		rc = imap_untagged(im, line, len, r, cb, err);
		imap_resp_free(r);
		if (rc != PM_OK)
			return rc;
	}
}

/* A tagged response with a tag nothing is waiting for. */
static int
imap_bad_tag(struct imap *im, const char *what, struct imap_resp *r,
    char **err)
{
	char *d;
	int rc;

	d = pmp_clean(r->tag, strlen(r->tag), 20);
	imap_resp_free(r);
	rc = pmp_errf(err, PM_EPROTO, "%s: response with unexpected tag "
	    "\"%s\"", what, d);
	free(d);
	return imap_break(im, rc);
}

/*
 * The tagged completion r of command what (freed here): its response code
 * taken in for OK, else nostatus with "WHAT failed: NO text".
 */
static int
imap_completed(struct imap *im, struct imap_resp *r, const char *what,
    int nostatus, char **err)
{
	char *d;
	int rc;

	if (r->status == IMAP_OK) {
		rc = imap_code(im, r, err);
		imap_resp_free(r);
		return rc;
	}
	d = imap_describe(r);
	imap_resp_free(r);
	rc = pmp_errf(err, nostatus, "%s failed: %s", what, d);
	free(d);
	return rc;
}

/* Read responses to the command tagged im->tag until its tagged response,
 * and take it as imap_completed() does. */
static int
imap_wait(struct imap *im, const char *what, const struct imap_cb *cb,
    int nostatus, char **err)
{
	struct imap_resp r;
	int rc;

	if ((rc = imap_next(im, what, cb, &r, err)) != PM_OK)
		return rc;
	if (strcmp(r.tag, im->tag) != 0)
		return imap_bad_tag(im, what, &r, err);
	return imap_completed(im, &r, what, nostatus, err);
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

/*
 * Run the commands of p, keeping up to p->window of them in flight and
 * sending the next as each completes, in whatever order the server
 * completes them.  A NO goes to p->done like an OK; a BAD is PM_EPROTO.
 * A failure with commands still in flight leaves the dialogue broken.
 */
static int
imap_pipeline(struct imap *im, const struct imap_pipe *p, char **err)
{
	struct {
		unsigned tagno;		/* 0: the slot is free */
		size_t first, n;
		char *set;
	} slot[IMAP_INFLIGHT];
	struct imap_resp r;
	size_t next = 0, live = 0, i;
	char tag[16], *d;
	int rc = PM_OK;

	memset(slot, 0, sizeof slot);
	for (;;) {
		while (live < p->window && live < IMAP_INFLIGHT &&
		    next < p->total) {
			for (i = 0; slot[i].tagno != 0; i++)
				;
			rc = p->send(im, p->arg, next, &slot[i].n,
			    &slot[i].set, err);
			if (rc != PM_OK)
				goto out;
			slot[i].tagno = im->tagno;
			slot[i].first = next;
			next += slot[i].n;
			live++;
		}
		if (live == 0)
			break;
		if ((rc = imap_next(im, p->what, p->cb, &r, err)) != PM_OK)
			goto out;
		for (i = 0; i < IMAP_INFLIGHT; i++) {
			if (slot[i].tagno == 0)
				continue;
			snprintf(tag, sizeof tag, "A%u", slot[i].tagno);
			if (strcmp(r.tag, tag) == 0)
				break;
		}
		if (i == IMAP_INFLIGHT) {
			rc = imap_bad_tag(im, p->what, &r, err);
			goto out;
		}
		if (r.status == IMAP_BAD) {
			d = imap_describe(&r);
			rc = pmp_errf(err, PM_EPROTO, "%s%s%s failed: %s",
			    p->what, slot[i].set != NULL ? " " : "",
			    slot[i].set != NULL ? slot[i].set : "", d);
			free(d);
		} else if (r.status != IMAP_OK ||
		    (rc = imap_code(im, &r, err)) == PM_OK)
			rc = p->done(im, p->arg, slot[i].first, slot[i].n,
			    slot[i].set, &r, err);
		imap_resp_free(&r);
		free(slot[i].set);
		slot[i].set = NULL;
		slot[i].tagno = 0;
		live--;
		if (rc != PM_OK)
			goto out;
	}
out:
	for (i = 0; i < IMAP_INFLIGHT; i++)
		free(slot[i].set);
	if (live > 0)
		im->broken = 1;
	return rc;
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
imap_start(struct imap *im, char **err)
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
		im->authed = 1;
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
	im->authed = 1;
	/* Capabilities change after login (UIDPLUS matters here). */
	return imap_capability(im, err);
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

/* Forget the listing. */
static void
imap_list_free(struct imap *im)
{
	free(im->ent);
	free(im->pe);
	free(im->names);
	im->ent = NULL;
	im->pe = NULL;
	im->names = NULL;
	im->nent = 0;
}

/* Free a connection (already disconnected). */
static void
imap_free(struct imap *im)
{
	imap_list_free(im);
	imap_caps_free(&im->caps);
	free(im->seq);
	free(im->folder);
	free(im->buf);
	free(im);
}

/* The plugin's open slot: connect and log in. */
static int
imap_open(const struct pm_host *host, struct pm_session *s,
    struct pm_conn **conn_r, char **err)
{
	struct imap *im;
	int rc;

	*conn_r = NULL;
	im = pmp_xmalloc(sizeof *im);
	memset(im, 0, sizeof *im);
	im->h = host;
	im->s = s;
	im->acct = host->account(s);
	if ((rc = imap_start(im, err)) != PM_OK) {
		if (!im->broken)
			imap_logout(im);
		host->disconnect(s);
		imap_free(im);
		return rc;
	}
	*conn_r = (struct pm_conn *)im;
	return PM_OK;
}

/* SELECT: note UIDVALIDITY (EXISTS is noted for every command). */
static int
imap_select_cb(struct imap *im, const struct imap_resp *r, void *arg,
    char **err)
{
	uint32_t *validity = arg;
	const char *p;
	char *end;
	unsigned long v;

	if (r->status != IMAP_OK || r->code == NULL ||
	    strncasecmp(r->code, "UIDVALIDITY ", 12) != 0)
		return PM_OK;
	p = r->code + 12;
	v = strtoul(p, &end, 10);
	if (*p < '0' || *p > '9' || *end != '\0' || v == 0 ||
	    v > UINT32_MAX)
		return imap_break(im, pmp_errf(err, PM_EPROTO,
		    "malformed UIDVALIDITY in SELECT response"));
	*validity = (uint32_t)v;
	return PM_OK;
}

/* The plugin's select slot: SELECT the folder. */
static int
imap_select(struct pm_conn *c, const char *folder, struct pm_folder *f_r,
    char **err)
{
	struct imap *im = (struct imap *)c;
	struct imap_cb cb;
	uint32_t validity = 0;
	char *wire, *quoted, *what, *t;
	int rc;

	imap_list_free(im);
	free(im->folder);
	im->folder = NULL;
	im->validity[0] = '\0';
	im->has_exists = 0;
	im->exists = 0;
	im->recent = 0;
	im->nseq = 0;
	if (strpbrk(folder, "\r\n") != NULL)
		return pmp_errf(err, PM_ECONFIG, "folder name contains a "
		    "line break");
	/* Mailbox names travel in modified UTF-7 (RFC 3501 5.1.3). */
	if ((wire = imap_mutf7_wire(folder, err)) == NULL)
		return PM_ECONFIG;
	quoted = imap_quote(wire);
	what = pmp_xprintf("SELECT \"%s\"", folder);
	memset(&cb, 0, sizeof cb);
	cb.untagged = imap_select_cb;
	cb.arg = &validity;
	rc = imap_command(im, what, &cb, PM_EPROTO, err, "SELECT %s",
	    quoted);
	free(quoted);
	free(wire);
	if (rc == PM_OK && validity == 0)
		rc = pmp_errf(err, PM_EPROTO, "%s: server sent no "
		    "UIDVALIDITY", what);
	free(what);
	if (rc != PM_OK) {
		/* The server's text names mailboxes as it got them. */
		t = imap_mutf7_text(*err);
		free(*err);
		*err = t;
		return rc;
	}
	im->folder = pmp_xstrndup(folder, strlen(folder));
	im->grew = 0;
	snprintf(im->validity, sizeof im->validity, "%u", validity);
	f_r->validity = im->validity;
	f_r->count = im->has_exists ? im->exists : 0;
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

	(void)im;
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

/* Decimal digits of v. */
static size_t
imap_digits(uint32_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* The plugin's list slot: UID FETCH 1:* (UID RFC822.SIZE). */
static int
imap_list(struct pm_conn *c, const struct pm_entry **e_r, size_t *n_r,
    int *have_uids_r, char **err)
{
	struct imap *im = (struct imap *)c;
	struct imap_list l;
	struct imap_cb cb;
	size_t i, j, total;
	char *p;
	int rc;

	*e_r = NULL;
	*n_r = 0;
	*have_uids_r = 1;
	imap_list_free(im);
	/* Mail announced from here on may be missing from the listing. */
	im->grew = 0;
	if (im->folder == NULL)
		return pmp_errf(err, PM_EINTERNAL, "list: no folder "
		    "selected");
	memset(&l, 0, sizeof l);
	l.has_exists = im->has_exists;
	l.exists = im->exists;
	if (!im->has_exists || im->exists > 0) {
		memset(&cb, 0, sizeof cb);
		cb.untagged = imap_list_untagged;
		cb.fetch = imap_list_cb;
		cb.arg = &l;
		rc = imap_command(im, "UID FETCH 1:*", &cb, PM_EPROTO, err,
		    "UID FETCH 1:* (UID RFC822.SIZE)");
		if (rc != PM_OK) {
			free(l.e);
			return rc;
		}
	}
	if (l.n > 0)
		qsort(l.e, l.n, sizeof *l.e, imap_entry_cmp);
	for (i = j = 0; i < l.n; i++) {
		if (j == 0 || l.e[i].uid != l.e[j - 1].uid)
			l.e[j++] = l.e[i];
	}
	im->nent = j;
	im->ent = pmp_xreallocarray(l.e, j, sizeof *l.e);
	/* One allocation for all the UID strings: a folder may hold
	 * millions of messages. */
	for (i = 0, total = 0; i < j; i++)
		total += imap_digits(im->ent[i].uid) + 1;
	im->names = p = pmp_xmalloc(total);
	im->pe = pmp_xreallocarray(NULL, j, sizeof *im->pe);
	for (i = 0; i < j; i++) {
		im->pe[i].uid = p;
		im->pe[i].size = im->ent[i].size;
		p += snprintf(p, total - (p - im->names), "%u",
		    im->ent[i].uid) + 1;
	}
	im->h->log(im->s, PM_LOG_DEBUG, "%s: %zu messages listed",
	    imap_folder(im), j);
	*e_r = im->pe;
	*n_r = j;
	return PM_OK;
}

/* fetch(): send the UID FETCH for the messages from first on, as many as
 * IMAP_CMD_MSGS, IMAP_CMD_BYTES and the set's length allow. */
static int
imap_fetch_send(struct imap *im, void *arg, size_t first, size_t *n_r,
    char **set_r, char **err)
{
	struct imap_fx *fx = arg;
	uint64_t bytes = 0, sz;
	size_t k, i;
	char *set;
	int rc;

	for (k = 0; first + k < fx->n && k < IMAP_CMD_MSGS; k++) {
		sz = fx->w[first + k].size;
		if (k > 0 && (bytes >= IMAP_CMD_BYTES ||
		    sz > IMAP_CMD_BYTES - bytes))
			break;
		bytes += sz;
	}
	k = imap_uidset(fx->uids + first, k, IMAP_SET_MAX, &set);
	if (k == 0)
		return pmp_errf(err, PM_EINTERNAL, "cannot build a UID set");
	for (i = first; i < first + k; i++)
		fx->w[i].state = WANT_SENT;
	rc = im->h->send(im->s, err, "%s UID FETCH %s (UID BODY.PEEK[])",
	    imap_next_tag(im), set);
	if (rc != PM_OK) {
		free(set);
		return imap_break(im, rc);
	}
	*n_r = k;
	*set_r = set;
	return PM_OK;
}

/* fetch(): a UID FETCH completed.  Its messages the server sent nothing
 * for are gone after an OK (unless a body came that could not be matched:
 * it may have been theirs), refused after a NO. */
static int
imap_fetch_done(struct imap *im, void *arg, size_t first, size_t n,
    const char *set, const struct imap_resp *r, char **err)
{
	struct imap_fx *fx = arg;
	char *d = NULL, *why = NULL;
	size_t i;

	(void)err;
	if (r->status != IMAP_OK) {
		d = imap_describe(r);
		why = pmp_xprintf("UID FETCH %s failed: %s", set, d);
		im->h->log(im->s, PM_LOG_WARN, "%s: %s", imap_folder(im),
		    why);
	}
	for (i = first; i < first + n; i++) {
		if (fx->w[i].state != WANT_SENT)
			continue;
		fx->w[i].state = WANT_DONE;
		if (why != NULL)
			fx->sink->missing(fx->f, fx->w[i].idx, PM_ETEMP, why);
		else if (fx->lost)
			fx->sink->missing(fx->f, fx->w[i].idx, PM_ETEMP,
			    "not received: a FETCH response without a UID "
			    "came instead");
		else {
			im->h->log(im->s, PM_LOG_DEBUG, "%s: UID %u vanished",
			    imap_folder(im), fx->w[i].uid);
			fx->sink->missing(fx->f, fx->w[i].idx, PM_OK,
			    "expunged meanwhile");
		}
	}
	free(d);
	free(why);
	return PM_OK;
}

/* The plugin's fetch slot: UID FETCH ... (UID BODY.PEEK[]), pipelined. */
static int
imap_fetch(struct pm_conn *c, const size_t *idx, size_t n,
    const struct pm_sink *sink, struct pm_fetch *f, char **err)
{
	struct imap *im = (struct imap *)c;
	struct imap_fx fx;
	struct imap_pipe p;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (idx[i] >= im->nent || (i > 0 && idx[i] <= idx[i - 1]))
			return pmp_errf(err, PM_EINTERNAL, "fetch: message "
			    "index %zu out of order or range", idx[i]);
	}
	if (n == 0)
		return PM_OK;
	memset(&fx, 0, sizeof fx);
	fx.w = pmp_xreallocarray(NULL, n, sizeof *fx.w);
	fx.uids = pmp_xreallocarray(NULL, n, sizeof *fx.uids);
	fx.n = n;
	fx.sink = sink;
	fx.f = f;
	for (i = 0; i < n; i++) {
		fx.w[i].idx = idx[i];
		fx.w[i].uid = fx.uids[i] = im->ent[idx[i]].uid;
		fx.w[i].size = im->ent[idx[i]].size;
		fx.w[i].state = WANT_QUEUED;
	}
	memset(&p, 0, sizeof p);
	p.what = "UID FETCH";
	p.total = n;
	p.window = IMAP_INFLIGHT;
	p.send = imap_fetch_send;
	p.done = imap_fetch_done;
	p.arg = &fx;
	im->fx = &fx;
	rc = imap_pipeline(im, &p, err);
	im->fx = NULL;
	free(fx.w);
	free(fx.uids);
	free(im->buf);
	im->buf = NULL;
	return rc;
}

/* A message dispose() works on. */
struct imap_dmsg {
	uint32_t uid;
	size_t i;		/* its place in idx[] and done_r[] */
};

/* A running dispose(): the messages, ascending by UID, and the command
 * run over them. */
struct imap_disp {
	struct imap_dmsg *d;
	uint32_t *uids;		/* d[].uid, for imap_uidset() */
	unsigned char *ok;	/* the command over d[k] succeeded */
	size_t n;
	const char *cmd;	/* "UID STORE", "UID EXPUNGE", "EXPUNGE" */
	const char *args;	/* after the set: "" or " +FLAGS..." */
	int plain;		/* cmd takes no set (plain EXPUNGE) */
};

/* Order dispose() messages by UID. */
static int
imap_dmsg_cmp(const void *a, const void *b)
{
	const struct imap_dmsg *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* dispose(): send the command for the messages from first on. */
static int
imap_disp_send(struct imap *im, void *arg, size_t first, size_t *n_r,
    char **set_r, char **err)
{
	struct imap_disp *dx = arg;
	char *set;
	size_t k;
	int rc;

	if (dx->plain) {
		rc = im->h->send(im->s, err, "%s %s", imap_next_tag(im),
		    dx->cmd);
		*n_r = dx->n - first;
		*set_r = NULL;
		return imap_break(im, rc);
	}
	k = imap_uidset(dx->uids + first, dx->n - first, IMAP_SET_MAX, &set);
	if (k == 0)
		return pmp_errf(err, PM_EINTERNAL, "cannot build a UID set");
	rc = im->h->send(im->s, err, "%s %s %s%s", imap_next_tag(im),
	    dx->cmd, set, dx->args);
	if (rc != PM_OK) {
		free(set);
		return imap_break(im, rc);
	}
	*n_r = k;
	*set_r = set;
	return PM_OK;
}

/* dispose(): a command completed; a NO leaves its messages as they are. */
static int
imap_disp_done(struct imap *im, void *arg, size_t first, size_t n,
    const char *set, const struct imap_resp *r, char **err)
{
	struct imap_disp *dx = arg;
	char *d;

	(void)err;
	if (r->status == IMAP_OK) {
		memset(dx->ok + first, 1, n);
		return PM_OK;
	}
	d = imap_describe(r);
	im->h->log(im->s, PM_LOG_WARN, "%s: %s%s%s failed: %s",
	    imap_folder(im), dx->cmd, set != NULL ? " " : "",
	    set != NULL ? set : "", d);
	free(d);
	return PM_OK;
}

/* Run dx->cmd over the messages of dx; dx->ok says where it succeeded. */
static int
imap_disp_run(struct imap *im, struct imap_disp *dx, size_t window,
    char **err)
{
	struct imap_pipe p;

	memset(dx->ok, 0, dx->n);
	memset(&p, 0, sizeof p);
	p.what = dx->cmd;
	p.total = dx->n;
	p.window = window;
	p.send = imap_disp_send;
	p.done = imap_disp_done;
	p.arg = dx;
	return imap_pipeline(im, &p, err);
}

/*
 * The command that removes the messages flagged \Deleted, or NULL when
 * they are to stay flagged (expunge = never, or no UIDPLUS and the plain
 * EXPUNGE, which removes every message flagged \Deleted in the folder, not
 * allowed).
 */
static const char *
imap_expunge_cmd(const struct imap *im)
{
	switch (im->acct->expunge) {
	case PM_EXPUNGE_NEVER:
		return NULL;
	case PM_EXPUNGE_ALL:
		return im->caps.uidplus ? "UID EXPUNGE" : "EXPUNGE";
	default:
		return im->caps.uidplus ? "UID EXPUNGE" : NULL;
	}
}

/* The plugin's dispose slot: flag \Seen, or flag \Deleted and expunge
 * (imap_expunge_cmd()). */
static int
imap_dispose(struct pm_conn *c, int action, const size_t *idx, size_t n,
    unsigned char *done_r, char **err)
{
	struct imap *im = (struct imap *)c;
	struct imap_disp dx;
	const char *expunge;
	size_t i, k;
	int rc;

	if (action != PM_DISPOSE_SEEN && action != PM_DISPOSE_DELETE)
		return pmp_errf(err, PM_EINTERNAL, "dispose: unknown action "
		    "%d", action);
	for (i = 0; i < n; i++) {
		done_r[i] = 0;
		if (idx[i] >= im->nent)
			return pmp_errf(err, PM_EINTERNAL, "dispose: message "
			    "index %zu out of range", idx[i]);
	}
	if (n == 0)
		return PM_OK;
	memset(&dx, 0, sizeof dx);
	dx.d = pmp_xreallocarray(NULL, n, sizeof *dx.d);
	dx.uids = pmp_xreallocarray(NULL, n, sizeof *dx.uids);
	dx.ok = pmp_xmalloc(n);
	for (i = 0; i < n; i++) {
		dx.d[i].uid = im->ent[idx[i]].uid;
		dx.d[i].i = i;
	}
	qsort(dx.d, n, sizeof *dx.d, imap_dmsg_cmp);
	for (i = 0; i < n; i++)
		dx.uids[i] = dx.d[i].uid;
	dx.n = n;
	dx.cmd = "UID STORE";
	expunge = action == PM_DISPOSE_DELETE ? imap_expunge_cmd(im) : NULL;
	if (action == PM_DISPOSE_SEEN)
		dx.args = " +FLAGS.SILENT (\\Seen)";
	else if (expunge != NULL)
		dx.args = " +FLAGS.SILENT (\\Deleted)";
	else
		dx.args = " +FLAGS.SILENT (\\Seen \\Deleted)";
	rc = imap_disp_run(im, &dx, IMAP_INFLIGHT, err);
	if (rc == PM_OK && expunge != NULL) {
		/* Expunge only what was flagged. */
		for (i = k = 0; i < dx.n; i++) {
			if (dx.ok[i]) {
				dx.d[k] = dx.d[i];
				dx.uids[k++] = dx.d[i].uid;
			}
		}
		dx.n = k;
		dx.args = "";
		dx.cmd = expunge;
		dx.plain = strcmp(expunge, "EXPUNGE") == 0;
		/* One at a time: each brings an EXPUNGE response per
		 * message. */
		if (dx.n > 0)
			rc = imap_disp_run(im, &dx, 1, err);
	}
	if (rc == PM_OK) {
		for (i = k = 0; i < dx.n; i++) {
			if (dx.ok[i]) {
				done_r[dx.d[i].i] = 1;
				k++;
			}
		}
		im->h->log(im->s, PM_LOG_DEBUG, "%s: %zu of %zu messages %s",
		    imap_folder(im), k, n, action == PM_DISPOSE_SEEN ?
		    "marked seen" : expunge != NULL ? "deleted" :
		    "flagged \\Seen \\Deleted");
		if (action == PM_DISPOSE_DELETE && expunge == NULL && k > 0)
			im->h->log(im->s, PM_LOG_INFO, "%s: %zu messages "
			    "flagged \\Deleted but not expunged: %s",
			    imap_folder(im), k, im->acct->expunge ==
			    PM_EXPUNGE_NEVER ? "expunge = never" :
			    "the server lacks UIDPLUS, and a plain EXPUNGE "
			    "would also remove what others flagged "
			    "(expunge = all allows it)");
	}
	free(dx.d);
	free(dx.uids);
	free(dx.ok);
	return rc;
}

/* --- waiting for new mail: IDLE (RFC 2177) ------------------------------- */

/* The plugin's can_wait slot: the server offers IDLE (as it said after
 * login, or later). */
static int
imap_can_wait(struct pm_conn *c)
{
	struct imap *im = (struct imap *)c;

	return im->caps.idle;
}

/* What the responses read during an IDLE said. */
struct imap_idle {
	int news;		/* new mail: im->grew */
	int cont;		/* the continuation request came */
	int ended;		/* the IDLE's tagged completion came */
};

/*
 * Read one response while IDLE runs into st.  The tagged completion of
 * the IDLE sets st->ended (a NO or BAD is PM_EPROTO, unless it is one of
 * Exchange's transient ones: imap_read()); an untagged response is dealt
 * with like any other (its literals read and dropped; a BYE ends the
 * session, with the host told why: imap_untagged()) and is news
 * when it announces new mail: an EXISTS or RECENT count that grew
 * (im->grew).
 */
static int
imap_idle_step(struct imap *im, struct imap_idle *st, char **err)
{
	struct imap_resp r;
	const char *line;
	size_t len;
	char *what;
	int rc;

	if ((rc = imap_read(im, &line, &len, &r, err)) != PM_OK)
		return rc;
	if (r.type == IMAP_CONTINUE) {
		st->cont = 1;
		imap_resp_free(&r);
		return PM_OK;
	}
	if (r.type == IMAP_TAGGED) {
		if (strcmp(r.tag, im->tag) != 0)
			return imap_bad_tag(im, "IDLE", &r, err);
		st->ended = 1;
		what = pmp_xprintf("%s: IDLE", imap_folder(im));
		rc = imap_completed(im, &r, what, PM_EPROTO, err);
		free(what);
		return rc;
	}
	rc = imap_untagged(im, line, len, &r, NULL, err);
	imap_resp_free(&r);
	if (im->grew)
		st->news = 1;
	return rc;
}

/*
 * Read responses into st until *flag or st->ended is set: the continuation
 * request after IDLE, the completion after DONE, which a server sends
 * after what it still owes, a change or two per message at most.  One
 * that sends more is broken, or hostile; what says so in the error.
 */
static int
imap_idle_until(struct imap *im, struct imap_idle *st, const int *flag,
    const char *what, char **err)
{
	size_t n, max;
	int rc = PM_OK;

	max = IMAP_IDLE_SLACK + 2 * (size_t)(im->exists < IMAP_LIST_MAX ?
	    im->exists : IMAP_LIST_MAX);
	for (n = 0; rc == PM_OK && !*flag && !st->ended; n++) {
		if (n == max)
			return imap_break(im, pmp_errf(err, PM_EPROTO,
			    "%s: the server sent more than %zu responses "
			    "%s", imap_folder(im), max, what));
		rc = imap_idle_step(im, st, err);
	}
	return rc;
}

/*
 * The plugin's wait slot: IDLE until news, the time is up or the core ends
 * the wait, then DONE and read to the IDLE's completion.  Mail announced
 * since the last list() began is news at once, without IDLE.
 */
static int
imap_idle(struct pm_conn *c, int timeout_ms, int *news_r, char **err)
{
	struct imap *im = (struct imap *)c;
	struct imap_idle st;
	long long deadline, left;
	int rc;

	*news_r = 0;
	if (im->folder == NULL)
		return pmp_errf(err, PM_EINTERNAL, "wait: no folder "
		    "selected");
	if (im->grew) {
		im->h->log(im->s, PM_LOG_DEBUG, "%s: new mail arrived "
		    "since the listing", imap_folder(im));
		*news_r = 1;
		return PM_OK;
	}
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (timeout_ms > IMAP_IDLE_MAX_MS)
		timeout_ms = IMAP_IDLE_MAX_MS;
	memset(&st, 0, sizeof st);
	deadline = pmp_mono_ms() + timeout_ms;
	rc = imap_break(im, im->h->send(im->s, err, "%s IDLE",
	    imap_next_tag(im)));
	/* Responses may come before the continuation request. */
	if (rc == PM_OK)
		rc = imap_idle_until(im, &st, &st.cont,
		    "after IDLE without accepting it", err);
	/* Idle.  A server flooding us with responses is read until the
	 * time is up like a quiet one. */
	while (rc == PM_OK && !st.ended && !st.news) {
		left = deadline - pmp_mono_ms();
		if (left <= 0 || !im->h->await_input(im->s, (int)left))
			break;
		rc = imap_idle_step(im, &st, err);
	}
	if (rc == PM_OK && !st.ended) {
		rc = imap_break(im, im->h->send(im->s, err, "DONE"));
		if (rc == PM_OK)
			rc = imap_idle_until(im, &st, &st.ended,
			    "after DONE without ending IDLE", err);
	}
	if (rc != PM_OK)
		return rc;
	*news_r = st.news;
	im->h->log(im->s, PM_LOG_DEBUG, "%s: IDLE ended%s", imap_folder(im),
	    st.news ? ": new mail" : "");
	return PM_OK;
}

/* The plugin's close slot: LOGOUT unless out of step, disconnect, free. */
static int
imap_close(struct pm_conn *c, char **err)
{
	struct imap *im = (struct imap *)c;

	(void)err;
	if (im == NULL)
		return PM_OK;
	if (!im->broken)
		imap_logout(im);
	im->h->disconnect(im->s);
	imap_free(im);
	return PM_OK;
}

PM_PLUGIN_EXPORT const struct pm_plugin pullmail_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "imap",
	.port_tls = 993,
	.port_plain = 143,
	.flags = PM_PLUGIN_FOLDERS,
	.open = imap_open,
	.select = imap_select,
	.list = imap_list,
	.fetch = imap_fetch,
	.dispose = imap_dispose,
	.can_wait = imap_can_wait,
	.wait = imap_idle,
	.close = imap_close,
};
