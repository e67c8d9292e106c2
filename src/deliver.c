/*
 * The delivery stage seen from the core: picks the target's ops table and
 * streams each message through a CRLF-to-LF filter in bounded chunks.  The
 * header section is held back (up to DELIVER_HEADER_MAX) until it is
 * complete: the envelope sender comes from it, and the optional header
 * lines are put in front of it before the target begins.
 *
 * Threads: no shared state here; a target belongs to one thread.  What
 * the targets share between threads is said at the top of each
 * deliver-*.c (mbox: the in-process gate; Maildir: the name counter).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deliver-int.h"
#include "envelope.h"
#include "log.h"
#include "process.h"
#include "util.h"

#define DELIVER_CHUNK 65536
#define DELIVER_FIELD_MAX 100	/* bytes of a name in the Received line */

struct deliver {
	const struct deliver_ops *ops;
	void *ctx;
	char *recipient;
	char *sender;		/* the envelope_sender setting, or NULL */
	int add_return_path;
	int add_delivered_to;
	int add_received;
};

struct deliver_msg {
	struct deliver *d;
	void *m;		/* the target's message, once begun */
	int begun;
	int pending_cr;		/* the last chunk ended with CR */

	/* Facts for the target, copied: the caller's may not outlive begin. */
	char *account, *server, *mailbox, *uid, *protocol;
	uint64_t size;

	char *hdr;		/* the header section while it is held */
	size_t hlen, hcap;

	size_t len;
	char buf[DELIVER_CHUNK];
};

/* The name of the user running pullmail; NULL when it cannot be told. */
static char *
local_user(void)
{
	struct passwd pwbuf, *pw = NULL;
	char buf[4096];
	const char *s;

	if (getpwuid_r(geteuid(), &pwbuf, buf, sizeof buf, &pw) == 0 &&
	    pw != NULL && pw->pw_name != NULL)
		return xstrdup(pw->pw_name);
	if ((s = getenv("USER")) != NULL || (s = getenv("LOGNAME")) != NULL)
		return xstrdup(s);
	return NULL;
}

/* What the targets read of account a, defaults applied; the strings are
 * a's. */
static void
config_from_account(const struct account *a, struct deliver_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->account = a->name != NULL ? a->name : "";
	cfg->target = a->deliver_path;
	cfg->recipient = a->recipient;
	cfg->timeout = a->timeout != 0 ? a->timeout : 60;
	cfg->lock_timeout = a->lock_timeout != 0 ? a->lock_timeout : 60;
	cfg->mda_timeout = a->mda_timeout != 0 ? a->mda_timeout : 600;
}

/* Open the account's target with its ops table; the recipient defaults
 * to the local user. */
int
deliver_open(const struct account *a, struct deliver **d_r, char **err)
{
	const struct deliver_ops *ops;
	struct deliver_config cfg;
	struct deliver *d;
	char *rcpt;
	int r;

	switch (a->deliver_kind) {
	case DELIVER_MAILDIR:
		ops = &deliver_maildir_ops;
		break;
	case DELIVER_MBOX:
		ops = &deliver_mbox_ops;
		break;
	case DELIVER_MDA:
		ops = &deliver_mda_ops;
		break;
	case DELIVER_SMTP:
		ops = &deliver_smtp_ops;
		break;
	case DELIVER_LMTP:
		ops = &deliver_lmtp_ops;
		break;
	default:
		return errf(err, PM_ECONFIG, "unsupported delivery target");
	}
	rcpt = a->recipient != NULL ? xstrdup(a->recipient) : local_user();
	if (rcpt == NULL || !envelope_addr_valid(rcpt, 0)) {
		r = errf(err, PM_ECONFIG, "no usable recipient (the local user "
		    "name cannot be used); set recipient");
		free(rcpt);
		return r;
	}
	d = xcalloc(1, sizeof *d);
	d->ops = ops;
	d->recipient = rcpt;
	if (a->envelope_sender != NULL)
		d->sender = xstrdup(a->envelope_sender);
	d->add_return_path = a->add_return_path;
	d->add_delivered_to = a->add_delivered_to;
	d->add_received = a->add_received;
	config_from_account(a, &cfg);
	r = ops->open(&cfg, &d->ctx, err);
	if (r != PM_OK) {
		free(d->recipient);
		free(d->sender);
		free(d);
		return r;
	}
	*d_r = d;
	return PM_OK;
}

