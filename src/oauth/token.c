/*
 * The token module's entry points: a token for a request by its flow
 * (an external command, client credentials, or a delegated store),
 * dropping a refused one, `pullmail authorize`, and the set-up and
 * release of the module.  Everything else of src/oauth/ is reached from
 * here; nothing there calls back up.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* What the module derived for one account (discovered endpoints); keyed
 * by the account's name and settings fingerprint, so a reload that changes
 * the account makes a new entry.  Guarded by known_lock. */
struct known {
	struct known		*next;
	char			*name;
	uint64_t		 fingerprint;
	struct oauth_endpoints	 ep;
};

static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;
static struct known *known;

/* The entry of a, or NULL; known_lock held. */
static struct known *
known_find(const struct account *a)
{
	struct known *k;

	for (k = known; k != NULL; k = k->next) {
		if (k->fingerprint == a->fingerprint &&
		    strcmp(k->name, a->name) == 0)
			return k;
	}
	return NULL;
}

/* Free every entry; no other thread in the module. */
static void
known_free(void)
{
	struct known *k;

	pthread_mutex_lock(&known_lock);
	while ((k = known) != NULL) {
		known = k->next;
		oauth_endpoints_clear(&k->ep);
		free(k->name);
		free(k);
	}
	pthread_mutex_unlock(&known_lock);
}

/* A token for req, by its flow (contract in oauth-int.h). */
int
oauth_get_token(const struct oauth_request *req, struct pm_secret **token_r,
    int *cached_r, char **err)
{
	char *why = NULL;
	int rc;

	*token_r = NULL;
	if (cached_r != NULL)
		*cached_r = 0;
	if (req->token_command != NULL) {
		rc = command_secret(req->token_command, OAUTH_MAX_TOKEN,
		    req->timeout > 0 ? (unsigned)req->timeout :
		    COMMAND_TIMEOUT, token_r, &why);
		if (rc != PM_OK) {
			rc = errf(err, rc == PM_ETEMP ? PM_ETEMP : PM_EAUTH,
			    "oauth_token_command: %s", why);
			free(why);
			return rc;
		}
		if (!oauth_token_ok(secret_reveal(*token_r),
		    secret_len(*token_r))) {
			secret_free(*token_r);
			*token_r = NULL;
			return errf(err, PM_EAUTH, "oauth_token_command printed "
			    "something that is not an access token");
		}
		log_debug("oauth", "%s: token from oauth_token_command",
		    req->account != NULL ? req->account : "oauth");
		return PM_OK;
	}
	if (req->token_url == NULL || *req->token_url == '\0' ||
	    req->client_id == NULL || *req->client_id == '\0')
		return errf(err, PM_ECONFIG, "OAuth needs a token URL, a "
		    "client ID and a client secret");
	if (req->flow != OAUTH_FLOW_CLIENT_CREDENTIALS)
		return oauth_delegated_token(req, token_r, cached_r, err);
	return oauth_app_token(req, token_r, cached_r, err);
}

/* Fill req from account a and its endpoints (contract in oauth-int.h). */
void
oauth_request_init(struct oauth_request *req, const struct account *a,
    const struct oauth_endpoints *ep, const char *cache_dir)
{
	memset(req, 0, sizeof *req);
	req->token_url = ep != NULL ? ep->token_url : a->oauth_token_url;
	req->client_id = a->oauth_client_id;
	req->client_secret = a->oauth_client_secret;
	req->scope = a->oauth_scope;
	req->client_auth = a->oauth_client_auth;
	req->cache_dir = cache_dir;
	req->timeout = (long)a->timeout;
	req->account = a->name;
	req->flow = a->oauth_flow;
	req->device_url = ep != NULL ? ep->device_url : a->oauth_device_url;
	req->authorize_url = ep != NULL ? ep->authorize_url :
	    a->oauth_authorize_url;
	req->redirect_port = a->oauth_redirect_port;
	req->notify_command = a->notify_command;
	req->client_key = a->oauth_client_key;
	req->client_cert = a->oauth_client_cert;
	req->token_command = a->oauth_token_command;
}

/* `pullmail authorize ACCOUNT` (contract in oauth-int.h). */
int
oauth_authorize(const struct oauth_request *req, char **err)
{
	if (req->token_command != NULL)
		return errf(err, PM_ECONFIG, "oauth_token_command supplies "
		    "this account's tokens; authorize with that helper");
	if (req->token_url == NULL || req->client_id == NULL)
		return errf(err, PM_ECONFIG, "OAuth needs a token URL and a "
		    "client ID");
	switch (req->flow) {
	case OAUTH_FLOW_DEVICE:
		return oauth_device_authorize(req, err);
	case OAUTH_FLOW_AUTH_CODE:
		return oauth_code_authorize(req, err);
	default:
		return errf(err, PM_ECONFIG, "%s uses the client-credentials "
		    "grant, which needs no authorization; set oauth_flow = "
		    "device or authorization_code for a delegated login",
		    who(req));
	}
}

