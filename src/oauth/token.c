/*
 * The token module's entry points: a token for a request by its flow
 * (an external command, client credentials, or a delegated store),
 * dropping a refused one, `pullmail authorize`, and the set-up and
 * release of the module.  Everything else of src/oauth/ is reached from
 * here; nothing there calls back up.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* A token for req, by its flow (contract in oauth.h). */
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

/* Fill req from account a (contract in oauth.h). */
void
oauth_request_init(struct oauth_request *req, const struct account *a,
    const char *cache_dir)
{
	memset(req, 0, sizeof *req);
	req->token_url = a->oauth_token_url;
	req->client_id = a->oauth_client_id;
	req->client_secret = a->oauth_client_secret;
	req->scope = a->oauth_scope;
	req->client_auth = a->oauth_client_auth;
	req->cache_dir = cache_dir;
	req->timeout = (long)a->timeout;
	req->account = a->name;
	req->flow = a->oauth_flow;
	req->device_url = a->oauth_device_url;
	req->authorize_url = a->oauth_authorize_url;
	req->redirect_port = a->oauth_redirect_port;
	req->notify_command = a->notify_command;
	req->client_key = a->oauth_client_key;
	req->client_cert = a->oauth_client_cert;
	req->token_command = a->oauth_token_command;
}

/* `pullmail authorize ACCOUNT` (contract in oauth.h). */
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

/* Drop the cached token of req unless it is no longer the refused one
 * (contract in oauth.h). */
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
	oauth_http_deinit();
}
