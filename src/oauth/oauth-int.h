/*
 * Inside the token module (src/oauth/): what its files share.  Only the
 * files of src/oauth/ include this header; it names no libcurl or json-c
 * type (a JSON object is the opaque struct json_object, used through
 * json.c).
 *
 * Calls go one way, from the entry point down:
 *   token.c (entry)    -> cache.c (client credentials), refresh.c (the
 *                         delegated store), device.c and authcode.c
 *                         (`authorize`, which save into refresh.c),
 *                         info.c, discovery.c
 *   those              -> exchange.c (grant + retries), file.c (token
 *                         files, locks), and src/notify.c (a human
 *                         must act)
 *   exchange.c         -> http.c (libcurl) -> assertion.c (private_key_jwt)
 *   any of them        -> json.c (json-c), text.c, provider.c (the table)
 */
#ifndef PM_OAUTH_INT_H
#define PM_OAUTH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oauth.h"
#include "secret.h"

struct json_object;

#define OAUTH_MAX_RESPONSE	(256 * 1024)	/* endpoint body, bytes */
#define OAUTH_MAX_CACHE_FILE	(256 * 1024)
#define OAUTH_MAX_TOKEN		(64 * 1024)	/* token bytes */
#define OAUTH_MAX_EXPIRES	(366L * 86400)	/* over a year: a bug */
#define OAUTH_CACHE_MARGIN	300		/* seconds left at reuse */
#define OAUTH_MAX_DESCRIPTION	300		/* server text kept */
#define OAUTH_MAX_ERROR_CODE	64
#define OAUTH_JSON_DEPTH	16
#define OAUTH_DEFAULT_TIMEOUT	60
#define OAUTH_LOCK_POLL_MS	50	/* between tries for a held lock */
#define OAUTH_MAX_TRIES		3	/* transient failures */
#define STORE_MAX_FILE		(256 * 1024)
#define STORE_MARGIN		300	/* seconds left at reuse */
#define DEVICE_DEFAULT_INTERVAL	5
#define DEVICE_MAX_INTERVAL	60
#define REDIRECT_WAIT		600	/* seconds for the human */
#define REDIRECT_MAX_REQUEST	8192
#define DEVICE_GRANT \
	"urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"

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

struct oauth_endpoints;

/* Fill req from account a with the endpoints ep (NULL: those configured);
 * cache_dir is where its tokens live.  req points into a and ep: it is
 * valid as long as they are. */
void oauth_request_init(struct oauth_request *req, const struct account *a,
    const struct oauth_endpoints *ep, const char *cache_dir);

/* An account's endpoints: configured, or found by OpenID discovery. */
struct oauth_endpoints {
	char *token_url;
	char *device_url;	/* NULL when the issuer has none */
	char *authorize_url;	/* NULL when the issuer has none */
};

/*
 * The endpoints of account a into ep (each malloc'd; free with
 * oauth_endpoints_clear): those the configuration sets, and when
 * a->oauth_issuer is set and the flow needs one it left unset, those its
 * /.well-known/openid-configuration names, after checking that it names
 * the same issuer.  a is not changed.  On an error ep is left empty.
 * Errors: PM_ECONFIG (issuer mismatch, no token endpoint, or the flow's
 * endpoint missing), PM_ETEMP, PM_EPROTO.
 */
int oauth_discover(const struct account *a, struct oauth_endpoints *ep,
    char **err);
void oauth_endpoints_clear(struct oauth_endpoints *ep);

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

/* The account name for messages. */
static inline const char *
who(const struct oauth_request *req)
{
	return req->account != NULL ? req->account : "oauth";
}

/* --- http.c: the only file that includes libcurl ------------------------- */

/* What one HTTP exchange with an endpoint returned. */
struct http_reply {
	char	*body;
	size_t	 len;
	int	 too_large;
	long	 status;
	long	 retry_after;	/* seconds from Retry-After, or -1 */
};

/*
 * POST grant ("grant_type=...&...", form-encoded) to url with the client's
 * credentials of req (body or Basic; public clients send client_id only);
 * a GET without credentials when grant is NULL.
 * Any HTTP status is PM_OK with reply filled (free with oauth_reply_free);
 * on an error reply is empty (a body cut short was wiped and freed).
 * Errors: PM_ETEMP (network, timeout), PM_ETLS, PM_ECONFIG (bad URL, or plain
 * http:// to another host than this one: url_check_endpoint),
 * PM_EPROTO (response too large).
 */
int oauth_http_post(const struct oauth_request *req, const char *url,
    const char *grant, struct http_reply *reply, char **err);
/* Wipe and free the body (complete or not); the reply is left empty. */
void oauth_reply_free(struct http_reply *reply);

/* Release libcurl's global state, if a request started it. */
void oauth_http_deinit(void);

/* --- assertion.c --------------------------------------------------------- */

/*
 * The private_key_jwt client assertion for req (RS256 with req->client_key,
 * x5t of req->client_cert, aud = token URL, iss = sub = client id); the JWT
 * is malloc'd.  Errors: PM_ECONFIG (unreadable key or certificate),
 * PM_EINTERNAL.
 */
int oauth_client_assertion(const struct oauth_request *req, char **jwt_r,
    char **err);

