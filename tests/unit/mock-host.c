/* The plugins' mock host: see mock-host.h. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock-host.h"
#include "secret.h"

struct mock M;

/* A message the sink is receiving. */
struct pm_msg {
	size_t idx;
	char *data;
	size_t len;
};

void
mock_ev(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	M.log = realloc(M.log, M.loglen + n + 2);
	ck_assert_ptr_nonnull(M.log);
	memcpy(M.log + M.loglen, s, n);
	M.loglen += n;
	M.log[M.loglen++] = '\n';
	M.log[M.loglen] = '\0';
	free(s);
}

static int PM_PRINTF(3, 4)
merr(char **err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		abort();
	va_end(ap);
	return rc;
}

size_t
mock_at(const char *needle)
{
	const char *p = M.log != NULL ? strstr(M.log, needle) : NULL;

	ck_assert_msg(p != NULL, "\"%s\" not in log:\n%s", needle,
	    M.log != NULL ? M.log : "");
	return p - M.log;
}

int
mock_absent(const char *needle)
{
	return M.log == NULL || strstr(M.log, needle) == NULL;
}

const char *
mock_log(void)
{
	return M.log != NULL ? M.log : "";
}

static const struct pm_account_info *
m_account(struct pm_session *s)
{
	(void)s;
	return &M.acct;
}

