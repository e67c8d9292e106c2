/*
 * SMTP and LMTP delivery to the local MTA: one session for all the
 * messages of a run (TCP or, for LMTP, a unix socket), opened at the first
 * message and ended with QUIT by close().  EHLO/LHLO with PIPELINING,
 * 8BITMIME and SIZE used when offered; each message is sent as MAIL, RCPT
 * and DATA (the three pipelined when offered) with CRLF line ends and
 * dot-stuffing done while streaming (deliver_smtp_encode(): bare CR and
 * NUL never reach the MTA).  (Threads: no shared state; a session
 * belongs to one thread.)  The MTA's reply to the end of DATA
 * (LMTP: the recipient's reply), awaited by finish(), is the durability
 * point: 2xx delivered, 4xx temporary, 5xx failed; sync() has nothing left
 * to do.  After a refusal RSET keeps the session usable.  A 421 or a lost
 * connection fails the message in flight as temporary (those answered
 * before stay delivered) and the next message connects again.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "deliver-int.h"
#include "log.h"
#include "transport.h"
#include "util.h"

#define SMTP_LINE_MAX 2048	/* longest reply line accepted */
#define SMTP_OBUF 16384
#define SMTP_TEXT_MAX 200	/* bytes of a reply quoted in an error */

struct smtp {
	int lmtp;
	const char *proto;	/* "smtp" or "lmtp", for messages */
	char *where;		/* the target as configured */
	char *host;		/* NULL for a unix socket */
	unsigned port;
	char *sockpath;
	unsigned timeout;	/* seconds per read or write */
	char *helo;		/* our name for EHLO/LHLO */
	char *account;

	struct stream *s;	/* NULL when not connected */
	int pipelining, eightbit, size;
	const char *line;	/* the last line read, until the next read */
};

struct smtp_msg {
	int bol;		/* at the start of a line */
	size_t olen;
	char obuf[SMTP_OBUF];
};

/* Parse HOST[:PORT] or [V6][:PORT] into a malloc'd host and a port;
 * -1 when broken. */
int
deliver_hostport(const char *s, unsigned def_port, char **host_r,
    unsigned *port_r)
{
	const char *end, *colon;
	char *host;
	unsigned long n;
	char *ep;

	if (s == NULL || *s == '\0' || strpbrk(s, " \t\r\n/") != NULL)
		return -1;
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL || end == s + 1)
			return -1;
		host = xstrndup(s + 1, (size_t)(end - s - 1));
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL) {
			free(host);
			return -1;
		}
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return -1;
		if (colon == s)
			return -1;
		host = colon != NULL ? xstrndup(s, (size_t)(colon - s)) :
		    xstrdup(s);
	}
	*port_r = def_port;
	if (colon != NULL) {
		errno = 0;
		n = strtoul(colon + 1, &ep, 10);
		if (colon[1] < '0' || colon[1] > '9' || *ep != '\0' ||
		    errno != 0 || n < 1 || n > 65535) {
			free(host);
			return -1;
		}
		*port_r = (unsigned)n;
	}
	*host_r = host;
	return 0;
}

/* Set up an SMTP or LMTP target from cfg; it connects lazily. */
static int
open_common(const struct deliver_config *cfg, int lmtp, void **ctx_r,
    char **err)
{
	struct smtp *sm = xcalloc(1, sizeof *sm);
	const char *arg = cfg->target;

	sm->lmtp = lmtp;
	sm->proto = lmtp ? "lmtp" : "smtp";
	sm->timeout = cfg->timeout;
	if (arg != NULL && lmtp && arg[0] == '/') {
		if (strlen(arg) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
			free(sm);
			return errf(err, PM_ECONFIG, "lmtp: socket path %s "
			    "is too long", arg);
		}
		sm->sockpath = xstrdup(arg);
	} else if (arg == NULL || deliver_hostport(arg, lmtp ? 24 : 25,
	    &sm->host, &sm->port) < 0) {
		free(sm);
		return errf(err, PM_ECONFIG, "%s: bad target \"%s\"",
		    lmtp ? "lmtp" : "smtp", arg != NULL ? arg : "");
	}
	sm->where = xstrdup(arg);
	sm->helo = local_hostname();
	sm->account = xstrdup(cfg->account);
	*ctx_r = sm;
	return PM_OK;
}