/* A copy of s fit for a comment in a header line: printable ASCII without
 * parentheses, quotes, backslashes and semicolons, at most
 * DELIVER_FIELD_MAX bytes. */
static char *
header_safe(const char *s)
{
	char *out;
	size_t i;

	if (s == NULL)
		s = "";
	out = xstrndup(s, DELIVER_FIELD_MAX);
	for (i = 0; out[i] != '\0'; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c < 0x20 || c > 0x7e || c == '(' || c == ')' ||
		    c == '\\' || c == '"' || c == ';')
			out[i] = '_';
	}
	return out;
}

/* The optional header lines for message m with envelope sender sender. */
static char *
extra_headers(struct deliver_msg *m, const char *sender)
{
	struct deliver *d = m->d;
	char *out = xstrdup(""), *t, *server, *account, *mailbox, *uid, *proto;
	char *host, date[64];
	time_t now;
	struct tm tm;
	size_t i;

	if (d->add_return_path) {
		t = xasprintf("%sReturn-Path: <%s>\n", out, sender);
		free(out);
		out = t;
	}
	if (d->add_delivered_to) {
		t = xasprintf("%sDelivered-To: %s\n", out, d->recipient);
		free(out);
		out = t;
	}
	if (d->add_received) {
		now = time(NULL);
		localtime_r(&now, &tm);
		if (strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z",
		    &tm) == 0)
			strcpy(date, "Thu, 01 Jan 1970 00:00:00 +0000");
		server = header_safe(m->server);
		for (i = 0; server[i] != '\0'; i++)
			if (server[i] == ' ')
				server[i] = '_';
		account = header_safe(m->account);
		mailbox = header_safe(m->mailbox);
		uid = header_safe(m->uid);
		proto = header_safe(m->protocol != NULL ? m->protocol :
		    "unknown");
		for (i = 0; proto[i] != '\0'; i++)
			if (proto[i] >= 'a' && proto[i] <= 'z')
				proto[i] = (char)(proto[i] - 'a' + 'A');
		host = local_hostname();
		t = xasprintf("%sReceived: from %s (account %s, folder %s, "
		    "uid %s)\n\tby %s (pullmail) with %s\n\tfor <%s>; %s\n",
		    out, server[0] != '\0' ? server : "unknown", account,
		    mailbox[0] != '\0' ? mailbox : "-", uid, host, proto,
		    d->recipient, date);
		free(out);
		out = t;
		free(server);
		free(account);
		free(mailbox);
		free(uid);
		free(proto);
		free(host);
	}
	return out;
}

/* Start a message: copy its facts; the target begins once the header
 * section is complete. */
int
deliver_begin(struct deliver *d, const struct deliver_info *info,
    struct deliver_msg **m_r, char **err)
{
	struct deliver_msg *m = xcalloc(1, sizeof *m);

	m->d = d;
	m->account = xstrdup(info->account != NULL ? info->account : "");
	m->server = xstrdup(info->server != NULL ? info->server : "");
	m->mailbox = xstrdup(info->mailbox != NULL ? info->mailbox : "");
	m->uid = xstrdup(info->uid != NULL ? info->uid : "");
	m->protocol = info->protocol != NULL ? xstrdup(info->protocol) : NULL;
	m->size = info->size;
	*m_r = m;
	return PM_OK;
}

/* Free m's own memory (the target's part is gone already). */
static void
msg_free(struct deliver_msg *m)
{
	free(m->account);
	free(m->server);
	free(m->mailbox);
	free(m->uid);
	free(m->protocol);
	free(m->hdr);
	free(m);
}

/* The header section is complete (or too long to hold): work out the
 * envelope, begin the target and hand it the held bytes. */
