/*
 * The one token module: client credentials (app-only) and the delegated
 * flows (device code, authorization code with PKCE) with their refresh
 * tokens.  libcurl and json-c appear only in oauth*.c.
 */
#ifndef PM_OAUTH_H
#define PM_OAUTH_H

#include <stddef.h>
#include <time.h>

#include "secret.h"

struct account;

struct oauth_request {
	const char *token_url;		/* {tenant} already expanded */
	const char *client_id;
	const struct pm_secret *client_secret;
	const char *scope;		/* may be NULL */
	int client_auth;		/* enum oauth_client_auth */
	const char *cache_dir;		/* where token caches live (0700) */
	long timeout;			/* seconds */
	const char *account;		/* for messages */
	int flow;			/* enum oauth_flow (config.h) */
	const char *device_url;		/* device authorization endpoint */
	const char *authorize_url;	/* authorization endpoint */
	unsigned redirect_port;		/* loopback redirect; 0: random */
	const char *notify_command;	/* run when a human must act */
	/* private_key_jwt (RFC 7523) instead of a secret when set: */
	const struct pm_secret *client_key;	/* PEM RSA private key */
	const char *client_cert;	/* PEM certificate file (x5t) */
	const char *token_command;	/* prints the access token */
	const char *ca_bundle;		/* the system's CA bundle; NULL: the
					 * one chosen at build time (tests) */
};

/* A parsed token endpoint response. */
struct oauth_token {
	struct pm_secret *access_token;
	struct pm_secret *refresh_token; /* NULL when none was sent */
	char *token_type;		/* "Bearer" */
	time_t expires_at;		/* absolute; never 0 on success */
	char *scope;			/* granted scope or NULL */
	char *error;			/* error responses: "invalid_client" */
	char *error_description;	/* may be NULL */
};

/* Fill req from account a; cache_dir is where its tokens live.  req
 * points into a: it is valid as long as a is. */
void oauth_request_init(struct oauth_request *req, const struct account *a,
    const char *cache_dir);

/*
 * OpenID discovery: when a->oauth_issuer is set, fetch its
 * /.well-known/openid-configuration, check that it names the same issuer
 * and fill in the token, device authorization and authorization endpoints
 * that the configuration left unset.  Errors: PM_ECONFIG (issuer mismatch,
 * no token endpoint, or the flow's endpoint missing), PM_ETEMP, PM_EPROTO.
 */
int oauth_discover(struct account *a, char **err);

/* Initialise libcurl now rather than at the first request: call it once
 * before starting threads.  Errors: PM_EINTERNAL. */
int oauth_global_init(char **err);

/* Release libcurl, which the first request initialises, and the tokens
 * held for apps; at exit, with no other thread in the token module. */
void oauth_global_deinit(void);

/*
 * Get an access token by the client-credentials grant: from the cache when
 * it is valid for at least another 5 minutes, else from the token endpoint
 * (the cache is then rewritten atomically, mode 0600).  The cache is keyed
 * by (token URL, client id, scope), so every mailbox of one app shares a
 * token.  *cached_r is 1 when the token came from the cache.  Errors:
 * PM_EAUTH (the endpoint refused: its error, error_description and a hint),
 * PM_ETEMP (network failure, 5xx), PM_EPROTO (malformed response).
 */
int oauth_get_token(const struct oauth_request *req,
    struct pm_secret **token_r, int *cached_r, char **err);

