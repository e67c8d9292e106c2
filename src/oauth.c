/*
 * The token module: the OAuth 2.0 client-credentials grant over libcurl
 * (client secret or private_key_jwt), strict parsing of the token
 * endpoint's JSON with json-c, a per-app token cache on disk, retries of
 * transient failures and hints for the errors Microsoft Entra ID returns.
 * The delegated flows live in oauth-flow.c; these two are the only files
 * that include libcurl or json-c headers.
 *
 * Threads: libcurl's global state is set up once under curl_lock (by
 * oauth_global_init before the worker threads start, or by the first
 * request); every request has its own easy handle.  The client-credentials
 * tokens of one app (one cache key: token URL, client id, scope) are got
 * through an app_slot in app_slots, guarded by app_lock: the first thread
 * that needs a token reads the cache or fetches, the others that ask
 * meanwhile wait on the slot's condition and take its result, so one
 * request goes to the token endpoint however many mailboxes need the token
 * at once.  Across processes the flock on the cache file's lock does the
 * same; oauth_invalidate leaves a cache that holds a newer token than the
 * refused one, so N refused mailboxes make one new request, not N.  The
 * temp files of atomic writes carry a process-wide counter besides the
 * PID, so two threads never write the same one.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "command.h"
#include "config.h"
#include "crypto.h"
#include "log.h"
#include "notify.h"
#include "oauth.h"
#include "oauth-int.h"
#include "secret.h"
#include "trust.h"
#include "util.h"

#define OAUTH_MAX_RESPONSE	(256 * 1024)	/* endpoint body, bytes */
#define OAUTH_MAX_CACHE_FILE	(256 * 1024)
#define OAUTH_MAX_TOKEN		(64 * 1024)	/* token bytes */
#define OAUTH_MAX_EXPIRES	(366L * 86400)	/* over a year: a bug */
#define OAUTH_CACHE_MARGIN	300		/* seconds left at reuse */
#define OAUTH_MAX_DESCRIPTION	300		/* server text kept */
#define OAUTH_MAX_ERROR_CODE	64
#define OAUTH_JSON_DEPTH	16
#define OAUTH_DEFAULT_TIMEOUT	60
#define OAUTH_LOCK_POLL_MS	50	/* between tries for a held lock */
#define OAUTH_MAX_TRIES		3	/* transient failures */


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

/* 1 once libcurl is initialised: at the first request, not at start-up,
 * since a run with a cached token needs none of it (about 1.7 MB of peak
 * RSS: libcurl's own start-up initialises libssh2 and OpenSSL), unless
 * oauth_global_init asks for it before threads start. */
static int curl_started;
static pthread_mutex_t curl_lock = PTHREAD_MUTEX_INITIALIZER;

static void app_slots_free(void);

/* Initialise libcurl before its first use (contract in oauth.h). */
int
oauth_global_init(char **err)
{
	CURLcode rc = CURLE_OK;

	pthread_mutex_lock(&curl_lock);
	if (!curl_started) {
		rc = curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_started = rc == CURLE_OK;
	}
	pthread_mutex_unlock(&curl_lock);
	if (rc != CURLE_OK)
		return errf(err, PM_EINTERNAL, "cannot initialise libcurl: %s",
		    curl_easy_strerror(rc));
	return PM_OK;
}

/* Release libcurl's global state at exit, if a request started it, and
 * the tokens held for the apps. */
void
oauth_global_deinit(void)
{
	app_slots_free();
	pthread_mutex_lock(&curl_lock);
	if (curl_started)
		curl_global_cleanup();
	curl_started = 0;
	pthread_mutex_unlock(&curl_lock);
}

/* Wipe and free a NUL-terminated buffer that held a secret. */
void
oauth_free_wiped(char *s)
{
	if (s == NULL)
		return;
	secret_wipe(s, strlen(s));
	free(s);
}

/* Length of the well-formed UTF-8 sequence at p (not C1), or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n, i;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	if (p[0] == 0xc2 && p[1] <= 0x9f)
		return 0;	/* a C1 control character */
	return n;
}

/*
 * Copy untrusted server text for a message: any secret it echoes redacted
 * (before the text is cut, so that no part of one is left), the first line
 * only, control characters (C0, DEL, C1) dropped, bytes that are not UTF-8
 * shown as '?', at most max bytes ("..." appended when cut).
 */
char *
oauth_clean_text(const char *s, size_t max)
{
	char *redacted = secret_redacted(s);
	const unsigned char *p = (const unsigned char *)(redacted != NULL ?
	    redacted : s);
	size_t n = 0, i = 0, k;
	char *out;

	out = xmalloc(max + 4);
	while (p[i] != '\0' && p[i] != '\r' && p[i] != '\n') {
		if (p[i] < 0x80) {
			k = 1;
			if (p[i] < 0x20 || p[i] == 0x7f) {
				i++;
				continue;
			}
		} else if ((k = utf8_len(p + i)) == 0) {
			if (p[i] == 0xc2 && p[i + 1] >= 0x80 &&
			    p[i + 1] <= 0x9f)
				i += 2;
			else {
				if (n + 1 > max)
					break;
				out[n++] = '?';
				i++;
			}
			continue;
		}
		if (n + k > max)
			break;
		memcpy(out + n, p + i, k);
		n += k;
		i += k;
	}
	if (p[i] != '\0' && p[i] != '\r' && p[i] != '\n')
		memcpy(out + n, "...", 4);
	else {
		while (n > 0 && out[n - 1] == ' ')
			n--;
		out[n] = '\0';
	}
	free(redacted);
	return out;
}

/* The number after "AADSTS" in text, or 0. */
static long
aadsts_code(const char *text)
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
static const char *
hint_lookup(const char *error, long code)
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
	return hint_lookup(error, aadsts_code(description));
}

/* Free everything a parse left in tok and zero it. */
void
oauth_token_clear(struct oauth_token *tok)
{
	if (tok == NULL)
		return;
	secret_free(tok->access_token);
	secret_free(tok->refresh_token);
	free(tok->token_type);
	free(tok->scope);
	free(tok->error);
	free(tok->error_description);
	memset(tok, 0, sizeof *tok);
}

