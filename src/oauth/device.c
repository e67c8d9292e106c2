/*
 * `pullmail authorize` with the device authorization grant (RFC 8628):
 * ask for a user code, print it, poll the token endpoint.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "oauth-int.h"
#include "provider.h"
#include "secret.h"
#include "util.h"

/* Ask the device authorization endpoint for a user code; print it. */
static int
device_start(const struct oauth_request *req, char **device_code_r,
    long *interval_r, time_t *deadline_r, char **err)
{
	struct http_reply reply;
	struct json_object *obj;
	const char *why, *dc, *uc, *uri, *msg, *error, *desc;
	char *grant, *c1, *c2, *c3;
	long status;
	int bad = 0, rc;

	grant = oauth_scope_param(req);
	/* Drop the leading '&': this body has no grant_type. */
	rc = oauth_http_post(req, req->device_url, *grant == '&' ? grant + 1 :
	    grant, &reply, err);
	free(grant);
	if (rc != PM_OK)
		return rc;
	obj = oauth_parse_object(reply.body != NULL ? reply.body : "",
	    reply.len, &why);
	status = reply.status;
	oauth_reply_free(&reply);
	if (obj == NULL)
		return errf(err, status >= 500 ? PM_ETEMP : PM_EPROTO,
		    "%s answered HTTP %ld without usable JSON (%s)",
		    req->device_url, status, why);
	error = oauth_get_string(obj, "error", &bad);
	if (error != NULL) {
		desc = oauth_get_string(obj, "error_description", &bad);
		c1 = oauth_clean_text(error, 64);
		c2 = desc != NULL ? oauth_clean_text(desc, 300) : NULL;
		rc = errf(err, status >= 500 ? PM_ETEMP : PM_EAUTH,
		    "device authorization refused: %s%s%s (hint: %s)", c1,
		    c2 != NULL ? ": " : "", c2 != NULL ? c2 : "",
		    oauth_error_hint(error, desc) != NULL ?
		    oauth_error_hint(error, desc) : "check oauth_client_id, "
		    "oauth_scope and that the app allows public client flows");
		free(c1);
		free(c2);
		oauth_json_free(obj);
		return rc;
	}
	dc = oauth_get_string(obj, "device_code", &bad);
	uc = oauth_get_string(obj, "user_code", &bad);
	uri = oauth_get_string(obj, "verification_uri", &bad);
	if (uri == NULL)	/* Google's older name */
		uri = oauth_get_string(obj, "verification_url", &bad);
	msg = oauth_get_string(obj, "message", &bad);
	if (bad || dc == NULL || !oauth_token_ok(dc, strlen(dc)) ||
	    uc == NULL || uri == NULL) {
		oauth_json_free(obj);
		return errf(err, PM_EPROTO, "%s: malformed device "
		    "authorization response", req->device_url);
	}
	c1 = oauth_clean_text(uri, 512);
	c2 = oauth_clean_text(uc, 64);
	printf("To authorize pullmail for %s, open %s and enter the code "
	    "%s\n", who(req), c1, c2);
	if (msg != NULL) {
		c3 = oauth_clean_text(msg, 512);
		printf("%s\n", c3);
		free(c3);
	}
	printf("Waiting for the authorization...\n");
	fflush(stdout);
	free(c1);
	free(c2);
	*device_code_r = xstrdup(dc);
	*interval_r = oauth_get_long(obj, "interval", DEVICE_DEFAULT_INTERVAL);
	*deadline_r = time(NULL) + oauth_get_long(obj, "expires_in", 900);
	oauth_json_free(obj);
	return PM_OK;
}

/* The device flow: user code, then poll the token endpoint. */
int
oauth_device_authorize(const struct oauth_request *req, char **err)
{
	struct oauth_token tok;
	char *dc = NULL, *enc, *grant;
	long interval = DEVICE_DEFAULT_INTERVAL;
	time_t deadline = 0;
	int rc;

	if (req->device_url == NULL)
		return errf(err, PM_ECONFIG, "no device authorization "
		    "endpoint: set oauth_device_url");
	rc = device_start(req, &dc, &interval, &deadline, err);
	if (rc != PM_OK)
		return rc;
	enc = oauth_form_encode(dc, strlen(dc));
	oauth_free_wiped(dc);
	grant = xasprintf("grant_type=%s&device_code=%s", DEVICE_GRANT, enc);
	oauth_free_wiped(enc);
	for (;;) {
		if (time(NULL) + interval > deadline) {
			rc = errf(err, PM_EAUTH, "the code expired before the "
			    "authorization was completed; run pullmail "
			    "authorize %s again", who(req));
			break;
		}
		oauth_sleep_ms(interval * 1000L);
		rc = oauth_exchange(req, grant, &tok, err);
		if (rc == PM_OK) {
			rc = oauth_store_save(req, &tok, err);
			oauth_token_clear(&tok);
			break;
		}
		if (rc == PM_EAUTH && tok.error != NULL &&
		    (strcmp(tok.error, "authorization_pending") == 0 ||
		    strcmp(tok.error, "slow_down") == 0)) {
			if (strcmp(tok.error, "slow_down") == 0 &&
			    interval < DEVICE_MAX_INTERVAL)
				interval += 5;
			log_debug("oauth", "%s: %s, polling every %ld s",
			    who(req), tok.error, interval);
			oauth_token_clear(&tok);
			free(*err);
			*err = NULL;
			continue;
		}
		if (rc == PM_ETEMP) {
			log_warnx("%s: %s; still polling", who(req), *err);
			oauth_token_clear(&tok);
			free(*err);
			*err = NULL;
			continue;
		}
		if (rc == PM_EAUTH && tok.error != NULL &&
		    strcmp(tok.error, "access_denied") == 0) {
			free(*err);
			*err = NULL;
			rc = errf(err, PM_EAUTH, "the authorization was "
			    "denied at the sign-in page");
		} else if (rc == PM_EAUTH && tok.error != NULL &&
		    strcmp(tok.error, "expired_token") == 0) {
			free(*err);
			*err = NULL;
			rc = errf(err, PM_EAUTH, "the code expired before the "
			    "authorization was completed; run pullmail "
			    "authorize %s again", who(req));
		}
		oauth_token_clear(&tok);
		break;
	}
	oauth_free_wiped(grant);
	return rc;
}
