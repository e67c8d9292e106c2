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
	time_t expires_at;		/* absolute, 0 if the server gave none */
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

/*
 * Parse a token endpoint response body received with HTTP status
 * http_status, at time now.  Success (PM_OK) fills tok with access_token,
 * token_type, expires_at, scope.  An error response (JSON with "error")
 * returns PM_EAUTH with tok->error/error_description set and *err a message
 * with a hint of what to fix.  Malformed JSON, a missing access_token, a
 * non-Bearer token_type, or a bad expires_in: PM_EPROTO.
 */
int oauth_parse_token_response(const char *body, size_t len, long http_status,
    time_t now, struct oauth_token *tok, char **err);

void oauth_token_clear(struct oauth_token *tok);

/* A hint for a token endpoint error (AADSTS codes included), or NULL. */
const char *oauth_error_hint(const char *error, const char *description);

#endif