/*
 * Parse len bytes as exactly one JSON object (whitespace around it allowed,
 * nothing else).  Returns NULL and a short reason in *why.
 */
struct json_object *
oauth_parse_object(const char *text, size_t len, const char **why)
{
	struct json_tokener *tk;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t start, end;

	*why = NULL;
	if (len == 0) {
		*why = "empty body";
		return NULL;
	}
	if (len > INT_MAX || memchr(text, '\0', len) != NULL) {
		*why = "NUL byte in JSON";
		return NULL;
	}
	for (start = 0; start < len && strchr(" \t\r\n", text[start]) != NULL;
	    start++)
		;
	if (start == len || text[start] != '{') {
		*why = start == len ? "empty body" : "not a JSON object";
		return NULL;
	}
	tk = json_tokener_new_ex(OAUTH_JSON_DEPTH);
	if (tk == NULL) {
		*why = "out of memory";
		return NULL;
	}
	json_tokener_set_flags(tk, JSON_TOKENER_STRICT |
	    JSON_TOKENER_ALLOW_TRAILING_CHARS | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tk, text, (int)len);
	jerr = json_tokener_get_error(tk);
	end = json_tokener_get_parse_end(tk);
	json_tokener_free(tk);
	if (obj == NULL) {
		*why = jerr == json_tokener_continue ? "truncated JSON" :
		    json_tokener_error_desc(jerr);
		return NULL;
	}
	for (; end < len; end++) {
		if (strchr(" \t\r\n", text[end]) == NULL) {
			json_object_put(obj);
			*why = "trailing garbage after the JSON object";
			return NULL;
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		*why = "not a JSON object";
		return NULL;
	}
	return obj;
}

/* The string member key of obj; NULL if absent; *bad set if not a string. */
const char *
oauth_get_string(struct json_object *obj, const char *key, int *bad)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return NULL;
	if (!json_object_is_type(v, json_type_string)) {
		*bad = 1;
		return NULL;
	}
	return json_object_get_string(v);
}

/* Whether a token is usable on the wire: visible ASCII, bounded length. */
int
oauth_token_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > OAUTH_MAX_TOKEN)
		return 0;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	}
	return 1;
}

/* expires_in as a number of seconds: an integer or a string of digits. */
static int
get_expires_in(struct json_object *obj, long *secs_r, const char **why)
{
	struct json_object *v;
	const char *s;
	int64_t n;
	size_t i;

	if (!json_object_object_get_ex(obj, "expires_in", &v) || v == NULL) {
		*why = "no expires_in";
		return -1;
	}
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		n = json_object_get_int64(v);
		if (errno != 0)
			n = INT64_MAX;
	} else if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		if (*s == '\0' || strlen(s) > 12) {
			*why = "expires_in is not a number of seconds";
			return -1;
		}
		n = 0;
		for (i = 0; s[i] != '\0'; i++) {
			if (s[i] < '0' || s[i] > '9') {
				*why = "expires_in is not a number of seconds";
				return -1;
			}
			n = n * 10 + (s[i] - '0');
		}
	} else {
		*why = "expires_in is not an integer";
		return -1;
	}
	if (n <= 0) {
		*why = "expires_in is not positive";
		return -1;
	}
	if (n > OAUTH_MAX_EXPIRES) {
		*why = "expires_in is absurdly large";
		return -1;
	}
	*secs_r = (long)n;
	return 0;
}

/* Whether an HTTP status means "try again later". */
static int
status_temporary(long status)
{
	return status >= 500 || status == 429 || status == 408;
}

/* The error path: fill tok->error and friends and build the message. */
static int
parse_error_response(struct json_object *obj, long http_status,
    struct oauth_token *tok, char **err)
{
	struct json_object *codes, *c;
	const char *error, *desc, *hint;
	long code;
	int bad = 0, status;

	error = oauth_get_string(obj, "error", &bad);
	desc = oauth_get_string(obj, "error_description", &bad);
	if (error == NULL || *error == '\0' || bad)
		return errf(err, status_temporary(http_status) ? PM_ETEMP :
		    PM_EPROTO, "token endpoint sent a malformed error response "
		    "(HTTP %ld)", http_status);
	tok->error = oauth_clean_text(error, OAUTH_MAX_ERROR_CODE);
	if (desc != NULL && *desc != '\0')
		tok->error_description = oauth_clean_text(desc,
		    OAUTH_MAX_DESCRIPTION);

	code = aadsts_code(desc);
	if (code == 0 && json_object_object_get_ex(obj, "error_codes",
	    &codes) && json_object_is_type(codes, json_type_array) &&
	    json_object_array_length(codes) > 0) {
		c = json_object_array_get_idx(codes, 0);
		if (json_object_is_type(c, json_type_int))
			code = (long)json_object_get_int64(c);
	}
	hint = hint_lookup(tok->error, code);

	if (status_temporary(http_status) ||
	    strcmp(tok->error, "temporarily_unavailable") == 0 ||
	    strcmp(tok->error, "server_error") == 0)
		status = PM_ETEMP;
	else
		status = PM_EAUTH;
	return errf(err, status, "token endpoint refused: %s%s%s%s%s%s",
	    tok->error,
	    tok->error_description != NULL ? ": " : "",
	    tok->error_description != NULL ? tok->error_description : "",
	    hint != NULL ? " (hint: " : "",
	    hint != NULL ? hint : "",
	    hint != NULL ? ")" : "");
}

