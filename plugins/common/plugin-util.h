/*
 * Small helpers every backend plugin needs.  A plugin links nothing from
 * the core, so these are compiled into each plugin (hidden, like everything
 * but the plugin's one exported symbol).
 */
#ifndef PM_PLUGIN_UTIL_H
#define PM_PLUGIN_UTIL_H

#include <stddef.h>

#include <pullmail/host.h>

/* Allocation that aborts on failure. */
void *pmp_xmalloc(size_t n);
void *pmp_xreallocarray(void *p, size_t n, size_t size);
/* Copy n bytes of s into a NUL-terminated string. */
char *pmp_xstrndup(const char *s, size_t n);
/* Format into a malloc'd string. */
char *pmp_xprintf(const char *fmt, ...) PM_PRINTF(1, 2);

/* Set *err (unless err is NULL; an old *err is freed) to a formatted
 * reason and return status. */
int pmp_errf(char **err, int status, const char *fmt, ...) PM_PRINTF(3, 4);

/* A printable copy of server text for an error message (*err), which
 * reaches the status file, notify_command and the exit summary as well as
 * the log: control and 8-bit bytes become '?', and text longer than max
 * is cut with "...".  Text only logged (host log()) needs no cleaning:
 * the host escapes every log line itself. */
char *pmp_clean(const char *s, size_t len, size_t max);

/* Milliseconds on the monotonic clock, for a plugin's own deadlines.  The
 * plugins' one clock: a host slot would cost an ABI bump for a call libc
 * makes as well (the core's twin is mono_ms in util.c). */
long long pmp_mono_ms(void);

/* Longest wait a server's suggestion is taken at: one hour. */
#define PMP_BACKOFF_MAX_MS	3600000u

/*
 * Whether text (a NO, BAD, -ERR or BYE text, NUL-terminated) is one of
 * Microsoft Exchange Online's transient refusals, which a new session a
 * moment later gets past: "Request is throttled. Suggested Backoff Time:
 * N milliseconds" (PM_RETRY_THROTTLED, *ms_r = N, at most
 * PMP_BACKOFF_MAX_MS, 0 when no number is given), "User is authenticated
 * but not connected." (PM_RETRY_RECONNECT), "Session invalidated -
 * AccessTokenExpired" (PM_RETRY_TOKEN_EXPIRED).  0 when it is none of
 * them (*ms_r is then 0).
 */
int pmp_transient(const char *text, unsigned *ms_r);

#endif