/* smtp: parse the HOST[:PORT] target (port 25); connect on first use. */
static int
smtp_open(const struct deliver_config *cfg, void **ctx_r, char **err)
{
	return open_common(cfg, 0, ctx_r, err);
}

/* lmtp: take a unix socket path or HOST[:PORT] (port 24); connect on
 * first use. */
static int
lmtp_open(const struct deliver_config *cfg, void **ctx_r, char **err)
{
	return open_common(cfg, 1, ctx_r, err);
}

/* Close the connection to the MTA and drop any buffered input. */
static void
disconnect(struct smtp *sm)
{
	stream_close(sm->s);
	sm->s = NULL;
	sm->line = NULL;
}

/* A connection-level failure: drop the connection, report PM_ETEMP. */
static int PM_PRINTF(3, 4)
conn_error(struct smtp *sm, char **err, const char *fmt, ...)
{
	va_list ap;
	char *why;

	va_start(ap, fmt);
	why = xvasprintf(fmt, ap);
	va_end(ap);
	disconnect(sm);
	errf(err, PM_ETEMP, "%s: %s: %s", sm->proto, sm->where, why);
	free(why);
	return PM_ETEMP;
}

/*
 * A failure of the transport: drop the connection, report PM_ETEMP.  The
 * transport's message names the target (host:port or the socket's path)
 * and says what happened (timed out, closed by the server, ...).
 */
static int
stream_error(struct smtp *sm, char **err)
{
	char *why = *err;

	*err = NULL;
	disconnect(sm);
	errf(err, PM_ETEMP, "%s: %s", sm->proto, why);
	free(why);
	return PM_ETEMP;
}

/* Send all of buf to the MTA, waiting at most the timeout per write. */
static int
send_all(struct smtp *sm, const void *buf, size_t len, char **err)
{
	if (stream_write(sm->s, buf, len, err) != PM_OK)
		return stream_error(sm, err);
	return PM_OK;
}

/* Read one reply line into sm->line (CRLF removed). */
static int
read_line(struct smtp *sm, char **err)
{
	size_t len;
	int r;

	r = stream_read_line(sm->s, SMTP_LINE_MAX, &sm->line, &len, err);
	if (r == PM_EPROTO) {
		free(*err);
		*err = NULL;
		return conn_error(sm, err, "reply line longer than %d bytes",
		    SMTP_LINE_MAX);
	}
	if (r != PM_OK)
		return stream_error(sm, err);
	return PM_OK;
}

/* Printable copy of reply text for an error message. */
static char *
safe_text(const char *s)
{
	char *out = xstrndup(s, SMTP_TEXT_MAX);
	size_t i;

	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 ||
		    (unsigned char)out[i] > 0x7e)
			out[i] = '?';
	return out;
}

/*
 * Read one (possibly multi-line) reply: *code_r is its code, *text_r the
 * last line (malloc'd, printable).  lines, when not NULL, is called with
 * each line's text (EHLO keywords).
 */