static void PM_PRINTF(3, 4)
m_log(struct pm_session *s, int level, const char *fmt, ...)
{
	va_list ap;
	char *t;

	(void)s;
	va_start(ap, fmt);
	if (vasprintf(&t, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (level <= PM_LOG_INFO)
		mock_ev("LOG %s", t);
	free(t);
}

static int
m_connect(struct pm_session *s, char **err)
{
	(void)s;
	(void)err;
	mock_ev("CONNECT");
	M.tls = !M.no_tls;
	return PM_OK;
}

static int
m_starttls(struct pm_session *s, char **err)
{
	(void)s;
	(void)err;
	mock_ev("TLS");
	M.tls = 1;
	return PM_OK;
}

static int
m_tls_active(struct pm_session *s)
{
	(void)s;
	return M.tls;
}

static int PM_PRINTF(3, 4)
m_send(struct pm_session *s, char **err, const char *fmt, ...)
{
	va_list ap;
	char *t;

	(void)s;
	(void)err;
	va_start(ap, fmt);
	if (vasprintf(&t, fmt, ap) < 0)
		abort();
	va_end(ap);
	mock_ev("C: %s", t);
	free(t);
	return PM_OK;
}

static int
m_send_secret(struct pm_session *s, const char *prefix,
    const struct pm_secret *sec, char **err)
{
	(void)s;
	(void)err;
	mock_ev("C: %s<%s>", prefix, secret_reveal(sec));
	return PM_OK;
}

static int
m_read_line(struct pm_session *s, const char **line_r, size_t *len_r,
    char **err)
{
	const char *nl;
	size_t n;

	(void)s;
	if (M.pos >= M.inlen && M.flood != NULL) {
		n = strlen(M.flood);
		ck_assert_uint_lt(n, sizeof M.line);
		memcpy(M.line, M.flood, n + 1);
		*line_r = M.line;
		*len_r = n;
		return PM_OK;
	}
	if (M.pos >= M.inlen)
		return merr(err, PM_ETEMP, "connection closed by server");
	nl = memchr(M.in + M.pos, '\n', M.inlen - M.pos);
	if (nl == NULL)
		return merr(err, PM_ETEMP, "connection closed by server");
	n = nl - (M.in + M.pos);
	ck_assert_uint_lt(n, sizeof M.line);
	memcpy(M.line, M.in + M.pos, n);
	M.pos += n + 1;
	if (n > 0 && M.line[n - 1] == '\r')
		n--;
	M.line[n] = '\0';
	*line_r = M.line;
	*len_r = n;
	return PM_OK;
}

static int
m_read_bytes(struct pm_session *s, void *buf, size_t len, size_t *got_r,
    char **err)
{
	size_t n = len;

	(void)s;
	if (M.pos >= M.inlen)
		return merr(err, PM_ETEMP, "connection closed by server");
	if (n > M.chunk)
		n = M.chunk;
	if (n > M.inlen - M.pos)
		n = M.inlen - M.pos;
	memcpy(buf, M.in + M.pos, n);
	M.pos += n;
	*got_r = n;
	return PM_OK;
}

static void
m_unread(struct pm_session *s, const void *buf, size_t len)
{
	(void)s;
	ck_assert_uint_ge(M.pos, len);
	ck_assert_int_eq(memcmp(M.in + M.pos - len, buf, len), 0);
	M.pos -= len;
	M.unread += len;
}

/* Lines the plugin read with read_bytes are not logged: a test traces
 * them with a host of its own, as it does read_line's. */
static void
m_trace(struct pm_session *s, const char *line, size_t len)
{
	(void)s;
	(void)line;
	(void)len;
}

/* Input is there unless the script says the wait ends here (AWAIT_0). */
static int
m_await_input(struct pm_session *s, int timeout_ms)
{
	size_t n = sizeof AWAIT_0 - 1;

	(void)s;
	M.awaits++;
	M.await_ms = timeout_ms;
	if (M.inlen - M.pos >= n &&
	    memcmp(M.in + M.pos, AWAIT_0, n) == 0) {
		M.pos += n;
		mock_ev("AWAIT -> 0");
		return 0;
	}
	return 1;
}

/* Host retry_hint(): record why the session is about to fail. */
static void
m_retry_hint(struct pm_session *s, int kind, unsigned ms)
{
	(void)s;
	mock_ev("HINT %d %u", kind, ms);
	M.hint = kind;
	M.hint_ms = (int)ms;
}

static void
m_disconnect(struct pm_session *s)
{
	(void)s;
	mock_ev("DISCONNECT");
}

/* A small SASL engine: XOAUTH2 when offered, else PLAIN; the initial
 * response goes on the start line when the protocol allows it. */
static int
m_sasl_auth(struct pm_session *s, const struct pm_sasl_proto *p, void *ctx,
    const char *mechs, int ir, char **err)
{
	struct pm_secret *resp, *empty;
	const char *mech;
	char *text;
	int rc, kind, two;

	(void)s;
	mock_ev("SASL [%s] ir=%d max=%zu overhead=%zu two_step=%d", mechs,
	    ir, p->max_line, p->overhead, p->xoauth2_two_step);
	if (strstr(mechs, "XOAUTH2") != NULL)
		mech = "XOAUTH2";
	else if (strstr(mechs, "PLAIN") != NULL)
		mech = "PLAIN";
	else
		return merr(err, PM_ECONFIG, "no usable mechanism");
	two = p->xoauth2_two_step && strcmp(mech, "XOAUTH2") == 0;
	resp = secret_from_str("dG9rZW4=");
	empty = secret_from_str("");
	rc = p->start(ctx, mech, ir && !two ? resp : NULL, err);
	while (rc == PM_OK) {
		if ((rc = p->reply(ctx, &kind, &text, err)) != PM_OK)
			break;
		mock_ev("SASL reply %d [%s]", kind, text);
		if (kind == PM_SASL_CONTINUE) {
			rc = p->respond(ctx, *text == '\0' ? resp : empty,
			    err);
			free(text);
			continue;
		}
		if (kind == PM_SASL_FAILURE)
			rc = merr(err, PM_EAUTH, "authentication failed: %s",
			    text);
		free(text);
		break;
	}
	secret_free(resp);
	secret_free(empty);
	return rc;
}

static const struct pm_secret *
m_password(struct pm_session *s)
{
	(void)s;
	return M.pw;
}

static const char *
m_secret_data(const struct pm_secret *sec, size_t *len_r)
{
	*len_r = secret_len(sec);
	return secret_reveal(sec);
}

const struct pm_host mock_host = {
	.abi = PM_PLUGIN_ABI,
	.account = m_account,
	.log = m_log,
	.connect = m_connect,
	.starttls = m_starttls,
	.tls_active = m_tls_active,
	.send = m_send,
	.send_secret = m_send_secret,
	.read_line = m_read_line,
	.read_bytes = m_read_bytes,
	.disconnect = m_disconnect,
	.sasl_auth = m_sasl_auth,
	.password = m_password,
	.secret_data = m_secret_data,
	.secret_new = secret_new,
	.secret_free = secret_free,
	.unread = m_unread,
	.trace = m_trace,
	.retry_hint = m_retry_hint,
	.await_input = m_await_input,
};

static struct pm_msg *
k_begin(struct pm_fetch *f, size_t idx)
{
	struct pm_msg *m;

	(void)f;
	mock_ev("BEGIN %zu", idx);
	m = calloc(1, sizeof *m);
	ck_assert_ptr_nonnull(m);
	m->idx = idx;
	M.open_msgs++;
	return m;
}

static void
k_write(struct pm_msg *m, const void *buf, size_t len)
{
	ck_assert_ptr_nonnull(m);
	m->data = realloc(m->data, m->len + len + 1);
	ck_assert_ptr_nonnull(m->data);
	memcpy(m->data + m->len, buf, len);
	m->len += len;
}

static void
k_end(struct pm_msg *m, int complete)
{
	size_t n;

	ck_assert_ptr_nonnull(m);
	mock_ev("END %zu complete=%d", m->idx, complete);
	if (complete) {
		n = snprintf(NULL, 0, "%zu:", m->idx) + m->len + 1;
		M.delivered = realloc(M.delivered, M.dlen + n + 1);
		ck_assert_ptr_nonnull(M.delivered);
		M.dlen += sprintf(M.delivered + M.dlen, "%zu:", m->idx);
		if (m->len > 0)
			memcpy(M.delivered + M.dlen, m->data, m->len);
		M.dlen += m->len;
		M.delivered[M.dlen++] = '|';
		M.delivered[M.dlen] = '\0';
	}
	M.open_msgs--;
	free(m->data);
	free(m);
}

static void
k_missing(struct pm_fetch *f, size_t idx, int status, const char *reason)
{
	(void)f;
	mock_ev("MISSING %zu %d %s", idx, status, reason != NULL ? reason :
	    "-");
}

const struct pm_sink mock_sink = {
	.begin = k_begin,
	.write = k_write,
	.end = k_end,
	.missing = k_missing,
};

void
mock_reset(const char *script, unsigned port)
{
	free(M.log);
	free(M.delivered);
	secret_free(M.pw);
	memset(&M, 0, sizeof M);
	M.in = script;
	M.inlen = strlen(script);
	M.chunk = 3;
	M.acct.name = "test";
	M.acct.server = "127.0.0.1";
	M.acct.port = port;
	M.acct.tls = PM_TLS_IMPLICIT;
	M.acct.user = "joe@example.test";
}
