/*
 * One account's run.  The host services a plugin receives are implemented
 * here on top of the transport, the token module, the SASL encoders, the
 * delivery stage and the UID state; session_run() drives one plugin over one
 * account and retries once when the server rejects a cached token.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "oauth.h"
#include "sasl.h"
#include "secret.h"
#include "session.h"
#include "state.h"
#include "transport.h"
#include "util.h"

#define LINE_MAX_BYTES 65536
#define SASL_MAX_ROUNDS 8

/* A message finished but not yet covered by a commit. */
struct pending {
	char *mailbox;
	char *uid;
	uint64_t bytes;
};

struct pm_session {
	struct account *a;
	struct pm_account_info info;
	struct stream *stream;
	struct state *state;
	struct deliver *deliver;

	struct pending *pending;
	size_t npending;

	struct pm_secret *token;	/* access token for this run */
	int token_cached;		/* it came from the cache */
	int token_rejected;		/* the server refused it */
	char *cache_dir;

	struct run_stats *stats;
};

struct pm_msg {
	struct pm_session *s;
	struct deliver_msg *dm;
	char *mailbox;
	char *uid;
	uint64_t bytes;
};

/* Host account(): the account info session_run() filled in. */
static const struct pm_account_info *
host_account(struct pm_session *s)
{
	return &s->info;
}

/* Host log(): log msg under the account's name at the matching level. */
static void PM_PRINTF(3, 4)
host_log(struct pm_session *s, int level, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	switch (level) {
	case PM_LOG_ERR:
	case PM_LOG_WARN:
		log_warnx("%s: %s", s->a->name, msg);
		break;
	case PM_LOG_INFO:
		log_info("%s: %s", s->a->name, msg);
		break;
	default:
		log_debug(s->a->protocol, "%s: %s", s->a->name, msg);
		break;
	}
	free(msg);
}

/* Host starttls(): run the verified TLS handshake on the open connection. */
static int
host_starttls(struct pm_session *s, char **err)
{
	struct tls_opts opts;

	if (s->stream == NULL)
		return errf(err, PM_EINTERNAL, "not connected");
	memset(&opts, 0, sizeof opts);
	opts.server_name = s->a->server;
	opts.ca_file = s->a->ca_file;
	opts.fingerprint = s->a->tls_fingerprint;
	return stream_starttls(s->stream, &opts, err);
}

/* Host connect(): open the TCP connection and, for implicit TLS, verify
 * the server. */
static int
host_connect(struct pm_session *s, char **err)
{
	int r;

	if (s->stream != NULL)
		return errf(err, PM_EINTERNAL, "already connected");
	r = stream_connect(s->a->server, s->info.port,
	    (int)s->a->timeout * 1000, &s->stream, err);
	if (r != PM_OK)
		return r;
	stream_set_timeout(s->stream, (int)s->a->timeout * 1000);
	if (s->a->tls != PM_TLS_IMPLICIT)
		return PM_OK;
	return host_starttls(s, err);
}

/* Host tls_active(): 1 when connected and the stream is under TLS. */
static int
host_tls_active(struct pm_session *s)
{
	return s->stream != NULL && stream_tls_active(s->stream);
}

/* Write prefix, the secret (if any) and CRLF in one write, traced. */
static int
send_line(struct pm_session *s, const char *prefix,
    const struct pm_secret *secret, char **err)
{
	size_t plen = strlen(prefix), slen = secret ? secret_len(secret) : 0;
	char *buf;
	int r;

	if (s->stream == NULL)
		return errf(err, PM_EINTERNAL, "not connected");
	log_trace(s->a->name, "C", prefix, plen, secret);
	buf = xmalloc(plen + slen + 2);
	memcpy(buf, prefix, plen);
	if (slen > 0)
		memcpy(buf + plen, secret_reveal(secret), slen);
	memcpy(buf + plen + slen, "\r\n", 2);
	r = stream_write(s->stream, buf, plen + slen + 2, err);
	secret_wipe(buf, plen + slen + 2);
	free(buf);
	return r;
}

/* Host send(): format one command line and send it with CRLF, traced. */
static int PM_PRINTF(3, 4)
host_send(struct pm_session *s, char **err, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int r;

	va_start(ap, fmt);
	line = xvasprintf(fmt, ap);
	va_end(ap);
	r = send_line(s, line, NULL, err);
	free(line);
	return r;
}