/* Parse a token endpoint answer (contract in oauth.h). */
int
oauth_parse_token_response(const char *body, size_t len, long http_status,
    time_t now, struct oauth_token *tok, char **err)
{
	struct json_object *obj;
	const char *why, *access, *refresh, *type, *scope;
	long expires_in;
	int bad = 0, rc;

	memset(tok, 0, sizeof *tok);
	obj = oauth_parse_object(body, len, &why);
	if (obj == NULL) {
		if (status_temporary(http_status))
			return errf(err, PM_ETEMP, "token endpoint answered "
			    "HTTP %ld without a usable JSON body (%s); "
			    "temporary failure", http_status, why);
		if (http_status >= 300 && http_status < 400)
			return errf(err, PM_EPROTO, "token endpoint answered "
			    "HTTP %ld (a redirect, not followed); check "
			    "oauth_token_url", http_status);
		if (http_status != 200)
			return errf(err, PM_EPROTO, "token endpoint answered "
			    "HTTP %ld with a body that is not OAuth JSON (%s)",
			    http_status, why);
		return errf(err, PM_EPROTO, "malformed token response: %s",
		    why);
	}

	if (json_object_object_get_ex(obj, "error", NULL)) {
		rc = parse_error_response(obj, http_status, tok, err);
		json_object_put(obj);
		return rc;
	}
	if (http_status != 200) {
		json_object_put(obj);
		return errf(err, status_temporary(http_status) ? PM_ETEMP :
		    PM_EPROTO, "token endpoint answered HTTP %ld without an "
		    "OAuth error", http_status);
	}

	access = oauth_get_string(obj, "access_token", &bad);
	refresh = oauth_get_string(obj, "refresh_token", &bad);
	type = oauth_get_string(obj, "token_type", &bad);
	scope = oauth_get_string(obj, "scope", &bad);
	if (bad)
		why = "a member has the wrong JSON type";
	else if (access == NULL)
		why = "no access_token";
	else if (!oauth_token_ok(access, strlen(access)))
		why = "access_token is empty, too long or has bytes that "
		    "cannot be sent";
	else if (refresh != NULL && !oauth_token_ok(refresh, strlen(refresh)))
		why = "refresh_token is empty, too long or has bytes that "
		    "cannot be sent";
	else if (type == NULL)
		why = "no token_type";
	else if (strcasecmp(type, "bearer") != 0)
		why = "token_type is not Bearer";
	else if (get_expires_in(obj, &expires_in, &why) == 0)
		why = NULL;
	if (why != NULL) {
		json_object_put(obj);
		return errf(err, PM_EPROTO, "malformed token response: %s",
		    why);
	}

	tok->access_token = secret_from_str(access);
	if (refresh != NULL)
		tok->refresh_token = secret_from_str(refresh);
	tok->token_type = xstrdup(type);
	tok->expires_at = now + expires_in;
	if (scope != NULL)
		tok->scope = xstrdup(scope);
	json_object_put(obj);
	return PM_OK;
}

/* --- the token cache ----------------------------------------------------- */

/* "<url>\n<client>\n<scope>": what one cache file is for. */
static char *
cache_key(const struct oauth_request *req)
{
	return xasprintf("%s\n%s\n%s", req->token_url, req->client_id,
	    req->scope != NULL ? req->scope : "");
}

/* The cache file of req: DIR/token-HASH.json. */
char *
oauth_cache_path(const struct oauth_request *req)
{
	char hash[17], *key;

	if (req->cache_dir == NULL || *req->cache_dir == '\0')
		return NULL;
	key = cache_key(req);
	hash_hex(key, hash);
	free(key);
	return xasprintf("%s/token-%s.json", req->cache_dir, hash);
}

/* How long before expiry a cached token stops being handed out. */
static long
cache_margin(long lifetime)
{
	if (lifetime <= 0 || lifetime / 2 >= OAUTH_CACHE_MARGIN)
		return OAUTH_CACHE_MARGIN;
	return lifetime / 2;
}

/* A member of a cache file that must be an integer. */
int
oauth_get_int64(struct json_object *obj, const char *key, int64_t *v_r)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	*v_r = json_object_get_int64(v);
	return 0;
}

/*
 * The token in the cache file at path if it is for req and stays valid long
 * enough; NULL otherwise (a missing, foreign, expired or corrupt file is
 * not an error).
 */
static struct pm_secret *
cache_read(const struct oauth_request *req, const char *path, time_t now)
{
	struct json_object *obj;
	struct pm_secret *token = NULL;
	const char *why, *key, *access;
	char *data, *want;
	int64_t expires_at, obtained_at;
	size_t len;
	int bad = 0;

	if (read_small_file(path, OAUTH_MAX_CACHE_FILE, &data, &len) < 0) {
		if (errno != ENOENT)
			log_debug("oauth", "token cache %s unreadable: %s",
			    path, pm_strerror(errno));
		return NULL;
	}
	obj = oauth_parse_object(data, len, &why);
	secret_wipe(data, len);
	free(data);
	if (obj == NULL) {
		log_debug("oauth", "token cache %s ignored: %s", path, why);
		return NULL;
	}
	want = cache_key(req);
	key = oauth_get_string(obj, "key", &bad);
	access = oauth_get_string(obj, "access_token", &bad);
	if (bad || key == NULL || strcmp(key, want) != 0)
		log_debug("oauth", "token cache %s ignored: written for "
		    "another token URL, client or scope", path);
	else if (access == NULL || !oauth_token_ok(access, strlen(access)) ||
	    oauth_get_int64(obj, "expires_at", &expires_at) < 0)
		log_debug("oauth", "token cache %s ignored: corrupt", path);
	else {
		if (oauth_get_int64(obj, "obtained_at", &obtained_at) < 0 ||
		    obtained_at > expires_at)
			obtained_at = 0;
		if (expires_at - (int64_t)now >= cache_margin(obtained_at ==
		    0 ? 0 : (long)(expires_at - obtained_at)))
			token = secret_from_str(access);
		else
			log_debug("oauth", "token cache %s: token expires "
			    "in %lld s, fetching a new one", path,
			    (long long)(expires_at - (int64_t)now));
	}
	free(want);
	json_object_put(obj);
	return token;
}

