/*
 * The provider table: what pullmail knows of the OAuth providers it has
 * defaults for (Microsoft Entra ID and its national clouds, Google): their
 * endpoints and scopes, the hints for their error codes, and what a token
 * for their mail servers must claim.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "oauth-int.h"
#include "provider.h"

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