static int
read_reply(struct smtp *sm, int *code_r, char **text_r,
    void (*lines)(struct smtp *, const char *), char **err)
{
	int r, code = -1;
	const char *l;

	for (;;) {
		if ((r = read_line(sm, err)) != PM_OK)
			return r;
		l = sm->line;
		if (strlen(l) < 3 || l[0] < '2' || l[0] > '5' ||
		    l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' ||
		    (l[3] != '\0' && l[3] != ' ' && l[3] != '-'))
			return conn_error(sm, err, "malformed reply \"%.80s\"",
			    l);
		if (code < 0)
			code = (l[0] - '0') * 100 + (l[1] - '0') * 10 +
			    (l[2] - '0');
		else if (code != (l[0] - '0') * 100 + (l[1] - '0') * 10 +
		    (l[2] - '0'))
			return conn_error(sm, err, "reply lines with different "
			    "codes");
		if (lines != NULL)
			lines(sm, l[3] == '\0' ? "" : l + 4);
		if (l[3] != '-')
			break;
	}
	*code_r = code;
	if (text_r != NULL)
		*text_r = safe_text(sm->line);
	return PM_OK;
}

/* Note an EHLO/LHLO keyword we use. */
static void
ehlo_line(struct smtp *sm, const char *kw)
{
	if (strcasecmp(kw, "PIPELINING") == 0)
		sm->pipelining = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		sm->eightbit = 1;
	else if (strncasecmp(kw, "SIZE", 4) == 0 &&
	    (kw[4] == '\0' || kw[4] == ' '))
		sm->size = 1;
}

/* The status for a reply code: 4xx temporary, everything else final. */
static int
code_status(int code)
{
	return code >= 400 && code < 500 ? PM_ETEMP : PM_EDELIVER;
}

/* Connect to the target: the unix socket or host:port. */
static int
connect_socket(struct smtp *sm, char **err)
{
	int r, ms = (int)sm->timeout * 1000;

	if (sm->sockpath != NULL)
		r = stream_connect_unix(sm->sockpath, ms, &sm->s, err);
	else
		r = stream_connect(sm->host, sm->port, ms, &sm->s, err);
	if (r != PM_OK)
		return stream_error(sm, err);
	return PM_OK;
}

/* Connect, read the greeting and say EHLO/LHLO (HELO as a fallback). */
static int
smtp_connect(struct smtp *sm, char **err)
{
	char *text = NULL, *cmd;
	int code, r;

	if (sm->s != NULL)
		return PM_OK;
	sm->pipelining = sm->eightbit = sm->size = 0;
	if ((r = connect_socket(sm, err)) != PM_OK)
		return r;
	if ((r = read_reply(sm, &code, &text, NULL, err)) != PM_OK)
		return r;
	if (code != 220) {
		r = errf(err, code_status(code), "%s: %s: greeting: %s",
		    sm->proto, sm->where, text);
		free(text);
		disconnect(sm);
		return r;
	}
	free(text);
	cmd = xasprintf("%s %s\r\n", sm->lmtp ? "LHLO" : "EHLO", sm->helo);
	r = send_all(sm, cmd, strlen(cmd), err);
	free(cmd);
	if (r == PM_OK)
		r = read_reply(sm, &code, &text, ehlo_line, err);
	if (r != PM_OK)
		return r;
	if (code / 100 != 2 && !sm->lmtp && code / 100 == 5) {
		free(text);
		cmd = xasprintf("HELO %s\r\n", sm->helo);
		r = send_all(sm, cmd, strlen(cmd), err);
		free(cmd);
		if (r == PM_OK)
			r = read_reply(sm, &code, &text, NULL, err);
		if (r != PM_OK)
			return r;
	}
	if (code / 100 != 2) {
		r = errf(err, code_status(code), "%s: %s: %s: %s", sm->proto,
		    sm->where, sm->lmtp ? "LHLO" : "EHLO", text);
		free(text);
		disconnect(sm);
		return r;
	}
	free(text);
	log_debug("deliver", "%s: %s: connected to %s (pipelining %d, "
	    "8bitmime %d, size %d)", sm->account, sm->proto, sm->where,
	    sm->pipelining, sm->eightbit, sm->size);
	return PM_OK;
}