/* Host send_secret(): send prefix, secret and CRLF, trace redacted; refuse
 * plaintext unless the account allows tls = none. */
static int
host_send_secret(struct pm_session *s, const char *prefix,
    const struct pm_secret *secret, char **err)
{
	if (!host_tls_active(s) && s->a->tls != PM_TLS_NONE)
		return errf(err, PM_ETLS, "refusing to send credentials over "
		    "an unencrypted connection (set tls = none to allow it)");
	return send_line(s, prefix == NULL ? "" : prefix, secret, err);
}

/* Host read_line(): read one line of at most 64 KiB and trace it. */
static int
host_read_line(struct pm_session *s, const char **line_r, size_t *len_r,
    char **err)
{
	int r;

	if (s->stream == NULL)
		return errf(err, PM_EINTERNAL, "not connected");
	r = stream_read_line(s->stream, LINE_MAX_BYTES, line_r, len_r, err);
	if (r == PM_OK)
		log_trace(s->a->name, "S", *line_r, *len_r, NULL);
	return r;
}

/* Host read_bytes(): read up to len bytes of message data, untraced. */
static int
host_read_bytes(struct pm_session *s, void *buf, size_t len, size_t *got_r,
    char **err)
{
	if (s->stream == NULL)
		return errf(err, PM_EINTERNAL, "not connected");
	return stream_read(s->stream, buf, len, got_r, err);
}

/* Host disconnect(): close the connection; safe when not connected. */
static void
host_disconnect(struct pm_session *s)
{
	stream_close(s->stream);
	s->stream = NULL;
}

/* The access token for this run: from the cache or the token endpoint. */
static int
session_token(struct pm_session *s, char **err)
{
	struct oauth_request req;
	int r;

	if (s->token != NULL)
		return PM_OK;
	if ((r = oauth_discover(s->a, err)) != PM_OK)
		return r;
	oauth_request_init(&req, s->a, s->cache_dir);
	r = oauth_get_token(&req, &s->token, &s->token_cached, err);
	if (r != PM_OK)
		return r;
	log_debug("oauth", "%s: using %s access token", s->a->name,
	    s->token_cached ? "cached" : "new");
	return PM_OK;
}

/* Drop the cached token so the next attempt asks the endpoint. */
static void
session_drop_token(struct pm_session *s)
{
	struct oauth_request req;

	oauth_request_init(&req, s->a, s->cache_dir);
	oauth_invalidate(&req);
	secret_free(s->token);
	s->token = NULL;
	s->token_cached = 0;
}

/* The initial response for mech, or NULL for LOGIN. */
static int
sasl_initial(struct pm_session *s, const char *mech,
    struct pm_secret **ir_r, char **err)
{
	int r;

	*ir_r = NULL;
	if (strcasecmp(mech, "XOAUTH2") == 0 ||
	    strcasecmp(mech, "OAUTHBEARER") == 0) {
		if ((r = session_token(s, err)) != PM_OK)
			return r;
		if (strcasecmp(mech, "XOAUTH2") == 0)
			*ir_r = sasl_xoauth2(s->a->user, s->token);
		else
			*ir_r = sasl_oauthbearer(s->a->user, s->a->server,
			    s->info.port, s->token);
		if (*ir_r == NULL)
			return errf(err, PM_ECONFIG, "%s: the user name or "
			    "the access token contains a control character "
			    "that cannot be sent", mech);
		return PM_OK;
	}
	if (s->a->password == NULL)
		return errf(err, PM_ECONFIG, "%s needs a password; none is "
		    "configured", mech);
	if (strcasecmp(mech, "PLAIN") == 0) {
		*ir_r = sasl_plain(s->a->user, s->a->password);
		if (*ir_r == NULL)
			return errf(err, PM_ECONFIG, "PLAIN: the password "
			    "contains a NUL byte");
	}
	return PM_OK;
}

/* Whether an initial response may go on the command line. */
static int
ir_fits(const struct pm_sasl_proto *p, const char *mech,
    const struct pm_secret *ir, int server_ir)
{
	if (ir == NULL || !server_ir)
		return 0;
	if (p->xoauth2_two_step && strcasecmp(mech, "XOAUTH2") == 0)
		return 0;
	if (p->max_line > 0 &&
	    strlen(mech) + secret_len(ir) + p->overhead > p->max_line)
		return 0;
	return 1;
}

