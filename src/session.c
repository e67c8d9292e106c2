/*
 * One account's run.  The host services a plugin receives are implemented
 * here on top of the transport, the token module and the SASL encoders;
 * session_run() has the fetch engine drive one plugin over one account,
 * retries once when the server rejects a cached token, and goes on with a
 * new session when one ends for a reason a new one gets past (a plugin's
 * retry_hint(): throttling, a lost or invalidated session, an expired
 * token) or when the token is about to expire.
 */
#include "autoconf.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "deliver.h"
#include "fetch.h"
#include "log.h"
#include "oauth.h"
#include "sasl.h"
#include "secret.h"
#include "session.h"
#include "state.h"
#include "transport.h"
#include "util.h"

#define LINE_MAX_BYTES 65536

/*
 * New sessions tried in a row without a message delivered, after a session
 * ended for a reason a new one may get past, before the temporary failure
 * is reported: the server then keeps the mail for the next run.  As long
 * as each session delivers something, the run goes on.
 */
#define SESSION_RETRIES 3
/* The wait before a new session after a lost one: doubling from the
 * first, at most the last. */
#define RECONNECT_WAIT_MS 1000
#define RECONNECT_WAIT_MAX_MS 8000
/* How long before its token expires a session ends at a batch boundary:
 * this, or half the time left when less. */
#define RENEW_MARGIN_MS (5 * 60 * 1000LL)

