/*
 * The sd_notify protocol without libsystemd: one datagram of
 * newline-separated VAR=VALUE assignments to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).  Every
 * function is a no-op returning 0 when $NOTIFY_SOCKET is unset or empty,
 * so callers need not know whether they run under systemd.  All functions
 * are thread-safe (each call opens and closes its own socket).
 *
 * Returns: 1 sent, 0 not under systemd, -1 the send failed (errno set;
 * the callers' usual answer is a debug line and to carry on).
 */
#ifndef PM_SDNOTIFY_H
#define PM_SDNOTIFY_H

#include <stdint.h>

#include <pullmail/host.h>

/* Send msg ("READY=1", "STATUS=...\nWATCHDOG=1") as it is. */
int sdnotify_send(const char *msg);

/* READY=1: start-up is finished (Type=notify units leave "activating"). */
int sdnotify_ready(void);

/* STATUS=...: a one-line status for `systemctl status`; newlines and other
 * control characters in the text become spaces. */
int sdnotify_status(const char *fmt, ...) PM_PRINTF(1, 2);

/* STOPPING=1: shutdown has begun. */
int sdnotify_stopping(void);

/* RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC now), as
 * Type=notify-reload (systemd 253) requires and older systemd accepts;
 * send sdnotify_ready() once the new configuration is in use. */
int sdnotify_reloading(void);

/* WATCHDOG=1: the keep-alive ping; send it every watchdog interval / 2. */
int sdnotify_watchdog(void);

/* The watchdog interval in microseconds from $WATCHDOG_USEC, or 0 when
 * the watchdog is off: unset, malformed, zero, or $WATCHDOG_PID set to a
 * process other than this one. */
uint64_t sdnotify_watchdog_usec(void);

#endif
