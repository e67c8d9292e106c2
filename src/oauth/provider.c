/*
 * The provider table: what pullmail knows of the OAuth providers it has
 * defaults for (Microsoft Entra ID and its national clouds, Google): their
 * endpoints and scopes, the hints for their error codes, and what a token
 * for their mail servers must claim.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "oauth-int.h"
#include "provider.h"
#include "util.h"

/* What a token for Exchange Online must claim. */
static const char *const exchange_audiences[] = {
	"outlook.office", "00000002-0000-0ff1-ce00-000000000000", NULL
};
static const struct provider_claims exchange_claims = {
	"Exchange Online (https://outlook.office365.com)",
	exchange_audiences, "IMAP.", "POP."
};

/* The providers with defaults.  Microsoft's endpoints hang below an
 * authority: the public cloud's unless oauth_authority names a national
 * cloud's (login.microsoftonline.us, login.chinacloudapi.cn, ...). */
static const struct provider_row {
	int		 id;		/* enum oauth_provider */
	const char	*authority;	/* AUTHORITY/TENANT/oauth2/v2.0/...,
					 * or NULL: fixed URLs below */
	const char	*endpoints[3];	/* enum provider_endpoint: fixed URL
					 * or, with an authority, the last
					 * path element */
	const char	*app_scope;	/* client credentials */
	const char	*user_scope;	/* delegated flows */
	int		 person_flow;	/* default without credentials */
	int		 app_flow;	/* default with them */
	const char	*no_device;	/* why there is no device flow */
	const char	*no_app;	/* why there is no client-credentials
					 * grant */
	const char *const *issuers;	/* in its tokens' iss; NULL ends */
	const struct provider_claims *claims;
} providers[] = {
	{ OAUTH_MICROSOFT, "https://login.microsoftonline.com",
	    { "token", "devicecode", "authorize" },
	    "https://outlook.office365.com/.default",
	    "https://outlook.office365.com/IMAP.AccessAsUser.All "
	    "https://outlook.office365.com/POP.AccessAsUser.All "
	    "offline_access",
	    OAUTH_FLOW_DEVICE, OAUTH_FLOW_CLIENT_CREDENTIALS, NULL, NULL,
	    (const char *const[]){ "sts.windows.net", "login.microsoftonline",
	    NULL }, &exchange_claims },
	{ OAUTH_GOOGLE, NULL,
	    { "https://oauth2.googleapis.com/token", NULL,
	    "https://accounts.google.com/o/oauth2/v2/auth" },
	    "https://mail.google.com/", "https://mail.google.com/",
	    OAUTH_FLOW_AUTH_CODE, OAUTH_FLOW_AUTH_CODE,
	    "Google offers no device flow for the Gmail scope; use "
	    "authorization_code",
	    "Google has no client-credentials grant for Gmail; use "
	    "authorization_code", NULL, NULL },
};

/* The row of provider, or NULL (generic, none). */
static const struct provider_row *
row(int provider)
{
	size_t i;

	for (i = 0; i < sizeof providers / sizeof providers[0]; i++) {
		if (providers[i].id == provider)
			return &providers[i];
	}
	return NULL;
}

/* A default endpoint (contract in provider.h). */
char *
provider_endpoint(int provider, const char *authority, const char *tenant,
    int which)
{
	const struct provider_row *r = row(provider);
	const char *what;
	size_t n;

	if (r == NULL || (what = r->endpoints[which]) == NULL)
		return NULL;
	if (r->authority == NULL)
		return xstrdup(what);
	if (authority == NULL)
		authority = r->authority;
	n = strlen(authority);
	while (n > 0 && authority[n - 1] == '/')
		n--;
	return xasprintf("%.*s/%s/oauth2/v2.0/%s", (int)n, authority, tenant,
	    what);
}

/* A default scope (contract in provider.h). */
const char *
provider_scope(int provider, int flow)
{
	const struct provider_row *r = row(provider);

	if (r == NULL)
		return NULL;
	return flow == OAUTH_FLOW_CLIENT_CREDENTIALS ? r->app_scope :
	    r->user_scope;
}

