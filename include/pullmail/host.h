/*
 * pullmail plugin contract, part 1: what the core hands a backend plugin.
 *
 * A plugin includes only the headers under include/pullmail/.  It links
 * nothing from the core: every service it needs (transport, SASL, logging)
 * reaches it through struct pm_host, and the messages it fetches go into
 * the struct pm_sink the core's fetch engine hands to each fetch call.  All
 * types the core owns are opaque here.  Bump PM_PLUGIN_ABI (plugin.h) on
 * any change to this file.
 */
#ifndef PULLMAIL_HOST_H
#define PULLMAIL_HOST_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PM_PRINTF(f, a)
#endif

/*
 * Status classes.  Every fallible host or plugin function returns PM_OK or
 * one of these, and on failure sets *err to a malloc'd one-line reason that
 * the caller frees (free(3)).  main() maps the classes to exit statuses.
 */
enum pm_status {
	PM_OK = 0,
	PM_ETEMP,	/* temporary: network, timeout, server busy, MDA 75 */
	PM_EAUTH,	/* credentials or token rejected: a human must act */
	PM_EPROTO,	/* the server broke the protocol or refused a command */
	PM_ETLS,	/* TLS handshake or certificate verification failed */
	PM_EDELIVER,	/* local delivery failed permanently */
	PM_ECONFIG,	/* configuration error */
	PM_EINTERNAL	/* a bug or resource exhaustion */
};

enum pm_tls_mode {
	PM_TLS_IMPLICIT = 0,	/* TLS from the first byte (993, 995) */
	PM_TLS_STARTTLS,	/* plain connect, then STARTTLS / STLS */
	PM_TLS_NONE		/* no TLS at all: only when configured */
};

/* pop3_strict_size (ABI 4): what a POP3 message shorter than its LIST size
 * means.  AUTO is YES unless the greeting is Microsoft Exchange's, whose
 * LIST sizes are estimates unless its admin turned on exact sizes
 * (Set-CASMailbox -PopEnableExactRFC822Size). */
enum pm_strict_size {
	PM_STRICT_SIZE_AUTO = 0,	/* refuse, except from Exchange */
	PM_STRICT_SIZE_YES,		/* refuse: the message may be cut */
	PM_STRICT_SIZE_NO		/* keep: the sizes are estimates */
};

/*
 * Why a session is failing with PM_ETEMP, when the server said more than
 * that (ABI 5).  A plugin tells the core through host->retry_hint() before
 * it returns the PM_ETEMP; the core then decides how long to wait and
 * whether a new session (with a fresh token) is worth trying at once.
 */
enum pm_retry {
	PM_RETRY_THROTTLED = 1,	/* the server asked us to slow down
				 * (Exchange: "Request is throttled.
				 * Suggested Backoff Time: N milliseconds");
				 * ms is its suggestion, 0 when it gave none */
	PM_RETRY_RECONNECT,	/* this session is unusable but a new one
				 * may work ("User is authenticated but not
				 * connected", a BYE) */
	PM_RETRY_TOKEN_EXPIRED	/* the server ended the session because the
				 * access token expired ("BYE Session
				 * invalidated - AccessTokenExpired"): a new
				 * session needs a fresh token */
};

enum pm_log_level {
	PM_LOG_ERR = 0,
	PM_LOG_WARN,
	PM_LOG_INFO,
	PM_LOG_DEBUG
};

/* Replies a plugin reports to the shared SASL engine. */
enum pm_sasl_reply {
	PM_SASL_CONTINUE = 0,	/* server sent a challenge ("+ ...") */
	PM_SASL_SUCCESS,	/* authentication succeeded */
	PM_SASL_FAILURE		/* authentication refused */
};

struct pm_session;	/* one account's run; owned by the core */
struct pm_msg;		/* one message being delivered; owned by the core */
struct pm_secret;	/* bytes that must never be logged; owned by the core */

/*
 * Plain-data view of the account a plugin works on; owned by the core.
 * It holds what the plugin needs to talk to the server, nothing of the
 * fetch policy (which messages, size limits, keep or delete): that is the
 * core's fetch engine's alone.
 */