/* `pullmail token ACCOUNT --info` (contract in oauth-int.h). */
int
oauth_token_info(const struct oauth_request *req, const char *user,
    const char *proto, char **err)
{
	struct pm_secret *token = NULL;
	int cached = 0, rc;

	if ((rc = oauth_get_token(req, &token, &cached, err)) != PM_OK)
		return rc;
	rc = oauth_token_describe(req, token, cached, user, proto, err);
	secret_free(token);
	return rc;
}

/* Drop the cached token of req unless it is no longer the refused one
 * (contract in oauth-int.h). */
void
oauth_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused)
{
	if (req->token_command != NULL)
		return;		/* nothing cached */
	if (req->flow != OAUTH_FLOW_CLIENT_CREDENTIALS)
		oauth_delegated_invalidate(req, refused);
	else
		oauth_app_invalidate(req, refused);
}

/* Release libcurl, if a request started it, and the tokens held for the
 * apps (contract in oauth.h). */
void
oauth_global_deinit(void)
{
	oauth_app_free();
	known_free();
	oauth_http_deinit();
}

/*
 * The endpoints of account a, discovered when needed.  They are kept in
 * the module (an entry per account name and settings fingerprint, never
 * changed once made, so that a request may point into it) rather than
 * written into the account; with discover 0 only what is known already
 * (or configured) is returned.  The entry belongs to the module.
 */
static int
account_endpoints(const struct account *a, int discover,
    const struct oauth_endpoints **ep_r, char **err)
{
	struct known *k;
	struct oauth_endpoints ep;
	int rc;

	*ep_r = NULL;
	pthread_mutex_lock(&known_lock);
	k = known_find(a);
	pthread_mutex_unlock(&known_lock);
	if (k != NULL || !discover) {
		*ep_r = k != NULL ? &k->ep : NULL;
		return PM_OK;
	}
	memset(&ep, 0, sizeof ep);
	if ((rc = oauth_discover(a, &ep, err)) != PM_OK)
		return rc;
	pthread_mutex_lock(&known_lock);
	if ((k = known_find(a)) == NULL) {
		k = xcalloc(1, sizeof *k);
		k->name = xstrdup(a->name);
		k->fingerprint = a->fingerprint;
		k->ep = ep;
		k->next = known;
		known = k;
	} else
		oauth_endpoints_clear(&ep);	/* another thread was first */
	pthread_mutex_unlock(&known_lock);
	*ep_r = &k->ep;
	return PM_OK;
}

/* The request of account a, its endpoints discovered when discover is
 * set. */
static int
account_request(const struct account *a, const char *cache_dir,
    int discover, struct oauth_request *req, char **err)
{
	const struct oauth_endpoints *ep;
	int rc;

	rc = account_endpoints(a, discover, &ep, err);
	oauth_request_init(req, a, ep, cache_dir);
	return rc;
}

/* The access token of account a (contract in oauth.h). */
int
oauth_account_token(const struct account *a, const char *cache_dir,
    struct pm_secret **token_r, int *cached_r, char **err)
{
	struct oauth_request req;
	int rc;

	*token_r = NULL;
	if ((rc = account_request(a, cache_dir, 1, &req, err)) != PM_OK)
		return rc;
	return oauth_get_token(&req, token_r, cached_r, err);
}

/* Drop a's refused token (contract in oauth.h). */
void
oauth_account_invalidate(const struct account *a, const char *cache_dir,
    const struct pm_secret *refused)
{
	struct oauth_request req;

	(void)account_request(a, cache_dir, 0, &req, NULL);
	oauth_invalidate(&req, refused);
}

/* When a's token expires (contract in oauth.h). */
time_t
oauth_account_expiry(const struct account *a, const char *cache_dir,
    const struct pm_secret *token)
{
	struct oauth_request req;

	(void)account_request(a, cache_dir, 0, &req, NULL);
	return oauth_token_expiry(&req, token);
}

/* `pullmail authorize` for a (contract in oauth.h). */
int
oauth_account_authorize(const struct account *a, const char *cache_dir,
    char **err)
{
	struct oauth_request req;
	int rc;

	rc = account_request(a, cache_dir, 1, &req, err);
	/* No flow configured: a browser on this machine makes the redirect
	 * the easier way; without one, the device flow. */
	if (a->oauth_flow_auto && req.authorize_url != NULL &&
	    (getenv("DISPLAY") != NULL || getenv("WAYLAND_DISPLAY") != NULL))
		req.flow = OAUTH_FLOW_AUTH_CODE;
	if (rc != PM_OK)
		return rc;
	return oauth_authorize(&req, err);
}

/* `pullmail token --info` for a (contract in oauth.h). */
int
oauth_account_info(const struct account *a, const char *cache_dir,
    char **err)
{
	struct oauth_request req;
	int rc;

	if ((rc = account_request(a, cache_dir, 1, &req, err)) != PM_OK)
		return rc;
	return oauth_token_info(&req, a->user, a->protocol, err);
}