/* Host sasl_auth(): choose a mechanism and run the SASL exchange, noting
 * a refused OAuth token so session_run() can retry with a fresh one. */
static int
host_sasl_auth(struct pm_session *s, const struct pm_sasl_proto *p,
    void *ctx, const char *server_mechs, int server_ir, char **err)
{
	struct pm_secret *ir = NULL, *resp;
	const char *mech;
	char *text = NULL, *oauth_status = NULL, *oauth_summary = NULL;
	int r, kind, rounds, sent_ir, login_step = 0, oauth, is_oauth_mech;

	if (!host_tls_active(s) && s->a->tls != PM_TLS_NONE)
		return errf(err, PM_ETLS, "refusing to authenticate over an "
		    "unencrypted connection (set tls = none to allow it)");
	oauth = account_uses_oauth(s->a) ? SASL_HAVE_OAUTH : 0;
	if (oauth && s->a->password != NULL)
		oauth |= SASL_HAVE_PASSWORD;
	mech = sasl_choose(s->a->auth, oauth, server_mechs, err);
	if (mech == NULL)
		return PM_ECONFIG;
	is_oauth_mech = strcasecmp(mech, "XOAUTH2") == 0 ||
	    strcasecmp(mech, "OAUTHBEARER") == 0;
	if ((r = sasl_initial(s, mech, &ir, err)) != PM_OK)
		return r;
	log_debug("sasl", "%s: authenticating as %s with %s", s->a->name,
	    s->a->user, mech);

	sent_ir = ir_fits(p, mech, ir, server_ir);
	r = p->start(ctx, mech, sent_ir ? ir : NULL, err);
	for (rounds = 0; r == PM_OK; rounds++) {
		free(text);
		text = NULL;
		if (rounds > SASL_MAX_ROUNDS) {
			r = errf(err, PM_EPROTO, "AUTHENTICATE %s: too many "
			    "challenges from the server", mech);
			break;
		}
		if ((r = p->reply(ctx, &kind, &text, err)) != PM_OK)
			break;
		if (kind == PM_SASL_SUCCESS) {
			r = PM_OK;
			break;
		}
		if (kind == PM_SASL_FAILURE) {
			if (is_oauth_mech)
				s->token_rejected = 1;
			if (oauth_summary != NULL)
				r = errf(err, PM_EAUTH, "server refused the "
				    "%s login for %s: %s (%s)", mech,
				    s->a->user, text ? text : "",
				    oauth_summary);
			else
				r = errf(err, PM_EAUTH, "server refused the "
				    "%s login for %s: %s", mech, s->a->user,
				    text ? text : "");
			break;
		}
		/* A challenge. */
		if (strcasecmp(mech, "LOGIN") == 0) {
			if (login_step == 0)
				resp = base64_encode_secret(s->a->user,
				    strlen(s->a->user));
			else if (login_step == 1)
				resp = base64_encode_secret(
				    secret_reveal(s->a->password),
				    secret_len(s->a->password));
			else
				resp = secret_from_str("*");
			login_step++;
		} else if (!sent_ir && ir != NULL) {
			resp = secret_dup(ir);
			sent_ir = 1;
		} else if (is_oauth_mech && oauth_summary == NULL) {
			/* An error challenge: note it, answer as required
			 * (RFC 7628 3.2.3: %x01; XOAUTH2: empty). */
			free(oauth_status);
			oauth_status = NULL;
			sasl_oauth_error(text ? text : "", &oauth_status,
			    &oauth_summary);
			resp = strcasecmp(mech, "OAUTHBEARER") == 0 ?
			    secret_from_str("AQ==") : secret_from_str("");
		} else
			resp = secret_from_str("*");
		r = p->respond(ctx, resp, err);
		secret_free(resp);
	}
	free(text);
	free(oauth_status);
	free(oauth_summary);
	secret_free(ir);
	return r;
}

/* Host password(): the configured password, or NULL. */
static const struct pm_secret *
host_password(struct pm_session *s)
{
	return s->a->password;
}

/* Host state_validity(): record mailbox's UIDVALIDITY, warning when it
 * changed and its recorded UIDs were dropped. */
