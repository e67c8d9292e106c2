/*
 * pullmail plugin contract, part 2: what a backend plugin exports.
 *
 * A plugin is a shared object (libtool -module -avoid-version) exporting
 * exactly one data symbol, PM_PLUGIN_SYMBOL, of type struct pm_plugin.  The
 * core checks magic and abi before it calls anything in it.
 */
#ifndef PULLMAIL_PLUGIN_H
#define PULLMAIL_PLUGIN_H

#include <pullmail/host.h>

#define PM_PLUGIN_MAGIC 0x504d504cu	/* "PMPL" */
#define PM_PLUGIN_ABI 5u		/* bump on any change in include/pullmail/ */
#define PM_PLUGIN_SYMBOL "pullmail_plugin"

#if defined(__GNUC__)
#define PM_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PM_PLUGIN_EXPORT
#endif

struct pm_conn;		/* a plugin's open connection; owned by the plugin */

/* One message of a folder, as list() reports it.  Owned by the plugin. */
struct pm_entry {
	const char *uid;	/* the state key: IMAP UID in decimal, POP3
				 * UIDL (or a made-up key without UIDL) */
	uint64_t size;		/* bytes as the server counts them; 0 when
				 * unknown */
};

/* What select() reports about a folder. */
struct pm_folder {
	const char *validity;	/* UIDVALIDITY in decimal, or NULL when the
				 * protocol has none; owned by the plugin,
				 * valid until the next select() or close() */
	uint64_t count;		/* messages the server says it holds */
};

/* What dispose() does to the messages of a set. */
enum pm_dispose {
	PM_DISPOSE_SEEN = 1,	/* flag \Seen (a no-op where the protocol
				 * has no flags) */
	PM_DISPOSE_DELETE	/* remove from the server */
};

/* pm_plugin.flags */
#define PM_PLUGIN_FOLDERS	0x1u	/* the account's folders are the
					 * server's (IMAP); else one unnamed
					 * maildrop, selected as "" (POP3) */
#define PM_PLUGIN_DELETE_AT_CLOSE 0x2u	/* deletions take effect only when
					 * close() succeeds (POP3 QUIT) */

/*
 * The plugin's table.  The core's fetch engine calls the slots in order:
 * open, then for each folder select, list, fetch and dispose (any number of
 * times, any subsets), then close.  Every slot but close is called only
 * while the connection is in step: after a slot failed with anything but a
 * per-message delivery failure, the engine calls close() and nothing else.
 * Unless a slot says otherwise it returns PM_OK or a status class with
 * *err set to a malloc'd one-line reason (the caller frees it).
 */
struct pm_plugin {
	uint32_t magic;		/* PM_PLUGIN_MAGIC */
	uint32_t abi;		/* PM_PLUGIN_ABI the plugin was built for */
	const char *name;	/* protocol name: "imap", "pop3" */
	unsigned port_tls;	/* default port with implicit TLS (993) */
	unsigned port_plain;	/* default port otherwise (143) */
	unsigned flags;		/* PM_PLUGIN_* */