/* The access token fields shared by the cache and the delegated store. */
void
oauth_json_add_access(struct json_object *obj, const struct pm_secret *access,
    time_t obtained_at, time_t expires_at, const char *scope)
{
	json_object_object_add(obj, "access_token",
	    json_object_new_string_len(secret_reveal(access),
	    (int)secret_len(access)));
	json_object_object_add(obj, "obtained_at",
	    json_object_new_int64((int64_t)obtained_at));
	json_object_object_add(obj, "expires_at",
	    json_object_new_int64((int64_t)expires_at));
	if (scope != NULL)
		json_object_object_add(obj, "scope",
		    json_object_new_string(scope));
}

/* Write the cache file atomically (oauth_write_json). */
static void
cache_write(const struct oauth_request *req, const char *path,
    const struct pm_secret *token, time_t obtained_at, time_t expires_at,
    const char *scope)
{
	struct json_object *obj;
	char *key;

	key = cache_key(req);
	obj = json_object_new_object();
	json_object_object_add(obj, "key", json_object_new_string(key));
	oauth_json_add_access(obj, token, obtained_at, expires_at, scope);
	free(key);
	oauth_write_json(req->cache_dir, path, obj);
	json_object_put(obj);
}

/* Makes the temp names of oauth_write_json unique between threads. */
static atomic_ulong write_seq;

/* Write obj to path atomically (contract in oauth-int.h). */
int
oauth_write_json(const char *dir, const char *path, struct json_object *obj)
{
	const char *text;
	char *tmp;
	int fd, tries, rc = -1;

	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);

	tmp = xasprintf("%s.tmp.%ld.%lu", path, (long)getpid(),
	    atomic_fetch_add(&write_seq, 1));
	for (tries = 0; tries < 2; tries++) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
		unlink(tmp);	/* left by a crashed run with our pid */
	}
	if (fd < 0) {
		log_warn("cannot create token file %s", tmp);
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write_full(fd, text, strlen(text)) < 0 ||
	    write_full(fd, "\n", 1) < 0 || fsync(fd) < 0) {
		log_warn("cannot write token file %s", tmp);
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		log_warn("cannot install token file %s", path);
		unlink(tmp);
		goto out;
	}
	if (fsync_dir(dir) < 0)
		log_warn("cannot sync %s", dir);
	rc = 0;
out:
	/* json-c owns the buffer and frees it with obj: wipe it first. */
	secret_wipe((char *)text, strlen(text));
	free(tmp);
	return rc;
}

/* Take the lock next to path within req's timeout (contract in
 * oauth-int.h). */
int
oauth_lock(const struct oauth_request *req, const char *path, int *fd_r,
    char **err)
{
	long long deadline;
	char *lock;
	int fd, rc;

	*fd_r = -1;
	deadline = mono_ms() + (long long)(req->timeout > 0 ? req->timeout :
	    OAUTH_DEFAULT_TIMEOUT) * 1000;
	lock = xasprintf("%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_warn("cannot open token cache lock %s", lock);
		free(lock);
		return PM_OK;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			log_warn("cannot lock %s", lock);
			close(fd);
			free(lock);
			return PM_OK;
		}
		if (mono_ms() >= deadline) {
			rc = errf(err, PM_ETEMP, "token lock %s is held by "
			    "another process", lock);
			close(fd);
			free(lock);
			return rc;
		}
		oauth_sleep_ms(OAUTH_LOCK_POLL_MS);
	}
	free(lock);
	*fd_r = fd;
	return PM_OK;
}

/* Release a lock from oauth_lock. */
void
oauth_unlock(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

/* Remove the cached token of req, under the cache lock, unless it is no
 * longer the refused one (contract in oauth.h). */
void
oauth_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused)
{
	struct pm_secret *cur;
	char *path, *err = NULL;
	int fd;

	if (req->token_command != NULL)
		return;		/* nothing cached */
	if (req->flow != OAUTH_FLOW_CLIENT_CREDENTIALS) {
		oauth_delegated_invalidate(req, refused);
		return;
	}
	path = oauth_cache_path(req);
	if (path == NULL)
		return;
	/* Unlinking is atomic: without the lock it is still safe. */
	if (oauth_lock(req, path, &fd, &err) != PM_OK) {
		log_warnx("%s", err);
		free(err);
	}
	cur = refused == NULL ? NULL : cache_read(req, path, time(NULL));
	if (cur != NULL && !secret_equal(cur, refused))
		log_debug("oauth", "token cache %s already holds a newer token",
		    path);
	else if (unlink(path) == 0)
		log_debug("oauth", "dropped cached token %s", path);
	else if (errno != ENOENT)
		log_warn("cannot remove token cache %s", path);
	secret_free(cur);
	oauth_unlock(fd);
	free(path);
}

/* --- HTTP ---------------------------------------------------------------- */

/* application/x-www-form-urlencoded (RFC 6749 appendix B) of n bytes. */
char *
oauth_form_encode(const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *o;
	size_t i;

	out = o = xmalloc(n * 3 + 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			*o++ = (char)c;
		else if (c == ' ')
			*o++ = '+';
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Collect the response body, refusing more than OAUTH_MAX_RESPONSE. */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t n = size * nmemb;
	char *grown;

	if (n > OAUTH_MAX_RESPONSE - r->len) {
		r->too_large = 1;
		return 0;
	}
	grown = xmalloc(r->len + n + 1);
	if (r->len > 0)
		memcpy(grown, r->body, r->len);
	memcpy(grown + r->len, data, n);
	grown[r->len + n] = '\0';
	secret_wipe_free(r->body, r->len);
	r->body = grown;
	r->len += n;
	return n;
}

/* Log one line of libcurl's -vv output with its control bytes escaped. */
static void
debug_line(const char *what, const char *s, size_t n)
{
	char *line, *clean;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;
	line = xstrndup(s, n);
	clean = oauth_clean_text(line, 512);
	log_debug("oauth", "%s %s", what, clean);
	free(clean);
	free(line);
}

/*
 * libcurl's verbose output, for -vv only: informational text and headers,
 * with any Authorization header and both bodies redacted.
 */
static int
debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	const char *p = data, *end = data + size, *nl;
	const char *what;

	switch (type) {
	case CURLINFO_TEXT:
		what = "*";
		break;
	case CURLINFO_HEADER_OUT:
		what = ">";
		break;
	case CURLINFO_HEADER_IN:
		what = "<";
		break;
	case CURLINFO_DATA_OUT:
		log_debug("oauth", "> <request body redacted, %zu bytes>",
		    size);
		return 0;
	case CURLINFO_DATA_IN:
		log_debug("oauth", "< <response body redacted, %zu bytes>",
		    size);
		return 0;
	default:
		return 0;
	}
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (type == CURLINFO_HEADER_OUT &&
		    ((size_t)(nl - p) >= 14 &&
		    strncasecmp(p, "Authorization:", 14) == 0))
			log_debug("oauth", "> Authorization: <redacted>");
		else if (type == CURLINFO_HEADER_OUT &&
		    ((size_t)(nl - p) >= 20 &&
		    strncasecmp(p, "Proxy-Authorization:", 20) == 0))
			log_debug("oauth", "> Proxy-Authorization: <redacted>");
		else
			debug_line(what, p, (size_t)(nl - p));
		p = nl < end ? nl + 1 : end;
	}
	return 0;
}

