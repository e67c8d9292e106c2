/*
 * The token module's JSON, the only file that includes json-c: strict
 * parsing of one object, the token endpoint's answer (RFC 6749 5.1, 5.2),
 * members read as the token files, device and discovery documents and JWT
 * claims need them, and the few builders the token files and the client
 * assertion use.  Other files see struct json_object as an opaque type.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "log.h"
#include "oauth-int.h"
#include "provider.h"
#include "secret.h"
#include "util.h"


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

	code = provider_aadsts_code(desc);
	if (code == 0 && json_object_object_get_ex(obj, "error_codes",
	    &codes) && json_object_is_type(codes, json_type_array) &&
	    json_object_array_length(codes) > 0) {
		c = json_object_array_get_idx(codes, 0);
		if (json_object_is_type(c, json_type_int))
			code = (long)json_object_get_int64(c);
	}
	hint = provider_hint(tok->error, code);

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

/* Parse a token endpoint answer (contract in oauth-int.h). */
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

/* An integer member given as a number (or a string of digits). */
long
oauth_get_long(struct json_object *obj, const char *key, long dflt)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return dflt;
	if (json_object_is_type(v, json_type_int)) {
		n = json_object_get_int64(v);
		return n > 0 && n < 86400 ? (long)n : dflt;
	}
	if (json_object_is_type(v, json_type_string)) {
		n = strtol(json_object_get_string(v), NULL, 10);
		return n > 0 && n < 86400 ? (long)n : dflt;
	}
	return dflt;
}

/* A claim as text (string, number, or array of strings joined by ' '). */
char *
oauth_claim_text(struct json_object *obj, const char *key)
{
	struct json_object *v, *e;
	char *out = NULL, *t, *c;
	size_t i;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return NULL;
	if (json_object_is_type(v, json_type_array)) {
		for (i = 0; i < json_object_array_length(v); i++) {
			e = json_object_array_get_idx(v, i);
			if (!json_object_is_type(e, json_type_string))
				continue;
			t = xasprintf("%s%s%s", out != NULL ? out : "",
			    out != NULL ? " " : "", json_object_get_string(e));
			free(out);
			out = t;
		}
	} else if (json_object_is_type(v, json_type_string) ||
	    json_object_is_type(v, json_type_int))
		out = xstrdup(json_object_get_string(v));
	if (out == NULL)
		return NULL;
	c = oauth_clean_text(out, 300);
	free(out);
	return c;
}

/* A new empty object (contract in oauth-int.h). */
struct json_object *
oauth_json_new(void)
{
	return json_object_new_object();
}

/* Set the string member key of obj. */
void
oauth_json_set_string(struct json_object *obj, const char *key,
    const char *s)
{
	json_object_object_add(obj, key, json_object_new_string(s));
}

/* Set the string member key of obj to n bytes of s. */
void
oauth_json_set_string_len(struct json_object *obj, const char *key,
    const char *s, size_t n)
{
	json_object_object_add(obj, key, json_object_new_string_len(s,
	    (int)n));
}

/* Set the integer member key of obj. */
void
oauth_json_set_int64(struct json_object *obj, const char *key, int64_t v)
{
	json_object_object_add(obj, key, json_object_new_int64(v));
}

/* obj as compact text, owned by obj. */
const char *
oauth_json_text(struct json_object *obj)
{
	return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
}

/* Release obj (NULL allowed). */
void
oauth_json_free(struct json_object *obj)
{
	json_object_put(obj);
}