/* Send RSET after a refused transaction; a failure drops the link. */
static void
smtp_rset(struct smtp *sm)
{
	char *err = NULL, *text = NULL;
	int code;

	if (sm->s == NULL)
		return;
	if (send_all(sm, "RSET\r\n", 6, &err) != PM_OK ||
	    read_reply(sm, &code, &text, NULL, &err) != PM_OK)
		disconnect(sm);
	else if (code / 100 != 2)
		disconnect(sm);
	free(text);
	free(err);
}

/* The reply class each of MAIL, RCPT and DATA must get. */
static int
envelope_ok(int i, int code)
{
	return code / 100 == (i == 2 ? 3 : 2);
}

/*
 * Send MAIL, RCPT and DATA for one message, pipelined when offered, and
 * read their replies.  PM_OK when DATA got its 354.  *stale_r is set when
 * the connection turned out to be gone before the MTA answered MAIL: it
 * was closed, or answered 421, while it sat idle between two messages.
 */
static int
send_envelope(struct smtp *sm, const struct deliver_info *info,
    int *stale_r, char **err)
{
	static const char *const what[3] = { "MAIL FROM", "RCPT TO", "DATA" };
	char *cmd[3], *text[3] = { NULL, NULL, NULL }, *all, size[32];
	int code[3] = { 0, 0, 0 }, r = PM_OK, i, got = 0, bad = -1;

	*stale_r = 0;
	size[0] = '\0';
	if (sm->size && info->size > 0)
		snprintf(size, sizeof size, " SIZE=%llu",
		    (unsigned long long)info->size);
	cmd[0] = xasprintf("MAIL FROM:<%s>%s%s\r\n",
	    info->sender != NULL ? info->sender : "",
	    sm->eightbit ? " BODY=8BITMIME" : "", size);
	cmd[1] = xasprintf("RCPT TO:<%s>\r\n", info->recipient);
	cmd[2] = xstrdup("DATA\r\n");

	if (sm->pipelining) {
		all = xasprintf("%s%s%s", cmd[0], cmd[1], cmd[2]);
		r = send_all(sm, all, strlen(all), err);
		free(all);
		/* After a 421 the MTA answers nothing more. */
		for (i = 0; r == PM_OK && i < 3 &&
		    (i == 0 || code[i - 1] != 421); i++) {
			r = read_reply(sm, &code[i], &text[i], NULL, err);
			got += r == PM_OK;
		}
	} else {
		for (i = 0; r == PM_OK && i < 3 &&
		    (i == 0 || envelope_ok(i - 1, code[i - 1])); i++) {
			r = send_all(sm, cmd[i], strlen(cmd[i]), err);
			if (r == PM_OK)
				r = read_reply(sm, &code[i], &text[i], NULL,
				    err);
			got += r == PM_OK;
		}
	}
	if (r != PM_OK) {
		/* The connection failed (and was dropped). */
		*stale_r = got == 0;
		goto out;
	}
	for (i = 0; i < got && bad < 0; i++)
		if (!envelope_ok(i, code[i]))
			bad = i;
	if (bad < 0)
		goto out;
	r = errf(err, code_status(code[bad]), "%s: %s: %s%s%s%s refused: %s",
	    sm->proto, sm->where, what[bad], bad < 2 ? ":<" : "",
	    bad == 0 ? info->sender : bad == 1 ? info->recipient : "",
	    bad < 2 ? ">" : "", text[bad]);
	if (code[bad] == 421) {
		/* The MTA is closing the connection. */
		disconnect(sm);
		*stale_r = bad == 0;
		goto out;
	}
	if (got == 3 && code[2] == 354) {
		/* DATA went through alone: end it empty. */
		int c;
		char *t = NULL, *e2 = NULL;

		if (send_all(sm, ".\r\n", 3, &e2) != PM_OK ||
		    read_reply(sm, &c, &t, NULL, &e2) != 0)
			disconnect(sm);
		free(t);
		free(e2);
	}
	smtp_rset(sm);
out:
	for (i = 0; i < 3; i++) {
		free(cmd[i]);
		free(text[i]);
	}
	return r;
}