/* Map a libcurl failure to a status class. */
static int
curl_status(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return PM_ECONFIG;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return PM_ETLS;
	case CURLE_WRITE_ERROR:
		return PM_EPROTO;
	default:
		return PM_ETEMP;
	}
}

/*
 * Refuse a URL credentials may not travel to: url_check_endpoint, and the
 * host as libcurl itself parses it, so that no difference between the two
 * parsers lets a plain http request leave this host.  PM_ECONFIG.
 */
static int
endpoint_refused(const char *url, char **err)
{
	const char *why = NULL;
	char *scheme = NULL, *host = NULL;
	CURLU *u;
	int rc = PM_OK;

	if (url_check_endpoint(url, &why) != 0)
		return errf(err, PM_ECONFIG, "%s: %s", url, why);
	if ((u = curl_url()) == NULL)
		return errf(err, PM_EINTERNAL, "cannot initialise libcurl");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		rc = errf(err, PM_ECONFIG, "%s: not a URL", url);
	else if (strcasecmp(scheme, "https") != 0 &&
	    !host_is_loopback(host, strlen(host)))
		rc = errf(err, PM_ECONFIG, "%s: plain http:// is allowed only "
		    "to this host; use https://", url);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/*
 * The system's trust anchors for the TLS server of url, as PEM (malloc'd),
 * or NULL when they cannot be told (not https, no CA bundle, no chain).
 * A first connection only shakes hands, sending nothing and verifying
 * nothing, to see the chain the server sends (CURLINFO_CERTINFO); of the
 * system CA bundle, trust_select keeps the certificates that chain names.
 * The request itself is then verified against those: a subset of the
 * bundle, and a few certificates parsed instead of all of them (3.8 MB of
 * peak RSS with the bundle, 7.6 MB with Debian's default CA directory).
 * *rc_r: how that connection went (its message in errbuf), so that a
 * server that cannot be reached is not waited for twice.
 */
static char *
anchors_for(const char *url, const char *bundle, long timeout,
    char *errbuf, CURLcode *rc_r)
{
	struct curl_certinfo *ci = NULL;
	struct trust_der *chain;
	struct curl_slist *l;
	unsigned char *der;
	char *pem = NULL;
	size_t n = 0, i, len, count = 0;
	CURLcode rc;
	CURL *h;

	*rc_r = CURLE_OK;
	if (bundle == NULL || strncasecmp(url, "https://", 8) != 0 ||
	    (h = curl_easy_init()) == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	*rc_r = rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci);
	if (rc != CURLE_OK || ci == NULL || ci->num_of_certs <= 0) {
		log_debug("oauth", "%s: no certificate chain seen (%s); "
		    "trusting all of %s", url, curl_easy_strerror(rc), bundle);
		curl_easy_cleanup(h);
		return NULL;
	}
	chain = xcalloc((size_t)ci->num_of_certs, sizeof *chain);
	for (i = 0; i < (size_t)ci->num_of_certs; i++)
		for (l = ci->certinfo[i]; l != NULL; l = l->next)
			if (strncmp(l->data, "Cert:", 5) == 0 &&
			    trust_pem_der(l->data + 5, &der, &len) == 0) {
				chain[n].data = der;
				chain[n++].len = len;
				break;
			}
	curl_easy_cleanup(h);
	if (trust_select(bundle, chain, n, &pem, &count) != 0)
		log_debug("oauth", "CA bundle %s: %s", bundle,
		    pm_strerror(errno));
	else
		log_debug("oauth", "%s: %zu trust anchor%s from %s", url,
		    count, count == 1 ? "" : "s", bundle);
	for (i = 0; i < n; i++)
		free((void *)chain[i].data);
	free(chain);
	return pem;
}

/*
 * Make h trust the anchors in pem (from anchors_for), else the whole CA
 * bundle, else (bundle NULL) libcurl's defaults.  *fd_r: a descriptor to
 * close after the request, or -1.
 */
static void
trust_setopt(CURL *h, const char *bundle, const char *pem, int *fd_r)
{
	*fd_r = -1;
	if (bundle == NULL)
		return;
	/* Debian's libcurl defaults to the CA directory, whose every file
	 * GnuTLS would parse: the bundle holds the same certificates. */
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
#if LIBCURL_VERSION_NUM >= 0x074d00
	if (pem != NULL) {
		struct curl_blob blob = { (void *)pem, strlen(pem),
		    CURL_BLOB_COPY };

		if (curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob) ==
		    CURLE_OK)
			return;
	} else
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, NULL);
#endif
#ifdef HAVE_MEMFD_CREATE
	/* A TLS backend without CA blobs (GnuTLS before libcurl 8.x) reads
	 * a file: one in memory. */
	if (pem != NULL && (*fd_r = memfd_create("pullmail-anchors",
	    MFD_CLOEXEC)) >= 0) {
		if (write_full(*fd_r, pem, strlen(pem)) == 0) {
			char *path = xasprintf("/proc/self/fd/%d", *fd_r);

			curl_easy_setopt(h, CURLOPT_CAINFO, path);
			free(path);
			return;
		}
		close(*fd_r);
		*fd_r = -1;
	}