struct pm_account_info {
	const char *name;		/* account name from the config */
	const char *server;		/* host name or address */
	unsigned port;			/* port to use (the core fills the
					 * plugin's default when unset) */
	int tls;			/* enum pm_tls_mode */
	const char *user;		/* login name */
	int xoauth2_two_step;		/* 1: POP3 sends the XOAUTH2 response
					 * after "+", never on the AUTH line
					 * (Microsoft 365 wants it so) */
	int strict_size;		/* enum pm_strict_size: whether POP3
					 * refuses a message shorter than
					 * LIST said (pop3_strict_size) */
	int expunge;			/* enum pm_expunge: how IMAP removes
					 * the messages it is told to delete */
};

/*
 * How an IMAP server is made to remove deleted messages (the account's
 * expunge key).  A plain EXPUNGE removes every message flagged \Deleted
 * in the folder, also those pullmail never fetched; UID EXPUNGE (UIDPLUS,
 * RFC 4315) removes only the UIDs named.
 */
enum pm_expunge {
	PM_EXPUNGE_UID = 0,	/* UID EXPUNGE; without UIDPLUS the messages
				 * are only flagged \Seen \Deleted */
	PM_EXPUNGE_ALL,		/* UID EXPUNGE, else a plain EXPUNGE */
	PM_EXPUNGE_NEVER	/* only flag \Seen \Deleted */
};

/*
 * The SASL engine drives a protocol through this small table; the plugin
 * supplies one per protocol (IMAP: AUTHENTICATE, POP3: AUTH).  ctx is the
 * plugin's own pointer, passed back untouched.
 */
struct pm_sasl_proto {
	/*
	 * Send the command that starts authentication with mechanism mech.
	 * ir is the base64 initial response to send on the same line, or
	 * NULL to send none (the engine then answers the first "+").  The
	 * plugin sends the response as it is given (base64, never empty).
	 * start, respond and reply may fail with any status (typically the
	 * host's send/read errors, PM_EPROTO for a malformed reply,
	 * PM_ETEMP for a server that asks to come back later); the engine
	 * ends the exchange and sasl_auth() returns that status and *err as
	 * they are.
	 */
	int (*start)(void *ctx, const char *mech, const struct pm_secret *ir,
	    char **err);
	/* Send one client response line (base64, possibly empty). */
	int (*respond)(void *ctx, const struct pm_secret *resp, char **err);
	/*
	 * Read the server's next reply.  *kind_r is an enum pm_sasl_reply.
	 * For PM_SASL_CONTINUE *text_r is the challenge (base64, possibly
	 * empty); for the others, the server's human-readable text.  *text_r
	 * is malloc'd and owned by the caller.
	 */
	int (*reply)(void *ctx, int *kind_r, char **text_r, char **err);
	/*
	 * Longest command line the protocol allows for start() including
	 * the initial response, or 0 for no limit (POP3: 255, RFC 5034).
	 * When the initial response would not fit, it is sent after "+".
	 */
	size_t max_line;
	/* Length of start()'s fixed text around the mechanism and response
	 * ("AUTH " + " " + CRLF for POP3), used with max_line. */
	size_t overhead;
	/* 1: never send an XOAUTH2 initial response on the start line
	 * (Microsoft 365 POP3 rejects it). */
	int xoauth2_two_step;
};

/*
 * Services the core offers a plugin.  Unless a slot says otherwise, calls
 * return an enum pm_status and set *err (malloc'd, caller frees) on failure.
 * The errors each slot lists are all it returns.  PM_EINTERNAL "not
 * connected" from a connection slot means the plugin called it without a
 * connection (a plugin bug).  PM_ETLS from send, read_line or read_bytes
 * means a failed handshake left the connection unusable: nothing more is
 * sent in clear.
 */
struct pm_host {
	uint32_t abi;	/* PM_PLUGIN_ABI of the core */

	/* The account this session works on.  Never NULL. */
	const struct pm_account_info *(*account)(struct pm_session *s);

	/* Log one message.  level is an enum pm_log_level.  Never fails. */
	void (*log)(struct pm_session *s, int level, const char *fmt, ...)
	    PM_PRINTF(3, 4);