/* --- exchange.c: a grant sent to the token endpoint ---------------------- */

/*
 * POST grant to req->token_url and parse the answer into tok (as
 * oauth_parse_token_response).  PM_ETEMP answers are retried up to a few
 * times with exponential backoff and jitter, or after Retry-After, while
 * the waiting stays within half of req->timeout.  Every error text, also
 * one logged before a retry, has every live secret (the client secret, a
 * refresh token sent in grant) redacted in every encoding (secret_redact).
 */
int oauth_exchange(const struct oauth_request *req, const char *grant,
    struct oauth_token *tok, char **err);

/* --- file.c: token files and their locks --------------------------------- */

/* Add access_token, obtained_at, expires_at and scope (when not NULL) to a
 * token file's JSON object. */
void oauth_json_add_access(struct json_object *obj,
    const struct pm_secret *access, time_t obtained_at, time_t expires_at,
    const char *scope);

/* Write obj to path atomically: 0600 temp file, fsync, rename, fsync dir.
 * 0, or -1 after logging why. */
int oauth_write_json(const char *dir, const char *path,
    struct json_object *obj);

/*
 * An exclusive flock on path.lock into *fd_r, waiting at most req->timeout
 * (default 60 s) for another process to release it.  *fd_r is -1 (after a
 * logged warning) when the lock file cannot be opened or locked at all.
 * Errors: PM_ETEMP "token lock PATH is held by another process".
 */
int oauth_lock(const struct oauth_request *req, const char *path, int *fd_r,
    char **err);
void oauth_unlock(int fd);

/* --- json.c: the only file that includes json-c -------------------------- */

/* Exactly one JSON object in len bytes, or NULL with a reason in *why. */
struct json_object *oauth_parse_object(const char *text, size_t len,
    const char **why);
/* A string member (NULL if absent; *bad set when not a string). */
const char *oauth_get_string(struct json_object *obj, const char *key,
    int *bad);
/* An integer member; -1 when absent or not an integer. */
int oauth_get_int64(struct json_object *obj, const char *key, int64_t *v_r);
/* Whether a token may be sent: visible ASCII, bounded length. */
int oauth_token_ok(const char *s, size_t len);

/* The integer member key given as a number or a string of digits, in
 * (0, 86400); dflt otherwise. */
long oauth_get_long(struct json_object *obj, const char *key, long dflt);
/* A claim as text (string, number, or array of strings joined by ' '),
 * malloc'd, or NULL. */
char *oauth_claim_text(struct json_object *obj, const char *key);
/* A new empty object; members added replace one of the same key. */
struct json_object *oauth_json_new(void);
void oauth_json_set_string(struct json_object *obj, const char *key,
    const char *s);
void oauth_json_set_string_len(struct json_object *obj, const char *key,
    const char *s, size_t n);
void oauth_json_set_int64(struct json_object *obj, const char *key,
    int64_t v);
/* obj as compact text, owned by obj (valid until it is changed or freed). */
const char *oauth_json_text(struct json_object *obj);
void oauth_json_free(struct json_object *obj);

/* --- text.c -------------------------------------------------------------- */

/* Untrusted server text for a message: secrets redacted, first line, no
 * controls, max bytes. */
char *oauth_clean_text(const char *s, size_t max);
/* application/x-www-form-urlencoded of n bytes. */
char *oauth_form_encode(const char *s, size_t n);
void oauth_free_wiped(char *s);
void oauth_sleep_ms(long ms);

/* --- cache.c: client-credentials tokens, shared by an app's mailboxes ---- */

/* A client-credentials token for req: one fetch for all the threads that
 * ask at once, the cache file, the token endpoint (oauth_get_token). */
int oauth_app_token(const struct oauth_request *req,
    struct pm_secret **token_r, int *cached_r, char **err);
/* Drop req's cache file unless it holds another token than refused. */
void oauth_app_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused);
/* Free the tokens held for the apps; no other thread in the module. */
void oauth_app_free(void);

/* --- refresh.c: the delegated flows' token store ------------------------- */

int oauth_delegated_token(const struct oauth_request *req,
    struct pm_secret **token_r, int *cached_r, char **err);
void oauth_delegated_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused);
/* Store what `pullmail authorize` obtained (a refresh token is needed).
 * Errors: PM_EAUTH (none issued), PM_ECONFIG, PM_ETEMP. */
int oauth_store_save(const struct oauth_request *req,
    struct oauth_token *tok, char **err);
/* The scope parameter ("&scope=..." or ""), malloc'd. */
char *oauth_scope_param(const struct oauth_request *req);

/* --- info.c -------------------------------------------------------------- */

/* Print what oauth_token_info shows of token, which oauth_get_token gave
 * for req (cached: from a cache); PM_EAUTH after a warning. */
int oauth_token_describe(const struct oauth_request *req,
    const struct pm_secret *token, int cached, const char *user,
    const char *proto, char **err);

/* --- device.c, authcode.c: `pullmail authorize` -------------------------- */

/* The device authorization grant (RFC 8628). */
int oauth_device_authorize(const struct oauth_request *req, char **err);
/* The authorization code grant with PKCE and a loopback redirect. */
int oauth_code_authorize(const struct oauth_request *req, char **err);

#endif