/*
 * With req->token_command, the token is what that command prints (run on
 * every call, nothing cached); its failure is PM_EAUTH.
 *
 * A delegated flow (req->flow device or authorization code) gets its access
 * token from the account's token store (oauth_store_path), refreshing it
 * with the stored refresh token when it is near expiry.  The store is
 * locked (flock) while it is read and refreshed, so a second process waits
 * and reuses the first one's result; a rotated refresh token is written
 * (temp file, fsync, rename, fsync dir) before the new access token is
 * returned.  Transient failures are retried a few times with backoff and
 * jitter (Retry-After honoured) within half of req->timeout.  Errors:
 * PM_EAUTH when a human must act (no stored authorization, invalid_grant,
 * invalid_client, expired secret...): one line naming the account, what
 * happened and "pullmail authorize ACCOUNT"; req->notify_command is then
 * run once per such event (a flag file in the store directory, cleared on
 * the next success).  PM_ETEMP, PM_EPROTO as for client credentials.
 */

/*
 * When token, which oauth_get_token() returned for req, expires: the
 * expires_at recorded in the cache or the token store next to it; 0 when
 * unknown (oauth_token_command, no cache, another token recorded since).
 */
time_t oauth_token_expiry(const struct oauth_request *req,
    const struct pm_secret *token);

/* Drop the cached token for req after the server refused the token
 * refused.  When the cache (file or delegated store) holds another token
 * by now, another mailbox has got a new one already and it is kept;
 * refused NULL drops it whatever it is.  For a delegated flow only the
 * access token is dropped: the refresh token stays. */
void oauth_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused);

/* The cache file for req (malloc'd), or NULL when req->cache_dir is not
 * set.  Its content: {"key", "access_token", "obtained_at", "expires_at",
 * "scope" (granted, when the server said)}. */
char *oauth_cache_path(const struct oauth_request *req);

/*
 * Parse a token endpoint response body received with HTTP status
 * http_status, at time now.  Success (PM_OK) fills tok with access_token,
 * refresh_token (when sent), token_type, expires_at, scope.  An error
 * response (JSON with "error") returns PM_EAUTH with tok->error and
 * error_description set (first line only, control characters stripped, cut
 * at 300 bytes) and *err a message with a hint of what to fix; PM_ETEMP
 * instead when the status is 5xx, 429 or 408 or the error is
 * temporarily_unavailable or server_error.  Malformed JSON,
 * a missing access_token, a missing or non-Bearer token_type, a missing,
 * non-positive or absurd expires_in, a non-200 status without an OAuth
 * error: PM_EPROTO (PM_ETEMP for 5xx/429/408).
 */
int oauth_parse_token_response(const char *body, size_t len, long http_status,
    time_t now, struct oauth_token *tok, char **err);

void oauth_token_clear(struct oauth_token *tok);

/* The token store of a delegated account (malloc'd), or NULL without
 * req->cache_dir: {"key", "refresh_token", "access_token", "obtained_at",
 * "expires_at", "scope"}, mode 0600. */
char *oauth_store_path(const struct oauth_request *req);

/*
 * `pullmail authorize ACCOUNT`: run the delegated flow of req (device code:
 * print the verification URI and user code and poll; authorization code:
 * listen on 127.0.0.1, print the URL, check state, exchange the code with
 * its PKCE verifier) and store the refresh token.  Progress goes to stdout.
 * Errors: PM_EAUTH (denied, expired, no refresh token issued), PM_ECONFIG
 * (flow not delegated, endpoint missing), PM_ETEMP, PM_EPROTO.
 */
int oauth_authorize(const struct oauth_request *req, char **err);

/*
 * `pullmail token ACCOUNT --info`: get a token as a fetch would (refreshing
 * it when due) and print its kind, length, expiry and, for a JWT, its
 * claims (aud, iss, tid, upn, scp, roles, exp), never the token.  Warns
 * when the audience is not Exchange Online, neither scp nor roles grants
 * proto ("imap", "pop3"), or a delegated token belongs to another user than
 * user.  Errors: those of oauth_get_token; PM_EAUTH after a warning.
 */
int oauth_token_info(const struct oauth_request *req, const char *user,
    const char *proto, char **err);

/* A hint for a token endpoint error (AADSTS codes included), or NULL. */
const char *oauth_error_hint(const char *error, const char *description);

#endif
