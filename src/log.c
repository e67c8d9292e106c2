/*
 * Logging to stderr or syslog, every line with the live secrets redacted,
 * and the protocol trace that redacts the secret it is handed.
 *
 * Threads: the settings (name, verbosity, trace, destination) are written
 * once by log_init before any thread starts and only read afterwards.  A
 * line is formatted whole in the caller's own buffer and written with one
 * write(2) (stderr) or one syslog(3) call, the first under log_lock, so
 * lines from different threads never interleave.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *log_progname = "pullmail";
static int log_verbose;
static int log_trace_on;
static int log_syslog;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Set the program name, verbosity, tracing and destination of the log. */
void
log_init(const char *progname, int verbose, int trace, int use_syslog)
{
	log_progname = progname;
	log_verbose = verbose;
	log_trace_on = trace;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(progname, LOG_PID, LOG_MAIL);
}

/* The verbosity: 0 warnings and errors, 1 info, 2 debug. */
int
log_verbosity(void)
{
	return log_verbose;
}

/* 1 when the protocol trace is on. */
int
log_tracing(void)
{
	return log_trace_on;
}

/* The syslog priority for a PM_LOG_* level. */
static int
syslog_prio(int level)
{
	switch (level) {
	case PM_LOG_ERR:
		return LOG_ERR;
	case PM_LOG_WARN:
		return LOG_WARNING;
	case PM_LOG_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

/* Write one finished message to syslog or to stderr behind the name,
 * with any secret in it (a server may echo one, encoded) redacted. */
static void
log_emit(int level, const char *msg)
{
	char *clean = secret_redacted(msg);

	if (clean != NULL)
		msg = clean;
	if (log_syslog)
		syslog(syslog_prio(level), "%s", msg);
	else {
		char *line = xasprintf("%s: %s\n", log_progname, msg);

		pthread_mutex_lock(&log_lock);
		(void)write_full(STDERR_FILENO, line, strlen(line));
		pthread_mutex_unlock(&log_lock);
		free(line);
	}
	free(clean);
}

/* Log a message at level unless the verbosity hides it. */
void
log_vmsg(int level, const char *fmt, va_list ap)
{
	char *msg;

	if (level == PM_LOG_INFO && log_verbose < 1)
		return;
	if (level == PM_LOG_DEBUG && log_verbose < 2)
		return;
	msg = xvasprintf(fmt, ap);
	log_emit(level, msg);
	free(msg);
}

/* Log a warning with the current errno's text appended. */
void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	log_warnx("%s: %s", msg, pm_strerror(saved));
	free(msg);
}

/* Log an error (syslog LOG_ERR). */
void
log_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(PM_LOG_ERR, fmt, ap);
	va_end(ap);
}

/* Log a warning. */
void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(PM_LOG_WARN, fmt, ap);
	va_end(ap);
}

/* Log a message shown from verbosity 1 (-v). */
void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(PM_LOG_INFO, fmt, ap);
	va_end(ap);
}

/* Log a debug message (verbosity 2) tagged with its category. */
void
log_debug(const char *category, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (log_verbose < 2)
		return;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (category != NULL) {
		char *full = xasprintf("[%s] %s", category, msg);

		free(msg);
		msg = full;
	}
	log_emit(PM_LOG_DEBUG, msg);
	free(msg);
}

/* Escape bytes outside printable ASCII as \r, \n, \t or \xHH. */
static void
escape_into(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (*len + 5 >= *cap) {
			*cap = *cap * 2 + 16;
			*buf = xrealloc(*buf, *cap);
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			(*buf)[(*len)++] = (char)c;
			continue;
		}
		(*buf)[(*len)++] = '\\';
		switch (c) {
		case '\\':
			(*buf)[(*len)++] = '\\';
			break;
		case '\r':
			(*buf)[(*len)++] = 'r';
			break;
		case '\n':
			(*buf)[(*len)++] = 'n';
			break;
		case '\t':
			(*buf)[(*len)++] = 't';
			break;
		default:
			(*buf)[(*len)++] = 'x';
			(*buf)[(*len)++] = hex[c >> 4];
			(*buf)[(*len)++] = hex[c & 15];
			break;
		}
	}
	(*buf)[*len] = '\0';
}

/* Log one protocol line, escaped, with any secret replaced by its size. */
void
log_trace(const char *who, const char *dir, const char *line, size_t len,
    const struct pm_secret *secret)
{
	size_t blen = 0, cap = len + 64;
	char *buf;
	char *msg;

	if (!log_trace_on)
		return;
	buf = xmalloc(cap);
	buf[0] = '\0';
	escape_into(&buf, &blen, &cap, line, len);
	if (secret != NULL)
		msg = xasprintf("%s %s: %s<redacted, %zu bytes>", who, dir, buf,
		    secret_len(secret));
	else
		msg = xasprintf("%s %s: %s", who, dir, buf);
	log_emit(PM_LOG_DEBUG, msg);
	free(msg);
	free(buf);
}