static int
start_target(struct deliver_msg *m, char **err)
{
	struct deliver *d = m->d;
	struct deliver_info info;
	char *sender, *extra;
	int r;

	if (d->sender != NULL)
		sender = xstrdup(d->sender);
	else
		sender = envelope_sender(m->hdr, m->hlen);
	memset(&info, 0, sizeof info);
	info.account = m->account;
	info.server = m->server;
	info.mailbox = m->mailbox;
	info.uid = m->uid;
	info.size = m->size;
	info.protocol = m->protocol;
	info.sender = sender;
	info.recipient = d->recipient;
	log_debug("deliver", "%s: uid %s: envelope from <%s> to <%s>",
	    m->account, m->uid, sender, d->recipient);
	r = d->ops->begin(d->ctx, &info, &m->m, err);
	if (r != PM_OK) {
		free(sender);
		return r;
	}
	m->begun = 1;
	extra = extra_headers(m, sender);
	free(sender);
	if (*extra != '\0')
		r = d->ops->write(d->ctx, m->m, extra, strlen(extra), err);
	free(extra);
	if (r == PM_OK && m->hlen > 0)
		r = d->ops->write(d->ctx, m->m, m->hdr, m->hlen, err);
	free(m->hdr);
	m->hdr = NULL;
	m->hlen = m->hcap = 0;
	return r;
}

/* Hand the buffered body bytes to the target's write(). */
static int
flush_buf(struct deliver_msg *m, char **err)
{
	int r;

	if (m->len == 0)
		return PM_OK;
	r = m->d->ops->write(m->d->ctx, m->m, m->buf, m->len, err);
	m->len = 0;
	return r;
}

/* Append one byte: to the held header section until it ends, then to the
 * output buffer, flushing when it is full. */
static int
put_byte(struct deliver_msg *m, char c, char **err)
{
	int r;

	if (!m->begun) {
		if (m->hlen == m->hcap) {
			m->hcap = m->hcap == 0 ? 4096 : m->hcap * 2;
			m->hdr = xrealloc(m->hdr, m->hcap);
		}
		m->hdr[m->hlen++] = c;
		if ((c == '\n' && (m->hlen == 1 ||
		    m->hdr[m->hlen - 2] == '\n')) ||
		    m->hlen >= DELIVER_HEADER_MAX)
			return start_target(m, err);
		return PM_OK;
	}
	if (m->len == sizeof m->buf) {
		if ((r = flush_buf(m, err)) != PM_OK)
			return r;
	}
	m->buf[m->len++] = c;
	return PM_OK;
}

/* Append len bytes without a CR to the output buffer, flushing it when it
 * is full and more is to come (as put_byte() does). */
static int
put_run(struct deliver_msg *m, const char *p, size_t len, char **err)
{
	size_t k;
	int r;

	while (len > 0) {
		if (m->len == sizeof m->buf &&
		    (r = flush_buf(m, err)) != PM_OK)
			return r;
		k = sizeof m->buf - m->len;
		if (k > len)
			k = len;
		memcpy(m->buf + m->len, p, k);
		m->len += k;
		p += k;
		len -= k;
	}
	return PM_OK;
}

/* Feed message bytes through the CRLF-to-LF filter towards the target.
 * The header section goes byte by byte (it is held and looked at); the
 * body moves a run between two CRs at a time. */
int
deliver_write(struct deliver_msg *m, const void *buf, size_t len, char **err)
{
	const char *p = buf, *cr;
	size_t i = 0, run;
	int r;

	while (i < len) {
		char c = p[i];

		if (m->pending_cr) {
			m->pending_cr = 0;
			if (c != '\n' && (r = put_byte(m, '\r', err)) != PM_OK)
				return r;
		}
		if (c == '\r') {
			m->pending_cr = 1;
			i++;
			continue;
		}
		if (!m->begun) {
			if ((r = put_byte(m, c, err)) != PM_OK)
				return r;
			i++;
			continue;
		}
		cr = memchr(p + i, '\r', len - i);
		run = cr != NULL ? (size_t)(cr - (p + i)) : len - i;
		if ((r = put_run(m, p + i, run, err)) != PM_OK)
			return r;
		i += run;
	}
	return PM_OK;
}