#endif
	curl_easy_setopt(h, CURLOPT_CAINFO, bundle);
}

/* A JSON object as base64url. */
static char *
json_b64(struct json_object *obj)
{
	const char *text;

	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	return crypto_base64url(text, strlen(text));
}

/*
 * The client assertion of private_key_jwt (RFC 7523 section 2.2): a JWT
 * for the token endpoint signed RS256 with the client key, x5t the SHA-1
 * thumbprint of the certificate (as Microsoft Entra ID requires).
 */
int
oauth_client_assertion(const struct oauth_request *req, char **jwt_r,
    char **err)
{
	struct json_object *hdr, *claims;
	unsigned char sha1[CRYPTO_SHA1_LEN], *sig = NULL;
	char *cert = NULL, *h64, *c64, *input, *s64, *jti, *x5t;
	size_t len, siglen;
	time_t now = time(NULL);
	int rc;

	if (read_small_file(req->client_cert, 1 << 20, &cert, &len) < 0)
		return errf(err, PM_ECONFIG, "%s: %s", req->client_cert,
		    pm_strerror(errno));
	rc = crypto_cert_sha1(cert, len, sha1, err);
	free(cert);
	if (rc != PM_OK) {
		err_prefix(err, "%s", req->client_cert);
		return rc;
	}
	if ((jti = crypto_random_string(16)) == NULL)
		return errf(err, PM_EINTERNAL, "no random bytes");
	x5t = crypto_base64url(sha1, sizeof sha1);
	hdr = json_object_new_object();
	json_object_object_add(hdr, "alg", json_object_new_string("RS256"));
	json_object_object_add(hdr, "typ", json_object_new_string("JWT"));
	json_object_object_add(hdr, "x5t", json_object_new_string(x5t));
	claims = json_object_new_object();
	json_object_object_add(claims, "aud",
	    json_object_new_string(req->token_url));
	json_object_object_add(claims, "iss",
	    json_object_new_string(req->client_id));
	json_object_object_add(claims, "sub",
	    json_object_new_string(req->client_id));
	json_object_object_add(claims, "jti", json_object_new_string(jti));
	json_object_object_add(claims, "iat", json_object_new_int64(now));
	json_object_object_add(claims, "nbf", json_object_new_int64(now));
	json_object_object_add(claims, "exp",
	    json_object_new_int64(now + 300));
	h64 = json_b64(hdr);
	c64 = json_b64(claims);
	json_object_put(hdr);
	json_object_put(claims);
	free(x5t);
	free(jti);
	input = xasprintf("%s.%s", h64, c64);
	free(h64);
	free(c64);
	rc = crypto_rs256_sign(secret_reveal(req->client_key),
	    secret_len(req->client_key), input, strlen(input), &sig, &siglen,
	    err);
	if (rc != PM_OK) {
		free(input);
		return rc;
	}
	s64 = crypto_base64url(sig, siglen);
	free(sig);
	*jwt_r = xasprintf("%s.%s", input, s64);
	free(input);
	free(s64);
	return PM_OK;
}

/* grant followed by the client's credentials, for the request body. */
static char *
request_body(const struct oauth_request *req, const char *grant)
{
	char *id, *secret = NULL, *body, *jwt = NULL, *err = NULL;
	int in_body;

	if (req->client_key != NULL && req->client_cert != NULL) {
		if (oauth_client_assertion(req, &jwt, &err) != PM_OK) {
			log_warnx("%s: no client assertion: %s", req->account !=
			    NULL ? req->account : "oauth", err);
			free(err);
			return NULL;
		}
		id = oauth_form_encode(req->client_id, strlen(req->client_id));
		body = xasprintf("%s&client_id=%s&client_assertion_type="
		    "urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type"
		    "%%3Ajwt-bearer&client_assertion=%s", grant, id, jwt);
		free(id);
		oauth_free_wiped(jwt);
		return body;
	}

	in_body = req->client_secret == NULL ||
	    req->client_auth != OAUTH_CLIENT_BASIC;
	id = oauth_form_encode(req->client_id, strlen(req->client_id));
	if (req->client_secret != NULL && in_body)
		secret = oauth_form_encode(secret_reveal(req->client_secret),
		    secret_len(req->client_secret));
	body = xasprintf("%s%s%s%s%s", grant,
	    in_body ? "&client_id=" : "", in_body ? id : "",
	    secret != NULL ? "&client_secret=" : "",
	    secret != NULL ? secret : "");
	free(id);
	oauth_free_wiped(secret);
	return body;
}

/* POST grant (and the client's credentials) to url; the reply's status
 * and body (contract in oauth-int.h). */
int
oauth_http_post(const struct oauth_request *req, const char *url,
    const char *grant, struct http_reply *reply, char **err)
{
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *headers = NULL;
	char *body, *user = NULL, *pass = NULL, *anchors;
	const char *bundle;
	long timeout;
	CURLcode rc;
	CURL *h;
	int status, cafd;

	memset(reply, 0, sizeof *reply);
	reply->retry_after = -1;
	if ((status = oauth_global_init(err)) != PM_OK ||
	    (status = endpoint_refused(url, err)) != PM_OK)
		return status;
	h = curl_easy_init();
	if (h == NULL)
		return errf(err, PM_EINTERNAL, "cannot initialise libcurl");
	if (grant == NULL)
		body = NULL;	/* a GET: OpenID discovery */
	else if ((body = request_body(req, grant)) == NULL) {
		curl_easy_cleanup(h);
		return errf(err, PM_ECONFIG, "cannot build the client "
		    "assertion from oauth_client_certificate and "
		    "oauth_client_key (see the warning above)");
	}
	timeout = req->timeout > 0 ? req->timeout : OAUTH_DEFAULT_TIMEOUT;
	errbuf[0] = '\0';
	headers = curl_slist_append(headers, "Accept: application/json");

	curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP));