	/*
	 * Connect to the account's server (host->connect), read the
	 * greeting, start TLS as configured, learn the capabilities and log
	 * in through host->sasl_auth (or the protocol's password login).
	 * On PM_OK *conn_r is the connection; on failure nothing is left
	 * open.  Errors: PM_ETEMP (network, greeting refused), PM_ETLS,
	 * PM_EAUTH (login refused), PM_ECONFIG (no usable mechanism),
	 * PM_EPROTO.
	 */
	int (*open)(const struct pm_host *host, struct pm_session *s,
	    struct pm_conn **conn_r, char **err);
	/*
	 * Open folder (IMAP: SELECT; POP3: "" only, STAT or nothing) and
	 * describe it in *f_r.  Invalidates an earlier listing.  Errors:
	 * PM_EPROTO (the server refused or broke the protocol), PM_ETEMP,
	 * PM_ECONFIG (a folder name no command can carry).
	 */
	int (*select)(struct pm_conn *c, const char *folder,
	    struct pm_folder *f_r, char **err);
	/*
	 * List every message of the selected folder: *e_r[0..*n_r), in the
	 * order fetch() is cheapest in, no two with the same uid.  The array
	 * and its strings belong to the plugin and stay valid until the next
	 * select(), list() or close().  *have_uids_r is 0 when the server
	 * gives no stable identifiers (POP3 without UIDL): the uids are then
	 * made up from message numbers and mean nothing in the next session.
	 * A listing larger than the server's own count allows, or otherwise
	 * broken, is PM_EPROTO.  Errors: PM_EPROTO, PM_ETEMP.
	 */
	int (*list)(struct pm_conn *c, const struct pm_entry **e_r,
	    size_t *n_r, int *have_uids_r, char **err);
	/*
	 * Fetch the messages idx[0..n) (indexes into the listing, ascending,
	 * at most once each), with as many requests in flight as the
	 * protocol allows, into sink: per message begin(), write()s, end();
	 * or missing().  Only a message whose response was complete and
	 * matched to it (by UID or UIDL, never by position) may end with
	 * complete = 1.  Returns PM_OK when the dialogue is in step at the
	 * end; a failure of the connection or the protocol in the middle is
	 * returned as such (PM_ETEMP, PM_EPROTO), with every message already
	 * ended left ended and the one in flight ended incomplete.
	 */
	int (*fetch)(struct pm_conn *c, const size_t *idx, size_t n,
	    const struct pm_sink *sink, struct pm_fetch *f, char **err);
	/*
	 * Do action (enum pm_dispose) to the messages idx[0..n) of the
	 * listing, which the engine has made durable and recorded.  done_r
	 * [i] is set to 1 for each message the server accepted it for (for
	 * PM_PLUGIN_DELETE_AT_CLOSE, to take effect at close()).  A message
	 * the server refused is logged and left as it is.  IMAP may leave
	 * deleted messages flagged \Deleted rather than expunge them
	 * (enum pm_expunge): they stay listed, recorded as delivered.
	 * Errors: PM_ETEMP, PM_EPROTO.
	 */
	int (*dispose)(struct pm_conn *c, int action, const size_t *idx,
	    size_t n, unsigned char *done_r, char **err);
	/*
	 * 1 when wait() can be used on this connection (the server offers
	 * IMAP IDLE), else 0; NULL for a protocol that never can.  (ABI 5.)
	 */
	int (*can_wait)(struct pm_conn *c);
	/*
	 * Wait for new mail in the selected folder (IMAP IDLE, RFC 2177) for
	 * at most timeout_ms: start the wait, then host->await_input() and
	 * read what the server announces.  News (a message count that grew,
	 * EXISTS or RECENT) sets *news_r to 1 and ends the wait at once;
	 * other untagged responses (EXPUNGE, FETCH flags) are read and
	 * ignored.  News announced since the last list() began (an EXISTS
	 * during fetch() or dispose()) ends the wait before it starts.
	 * When the time is up, or await_input() returns 0, the wait ends
	 * with *news_r 0; timeout_ms 0 is one quick look, and a wait never
	 * lasts beyond 29 minutes (a server may log out a client silent for
	 * 30).  Ending it (DONE) is read to its tagged completion, so on
	 * PM_OK the dialogue is in step and the folder still selected: the
	 * engine lists it again.  A BYE or a broken connection is PM_ETEMP
	 * with host->retry_hint() saying why (PM_RETRY_TOKEN_EXPIRED, else
	 * PM_RETRY_RECONNECT); a server that refuses the wait (IDLE: NO or
	 * BAD) is PM_EPROTO with the dialogue in step.  Only called when
	 * can_wait() returned 1.  Errors: PM_ETEMP, PM_EPROTO.  (ABI 5.)
	 */
	int (*wait)(struct pm_conn *c, int timeout_ms, int *news_r,
	    char **err);
	/*
	 * End the session (LOGOUT, QUIT) unless the dialogue is out of step,
	 * disconnect and free c.  Always frees c.  For a plugin with
	 * PM_PLUGIN_DELETE_AT_CLOSE a failure means no deletion took effect.
	 * Errors: PM_ETEMP, PM_EPROTO.
	 */
	int (*close)(struct pm_conn *c, char **err);
};

#endif
