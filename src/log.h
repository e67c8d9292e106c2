/* Logging to stderr or syslog, and the one protocol-trace function. */
#ifndef PM_LOG_H
#define PM_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include <pullmail/host.h>

#include "secret.h"

/* Every message goes through secret_redacted first: no live secret reaches
 * stderr or syslog in any encoding a server may echo it in.  Then every
 * byte that could forge or hide a line is escaped, whatever the caller
 * put in (a server's text, a message's header, a file name): C0 controls
 * and DEL as \r, \n, \t or \xHH, and each byte of a sequence that is not
 * UTF-8 or is a C1 control, line or paragraph separator, bidirectional
 * control or byte order mark as \xHH.  Printable UTF-8 stays readable
 * (mailbox names, people's names).  '\' is left alone, so escaping twice
 * changes nothing and a trace line (escaped with '\' doubled) is not
 * escaped again; a literal "\n" in the text can therefore read like an
 * escape, but no byte the caller passes can end the line.
 * verbose: 0 warnings and errors, 1 info, 2 debug.  trace: show the
 * protocol dialogue.  use_syslog: log to syslog (facility mail) instead of
 * stderr. */
void log_init(const char *progname, int verbose, int trace, int use_syslog);
int log_verbosity(void);
int log_tracing(void);

/* errx: something failed (the run, the account, the command) and the
 * admin has to act; syslog LOG_ERR.  warn/warnx: something went wrong and
 * pullmail goes on (it retries, skips, keeps going); LOG_WARNING. */
void log_errx(const char *fmt, ...) PM_PRINTF(1, 2);
void log_warn(const char *fmt, ...) PM_PRINTF(1, 2);	/* appends errno */
void log_warnx(const char *fmt, ...) PM_PRINTF(1, 2);
void log_info(const char *fmt, ...) PM_PRINTF(1, 2);
void log_debug(const char *category, const char *fmt, ...) PM_PRINTF(2, 3);
void log_vmsg(int level, const char *fmt, va_list ap) PM_PRINTF(2, 0);

/*
 * Trace one protocol line.  dir is "C" (client) or "S" (server), who names
 * the account.  Bytes outside printable ASCII are escaped.  When secret is
 * not NULL, the line is prefix followed by the secret, and the trace shows
 * the prefix and "<redacted, N bytes>" instead of the secret.  This is the
 * only function that writes protocol text to the log.
 */
void log_trace(const char *who, const char *dir, const char *line,
    size_t len, const struct pm_secret *secret);

#endif
