/*
 * For the OAuth fuzz targets that go through src/oauth/: the one HTTP
 * exchange a parse needs answers with the fuzz input instead of the
 * network.  Include this, then the source file, with oauth_http_post
 * defined to fuzz_http_post as below.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth/oauth-int.h"

/* What the endpoint answers next. */
static const uint8_t *fuzz_body;
static size_t fuzz_len;
static long fuzz_status;

int fuzz_http_post(const struct oauth_request *req, const char *url,
    const char *grant, struct http_reply *reply, char **err);

/* oauth_http_post() as the code under test sees it. */
int
fuzz_http_post(const struct oauth_request *req, const char *url,
    const char *grant, struct http_reply *reply, char **err)
{
	(void)req;
	(void)url;
	(void)grant;
	(void)err;
	memset(reply, 0, sizeof *reply);
	reply->body = malloc(fuzz_len + 1);
	if (reply->body == NULL)
		abort();
	memcpy(reply->body, fuzz_body, fuzz_len);
	reply->body[fuzz_len] = '\0';
	reply->len = fuzz_len;
	reply->status = fuzz_status;
	reply->retry_after = -1;
	return PM_OK;
}

/* The status from the first input byte (mostly 200), the body after it. */
static void
fuzz_answer(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 400, 401, 404, 429, 500, 503 };

	fuzz_status = data[0] < sizeof statuses / sizeof statuses[0] ?
	    statuses[data[0]] : 200;
	fuzz_body = data + 1;
	fuzz_len = size - 1;
}