/*
 * smtp/lmtp: connect if not connected, and send MAIL, RCPT and DATA.
 * The connection is kept from one message to the next; if the MTA has
 * closed it in between (an idle timeout, a 421), nothing of the message
 * has been sent, so it is tried once more on a new connection.
 */
static int
smtp_begin(void *ctx, const struct deliver_info *info, void **m_r,
    char **err)
{
	struct smtp *sm = ctx;
	struct smtp_msg *mm;
	int r, reused, stale;

	for (;;) {
		reused = sm->s != NULL;
		if ((r = smtp_connect(sm, err)) != PM_OK)
			return r;
		r = send_envelope(sm, info, &stale, err);
		if (r == PM_OK || !stale || !reused)
			break;
		log_debug("deliver", "%s: %s: the connection was closed "
		    "while idle (%s); connecting again", sm->account,
		    sm->proto, *err);
		free(*err);
		*err = NULL;
	}
	if (r != PM_OK)
		return r;
	mm = xcalloc(1, sizeof *mm);
	mm->bol = 1;
	*m_r = mm;
	return PM_OK;
}

/* Send the buffered message bytes to the MTA. */
static int
out_flush(struct smtp *sm, struct smtp_msg *mm, char **err)
{
	int r;

	if (mm->olen == 0)
		return PM_OK;
	r = send_all(sm, mm->obuf, mm->olen, err);
	mm->olen = 0;
	return r;
}

/* Buffer one byte for the MTA, flushing when the buffer is full. */
static int
out_byte(struct smtp *sm, struct smtp_msg *mm, char c, char **err)
{
	int r;

	if (mm->olen == sizeof mm->obuf && (r = out_flush(sm, mm, err)) != 0)
		return r;
	mm->obuf[mm->olen++] = c;
	return PM_OK;
}

/*
 * Encode message bytes for DATA.  The stage has turned every CRLF into
 * LF, so a CR still here was a bare CR in the message (a CR before a LF
 * here was a CR before a CRLF there).  RFC 5321 (2.3.8) allows CR and LF
 * only together, and an MTA that ended lines at a bare CR would read
 * "<CR>.<CR>" as the end of DATA and the rest as new commands (SMTP
 * smuggling): so a bare CR ends a line like LF does, and each becomes
 * CRLF.  NUL bytes are dropped, not replaced: RFC 5322 (4.1) says they
 * must not be generated, programs written in C may cut strings at them
 * (a header line so cut would read differently downstream), and any
 * replacement byte would have to be guessed in the message's charset,
 * which is unknown here; a NUL carries no text in any charset 8-bit mail
 * can use.  Dropping happens first, so "<CR><NUL>." still stuffs the dot:
 * a '.' that starts a line of the output is doubled, and no line of the
 * message can be "." on the wire.
 */
size_t
deliver_smtp_encode(int *bol, const char *in, size_t len, char *out)
{
	char *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '\0')
			continue;
		if (c == '\r' || c == '\n') {
			*o++ = '\r';
			*o++ = '\n';
			*bol = 1;
			continue;
		}
		if (*bol && c == '.')
			*o++ = '.';
		*o++ = c;
		*bol = 0;
	}
	return (size_t)(o - out);
}

/* smtp/lmtp: send the bytes encoded by deliver_smtp_encode(). */
static int
smtp_write(void *ctx, void *m, const void *buf, size_t len, char **err)
{
	struct smtp *sm = ctx;
	struct smtp_msg *mm = m;
	const char *p = buf;
	size_t n;
	int r;

	if (sm->s == NULL)
		return errf(err, PM_ETEMP, "%s: %s: connection lost",
		    sm->proto, sm->where);
	while (len > 0) {
		/* Each input byte becomes at most two. */
		if (sizeof mm->obuf - mm->olen < 2 &&
		    (r = out_flush(sm, mm, err)) != PM_OK)
			return r;
		n = (sizeof mm->obuf - mm->olen) / 2;
		if (n > len)
			n = len;
		mm->olen += deliver_smtp_encode(&mm->bol, p, n,
		    mm->obuf + mm->olen);
		p += n;
		len -= n;
	}
	return PM_OK;
}