/* The default flow (contract in provider.h). */
int
provider_default_flow(int provider, int has_credentials, int *may_choose_r)
{
	const struct provider_row *r = row(provider);

	*may_choose_r = !has_credentials;
	if (has_credentials)
		return r != NULL ? r->app_flow : OAUTH_FLOW_CLIENT_CREDENTIALS;
	return r != NULL ? r->person_flow : OAUTH_FLOW_DEVICE;
}

/* Why a provider cannot use a flow (contract in provider.h). */
const char *
provider_flow_refused(int provider, int flow)
{
	const struct provider_row *r = row(provider);

	if (r == NULL)
		return NULL;
	if (flow == OAUTH_FLOW_DEVICE)
		return r->no_device;
	if (flow == OAUTH_FLOW_CLIENT_CREDENTIALS)
		return r->no_app;
	return NULL;
}

/* The claim checks for a token issued by iss (contract in provider.h). */
const struct provider_claims *
provider_claims_for(const char *iss)
{
	size_t i, k;

	for (i = 0; iss != NULL && i < sizeof providers / sizeof providers[0];
	    i++) {
		for (k = 0; providers[i].issuers != NULL &&
		    providers[i].issuers[k] != NULL; k++) {
			if (strcasestr(iss, providers[i].issuers[k]) != NULL)
				return providers[i].claims;
		}
	}
	return NULL;
}

/* OAuth error codes (RFC 6749 5.2) and what to do about them. */
static const struct {
	const char *error;
	const char *hint;
} error_hints[] = {
	{ "invalid_client", "the client was not authenticated; check "
	    "oauth_client_id and oauth_client_secret / password, and whether "
	    "the server wants client_secret_post or client_secret_basic" },
	{ "invalid_scope", "the scope was refused; check oauth_scope "
	    "(Microsoft 365: https://outlook.office365.com/.default)" },
	{ "unauthorized_client", "this client may not use the "
	    "client-credentials grant; allow it for the app at the "
	    "authorization server" },
	{ "invalid_request", "the token endpoint found the request "
	    "malformed; check oauth_token_url and oauth_tenant" },
	{ "invalid_grant", "the grant was refused; check oauth_tenant and "
	    "that the app's permissions were granted" },
	{ "unsupported_grant_type", "the server does not offer the "
	    "client-credentials grant to this client" },
	{ "access_denied", "the authorization server denied access to this "
	    "app; an administrator must grant it" },
	{ "temporarily_unavailable", "the token endpoint is busy; pullmail "
	    "will try again on the next run" },
	{ "server_error", "the token endpoint failed internally; pullmail "
	    "will try again on the next run" },
};

/* Microsoft Entra ID (AADSTS) error codes and what to do about them. */
static const struct {
	long code;
	const char *hint;
} aadsts_hints[] = {
	{ 7000215, "the client secret is wrong; check oauth_client_secret / "
	    "password: it must be the secret's Value, not its Secret ID" },
	{ 7000222, "the client secret has expired; create a new one under "
	    "Certificates & secrets of the app registration and update "
	    "oauth_client_secret / password" },
	{ 7000218, "no client secret reached the server; set "
	    "oauth_client_secret / password" },
	{ 700016, "no app with this client ID exists in this tenant; check "
	    "oauth_client_id and oauth_tenant (a multi-tenant app must first "
	    "be added to the tenant by its administrator)" },
	{ 90002, "the tenant was not found; check oauth_tenant (the "
	    "directory (tenant) ID or a verified domain of the tenant)" },
	{ 90023, "the token request was invalid; check oauth_token_url and "
	    "oauth_tenant" },
	{ 900023, "the tenant identifier is neither a tenant ID nor a valid "
	    "domain; check oauth_tenant" },
	{ 700024, "the client assertion is outside its valid time range; "
	    "check that this machine's clock is right" },
	{ 700027, "the client assertion's signature matches no certificate "
	    "of the app; upload oauth_client_cert under Certificates & "
	    "secrets of the app registration" },
	{ 50194, "the app is not multi-tenant and the request went to the "
	    "common or organizations endpoint; set oauth_tenant to the "
	    "tenant's ID or domain" },
	{ 53003, "a Conditional Access policy of the tenant blocked the "
	    "sign-in; exclude this app (its service principal) from the "
	    "policy or allow this machine's address" },
	{ 1002012, "the scope is not valid for the client-credentials grant, "
	    "which needs a resource followed by /.default; use "
	    "oauth_scope = https://outlook.office365.com/.default" },
	{ 70011, "the scope is not valid; use "
	    "oauth_scope = https://outlook.office365.com/.default" },
	{ 50034, "the account does not exist in this tenant; check "
	    "oauth_tenant and the user name" },
	{ 65001, "admin consent is missing: in the app registration add the "
	    "Office 365 Exchange Online application permission "
	    "IMAP.AccessAsApp (or POP.AccessAsApp) and grant admin consent "
	    "for the tenant" },
	{ 500011, "the resource principal (Office 365 Exchange Online) was "
	    "not found in the tenant; check oauth_scope and oauth_tenant, and "
	    "that the app was admin-consented in this tenant" },
	{ 7000112, "the application is disabled in this tenant; an "
	    "administrator must enable it again" },
	{ 700082, "the refresh token expired after a long time unused; sign "
	    "in again with pullmail authorize" },
	{ 70043, "a sign-in frequency policy of the tenant demands a new "
	    "sign-in; run pullmail authorize" },
	{ 50173, "the password was changed or the sessions were revoked; "
	    "sign in again with pullmail authorize" },
	{ 70008, "the authorization code or refresh token has expired; run "
	    "pullmail authorize" },
};

