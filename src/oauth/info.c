/*
 * What is known about an account's token without sending it: its
 * recorded expiry (status, session renewal) and `pullmail token ACCOUNT
 * --info` (kind, length, expiry and a JWT's claims, checked against the
 * provider table).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "config.h"
#include "log.h"
#include "oauth-int.h"
#include "provider.h"
#include "secret.h"
#include "util.h"

/* Whether the space-separated list has a word containing what (any case). */
static int
list_has(const char *list, const char *what)
{
	return list != NULL && strcasestr(list, what) != NULL;
}

/* Print the claims of a JWT access token and warn when they cannot fit. */
static int
jwt_describe(const char *token, const char *user, const char *proto)
{
	const char *d1, *d2;
	struct json_object *obj;
	const char *why;
	static const char *const keys[] = { "aud", "iss", "tid", "upn",
	    "preferred_username", "unique_name", "scp", "roles", "exp" };
	const struct provider_claims *pc;
	const char *want;
	unsigned char *payload;
	char *v, *aud, *scp, *roles, *upn, *iss;
	size_t len, i;
	int warnings = 0;

	d1 = strchr(token, '.');
	d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
	if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL) {
		printf("  format: opaque (not a JWT): no claims to show\n");
		return 0;
	}
	if (base64_decode(BASE64_URL, d1 + 1, (size_t)(d2 - d1 - 1),
	    &payload, &len) < 0)
		payload = NULL;
	obj = payload != NULL ? oauth_parse_object((char *)payload, len,
	    &why) : NULL;
	free(payload);
	if (obj == NULL) {
		printf("  format: looks like a JWT but its claims do not "
		    "decode\n");
		return 0;
	}
	printf("  format: JWT\n");
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if ((v = oauth_claim_text(obj, keys[i])) != NULL)
			printf("  %s: %s\n", keys[i], v);
		free(v);
	}
	iss = oauth_claim_text(obj, "iss");
	pc = provider_claims_for(iss);
	free(iss);
	aud = oauth_claim_text(obj, "aud");
	scp = oauth_claim_text(obj, "scp");
	roles = oauth_claim_text(obj, "roles");
	upn = oauth_claim_text(obj, "upn");
	if (upn == NULL)
		upn = oauth_claim_text(obj, "preferred_username");
	for (i = 0; pc != NULL && aud != NULL && pc->audiences[i] != NULL &&
	    !list_has(aud, pc->audiences[i]); i++)
		;
	if (pc != NULL && aud != NULL && pc->audiences[i] == NULL) {
		printf("  warning: the audience is not %s; check oauth_scope\n",
		    pc->audience_name);
		warnings++;
	}
	want = pc == NULL ? NULL : strcmp(proto, "pop3") == 0 ?
	    pc->pop3_grant : pc->imap_grant;
	if (want != NULL && (scp != NULL || roles != NULL) &&
	    !list_has(scp, want) && !list_has(roles, want)) {
		printf("  warning: neither scp nor roles grants %s access "
		    "(%sAccessAsUser.All or %sAccessAsApp)\n", proto, want,
		    want);
		warnings++;
	}
	if (scp != NULL && upn != NULL && user != NULL &&
	    strcasecmp(upn, user) != 0) {
		printf("  warning: the token is %s's, but the account logs "
		    "in as %s\n", upn, user);
		warnings++;
	}
	free(aud);
	free(scp);
	free(roles);
	free(upn);
	oauth_json_free(obj);
	return warnings;
}

/* The expiry and granted scope recorded next to the token of req; with
 * token not NULL, only when the recorded token is that one. */
static void
recorded_expiry(const struct oauth_request *req,
    const struct pm_secret *token, int64_t *exp_r, char **scope_r)
{
	struct json_object *obj;
	struct pm_secret *rec;
	const char *why, *scope, *access;
	char *path, *data;
	size_t len;
	int bad = 0;

	*exp_r = 0;
	*scope_r = NULL;
	if (req->token_command != NULL || req->token_url == NULL)
		return;
	path = req->flow != OAUTH_FLOW_CLIENT_CREDENTIALS ?
	    oauth_store_path(req) : oauth_cache_path(req);
	if (path == NULL)
		return;
	if (read_small_file(path, STORE_MAX_FILE, &data, &len) == 0) {
		obj = oauth_parse_object(data, len, &why);
		access = obj == NULL ? NULL : oauth_get_string(obj,
		    "access_token", &bad);
		rec = access == NULL || bad ? NULL : secret_from_str(access);
		if (obj != NULL && token != NULL && (rec == NULL ||
		    !secret_equal(rec, token))) {
			oauth_json_free(obj);
			obj = NULL;
		}
		secret_free(rec);
		bad = 0;
		if (obj != NULL) {
			(void)oauth_get_int64(obj, "expires_at", exp_r);
			scope = oauth_get_string(obj, "scope", &bad);
			if (scope != NULL && !bad)
				*scope_r = oauth_clean_text(scope, 1000);
			oauth_json_free(obj);
		}
		secret_wipe(data, len);
		free(data);
	}
	free(path);
}

/* When token, which oauth_get_token() gave for req, expires (contract in
 * oauth-int.h). */
time_t
oauth_token_expiry(const struct oauth_request *req,
    const struct pm_secret *token)
{
	int64_t exp;
	char *scope;

	recorded_expiry(req, token, &exp, &scope);
	free(scope);
	return exp > 0 ? (time_t)exp : 0;
}

/* Describe token, which oauth_get_token gave for req (contract in
 * oauth-int.h). */