	/*
	 * Transport.  connect() opens the TCP connection to the account's
	 * server and port and, for PM_TLS_IMPLICIT, completes the verified
	 * TLS handshake.  starttls() runs the handshake on the open
	 * connection after the protocol's STARTTLS command succeeded and
	 * discards anything buffered from before it.  Errors of both:
	 * PM_ETEMP (host name not resolved, connection refused or timed
	 * out, the connection lost or timed out during the handshake,
	 * shutting down), PM_ETLS (the handshake failed: alert, no TLS 1.2;
	 * verification failed: unknown CA, name mismatch, expired, pin
	 * mismatch), PM_ECONFIG (an unusable ca_file, a malformed
	 * tls_fingerprint; connect(): a port outside 1-65535),
	 * PM_EINTERNAL (connect() while connected, starttls() while not
	 * connected or with TLS already on, GnuTLS unable to set up a
	 * session).  After a failed handshake the connection stays open
	 * but refuses all I/O with PM_ETLS; disconnect() it.
	 */
	int (*connect)(struct pm_session *s, char **err);
	int (*starttls)(struct pm_session *s, char **err);
	/* 1 when the connection is protected by TLS (0 when not
	 * connected).  Never fails. */
	int (*tls_active)(struct pm_session *s);
	/*
	 * Send one command line; CRLF is appended.  The line is traced.
	 * Errors: PM_ETEMP (write failed or timed out, shutting down),
	 * PM_ETLS (after a failed handshake), PM_EINTERNAL (not connected).
	 */
	int (*send)(struct pm_session *s, char **err, const char *fmt, ...)
	    PM_PRINTF(3, 4);
	/*
	 * Send prefix followed by the secret and CRLF; the trace shows the
	 * prefix and a placeholder.  Either may be empty (prefix NULL too).
	 * Errors: PM_ETLS (the connection is not under TLS and the account
	 * does not say tls = none: nothing is sent), then as send().
	 */
	int (*send_secret)(struct pm_session *s, const char *prefix,
	    const struct pm_secret *secret, char **err);
	/*
	 * Read one line.  *line_r (NUL-terminated, CRLF or LF removed) stays
	 * valid until the next read.  The line is traced.  Errors:
	 * PM_EPROTO (a line longer than 64 KiB), PM_ETEMP (the connection
	 * closed, reset or timed out, shutting down), PM_ETLS (after a
	 * failed handshake), PM_EINTERNAL (not connected).
	 */
	int (*read_line)(struct pm_session *s, const char **line_r,
	    size_t *len_r, char **err);
	/*
	 * Read between 1 and len bytes of message data (an IMAP literal, a
	 * POP3 multi-line body); len 0 reads nothing and returns PM_OK.  Not
	 * traced.  Errors: as read_line() but never PM_EPROTO.
	 */
	int (*read_bytes)(struct pm_session *s, void *buf, size_t len,
	    size_t *got_r, char **err);
	/* Close the connection (idempotent).  Never fails. */
	void (*disconnect)(struct pm_session *s);

	/*
	 * Authenticate with the shared SASL engine.  server_mechs is the
	 * space-separated list the server advertised (may be empty);
	 * server_ir is 1 when the server accepts initial responses.  The
	 * engine chooses the mechanism from the account's `auth` setting,
	 * obtains the token or password, and runs the exchange, including
	 * the empty response an error challenge requires.  Errors:
	 * PM_ETLS (the connection is not under TLS and the account does
	 * not say tls = none: nothing is sent), PM_ECONFIG (no usable
	 * mechanism, the mechanism needs a password and none is
	 * configured, a user name, token or password that cannot be sent),
	 * PM_EAUTH (the server refused, with its reason), PM_EPROTO (too
	 * many challenges); while the token is obtained, the token
	 * module's errors (PM_EAUTH: the endpoint refused; PM_ETEMP,
	 * PM_EPROTO, PM_ECONFIG, PM_ETLS, PM_EINTERNAL); and any status of
	 * p's slots, passed on as it is.
	 */
	int (*sasl_auth)(struct pm_session *s, const struct pm_sasl_proto *p,
	    void *ctx, const char *server_mechs, int server_ir, char **err);
	/*
	 * The account's password for protocol-level logins that are not
	 * SASL (POP3 USER/PASS, IMAP LOGIN).  NULL when none is configured.
	 * Owned by the core; valid for the session.  Never fails.
	 */
	const struct pm_secret *(*password)(struct pm_session *s);

