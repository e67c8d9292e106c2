/*
 * Inside the token module: what oauth.c shares with oauth-flow.c.  Only
 * oauth*.c include this header (it names libcurl-free but json-c types).
 */
#ifndef PM_OAUTH_INT_H
#define PM_OAUTH_INT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "oauth.h"
#include "secret.h"

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

/*
 * The private_key_jwt client assertion for req (RS256 with req->client_key,
 * x5t of req->client_cert, aud = token URL, iss = sub = client id); the JWT
 * is malloc'd.  Errors: PM_ECONFIG (unreadable key or certificate),
 * PM_EINTERNAL.
 */
int oauth_client_assertion(const struct oauth_request *req, char **jwt_r,
    char **err);

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

/* Untrusted server text for a message: secrets redacted, first line, no
 * controls, max bytes. */
char *oauth_clean_text(const char *s, size_t max);
/* application/x-www-form-urlencoded of n bytes. */
char *oauth_form_encode(const char *s, size_t n);
void oauth_free_wiped(char *s);
void oauth_sleep_ms(long ms);

/* The delegated flows' token store (oauth-flow.c). */
int oauth_delegated_token(const struct oauth_request *req,
    struct pm_secret **token_r, int *cached_r, char **err);
void oauth_delegated_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused);

#endif