#endif
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	/* Plain http goes to this host only (endpoint_refused): never to a
	 * proxy elsewhere. */
	if (strncasecmp(url, "http://", 7) == 0)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pullmail");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
	if (body != NULL && req->client_secret != NULL &&
	    req->client_auth == OAUTH_CLIENT_BASIC) {
		/* RFC 6749 2.3.1: both form-encoded before Basic encoding. */
		user = oauth_form_encode(req->client_id,
		    strlen(req->client_id));
		pass = oauth_form_encode(secret_reveal(req->client_secret),
		    secret_len(req->client_secret));
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, pass);
	}
	if (log_verbosity() >= 2) {
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	}

	/* Without a readable bundle: libcurl's own defaults. */
	bundle = req->ca_bundle != NULL ? req->ca_bundle : trust_bundle_path();
	if (bundle != NULL && access(bundle, R_OK) != 0)
		bundle = NULL;
	anchors = anchors_for(url, bundle, timeout, errbuf, &rc);
	trust_setopt(h, bundle, anchors, &cafd);
	if (rc != CURLE_COULDNT_RESOLVE_PROXY &&
	    rc != CURLE_COULDNT_RESOLVE_HOST && rc != CURLE_COULDNT_CONNECT &&
	    rc != CURLE_OPERATION_TIMEDOUT) {
		errbuf[0] = '\0';
		rc = curl_easy_perform(h);
	}
	if (anchors != NULL && (rc == CURLE_PEER_FAILED_VERIFICATION ||
	    rc == CURLE_SSL_CACERT_BADFILE)) {
		/* Another chain than the first connection saw (a server
		 * behind a balancer, say): nothing was sent; again with the
		 * whole bundle. */
		log_debug("oauth", "%s: %s; again trusting all of %s", url,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc),
		    bundle);
		if (cafd >= 0)
			close(cafd);
		trust_setopt(h, bundle, NULL, &cafd);
		errbuf[0] = '\0';
		rc = curl_easy_perform(h);
	}
	if (rc == CURLE_OK) {
		curl_off_t ra = -1;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status);
#if LIBCURL_VERSION_NUM >= 0x074200
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) ==
		    CURLE_OK && ra > 0)
			reply->retry_after = ra > 86400 ? 86400 : (long)ra;
#endif
		status = PM_OK;
	} else if (reply->too_large)
		status = errf(err, PM_EPROTO, "%s: response larger than %d "
		    "bytes", url, OAUTH_MAX_RESPONSE);
	else
		status = errf(err, curl_status(rc), "%s: %s", url,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
	/* A body cut short (size cap, timeout, dropped connection) may hold
	 * a token: never left to the caller. */
	if (status != PM_OK)
		oauth_reply_free(reply);

	curl_easy_cleanup(h);
	if (cafd >= 0)
		close(cafd);
	free(anchors);
	curl_slist_free_all(headers);
	oauth_free_wiped(body);
	oauth_free_wiped(user);
	oauth_free_wiped(pass);
	return status;
}

/* Wipe and free a reply's body, complete or not, and zero the reply. */
void
oauth_reply_free(struct http_reply *reply)
{
	secret_wipe_free(reply->body, reply->len);
	memset(reply, 0, sizeof *reply);
	reply->retry_after = -1;
}

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

/* Sleep for ms milliseconds (signals do not cut it short). */
void
oauth_sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* POST grant to the token endpoint (contract in oauth-int.h). */
int
oauth_exchange(const struct oauth_request *req, const char *grant,
    struct oauth_token *tok, char **err)
{
	long budget_ms, spent_ms, wait_ms, retry_after;
	struct timespec t0, t1;
	unsigned char rnd;
	int rc, attempt;