/* The number after "AADSTS" in text, or 0. */
long
provider_aadsts_code(const char *text)
{
	const char *p;
	long code = 0;

	if (text == NULL)
		return 0;
	for (p = text; (p = strstr(p, "AADSTS")) != NULL;) {
		p += 6;
		if (*p < '0' || *p > '9')
			continue;
		while (*p >= '0' && *p <= '9' && code < 100000000L)
			code = code * 10 + (*p++ - '0');
		return code;
	}
	return 0;
}

/* The hint for an OAuth error code and a Microsoft AADSTS code. */
const char *
provider_hint(const char *error, long code)
{
	size_t i;

	for (i = 0; code != 0 && i < sizeof aadsts_hints /
	    sizeof aadsts_hints[0]; i++) {
		if (aadsts_hints[i].code == code)
			return aadsts_hints[i].hint;
	}
	for (i = 0; error != NULL && i < sizeof error_hints /
	    sizeof error_hints[0]; i++) {
		if (strcmp(error_hints[i].error, error) == 0)
			return error_hints[i].hint;
	}
	return NULL;
}

/* The hint for an endpoint error, using an AADSTS code in description. */
const char *
oauth_error_hint(const char *error, const char *description)
{
	return provider_hint(error, provider_aadsts_code(description));
}

/* Whether s looks like a GUID: 8-4-4-4-12 hex digits. */
static int
is_guid(const char *s, size_t len)
{
	static const size_t dash[] = { 8, 13, 18, 23 };
	size_t i, d = 0;

	if (len != 36)
		return 0;
	for (i = 0; i < len; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return 0;
			d++;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* Whether s is a usable tenant (contract in provider.h). */
int
provider_is_tenant(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.')
			return 0;
	}
	return 1;
}

/* MAILBOX@CLIENTID@TENANTID (contract in provider.h). */
int
provider_split_user(const char *user, size_t *mailbox_len_r,
    const char **client_id_r, size_t *client_id_len_r,
    const char **tenant_r)
{
	const char *at1 = NULL, *at2 = NULL, *s;

	for (s = user; *s != '\0'; s++) {
		if (*s == '@') {
			at1 = at2;
			at2 = s;
		}
	}
	if (at1 == NULL || at1 == user ||
	    !is_guid(at1 + 1, (size_t)(at2 - at1 - 1)) ||
	    !provider_is_tenant(at2 + 1, strlen(at2 + 1)))
		return OAUTH_NONE;
	*mailbox_len_r = (size_t)(at1 - user);
	*client_id_r = at1 + 1;
	*client_id_len_r = (size_t)(at2 - at1 - 1);
	*tenant_r = at2 + 1;
	return OAUTH_MICROSOFT;
}

/* Whether provider needs a tenant (contract in provider.h). */
int
provider_needs_tenant(int provider)
{
	return provider == OAUTH_MICROSOFT;
}
