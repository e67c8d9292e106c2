/*
 * The provider table (provider.c): what pullmail knows of the OAuth
 * providers it has defaults for.  Plain data and lookups; no I/O.
 */
#ifndef PM_OAUTH_PROVIDER_H
#define PM_OAUTH_PROVIDER_H

#include <stddef.h>

/* The endpoints a provider has defaults for. */
enum provider_endpoint {
	PROVIDER_TOKEN = 0,
	PROVIDER_DEVICE,
	PROVIDER_AUTHORIZE
};

/*
 * The default endpoint which of provider (enum oauth_provider) for tenant,
 * malloc'd, or NULL when the provider has none.  Microsoft's endpoints are
 * AUTHORITY/TENANT/oauth2/v2.0/...: authority NULL is the public cloud
 * (login.microsoftonline.com); a national cloud gives its own
 * (oauth_authority, e.g. https://login.microsoftonline.us).
 */
char *provider_endpoint(int provider, const char *authority,
    const char *tenant, int which);

/* The default scope of provider for flow (enum oauth_flow), or NULL. */
const char *provider_scope(int provider, int flow);

/* The flow a provider uses when none is configured: an app (with a secret
 * or certificate) or a person signing in.  *may_choose_r is 1 when
 * `pullmail authorize` may still pick another delegated flow. */
int provider_default_flow(int provider, int has_credentials,
    int *may_choose_r);

/* Why provider cannot use flow (a phrase for the config error), or NULL
 * when it can. */
const char *provider_flow_refused(int provider, int flow);

/*
 * The claim checks of `pullmail token --info` for a token whose issuer
 * claim is iss: NULL when the issuer is not one the table knows.
 */
struct provider_claims {
	const char *audience_name;	/* "Exchange Online (https://...)" */
	const char *const *audiences;	/* one must be in aud; NULL ends */
	const char *imap_grant;		/* in scp or roles for IMAP */
	const char *pop3_grant;		/* ... for POP3 */
};
const struct provider_claims *provider_claims_for(const char *iss);

/* The number after "AADSTS" in text, or 0. */
long provider_aadsts_code(const char *text);

/* The hint for an OAuth error code and a Microsoft AADSTS code (0: none),
 * or NULL. */
const char *provider_hint(const char *error, long code);

/* Whether the len bytes at s name a tenant the way Microsoft's endpoints
 * take it: a GUID or a domain name (letters, digits, '-' and '.'). */
int provider_is_tenant(const char *s, size_t len);

/*
 * Microsoft 365's combined user form MAILBOX@CLIENTID@TENANTID (split on
 * the last two '@'; CLIENTID a GUID, TENANTID a tenant).  When user has
 * it, set *mailbox_len_r, *client_id_r, *client_id_len_r and *tenant_r
 * (pointers into user) and return the provider it names
 * (OAUTH_MICROSOFT); else return OAUTH_NONE.
 */
int provider_split_user(const char *user, size_t *mailbox_len_r,
    const char **client_id_r, size_t *client_id_len_r,
    const char **tenant_r);

/* Whether provider's endpoints need oauth_tenant. */
int provider_needs_tenant(int provider);

#endif