	budget_ms = (req->timeout > 0 ? req->timeout :
	    OAUTH_DEFAULT_TIMEOUT) * 1000L / 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
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
		clock_gettime(CLOCK_MONOTONIC, &t1);
		spent_ms = (long)(t1.tv_sec - t0.tv_sec) * 1000L +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000L;
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

/* --- one fetch per app at a time within the process -------------------- */

/* The fetch of one app's token (one cache key) under way in the process,
 * and how the last one ended; every field is guarded by app_lock. */
struct app_slot {
	struct app_slot	*next;
	char		*key;		/* cache_key */
	/* The credentials the app is asked with: only a request with the
	 * same ones may share a slot (an account with a wrong secret must
	 * not hand its refusal to the others, nor get their token). */
	struct pm_secret *secret;	/* client secret, or NULL */
	struct pm_secret *ckey;		/* client key, or NULL */
	char		*cert;		/* client certificate path, or NULL */
	int		 auth;		/* client_auth */
	pthread_cond_t	 done;		/* broadcast when a fetch ends */
	int		 busy;		/* a thread is getting a token */
	unsigned long	 round;		/* fetches ended so far */
	int		 rc;		/* how the last one ended */
	char		*err;		/* its message, when it failed */
	struct pm_secret *token;	/* its token, when it succeeded */
	int		 cached;	/* that came from the cache file */
};

static pthread_mutex_t app_lock = PTHREAD_MUTEX_INITIALIZER;
static struct app_slot *app_slots;

/* Whether two secrets, either NULL, are the same. */
static int
same_secret(const struct pm_secret *a, const struct pm_secret *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return secret_equal(a, b);
}

/* The slot of req's app and credentials, made when missing; app_lock
 * held. */
static struct app_slot *
app_slot_get(const struct oauth_request *req)
{
	struct app_slot *sl;
	char *key = cache_key(req);

	for (sl = app_slots; sl != NULL; sl = sl->next) {
		if (strcmp(sl->key, key) == 0 &&
		    sl->auth == req->client_auth &&
		    same_secret(sl->secret, req->client_secret) &&
		    same_secret(sl->ckey, req->client_key) &&
		    (sl->cert == NULL ? req->client_cert == NULL :
		    req->client_cert != NULL &&
		    strcmp(sl->cert, req->client_cert) == 0)) {
			free(key);
			return sl;
		}
	}
	sl = xcalloc(1, sizeof *sl);
	sl->key = key;
	sl->auth = req->client_auth;
	sl->secret = req->client_secret != NULL ?
	    secret_dup(req->client_secret) : NULL;
	sl->ckey = req->client_key != NULL ? secret_dup(req->client_key) :
	    NULL;
	sl->cert = req->client_cert != NULL ? xstrdup(req->client_cert) :
	    NULL;
	pthread_cond_init(&sl->done, NULL);
	sl->next = app_slots;
	app_slots = sl;
	return sl;
}

/* Free every slot; no thread may be in the token module. */
static void
app_slots_free(void)
{
	struct app_slot *sl;

	pthread_mutex_lock(&app_lock);
	while ((sl = app_slots) != NULL) {
		app_slots = sl->next;
		pthread_cond_destroy(&sl->done);
		secret_free(sl->token);
		secret_free(sl->secret);
		secret_free(sl->ckey);
		free(sl->cert);
		free(sl->err);
		free(sl->key);
		free(sl);
	}
	pthread_mutex_unlock(&app_lock);
}

/* A client-credentials token for req: from the cache file when still
 * good, else fetched and cached. */
static int
app_fetch(const struct oauth_request *req, struct pm_secret **token_r,
    int *cached_r, char **err)
{
	struct oauth_token tok;
	const char *who = req->account != NULL ? req->account : "oauth";
	char *path = NULL, *grant, *scope = NULL;
	time_t now;
	int lock = -1, rc;

	memset(&tok, 0, sizeof tok);
	if (req->cache_dir != NULL && *req->cache_dir != '\0') {
		if (mkdir_p(req->cache_dir, 0700) < 0)
			log_warn("%s: cannot create token cache directory %s",
			    who, req->cache_dir);
		else
			path = oauth_cache_path(req);
	}
	if (path != NULL) {
		*token_r = cache_read(req, path, time(NULL));
		if (*token_r == NULL) {
			/* Another pullmail may be fetching: wait, re-read. */
			if ((rc = oauth_lock(req, path, &lock, err)) !=
			    PM_OK) {
				free(path);
				return rc;
			}
			*token_r = cache_read(req, path, time(NULL));
		}
		if (*token_r != NULL) {
			oauth_unlock(lock);
			free(path);
			if (cached_r != NULL)
				*cached_r = 1;
			log_debug("oauth", "%s: using the cached token", who);
			return PM_OK;
		}
	}

	if (req->scope != NULL && *req->scope != '\0')
		scope = oauth_form_encode(req->scope, strlen(req->scope));
	grant = xasprintf("grant_type=client_credentials%s%s",
	    scope != NULL ? "&scope=" : "", scope != NULL ? scope : "");
	free(scope);
	now = time(NULL);
	rc = oauth_exchange(req, grant, &tok, err);
	free(grant);
	if (rc == PM_EAUTH)
		notify_human(req->notify_command, req->cache_dir,
		    req->account, (unsigned)req->timeout, *err);
	if (rc == PM_OK) {
		notify_reset(req->cache_dir, req->account);
		log_info("%s: obtained a token from %s, valid for %lld s", who,
		    req->token_url, (long long)(tok.expires_at - now));
		if (path != NULL)
			cache_write(req, path, tok.access_token, now,
			    tok.expires_at, tok.scope);
		*token_r = tok.access_token;
		tok.access_token = NULL;
	}
	oauth_token_clear(&tok);
	oauth_unlock(lock);
	free(path);
	return rc;
}

/*
 * A client-credentials token for req, got once for all the threads that
 * ask for the same app's token at the same time: the first asks
 * (app_fetch), the others wait for its result, token or error.  Later
 * callers read the cache file (app_fetch) as a single thread would.
 */
static int
app_get_token(const struct oauth_request *req, struct pm_secret **token_r,
    int *cached_r, char **err)
{
	struct app_slot *sl;
	struct pm_secret *tok = NULL;
	unsigned long round;
	int rc, cached = 0;

	if (req->client_secret == NULL && req->client_key == NULL)
		return errf(err, PM_ECONFIG, "OAuth needs a token URL, a "
		    "client ID and a client secret");

	pthread_mutex_lock(&app_lock);
	sl = app_slot_get(req);
	if (sl->busy) {
		round = sl->round;
		while (sl->round == round)
			pthread_cond_wait(&sl->done, &app_lock);
		if ((rc = sl->rc) == PM_OK) {
			*token_r = secret_dup(sl->token);
			if (cached_r != NULL)
				*cached_r = sl->cached;
		} else
			errf(err, rc, "%s", sl->err);
		pthread_mutex_unlock(&app_lock);
		if (rc == PM_OK)
			log_debug("oauth", "%s: using the token another "
			    "mailbox of this app got", req->account != NULL ?
			    req->account : "oauth");
		return rc;
	}
	sl->busy = 1;
	pthread_mutex_unlock(&app_lock);

	rc = app_fetch(req, &tok, &cached, err);

	pthread_mutex_lock(&app_lock);
	sl->busy = 0;
	sl->round++;
	sl->rc = rc;
	free(sl->err);
	sl->err = rc != PM_OK ? xstrdup(*err != NULL ? *err : "?") : NULL;
	secret_free(sl->token);
	sl->token = rc == PM_OK ? secret_dup(tok) : NULL;
	sl->cached = cached;
	pthread_cond_broadcast(&sl->done);
	pthread_mutex_unlock(&app_lock);
	if (rc == PM_OK) {
		*token_r = tok;
		if (cached_r != NULL)
			*cached_r = cached;
	}
	return rc;
}

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
	return app_get_token(req, token_r, cached_r, err);
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