struct pm_session {
	struct account *a;
	struct pm_account_info info;
	struct stream *stream;
	struct pm_secret *token;	/* access token for this run */
	int token_cached;		/* it came from the cache */
	int token_rejected;		/* the server refused it */
	char *cache_dir;
	int retry_kind;			/* enum pm_retry of the last hint,
					 * 0: none */
	unsigned retry_ms;		/* the server's suggested wait */
	int wake_fd;			/* ends an await_input() early; -1:
					 * none */
	struct fetch_policy *pol;	/* its renew_at_ms follows the
					 * token */
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
		log_errx("%s: %s", s->a->name, msg);
		break;
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

/* End the session at a batch boundary before its token expires. */
static void
session_renew_at(struct pm_session *s)
{
	time_t exp = oauth_account_expiry(s->a, s->cache_dir, s->token);
	time_t now = time(NULL);
	long long left_ms, margin;

	if (s->pol == NULL)
		return;
	s->pol->renew_at_ms = 0;
	if (exp == 0)
		return;
	left_ms = exp > now ? (long long)(exp - now) * 1000 : 0;
	margin = left_ms / 2 < RENEW_MARGIN_MS ? left_ms / 2 :
	    RENEW_MARGIN_MS;
	s->pol->renew_at_ms = mono_ms() + left_ms - margin;
	log_debug("oauth", "%s: the access token expires in %lld s; a new "
	    "session follows after %lld s", s->a->name, left_ms / 1000,
	    (left_ms - margin) / 1000);
}

/* The access token for this run: from the cache or the token endpoint. */
static int
session_token(struct pm_session *s, char **err)
{
	int r;

	if (s->token != NULL)
		return PM_OK;
	r = oauth_account_token(s->a, s->cache_dir, &s->token,
	    &s->token_cached, err);
	if (r != PM_OK)
		return r;
	log_debug("oauth", "%s: using %s access token", s->a->name,
	    s->token_cached ? "cached" : "new");
	session_renew_at(s);
	return PM_OK;
}

/* Drop the cached token so the next attempt asks the endpoint. */
static void
session_drop_token(struct pm_session *s)
{
	oauth_account_invalidate(s->a, s->cache_dir, s->token);
	secret_free(s->token);
	s->token = NULL;
	s->token_cached = 0;
}

/*
 * After an attempt that ended with r: when the server refused the token,
 * drop it (a refused token is never used again) and say whether to try
 * once more with a new one, which only a token from the cache, refused
 * for the first time (*retried still 0), gets.
 */
static int
session_retry_token(struct pm_session *s, int r, int *retried)
{
	int cached = s->token_cached;

	if (r != PM_EAUTH || !s->token_rejected)
		return 0;
	session_drop_token(s);
	if (!cached || *retried)
		return 0;
	*retried = 1;
	log_info("%s: the server refused the cached access token; "
	    "getting a new one", s->a->name);
	return 1;
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

/* Host sasl_auth(): choose a mechanism and run the SASL exchange, noting
 * a refused OAuth token so session_run() can retry with a fresh one. */
static int
host_sasl_auth(struct pm_session *s, const struct pm_sasl_proto *p,
    void *ctx, const char *server_mechs, int server_ir, char **err)
{
	struct sasl_login l;
	struct pm_secret *ir = NULL;
	int r, oauth, refused;

	if (!host_tls_active(s) && s->a->tls != PM_TLS_NONE)
		return errf(err, PM_ETLS, "refusing to authenticate over an "
		    "unencrypted connection (set tls = none to allow it)");
	oauth = account_uses_oauth(s->a) ? SASL_HAVE_OAUTH : 0;
	if (oauth && s->a->password != NULL)
		oauth |= SASL_HAVE_PASSWORD;
	memset(&l, 0, sizeof l);
	l.mech = sasl_choose(s->a->auth, oauth, server_mechs, err);
	if (l.mech == NULL)
		return PM_ECONFIG;
	if ((r = sasl_initial(s, l.mech, &ir, err)) != PM_OK)
		return r;
	log_debug("sasl", "%s: authenticating as %s with %s", s->a->name,
	    s->a->user, l.mech);
	l.user = s->a->user;
	l.password = s->a->password;
	l.ir = ir;
	l.server_ir = server_ir;
	r = sasl_exchange(p, ctx, &l, &refused, err);
	if (refused)
		s->token_rejected = 1;
	secret_free(ir);
	return r;
}

/* Host password(): the configured password, or NULL. */
static const struct pm_secret *
host_password(struct pm_session *s)
{
	return s->a->password;
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

/* Host trace(): trace a line the plugin read with read_bytes(). */
static void
host_trace(struct pm_session *s, const char *line, size_t len)
{
	log_trace(s->a->name, "S", line, len, NULL);
}

/* Host retry_hint(): remember why the session is about to fail. */
static void
host_retry_hint(struct pm_session *s, int kind, unsigned ms)
{
	s->retry_kind = kind;
	s->retry_ms = ms;
}

/* Host await_input(): wait for the server or for the core's wake-up. */
static int
host_await_input(struct pm_session *s, int timeout_ms)
{
	if (s->stream == NULL)
		return 1;
	return stream_await(s->stream, timeout_ms, s->wake_fd);
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
	.secret_data = host_secret_data,
	.secret_new = secret_new,
	.secret_free = secret_free,
	.unread = host_unread,
	.trace = host_trace,
	.retry_hint = host_retry_hint,
	.await_input = host_await_input,
};

/* Fill s for account a and plugin p. */
static void
session_setup(struct pm_session *s, struct account *a,
    const struct pm_plugin *p)
{
	memset(s, 0, sizeof *s);
	s->a = a;
	s->wake_fd = -1;
	s->info.name = a->name;
	s->info.server = a->server;
	s->info.port = a->port != 0 ? a->port :
	    (a->tls == PM_TLS_IMPLICIT ? p->port_tls : p->port_plain);
	s->info.tls = a->tls;
	s->info.user = a->user;
	s->info.xoauth2_two_step = a->pop3_xoauth2_two_step;
	s->info.strict_size = a->pop3_strict_size;
	s->info.expunge = a->expunge;
	s->cache_dir = account_token_dir(a);
}

/* The fetch policy of account a. */
static void
policy_setup(struct fetch_policy *pol, const struct account *a,
    int progress)
{
	memset(pol, 0, sizeof *pol);
	pol->account = a->name;
	pol->server = a->server;
	pol->protocol = a->protocol;
	pol->folders = (const char *const *)a->folders;
	pol->nfolders = a->nfolders;
	pol->keep = a->keep;
	pol->mark_seen = a->mark_seen;
	pol->fetch_all = a->fetch_all;
	pol->size_limit = a->size_limit;
	pol->batch_msgs = FETCH_BATCH_MSGS;
	pol->batch_bytes = FETCH_BATCH_BYTES;
	pol->progress = progress;
}

/* Open the state (bound to this mailbox) and the delivery target. */
static int
session_open_store(struct pm_session *s, struct state **st_r,
    struct deliver **d_r, char **err)
{
	struct state_binding bind;
	int r;

	*st_r = NULL;
	*d_r = NULL;
	/* The UIDs recorded belong to this mailbox only. */
	bind.protocol = s->a->protocol;
	bind.server = s->a->server;
	bind.port = s->info.port;
	bind.user = s->a->user;
	r = state_open(s->a->state_dir, s->a->name, &bind, st_r, err);
	if (r == PM_OK && (r = deliver_open(s->a, d_r, err)) != PM_OK) {
		state_close(*st_r);
		*st_r = NULL;
	}
	return r;
}

/* Wait ms milliseconds, or less when wake_fd becomes readable or a signal
 * arrives; returns 0 when the whole wait passed. */
static int
session_sleep(int wake_fd, long long ms)
{
	struct pollfd pfd[2];
	long long end = mono_ms() + ms, left;
	int n;

	/* The daemon's shutdown cuts a wait as it cuts a read. */
	pfd[0].fd = transport_abort_fd();
	pfd[0].events = POLLIN;
	pfd[1].fd = wake_fd;
	pfd[1].events = POLLIN;
	while ((left = end - mono_ms()) > 0) {
		pfd[0].revents = pfd[1].revents = 0;
		n = poll(pfd, 2, left > 60000 ? 60000 : (int)left);
		if (n > 0 || (n < 0 && errno == EINTR))
			return -1;
	}
	return 0;
}

/* The wait before a new session (contract in session.h). */
long long
session_retry_wait(int kind, unsigned attempt, int connected,
    unsigned suggested_ms, const struct retry_policy *pol)
{
	long long wait, cap = (long long)pol->throttle_max_wait * 1000;
	long long quick = RECONNECT_WAIT_MS, back;
	unsigned i;

	for (i = 1; i < attempt && quick < RECONNECT_WAIT_MAX_MS; i++)
		quick *= 2;
	if (quick > RECONNECT_WAIT_MAX_MS)
		quick = RECONNECT_WAIT_MAX_MS;
	if (kind == PM_RETRY_TOKEN_EXPIRED && attempt <= 1)
		return 0;
	if (kind == PM_RETRY_THROTTLED && suggested_ms > 0) {
		wait = suggested_ms < cap ? suggested_ms : cap;
		if (pol->backoff != NULL && attempt > pol->quick &&
		    wait < (back = pol->backoff(attempt - pol->quick)))
			wait = back;
		return wait;
	}
	if (pol->backoff == NULL || ((connected ||
	    kind == PM_RETRY_RECONNECT) && attempt <= pol->quick))
		return quick;
	return pol->backoff(attempt);
}

/*
 * After a session failed with PM_ETEMP (why): whether a new session should
 * go on, and after how long a wait (*wait_ms_r).  renew: the fetch engine
 * ended the session because the token is about to expire.  stalls is how
 * many sessions in a row got nothing delivered.  Logs what is done.
 */
static int
session_again(struct pm_session *s, int renew, int stalls, const char *why,
    long long *wait_ms_r)
{
	struct account *a = s->a;
	struct retry_policy pol;
	long long wait, cap = (long long)a->throttle_max_wait * 1000;

	*wait_ms_r = 0;
	if (!renew && s->retry_kind == 0)
		return 0;
	if (stalls > SESSION_RETRIES) {
		log_info("%s: %s; %d new sessions in a row delivered nothing, "
		    "the mail stays on the server for the next run", a->name,
		    why, SESSION_RETRIES);
		return 0;
	}
	if (renew) {
		log_info("%s: the access token is about to expire; going on "
		    "with a new session and a new token", a->name);
		return 1;
	}
	memset(&pol, 0, sizeof pol);
	pol.throttle_max_wait = a->throttle_max_wait;
	pol.quick = SESSION_RETRIES;
	wait = session_retry_wait(s->retry_kind, (unsigned)stalls, 1,
	    s->retry_ms, &pol);
	switch (s->retry_kind) {
	case PM_RETRY_THROTTLED:
		if (s->retry_ms > cap)
			log_info("%s: the server asks to wait %.1f s; waiting "
			    "%.1f s (throttle_max_wait)", a->name,
			    s->retry_ms / 1000.0, cap / 1000.0);
		log_info("%s: throttled by the server; retrying in %.1f s",
		    a->name, wait / 1000.0);
		break;
	case PM_RETRY_TOKEN_EXPIRED:
		log_info("%s: the server ended the session because the access "
		    "token expired; going on with a new token%s", a->name,
		    wait > 0 ? " after a pause" : "");
		break;
	default:
		log_info("%s: %s; reconnecting in %.1f s", a->name, why,
		    wait / 1000.0);
		break;
	}
	*wait_ms_r = wait;
	return 1;
}

/* Fetch one account with plugin p, retrying once after a rejected
 * cached token and going on with new sessions as session.h says. */
int
session_run(struct account *a, const struct pm_plugin *p, int progress,
    struct run_stats *stats, char **err)
{
	struct pm_session s;
	struct fetch_policy pol;
	struct fetch_target t;
	struct state *st = NULL;
	struct deliver *d = NULL;
	unsigned long before, skipped;
	long long wait_ms;
	int r, auth_retried = 0, stalls = 0;

	session_setup(&s, a, p);
	s.pol = &pol;
	policy_setup(&pol, a, progress);
	r = session_open_store(&s, &st, &d, err);
	if (r == PM_OK)
		fetch_target_deliver(&t, d);
	while (r == PM_OK) {
		s.token_rejected = 0;
		s.retry_kind = 0;
		s.retry_ms = 0;
		stats->renew = 0;
		/* Every session lists the folders from the first again:
		 * the messages skipped for size are counted once, the
		 * failures of the last session are the run's. */
		skipped = stats->skipped;
		stats->skipped = 0;
		stats->failed = 0;
		before = stats->delivered;
		r = fetch_run(&pol, &t, st, p, &session_host, &s, stats, err);
		if (stats->skipped < skipped)
			stats->skipped = skipped;
		host_disconnect(&s);
		if (r == PM_EAUTH && s.token_rejected) {
			if (!session_retry_token(&s, r, &auth_retried))
				break;
		} else if (r == PM_ETEMP) {
			/* The state file holds what was delivered: a new
			 * session goes on where this one stopped. */
			stalls = stats->delivered > before ? 0 : stalls + 1;
			if (transport_aborted())
				break;	/* the daemon is stopping */
			if (!session_again(&s, stats->renew, stalls, *err,
			    &wait_ms))
				break;
			if (s.token != NULL && (stats->renew ||
			    s.retry_kind == PM_RETRY_TOKEN_EXPIRED))
				session_drop_token(&s);
			if (wait_ms > 0 && session_sleep(s.wake_fd,
			    wait_ms) != 0)
				break;
		} else
			break;
		free(*err);
		*err = NULL;
		r = PM_OK;
	}
	stats->renew = 0;
	host_disconnect(&s);
	deliver_close(d);
	state_close(st);
	secret_free(s.token);
	free(s.cache_dir);
	return r;
}

/* One pass over folder on the open connection c, under the account's
 * lock: state and target are opened for the pass only, so the account's
 * other folders (and a one-shot run) get their turn between passes. */
static int
idle_pass(struct pm_session *s, const struct pm_plugin *p,
    struct pm_conn *c, const char *folder, const struct idle_ctl *ctl,
    char **err)
{
	const char *folders[1];
	struct fetch_policy pol;
	struct fetch_target t;
	struct run_stats stats;
	struct state *st;
	struct deliver *d;
	int r;

	folders[0] = folder;
	policy_setup(&pol, s->a, 0);
	pol.folders = folders;
	pol.nfolders = 1;
	memset(&stats, 0, sizeof stats);
	if (ctl->lock != NULL)
		ctl->lock(ctl->arg, 1);
	r = session_open_store(s, &st, &d, err);
	if (r == PM_OK) {
		fetch_target_deliver(&t, d);
		r = fetch_pass(&pol, &t, st, p, c, &stats, err);
		deliver_close(d);
		state_close(st);
	}
	if (ctl->lock != NULL)
		ctl->lock(ctl->arg, 0);
	if (ctl->report != NULL)
		ctl->report(ctl->arg, &stats);
	return r;
}

int
session_idle(struct account *a, const struct pm_plugin *p,
    const char *folder, const struct idle_ctl *ctl,
    struct session_outcome *out, char **err)
{
	struct pm_session s;
	struct fetch_policy rpol;
	struct pm_conn *c = NULL;
	char *cerr = NULL;
	int r, news, retried, timeout;
	long long renew;

	memset(out, 0, sizeof *out);
	session_setup(&s, a, p);
	s.wake_fd = ctl->wake_fd;
	/* Only for the token's renewal time (session_renew_at()). */
	memset(&rpol, 0, sizeof rpol);
	s.pol = &rpol;
	for (retried = 0;;) {
		s.token_rejected = 0;
		r = p->open(&session_host, &s, &c, err);
		if (!session_retry_token(&s, r, &retried))
			break;
		free(*err);
		*err = NULL;
	}
	if (r != PM_OK)
		goto out;
	if (p->can_wait == NULL || p->wait == NULL || !p->can_wait(c)) {
		out->no_idle = 1;
		goto close;
	}
	out->connected = 1;
	log_info("%s: %s: waiting for new mail (IDLE)", a->name, folder);
	news = 1;
	for (;;) {
		if (news && (r = idle_pass(&s, p, c, folder, ctl, err)) !=
		    PM_OK)
			break;
		if (ctl->stopping(ctl->arg))
			break;
		/* RFC 2177: re-issue IDLE at least every 29 minutes.  A
		 * session whose token runs out is renewed before it does. */
		timeout = IDLE_RENEW_MS;
		renew = rpol.renew_at_ms;
		if (renew > 0) {
			long long left = renew - mono_ms();

			if (left <= 0) {
				out->renew = 1;
				break;
			}
			if (left < timeout)
				timeout = (int)left;
		}
		if ((r = p->wait(c, timeout, &news, err)) != PM_OK)
			break;
		if (ctl->stopping(ctl->arg))
			break;
		if (ctl->woken(ctl->arg))
			news = 1;
	}
close:
	if (p->close(c, &cerr) != PM_OK && r == PM_OK)
		log_debug("imap", "%s: %s", a->name, cerr);
	free(cerr);
out:
	out->retry_kind = s.retry_kind;
	out->retry_ms = s.retry_ms;
	if (s.retry_kind == PM_RETRY_TOKEN_EXPIRED)
		session_drop_token(&s);
	host_disconnect(&s);
	secret_free(s.token);
	free(s.cache_dir);
	return r;
}

/* `pullmail check`: log in and select each folder (contract in
 * session.h). */
int
session_probe(struct account *a, const struct pm_plugin *p,
    void (*selected)(void *arg, const char *folder, uint64_t count),
    void *arg, struct session_probe_result *res, char **err)
{
	static const char *const maildrop[] = { "" };
	const char *const *folders = (const char *const *)a->folders;
	struct pm_session s;
	struct pm_conn *c = NULL;
	const struct pm_entry *e;
	struct pm_folder f;
	char *cerr = NULL;
	size_t i, n = a->nfolders, ne;
	int r, have_uids;

	memset(res, 0, sizeof *res);
	session_setup(&s, a, p);
	if ((p->flags & PM_PLUGIN_FOLDERS) == 0) {
		folders = maildrop;
		n = 1;
	}
	r = p->open(&session_host, &s, &c, err);
	res->token_refused = s.token_rejected;
	if (r == PM_OK) {
		res->logged_in = 1;
		selected(arg, NULL, 0);
		for (i = 0; i < n && r == PM_OK; i++) {
			memset(&f, 0, sizeof f);
			r = p->select(c, folders[i], &f, err);
			/* POP3's select says nothing: its listing counts. */
			if (r == PM_OK && (p->flags & PM_PLUGIN_FOLDERS) == 0 &&
			    (r = p->list(c, &e, &ne, &have_uids, err)) == PM_OK)
				f.count = ne;
			if (r != PM_OK)
				res->failed_folder = folders[i];
			else
				selected(arg, folders[i], f.count);
		}
		(void)p->close(c, &cerr);
		free(cerr);
	}
	host_disconnect(&s);
	secret_free(s.token);
	free(s.cache_dir);
	return r;
}