	/*
	 * Secrets for a plugin that must frame one itself (IMAP LOGIN quotes
	 * the password).  secret_data() exposes the bytes and their length:
	 * never log them.  secret_new() copies len bytes into a new secret,
	 * which secret_free() wipes and frees (NULL is fine).  None fails
	 * (allocation failure aborts).
	 */
	const char *(*secret_data)(const struct pm_secret *sec, size_t *len_r);
	struct pm_secret *(*secret_new)(const void *data, size_t len);
	void (*secret_free)(struct pm_secret *sec);

	/*
	 * Push len bytes back in front of the unread input, so the next
	 * read_line() or read_bytes() returns them first: a plugin that read
	 * past the end of a response (POP3: the bytes after a body's
	 * terminating ".") returns what belongs to the next one.  The bytes
	 * are copied.  A line from read_line() is invalid afterwards.
	 * Nothing happens when not connected.  Never fails.  (ABI 2.)
	 */
	void (*unread)(struct pm_session *s, const void *buf, size_t len);
	/*
	 * Trace one line of a response that the plugin read with
	 * read_bytes() and split itself (POP3 CAPA, UIDL and LIST lines,
	 * CRLF removed), as read_line() traces the lines it reads.  Never
	 * fails.  (ABI 4.)
	 */
	void (*trace)(struct pm_session *s, const char *line, size_t len);

	/*
	 * Say why the PM_ETEMP about to be returned happened (enum pm_retry;
	 * ms: the wait the server suggested, 0 for none).  The last hint of a
	 * session counts.  Never fails.  (ABI 5.)
	 */
	void (*retry_hint)(struct pm_session *s, int kind, unsigned ms);
	/*
	 * Wait at most timeout_ms for input on the connection (for IMAP
	 * IDLE).  Returns 1 when input can be read (bytes already buffered
	 * count), 0 when the time ran out or the core wants the wait to end
	 * early (shutdown, reload, a poll asked for with SIGUSR1).  An error
	 * of the connection, or no connection, returns 1: the next read
	 * reports it.  Never fails otherwise.  (ABI 5.)
	 */
	int (*await_input)(struct pm_session *s, int timeout_ms);
};

struct pm_fetch;	/* the fetch engine's run; owned by the core */

/*
 * Where a plugin's fetch() puts the messages it brings (ABI 3).  The fetch
 * engine hands one to every fetch call; f is passed back untouched.  None
 * of these slots fails towards the plugin: a delivery that fails is noted
 * by the engine against that message, and the plugin keeps reading the
 * message's bytes so the dialogue stays in step.
 */
struct pm_sink {
	/*
	 * The bytes of message idx (an index into the listing list()
	 * returned) start arriving.  Call it only for an idx of the set
	 * being fetched, once; the engine opens the delivery.  Returns the
	 * message's handle, owned by the engine until end(); never NULL
	 * (for an idx not awaited a warning is logged and the bytes written
	 * to the handle are dropped).
	 */
	struct pm_msg *(*begin)(struct pm_fetch *f, size_t idx);
	/*
	 * The next len bytes of the message as they are on the wire once
	 * protocol framing is removed (CRLF line ends, POP3 dot-stuffing
	 * undone); the core converts line ends for the target.
	 */
	void (*write)(struct pm_msg *m, const void *buf, size_t len);
	/*
	 * The message ends.  complete is 1 when every byte arrived and the
	 * server's response around it was well formed: the engine finishes
	 * the delivery (not yet durable; the engine syncs batches itself).
	 * complete 0 discards what was written: the message stays on the
	 * server and is fetched again next time.  m is invalid afterwards.
	 */
	void (*end)(struct pm_msg *m, int complete);
	/*
	 * The server did not hand over message idx.  status PM_OK: it is
	 * gone (expunged by another client; nothing to do).  Anything else:
	 * it refused (POP3 -ERR to RETR); reason says why, and the message
	 * counts as a failure that stays on the server.  A message of the
	 * set for which fetch() returned PM_OK without begin() or missing()
	 * is taken as gone.  Also right after end(m, 0) of message idx, with
	 * a status other than PM_OK: the plugin discarded what arrived
	 * (POP3: shorter than LIST said) and reason says why; the message
	 * counts as such a failure (ABI 4).  Ignored for an idx not in the
	 * set, or one begun and not discarded that way.
	 */
	void (*missing)(struct pm_fetch *f, size_t idx, int status,
	    const char *reason);
};

#endif
