/* The one token module.  libcurl and json-c appear only in oauth.c. */
#ifndef PM_OAUTH_H
#define PM_OAUTH_H

#include <stddef.h>
#include <time.h>

#include "secret.h"

struct oauth_request {
	const char *token_url;		/* {tenant} already expanded */
	const char *client_id;
	const struct pm_secret *client_secret;
	const char *scope;		/* may be NULL */
	int client_auth;		/* enum oauth_client_auth */
	const char *cache_dir;		/* where token caches live (0700) */
	long timeout;			/* seconds */
	const char *account;		/* for messages */
};

/* A parsed token endpoint response. */
struct oauth_token {
	struct pm_secret *access_token;
	char *token_type;		/* "Bearer" */
	time_t expires_at;		/* absolute; never 0 on success */
	char *scope;			/* granted scope or NULL */
	char *error;			/* error responses: "invalid_client" */
	char *error_description;	/* may be NULL */
};

int oauth_global_init(char **err);
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

/* Drop the cached token for req (after the server rejected it). */
void oauth_invalidate(const struct oauth_request *req);

/* The cache file for req (malloc'd), or NULL when req->cache_dir is not
 * set.  Its content: {"key", "access_token", "obtained_at", "expires_at"}. */
char *oauth_cache_path(const struct oauth_request *req);

/*
 * Parse a token endpoint response body received with HTTP status
 * http_status, at time now.  Success (PM_OK) fills tok with access_token,
 * token_type, expires_at, scope.  An error response (JSON with "error")
 * returns PM_EAUTH with tok->error/error_description set (first line only,
 * control characters stripped, cut at 300 bytes) and *err a message with a
 * hint of what to fix; PM_ETEMP instead when the status is 5xx, 429 or 408
 * or the error is temporarily_unavailable or server_error.  Malformed JSON,
 * a missing access_token, a missing or non-Bearer token_type, a missing,
 * non-positive or absurd expires_in, a non-200 status without an OAuth
 * error: PM_EPROTO (PM_ETEMP for 5xx/429/408).
 */
int oauth_parse_token_response(const char *body, size_t len, long http_status,
    time_t now, struct oauth_token *tok, char **err);

void oauth_token_clear(struct oauth_token *tok);

/* A hint for a token endpoint error (AADSTS codes included), or NULL. */
const char *oauth_error_hint(const char *error, const char *description);

#endif
