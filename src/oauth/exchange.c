/*
 * One grant sent to the token endpoint and its answer parsed, with
 * retries of transient failures (backoff, jitter, Retry-After) and every
 * live secret redacted from the error text.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* One POST of grant to the token endpoint, parsed into tok. */
static int
exchange_once(const struct oauth_request *req, const char *grant,
    struct oauth_token *tok, long *retry_after_r, char **err)
{
	struct http_reply reply;
	int rc;

	*retry_after_r = -1;
	rc = oauth_http_post(req, req->token_url, grant, &reply, err);
	if (rc != PM_OK)
		return rc;
	*retry_after_r = reply.retry_after;
	log_debug("oauth", "%s answered HTTP %ld, %zu bytes", req->token_url,
	    reply.status, reply.len);
	rc = oauth_parse_token_response(reply.body != NULL ? reply.body : "",
	    reply.len, reply.status, time(NULL), tok, err);
	oauth_reply_free(&reply);
	if (rc != PM_OK && rc != PM_EAUTH)
		err_prefix(err, "%s", req->token_url);
	return rc;
}

/* POST grant to the token endpoint (contract in oauth-int.h). */
int
oauth_exchange(const struct oauth_request *req, const char *grant,
    struct oauth_token *tok, char **err)
{
	long budget_ms, spent_ms, wait_ms, retry_after;
	long long t0;
	unsigned char rnd;
	int rc, attempt;

	budget_ms = (req->timeout > 0 ? req->timeout :
	    OAUTH_DEFAULT_TIMEOUT) * 1000L / 2;
	t0 = mono_ms();
	for (attempt = 1;; attempt++) {
		memset(tok, 0, sizeof *tok);
		rc = exchange_once(req, grant, tok, &retry_after, err);
		if (rc != PM_ETEMP || attempt >= OAUTH_MAX_TRIES)
			break;
		/* Backoff 1 s, 2 s, ... plus up to 50% jitter. */
		wait_ms = 1000L << (attempt - 1);
		if (crypto_random(&rnd, 1) == 0)
			wait_ms += wait_ms * rnd / 512;
		if (retry_after > 0)
			wait_ms = retry_after * 1000L;
		spent_ms = (long)(mono_ms() - t0);
		if (spent_ms + wait_ms > budget_ms) {
			log_debug("oauth", "%s: no time left to retry",
			    req->token_url);
			break;
		}
		/* The endpoint may echo a secret in its error text. */
		secret_redact(err);
		log_info("%s: %s; trying again in %ld ms",
		    req->account != NULL ? req->account : "oauth", *err,
		    wait_ms);
		oauth_token_clear(tok);
		free(*err);
		*err = NULL;
		oauth_sleep_ms(wait_ms);
	}
	/* Now, while every secret of the request (a refresh token the
	 * caller frees before it logs this) is registered. */
	if (rc != PM_OK)
		secret_redact(err);
	return rc;
}
