/*
 * OpenID discovery: the endpoints an issuer's
 * /.well-known/openid-configuration names.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* Copy the endpoint key of the discovery document at url into *dst when
 * the configuration left it unset; refuse one that is not a URL or that
 * would send credentials over plain http to another host (PM_EPROTO). */
static int
discovered(struct json_object *obj, const char *url, const char *key,
    char **dst, char **err)
{
	const char *v, *why = NULL;
	char *c;
	int bad = 0, rc;

	v = oauth_get_string(obj, key, &bad);
	if (v == NULL && !bad)
		return PM_OK;
	if (bad || strpbrk(v, " \t\r\n") != NULL)
		return errf(err, PM_EPROTO, "OpenID discovery at %s: %s is not "
		    "a URL", url, key);
	if (*dst != NULL)
		return PM_OK;	/* configured: that one is used */
	if (url_check_endpoint(v, &why) != 0) {
		c = oauth_clean_text(v, 200);
		rc = errf(err, PM_EPROTO, "OpenID discovery at %s names %s "
		    "%s, refused: %s; the issuer is misconfigured or the "
		    "document was tampered with (set the endpoint URLs in "
		    "the configuration to bypass discovery)", url, key, c,
		    why);
		free(c);
		return rc;
	}
	*dst = xstrdup(v);
	return PM_OK;
}

/* Free the endpoints of ep and zero it. */
void
oauth_endpoints_clear(struct oauth_endpoints *ep)
{
	free(ep->token_url);
	free(ep->device_url);
	free(ep->authorize_url);
	memset(ep, 0, sizeof *ep);
}

/* A copy of s, or NULL. */
static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* Fetch the discovery document of a's issuer and fill the endpoints ep
 * lacks from it. */
static int
discover(const struct account *a, struct oauth_endpoints *ep, char **err)
{
	struct oauth_request req;
	struct http_reply reply;
	struct json_object *obj;
	const char *why, *iss;
	char *url;
	size_t n, m;
	int bad = 0, rc;

	n = strlen(a->oauth_issuer);
	while (n > 0 && a->oauth_issuer[n - 1] == '/')
		n--;
	url = xasprintf("%.*s/.well-known/openid-configuration", (int)n,
	    a->oauth_issuer);
	memset(&req, 0, sizeof req);
	req.timeout = (long)a->timeout;
	req.account = a->name;
	rc = oauth_http_post(&req, url, NULL, &reply, err);
	if (rc != PM_OK) {
		free(url);
		return rc;
	}
	obj = reply.status == 200 ? oauth_parse_object(reply.body != NULL ?
	    reply.body : "", reply.len, &why) : NULL;
	if (obj == NULL) {
		rc = errf(err, reply.status >= 500 || reply.status == 429 ?
		    PM_ETEMP : PM_EPROTO, "OpenID discovery at %s: HTTP %ld%s%s",
		    url, reply.status, reply.status == 200 ? ", " : "",
		    reply.status == 200 ? why : "");
		oauth_reply_free(&reply);
		free(url);
		return rc;
	}
	oauth_reply_free(&reply);
	iss = oauth_get_string(obj, "issuer", &bad);
	m = iss != NULL ? strlen(iss) : 0;
	while (m > 0 && iss[m - 1] == '/')
		m--;
	if (iss == NULL || m != n || strncmp(iss, a->oauth_issuer, n) != 0)
		rc = errf(err, PM_ECONFIG, "OpenID discovery at %s names "
		    "another issuer; check oauth_issuer", url);
	else if ((rc = discovered(obj, url, "token_endpoint",
	    &ep->token_url, err)) != PM_OK ||
	    (rc = discovered(obj, url, "device_authorization_endpoint",
	    &ep->device_url, err)) != PM_OK ||
	    (rc = discovered(obj, url, "authorization_endpoint",
	    &ep->authorize_url, err)) != PM_OK)
		;
	else if (ep->token_url == NULL)
		rc = errf(err, PM_ECONFIG, "OpenID discovery at %s: no "
		    "token endpoint; set oauth_token_url", url);
	else if (a->oauth_flow == OAUTH_FLOW_DEVICE &&
	    ep->device_url == NULL)
		rc = errf(err, PM_ECONFIG, "the issuer offers no device flow; "
		    "set oauth_flow = authorization_code");
	else if (a->oauth_flow == OAUTH_FLOW_AUTH_CODE &&
	    ep->authorize_url == NULL)
		rc = errf(err, PM_ECONFIG, "the issuer has no authorization "
		    "endpoint");
	else
		log_debug("oauth", "%s: discovered token endpoint %s",
		    a->name, ep->token_url);
	oauth_json_free(obj);
	free(url);
	return rc;
}

/* The endpoints of account a (contract in oauth-int.h). */
int
oauth_discover(const struct account *a, struct oauth_endpoints *ep,
    char **err)
{
	int rc;

	ep->token_url = dup_or_null(a->oauth_token_url);
	ep->device_url = dup_or_null(a->oauth_device_url);
	ep->authorize_url = dup_or_null(a->oauth_authorize_url);
	if (a->oauth_issuer == NULL ||
	    (ep->token_url != NULL && (a->oauth_flow !=
	    OAUTH_FLOW_DEVICE || ep->device_url != NULL) &&
	    (a->oauth_flow != OAUTH_FLOW_AUTH_CODE ||
	    ep->authorize_url != NULL)))
		return PM_OK;
	if ((rc = discover(a, ep, err)) != PM_OK)
		oauth_endpoints_clear(ep);
	return rc;
}
