/* The configuration file: INI style, [defaults] and [account NAME]. */
#ifndef PM_CONFIG_H
#define PM_CONFIG_H

/* The build configuration (autoconf) has its own name so that this header,
 * the config file module, keeps the natural one. */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>

#include "secret.h"

enum auth_mech {
	AUTH_AUTO = 0,
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER,
	AUTH_PLAIN,
	AUTH_LOGIN
};

enum oauth_provider {
	OAUTH_NONE = 0,		/* no OAuth configured: password account */
	OAUTH_MICROSOFT,
	OAUTH_GENERIC,
	OAUTH_GOOGLE
};

enum oauth_client_auth {
	OAUTH_CLIENT_POST = 0,	/* client_secret_post (default) */
	OAUTH_CLIENT_BASIC	/* client_secret_basic */
};

enum oauth_flow {
	OAUTH_FLOW_CLIENT_CREDENTIALS = 0,	/* app-only (default) */
	OAUTH_FLOW_DEVICE,		/* delegated: device code, refresh */
	OAUTH_FLOW_AUTH_CODE		/* delegated: code + PKCE, refresh */
};

enum deliver_kind {
	DELIVER_MAILDIR = 0,
	DELIVER_MBOX,
	DELIVER_MDA,
	DELIVER_SMTP,
	DELIVER_LMTP
};

struct account {
	char *name;
	char *file;		/* config file and line of [account NAME] */
	int line;

	char *server;
	unsigned port;		/* 0: protocol default */
	char *protocol;		/* "imap" (default), "pop3" */
	int tls;		/* enum pm_tls_mode */
	char *ca_file;
	char *tls_fingerprint;	/* "sha256:HEX" or bare hex; NULL: none */
	char *user;		/* login name (mailbox, for HarePoint form) */
	int auth;		/* enum auth_mech */
	struct pm_secret *password;

	int oauth_provider;	/* enum oauth_provider */
	char *oauth_tenant;
	char *oauth_client_id;
	struct pm_secret *oauth_client_secret;
	char *oauth_token_url;	/* with {tenant} already expanded */
	char *oauth_scope;
	int oauth_client_auth;	/* enum oauth_client_auth */
	int oauth_flow;		/* enum oauth_flow */
	int oauth_flow_auto;	/* not configured: authorize may choose */
	char *oauth_device_url;	/* device authorization endpoint */
	char *oauth_authorize_url; /* authorization endpoint */
	unsigned oauth_redirect_port; /* loopback listener; 0: random */
	char *notify_command;	/* run when a human must act; NULL: none */
	char *oauth_issuer;	/* OpenID discovery; NULL: none */
	char *oauth_token_command; /* prints an access token; NULL: none */
	char *oauth_client_cert; /* private_key_jwt: PEM certificate */
	struct pm_secret *oauth_client_key; /* private_key_jwt: PEM key */

	char **folders;		/* never empty after loading: "INBOX" */
	size_t nfolders;
	int keep;		/* default yes */
	int mark_seen;		/* default no */
	uint64_t size_limit;	/* bytes; 0 (default): no limit */
	int fetch_all;		/* POP3 without UIDL: fetch all; default no */
	int pop3_xoauth2_two_step; /* default yes */
	int pop3_strict_size;	/* enum pm_strict_size, default auto */
	int expunge;		/* enum pm_expunge; default uid */
	int deliver_kind;	/* enum deliver_kind */
	char *deliver_path;	/* maildir/mbox: expanded path; mda: the
				 * command line; smtp: HOST[:PORT]; lmtp:
				 * /SOCKET or HOST:PORT */
	char *recipient;	/* NULL: the local user */
	char *envelope_sender;	/* NULL: from the header; "" for <> */
	unsigned mda_timeout;	/* seconds; default 600 */
	unsigned lock_timeout;	/* seconds (mbox); default 60 */
	int add_return_path;	/* prepend header lines; default no */
	int add_delivered_to;
	int add_received;
	char *state_dir;	/* expanded; default per XDG / root */
	unsigned timeout;	/* seconds, connect and read; default 60 */
	unsigned poll_interval;	/* daemon: seconds between polls; 300 */
	int idle;		/* daemon: IMAP IDLE when offered; yes */
	unsigned server_connections; /* sessions at once to this server
				 * (host and port); default 16 */
	uint64_t fingerprint;	/* of every setting in effect: equal for an
				 * account a reload did not change */
	unsigned throttle_max_wait; /* seconds: most a server's suggested
				 * wait is honoured for; default 60 */

	struct account *next;
};

struct config {
	char *file;
	struct account *accounts;	/* in file order */
	size_t naccounts;
	unsigned max_connections;	/* sessions at once, all accounts
					 * together ([defaults]); 32 */
};

/*
 * Load and validate path.  Errors: PM_ECONFIG with "FILE:LINE: key: reason"
 * (or "FILE: reason" for file-level problems such as permissions);
 * PM_ETEMP, same form, when a *_command secret command timed out.
 */
int config_load(const char *path, struct config **cfg_r, char **err);

/* The file used without -c: $XDG_CONFIG_HOME/pullmail/config (or
 * ~/.config/...) if it exists, else /etc/pullmail.conf.  malloc'd. */
char *config_default_path(void);
/* $XDG_CONFIG_HOME/pullmail/config or ~/.config/pullmail/config, whether
 * it exists or not; NULL without a home directory.  malloc'd. */
char *config_user_path(void);

struct account *config_find(struct config *cfg, const char *name);
void config_free(struct config *cfg);

/* Whether the account authenticates with OAuth (token module) rather than
 * a password. */
int account_uses_oauth(const struct account *a);

/* The directory of the account's token cache, refresh token and notify
 * flag: STATE_DIR/tokens; malloc'd. */
char *account_token_dir(const struct account *a);

#endif