/* Flush what is held and let the target finish the message; frees m. */
int
deliver_finish(struct deliver_msg *m, char **err)
{
	struct deliver *d = m->d;
	int r = PM_OK;

	if (m->pending_cr) {
		m->pending_cr = 0;
		r = put_byte(m, '\r', err);
	}
	if (r == PM_OK && !m->begun)
		r = start_target(m, err);
	if (r == PM_OK)
		r = flush_buf(m, err);
	if (r != PM_OK) {
		if (m->begun)
			d->ops->abort(d->ctx, m->m);
		msg_free(m);
		return r;
	}
	r = d->ops->finish(d->ctx, m->m, err);
	msg_free(m);
	return r;
}

/* Discard a message, aborting the target if it had begun; frees m. */
void
deliver_abort(struct deliver_msg *m)
{
	if (m == NULL)
		return;
	if (m->begun)
		m->d->ops->abort(m->d->ctx, m->m);
	msg_free(m);
}

/* Make every finished message durable (the target's sync()). */
int
deliver_sync(struct deliver *d, char **err)
{
	return d->ops->sync(d->ctx, err);
}

/* Let the target report each message its sync() makes visible. */
int
deliver_on_visible(struct deliver *d, void (*visible)(void *arg, size_t nth),
    void *arg)
{
	if (d->ops->on_visible == NULL)
		return 0;
	d->ops->on_visible(d->ctx, visible, arg);
	return 1;
}

/* Close the target and free d; NULL is fine. */
void
deliver_close(struct deliver *d)
{
	if (d == NULL)
		return;
	d->ops->close(d->ctx);
	free(d->recipient);
	free(d->sender);
	free(d);
}

/* Create and remove a file in dir: whether pullmail may write there.
 * Nothing stays behind. */
static int
probe_dir_writable(const char *dir, char **err)
{
	char *path = xasprintf("%s/.pullmail-check.XXXXXX", dir);
	int fd, r = PM_OK, e;

	if ((fd = mkostemp(path, O_CLOEXEC)) < 0) {
		e = errno;
		r = errf(err, PM_EDELIVER, "cannot create a file in %s: %s; "
		    "make it writable by the user pullmail runs as (chown or "
		    "chmod) or choose another deliver path", dir,
		    pm_strerror(e));
	} else {
		close(fd);
		unlink(path);
	}
	free(path);
	return r;
}

/* The nearest existing directory at or above path (malloc'd), or NULL
 * with *err set when something on the way is not a directory. */
static char *
probe_existing_dir(const char *path, char **err)
{
	char *dir = xstrdup(path), *slash;
	struct stat sb;

	for (;;) {
		if (stat(dir, &sb) == 0) {
			if (S_ISDIR(sb.st_mode))
				return dir;
			errf(err, PM_EDELIVER, "%s is not a directory, so %s "
			    "cannot be created; fix the deliver path", dir,
			    path);
			free(dir);
			return NULL;
		}
		if ((slash = strrchr(dir, '/')) == NULL || slash == dir) {
			free(dir);
			return xstrdup(slash == dir ? "/" : ".");
		}
		*slash = '\0';
	}
}