/* smtp/lmtp: end DATA with "." and take the MTA's reply as the verdict;
 * frees m. */
static int
smtp_finish(void *ctx, void *m, char **err)
{
	struct smtp *sm = ctx;
	struct smtp_msg *mm = m;
	char *text = NULL;
	int code, r = PM_OK;

	if (sm->s == NULL)
		r = errf(err, PM_ETEMP, "%s: %s: connection lost", sm->proto,
		    sm->where);
	if (r == PM_OK && !mm->bol) {
		if ((r = out_byte(sm, mm, '\r', err)) == PM_OK)
			r = out_byte(sm, mm, '\n', err);
	}
	if (r == PM_OK && (r = out_byte(sm, mm, '.', err)) == PM_OK &&
	    (r = out_byte(sm, mm, '\r', err)) == PM_OK &&
	    (r = out_byte(sm, mm, '\n', err)) == PM_OK)
		r = out_flush(sm, mm, err);
	free(mm);
	/* LMTP: one reply per accepted recipient; there is one. */
	if (r == PM_OK)
		r = read_reply(sm, &code, &text, NULL, err);
	if (r != PM_OK)
		return r;
	if (code / 100 != 2) {
		r = errf(err, code_status(code), "%s: %s: message refused "
		    "after DATA: %s", sm->proto, sm->where, text);
		/* After a 421 the MTA closes the connection; the next
		 * message connects again.  Otherwise RSET: Postfix keeps
		 * the transaction open after refusing in its end-of-data
		 * restrictions ("nested MAIL command"). */
		if (code == 421)
			disconnect(sm);
		else
			smtp_rset(sm);
	}
	free(text);
	return r;
}

/* DATA cannot be taken back: dropping the connection makes the MTA
 * discard the message.  The next message connects again. */
static void
smtp_abort(void *ctx, void *m)
{
	struct smtp *sm = ctx;

	disconnect(sm);
	free(m);
}

/* Nothing to do: finish() waited for the MTA's reply to the end of DATA,
 * which made the message durable. */
static int
smtp_sync(void *ctx, char **err)
{
	return PM_OK;
}

/* smtp/lmtp: send QUIT if connected, close and free the target. */
static void
smtp_close(void *ctx)
{
	struct smtp *sm = ctx;
	char *err = NULL, *text = NULL;
	int code;

	if (sm->s != NULL && send_all(sm, "QUIT\r\n", 6, &err) == PM_OK)
		(void)read_reply(sm, &code, &text, NULL, &err);
	free(text);
	free(err);
	disconnect(sm);
	free(sm->where);
	free(sm->host);
	free(sm->sockpath);
	free(sm->helo);
	free(sm->account);
	free(sm);
}

const struct deliver_ops deliver_smtp_ops = {
	.name = "smtp",
	.open = smtp_open,
	.begin = smtp_begin,
	.write = smtp_write,
	.finish = smtp_finish,
	.abort = smtp_abort,
	.sync = smtp_sync,
	.close = smtp_close,
};

const struct deliver_ops deliver_lmtp_ops = {
	.name = "lmtp",
	.open = lmtp_open,
	.begin = smtp_begin,
	.write = smtp_write,
	.finish = smtp_finish,
	.abort = smtp_abort,
	.sync = smtp_sync,
	.close = smtp_close,
};

/* Greet the MTA without a message (contract in deliver-int.h). */
int
deliver_smtp_hello(void *ctx, char **err)
{
	return smtp_connect(ctx, err);
}