int
oauth_token_describe(const struct oauth_request *req,
    const struct pm_secret *token, int cached, const char *user,
    const char *proto, char **err)
{
	int64_t exp;
	time_t now;
	char *granted;
	int warnings;

	now = time(NULL);
	recorded_expiry(req, NULL, &exp, &granted);
	printf("%s: access token (%s, %zu bytes; never shown)\n", who(req),
	    cached ? "stored" : "new", secret_len(token));
	printf("  grant: %s\n", req->flow == OAUTH_FLOW_CLIENT_CREDENTIALS ?
	    "client credentials (app-only)" : "delegated, refresh token");
	if (exp > 0)
		printf("  expires: in %lld s\n", (long long)(exp - now));
	if (req->scope != NULL)
		printf("  requested scope: %s\n", req->scope);
	if (granted != NULL)
		printf("  granted scope: %s\n", granted);
	free(granted);
	warnings = jwt_describe(secret_reveal(token), user, proto);
	fflush(stdout);
	return warnings > 0 ? errf(err, PM_EAUTH, "the token cannot fit "
	    "this account (%d warning%s above)", warnings, warnings == 1 ?
	    "" : "s") : PM_OK;
}

/* The first of the claims keys[] present in obj, malloc'd, or NULL. */
static char *
claim_first(struct json_object *obj, const char *const *keys)
{
	char *v = NULL;

	for (; *keys != NULL && v == NULL; keys++)
		v = oauth_claim_text(obj, *keys);
	return v;
}

/* `pullmail check`: the claims of a's token (contract in oauth.h). */
int
oauth_account_claims(const struct account *a, const struct pm_secret *token,
    char **note_r, char **err)
{
	static const char *const user_keys[] = { "upn", "preferred_username",
	    "unique_name", NULL };
	const char *tok = secret_reveal(token), *d1, *d2, *why, *grant;
	const struct provider_claims *pc;
	struct json_object *obj;
	unsigned char *payload = NULL;
	char *iss, *aud, *scp, *roles, *upn, *want = NULL;
	int pop3 = a->protocol != NULL && strcmp(a->protocol, "pop3") == 0;
	int app, r = PM_OK;
	size_t len, i;

	*note_r = NULL;
	d1 = strchr(tok, '.');
	d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
	if (d2 != NULL && strchr(d2 + 1, '.') == NULL &&
	    base64_decode(BASE64_URL, d1 + 1, (size_t)(d2 - d1 - 1),
	    &payload, &len) < 0)
		payload = NULL;
	obj = payload != NULL ? oauth_parse_object((char *)payload, len,
	    &why) : NULL;
	free(payload);
	if (obj == NULL) {
		*note_r = xstrdup("skipped: the token is opaque (not a JWT), "
		    "its claims cannot be read here; the server checks them "
		    "at login");
		return PM_OK;
	}
	iss = oauth_claim_text(obj, "iss");
	aud = oauth_claim_text(obj, "aud");
	scp = oauth_claim_text(obj, "scp");
	roles = oauth_claim_text(obj, "roles");
	upn = claim_first(obj, user_keys);
	if ((pc = provider_claims_for(iss)) == NULL) {
		*note_r = xasprintf("skipped: pullmail has no claim rules for "
		    "the issuer %s", iss != NULL ? iss : "(none)");
		goto out;
	}
	for (i = 0; aud != NULL && pc->audiences[i] != NULL &&
	    !list_has(aud, pc->audiences[i]); i++)
		;
	if (aud == NULL || pc->audiences[i] == NULL) {
		r = errf(err, PM_EAUTH, "the token's audience is %s, not %s: "
		    "the token was asked for another resource; set oauth_scope "
		    "to https://outlook.office365.com/.default (app-only) or "
		    "https://outlook.office365.com/IMAP.AccessAsUser.All "
		    "(delegated), or leave it unset", aud != NULL ? aud :
		    "missing", pc->audience_name);
		goto out;
	}
	/* An external token command says nothing of its flow: the claims
	 * do (roles: an app's token). */
	app = a->oauth_token_command != NULL ? scp == NULL :
	    a->oauth_flow == OAUTH_FLOW_CLIENT_CREDENTIALS;
	grant = pop3 ? pc->pop3_grant : pc->imap_grant;
	want = xasprintf("%s%s", grant, app ? "AccessAsApp" :
	    "AccessAsUser.All");
	if (app && !list_has(roles, want)) {
		r = errf(err, PM_EAUTH, "the app-only token's roles (%s) do "
		    "not hold %s: in the app registration add the API "
		    "permission Office 365 Exchange Online > Application "
		    "permissions > %s and grant admin consent for the tenant",
		    roles != NULL ? roles : "none", want, want);
		goto out;
	}
	if (!app && !list_has(scp, want)) {
		r = errf(err, PM_EAUTH, "the delegated token's scopes (scp: "
		    "%s) do not hold %s: add the delegated permission %s of "
		    "Office 365 Exchange Online to the app registration, then "
		    "run pullmail authorize %s", scp != NULL ? scp : "none",
		    want, want, a->name);
		goto out;
	}
	if (!app && upn != NULL && a->user != NULL &&
	    strcasecmp(upn, a->user) != 0) {
		r = errf(err, PM_EAUTH, "the token was issued to %s, but the "
		    "account logs in as %s: run pullmail authorize %s and sign "
		    "in as %s, or set user = %s", upn, a->user, a->name,
		    a->user, upn);
		goto out;
	}
	*note_r = xasprintf("audience %s, %s %s%s%s", pc->audience_name,
	    app ? "roles" : "scp", want, !app && upn != NULL ? ", user " :
	    "", !app && upn != NULL ? upn : "");
out:
	free(want);
	free(iss);
	free(aud);
	free(scp);
	free(roles);
	free(upn);
	oauth_json_free(obj);
	return r;
}