static int
host_state_validity(struct pm_session *s, const char *mailbox,
    const char *validity, char **err)
{
	if (state_validity(s->state, mailbox, validity) == 1)
		log_warnx("%s: UIDVALIDITY of %s changed to %s: the messages "
		    "delivered before can no longer be told apart, all of "
		    "them will be fetched again", s->a->name, mailbox,
		    validity ? validity : "(none)");
	return PM_OK;
}

/* Host state_known(): 1 if uid of mailbox is already recorded. */
static int
host_state_known(struct pm_session *s, const char *mailbox, const char *uid)
{
	return state_known(s->state, mailbox, uid);
}

/* Host state_prune(): forget recorded UIDs no longer on the server. */
static int
host_state_prune(struct pm_session *s, const char *mailbox,
    const char *const *present, size_t n, char **err)
{
	int gone = state_prune(s->state, mailbox, present, n);

	if (gone > 0)
		log_debug("state", "%s: %s: forgot %d UIDs no longer on the "
		    "server", s->a->name, mailbox, gone);
	return PM_OK;
}

/* Host msg_begin(): start delivering one message to the account's target. */
static int
host_msg_begin(struct pm_session *s, const char *mailbox, const char *uid,
    uint64_t size, struct pm_msg **msg_r, char **err)
{
	struct deliver_info info;
	struct pm_msg *m;
	int r;

	memset(&info, 0, sizeof info);
	info.account = s->a->name;
	info.server = s->a->server;
	info.mailbox = mailbox;
	info.uid = uid;
	info.size = size;
	info.protocol = s->a->protocol;
	m = xcalloc(1, sizeof *m);
	r = deliver_begin(s->deliver, &info, &m->dm, err);
	if (r != PM_OK) {
		free(m);
		return r;
	}
	m->s = s;
	m->mailbox = xstrdup(mailbox);
	m->uid = xstrdup(uid);
	*msg_r = m;
	return PM_OK;
}

/* Free a message handle and its copied mailbox and UID. */
static void
msg_free(struct pm_msg *m)
{
	free(m->mailbox);
	free(m->uid);
	free(m);
}

/* Host msg_write(): pass message bytes to delivery, counting them. */
static int
host_msg_write(struct pm_msg *m, const void *buf, size_t len, char **err)
{
	m->bytes += len;
	return deliver_write(m->dm, buf, len, err);
}

/* Host msg_finish(): complete delivery and queue the UID for the next
 * commit; frees m either way. */
static int
host_msg_finish(struct pm_msg *m, char **err)
{
	struct pm_session *s = m->s;
	struct pending *p;
	int r;

	r = deliver_finish(m->dm, err);
	if (r != PM_OK) {
		msg_free(m);
		return r;
	}
	s->pending = xrealloc(s->pending, (s->npending + 1) *
	    sizeof *s->pending);
	p = &s->pending[s->npending++];
	p->mailbox = m->mailbox;
	p->uid = m->uid;
	p->bytes = m->bytes;
	free(m);
	return PM_OK;
}

/* Host msg_abort(): discard a message being delivered and free m. */
static void
host_msg_abort(struct pm_msg *m)
{
	if (m == NULL)
		return;
	deliver_abort(m->dm);
	msg_free(m);
}

/* Free the list of finished messages awaiting a commit. */
static void
pending_clear(struct pm_session *s)
{
	size_t i;

	for (i = 0; i < s->npending; i++) {
		free(s->pending[i].mailbox);
		free(s->pending[i].uid);
	}
	free(s->pending);
	s->pending = NULL;
	s->npending = 0;
}

/* Host commit(): sync delivery, then record and save the pending UIDs. */
static int
host_commit(struct pm_session *s, char **err)
{
	size_t i;
	int r;

	if (s->npending == 0)
		return state_save(s->state, err);
	if ((r = deliver_sync(s->deliver, err)) != PM_OK)
		return r;
	for (i = 0; i < s->npending; i++)
		state_add(s->state, s->pending[i].mailbox, s->pending[i].uid);
	if ((r = state_save(s->state, err)) != PM_OK)
		return r;
	for (i = 0; i < s->npending; i++) {
		s->stats->delivered++;
		s->stats->bytes += s->pending[i].bytes;
	}
	log_debug("state", "%s: %zu messages durable and recorded",
	    s->a->name, s->npending);
	pending_clear(s);
	return PM_OK;
}

