/*
 * For the end-to-end tests only, loaded with LD_PRELOAD: syslog(3) appends
 * each message, as the program handed it over, to the file named by
 * PULLMAIL_TEST_SYSLOG, so that a test reads exactly what a syslog daemon
 * would receive without one running.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT void __syslog_chk(int, int, const char *, ...);

/* Append one message at priority prio. */
static void
capture(int prio, const char *fmt, va_list ap)
{
	const char *path = getenv("PULLMAIL_TEST_SYSLOG");
	FILE *f;

	if (path == NULL || (f = fopen(path, "a")) == NULL)
		return;
	fprintf(f, "<%d> ", prio);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	fclose(f);
}

EXPORT void
openlog(const char *ident, int option, int facility)
{
}

EXPORT void
closelog(void)
{
}

EXPORT void
vsyslog(int prio, const char *fmt, va_list ap)
{
	capture(prio, fmt, ap);
}

EXPORT void
syslog(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	capture(prio, fmt, ap);
	va_end(ap);
}

/* What syslog() becomes under _FORTIFY_SOURCE. */
EXPORT void
__syslog_chk(int prio, int flag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	capture(prio, fmt, ap);
	va_end(ap);
}
