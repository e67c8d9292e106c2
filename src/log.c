/*
 * Logging to stderr or syslog, every line with the live secrets redacted
 * and the bytes that could forge a line escaped (the one place that does
 * it: callers hand over untrusted text as it is), and the protocol trace
 * that redacts the secret it is handed.
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
#include <stdint.h>
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

/* How escaped() treats the bytes that are not controls. */
#define ESC_KEEP_UTF8	0x1	/* printable UTF-8 kept; else every 8-bit
				 * byte as \xHH */
#define ESC_BACKSLASH	0x2	/* '\' doubled, so that every escape is
				 * unambiguous (the protocol trace) */

/* 1 when code point c may stand in a log as it is: not a C0 or C1
 * control, DEL, a line or paragraph separator, a bidirectional control or
 * a byte order mark, any of which could break a line or hide text. */
static int
printable_cp(uint32_t c)
{
	if (c < 0x20 || (c >= 0x7f && c < 0xa0))
		return 0;
	return !(c == 0x200e || c == 0x200f ||
	    (c >= 0x2028 && c <= 0x202e) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0xfeff);
}

/* The n bytes at s with each byte printable_cp refuses written as \r,
 * \n, \t or \xHH (every byte of a refused or broken UTF-8 sequence);
 * malloc'd.  See log.h for why. */
static char *
escaped(const char *s, size_t n, int flags)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i, k, j;
	uint32_t c;
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 4)
		abort();
	out = o = xmalloc(n * 4 + 1);	/* \xHH per byte at most */
	for (i = 0; i < n; i += k) {
		k = 1;
		c = p[i];
		if (c >= 0x80 && (!(flags & ESC_KEEP_UTF8) ||
		    (k = utf8_next(p + i, n - i, &c)) == 0)) {
			k = 1;
			c = 0x80;	/* not printable: escaped below */
		}
		if (c == '\\' && (flags & ESC_BACKSLASH)) {
			*o++ = '\\';
			*o++ = '\\';
		} else if (printable_cp(c)) {
			memcpy(o, p + i, k);
			o += k;
		} else if (c == '\r' || c == '\n' || c == '\t') {
			*o++ = '\\';
			*o++ = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
		} else {
			for (j = 0; j < k; j++) {
				*o++ = '\\';
				*o++ = 'x';
				*o++ = hex[p[i + j] >> 4];
				*o++ = hex[p[i + j] & 15];
			}
		}
	}
	*o = '\0';
	return out;
}

/* Write one finished message to syslog or to stderr behind the name,
 * with any secret in it (a server may echo one, encoded) redacted, then
 * every byte that could break the line or the terminal escaped. */
static void
log_emit(int level, const char *msg)
{
	char *redacted = secret_redacted(msg), *safe;

	safe = escaped(redacted != NULL ? redacted : msg,
	    strlen(redacted != NULL ? redacted : msg), ESC_KEEP_UTF8);
	free(redacted);
	if (log_syslog)
		syslog(syslog_prio(level), "%s", safe);
	else {
		char *line = xasprintf("%s: %s\n", log_progname, safe);

		pthread_mutex_lock(&log_lock);
		(void)write_full(STDERR_FILENO, line, strlen(line));
		pthread_mutex_unlock(&log_lock);
		free(line);
	}
	free(safe);
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

/* Log one protocol line, escaped, with any secret replaced by its size. */
void
log_trace(const char *who, const char *dir, const char *line, size_t len,
    const struct pm_secret *secret)
{
	char *buf, *msg;

	if (!log_trace_on)
		return;
	buf = escaped(line, len, ESC_BACKSLASH);
	if (secret != NULL)
		msg = xasprintf("%s %s: %s<redacted, %zu bytes>", who, dir, buf,
		    secret_len(secret));
	else
		msg = xasprintf("%s %s: %s", who, dir, buf);
	log_emit(PM_LOG_DEBUG, msg);
	free(msg);
	free(buf);
}