/* Host skipped(): count and log a message skipped for its size. */
static void
host_skipped(struct pm_session *s, const char *mailbox, const char *uid,
    uint64_t size)
{
	s->stats->skipped++;
	log_info("%s: %s: message %s (%llu bytes) is over the size limit; "
	    "skipped", s->a->name, mailbox, uid, (unsigned long long)size);
}

/* Host secret_data(): a secret's bytes and length, for plugin framing. */
static const char *
host_secret_data(const struct pm_secret *sec, size_t *len_r)
{
	*len_r = secret_len(sec);
	return secret_reveal(sec);
}

/* Host unread(): push bytes back in front of the unread input. */
static void
host_unread(struct pm_session *s, const void *buf, size_t len)
{
	if (s->stream != NULL)
		stream_unread(s->stream, buf, len);
}

const struct pm_host session_host = {
	.abi = PM_PLUGIN_ABI,
	.account = host_account,
	.log = host_log,
	.connect = host_connect,
	.starttls = host_starttls,
	.tls_active = host_tls_active,
	.send = host_send,
	.send_secret = host_send_secret,
	.read_line = host_read_line,
	.read_bytes = host_read_bytes,
	.disconnect = host_disconnect,
	.sasl_auth = host_sasl_auth,
	.password = host_password,
	.state_validity = host_state_validity,
	.state_known = host_state_known,
	.state_prune = host_state_prune,
	.msg_begin = host_msg_begin,
	.msg_write = host_msg_write,
	.msg_finish = host_msg_finish,
	.msg_abort = host_msg_abort,
	.commit = host_commit,
	.skipped = host_skipped,
	.secret_data = host_secret_data,
	.secret_new = secret_new,
	.secret_free = secret_free,
	.unread = host_unread,
};

/* Finished messages never covered by a commit are dropped: they are still
 * on the server and will be fetched again (a duplicate, never a loss). */
static void
session_discard_pending(struct pm_session *s)
{
	if (s->npending > 0)
		log_warnx("%s: %zu delivered messages were not recorded; they "
		    "stay on the server and may be delivered again",
		    s->a->name, s->npending);
	pending_clear(s);
}

/* Fetch one account with plugin p, retrying once after a rejected
 * cached token. */
int
session_run(struct account *a, const struct pm_plugin *p,
    struct run_stats *stats, char **err)
{
	struct pm_session s;
	int r, attempt;

	memset(&s, 0, sizeof s);
	s.a = a;
	s.stats = stats;
	s.info.name = a->name;
	s.info.server = a->server;
	s.info.port = a->port != 0 ? a->port :
	    (a->tls == PM_TLS_IMPLICIT ? p->port_tls : p->port_plain);
	s.info.tls = a->tls;
	s.info.user = a->user;
	s.info.folders = (const char *const *)a->folders;
	s.info.nfolders = a->nfolders;
	s.info.keep = a->keep;
	s.info.mark_seen = a->mark_seen;
	s.info.size_limit = a->size_limit;
	s.info.fetch_all = a->fetch_all;
	s.info.xoauth2_two_step = a->pop3_xoauth2_two_step;
	s.cache_dir = xasprintf("%s/tokens", a->state_dir);

	r = state_open(a->state_dir, a->name, &s.state, err);
	if (r == PM_OK)
		r = deliver_open(a, &s.deliver, err);
	for (attempt = 0; r == PM_OK; attempt++) {
		s.token_rejected = 0;
		r = p->fetch(&session_host, &s, err);
		host_disconnect(&s);
		session_discard_pending(&s);
		if (r != PM_EAUTH || !s.token_rejected)
			break;
		/* Never reuse a token the server refused. */
		if (s.token_cached && attempt == 0) {
			log_info("%s: the server refused the cached access "
			    "token; getting a new one", a->name);
			session_drop_token(&s);
			free(*err);
			*err = NULL;
			r = PM_OK;
			continue;
		}
		session_drop_token(&s);
		break;
	}
	host_disconnect(&s);
	session_discard_pending(&s);
	deliver_close(s.deliver);
	state_close(s.state);
	secret_free(s.token);
	free(s.cache_dir);
	return r;
}