/* `pullmail check`: the delivery target (contract in deliver.h). */
int
deliver_probe(const struct account *a, char **note_r, char **err)
{
	const char *path = a->deliver_path;
	struct deliver *d;
	struct stat sb;
	char *dir, *tmp, *slash, **argv, *found, *why = NULL;
	const char *base;
	int r, fd, known;

	*note_r = NULL;
	switch (a->deliver_kind) {
	case DELIVER_MAILDIR:
		if (stat(path, &sb) < 0) {
			if ((dir = probe_existing_dir(path, err)) == NULL)
				return PM_EDELIVER;
			r = probe_dir_writable(dir, err);
			if (r == PM_OK)
				*note_r = xasprintf("Maildir %s does not exist "
				    "yet; pullmail will create it in %s", path,
				    dir);
			free(dir);
			return r;
		}
		if (!S_ISDIR(sb.st_mode))
			return errf(err, PM_EDELIVER, "%s is not a directory; "
			    "a Maildir is one (with tmp/, new/ and cur/)",
			    path);
		tmp = xasprintf("%s/tmp", path);
		if (stat(tmp, &sb) < 0)
			r = probe_dir_writable(path, err);
		else if (!S_ISDIR(sb.st_mode))
			r = errf(err, PM_EDELIVER, "%s is not a directory; "
			    "it must be the Maildir's tmp/", tmp);
		else
			r = probe_dir_writable(tmp, err);
		free(tmp);
		if (r == PM_OK)
			*note_r = xasprintf("Maildir %s is writable", path);
		return r;
	case DELIVER_MBOX:
		if (stat(path, &sb) == 0) {
			if (!S_ISREG(sb.st_mode))
				return errf(err, PM_EDELIVER, "%s is not a "
				    "regular file; an mbox is one", path);
			/* Opened for appending, nothing written. */
			if ((fd = open(path, O_WRONLY | O_APPEND |
			    O_CLOEXEC | O_NOCTTY)) < 0)
				return errf(err, PM_EDELIVER, "cannot open "
				    "%s for appending: %s; make it writable "
				    "by the user pullmail runs as", path,
				    pm_strerror(errno));
			close(fd);
			*note_r = xasprintf("mbox %s is writable", path);
			return PM_OK;
		}
		dir = xstrdup(path);
		slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		tmp = probe_existing_dir(slash == NULL ? "." :
		    dir[0] == '\0' ? "/" : dir, err);
		free(dir);
		if (tmp == NULL)
			return PM_EDELIVER;
		r = probe_dir_writable(tmp, err);
		if (r == PM_OK)
			*note_r = xasprintf("mbox %s does not exist yet; "
			    "pullmail will create it", path);
		free(tmp);
		return r;
	case DELIVER_MDA:
		if ((argv = deliver_mda_split(path, err)) == NULL)
			return PM_ECONFIG;
		found = exec_resolve(argv[0]);
		/* With a '/' it is argv[0] itself, whatever it is. */
		if (found != NULL && (stat(found, &sb) < 0 ||
		    !S_ISREG(sb.st_mode) || access(found, X_OK) < 0)) {
			free(found);
			found = NULL;
		}
		base = strrchr(argv[0], '/') != NULL ?
		    strrchr(argv[0], '/') + 1 : argv[0];
		known = strcmp(base, "procmail") == 0 ||
		    strcmp(base, "maildrop") == 0;
		if (found == NULL)
			r = errf(err, PM_EDELIVER, "the MDA program %s was "
			    "not found%s or is not executable; %s%s%sgive its "
			    "full path in deliver = mda:", argv[0],
			    strchr(argv[0], '/') == NULL ? " in $PATH" : "",
			    known ? "install it (apt install " :
			    "install it or ", known ? base : "", known ?
			    ") or " : "");
		else {
			*note_r = xasprintf("MDA program %s found", found);
			r = PM_OK;
		}
		free(found);
		proc_argv_free(argv);
		return r;
	case DELIVER_SMTP:
	case DELIVER_LMTP:
		if ((r = deliver_open(a, &d, err)) != PM_OK)
			return r;
		r = deliver_smtp_hello(d->ctx, &why);
		deliver_close(d);	/* QUIT */
		if (r != PM_OK) {
			r = errf(err, r, "%s; check that the MTA (Postfix, "
			    "Exim, Dovecot's LMTP, ...) runs and listens at %s",
			    why, path);
			free(why);
		} else
			*note_r = xasprintf("the MTA at %s answered its "
			    "greeting and %s", path, a->deliver_kind ==
			    DELIVER_LMTP ? "LHLO" : "EHLO");
		return r;
	default:
		return errf(err, PM_ECONFIG, "unsupported delivery target");
	}
}
