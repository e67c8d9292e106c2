/* SASL: the initial responses of XOAUTH2, OAUTHBEARER and PLAIN,
 * choosing a mechanism, decoding an OAuth error challenge, and the
 * exchange itself (sasl_exchange()), driven through a protocol's table. */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pullmail/host.h>

#include "config.h"
#include "sasl.h"
#include "util.h"

/* Longest value taken from an error challenge, and the whole summary. */
#define OAUTH_ERR_VALUE_MAX	96
#define OAUTH_ERR_SUMMARY_MAX	256
/* Longest list of server mechanisms quoted in an error message. */
#define MECHS_QUOTE_MAX		200

/* 1 if the n bytes at p contain c. */
static int
has_byte(const char *p, size_t n, char c)
{
	return memchr(p, c, n) != NULL;
}

/* Base64 of the n bytes of raw as a secret, then wipe and free raw. */
static struct pm_secret *
encode_and_wipe(char *raw, size_t n, size_t size)
{
	struct pm_secret *s;

	s = base64_encode_secret(raw, n);
	secret_wipe_free(raw, size);
	return s;
}

/* The base64 XOAUTH2 initial response for user and token, or NULL. */
struct pm_secret *
sasl_xoauth2(const char *user, const struct pm_secret *tok)
{
	static const char p1[] = "user=", p2[] = "\001auth=Bearer ";
	static const char p3[] = "\001\001";
	size_t ulen = strlen(user), tlen = secret_len(tok), n, size;
	char *raw, *p;

	if (has_byte(user, ulen, '\001') ||
	    has_byte(secret_reveal(tok), tlen, '\001'))
		return NULL;
	n = sizeof p1 - 1 + ulen + sizeof p2 - 1 + tlen + sizeof p3 - 1;
	size = n + 1;
	p = raw = xmalloc(size);
	memcpy(p, p1, sizeof p1 - 1);
	p += sizeof p1 - 1;
	memcpy(p, user, ulen);
	p += ulen;
	memcpy(p, p2, sizeof p2 - 1);
	p += sizeof p2 - 1;
	memcpy(p, secret_reveal(tok), tlen);
	p += tlen;
	memcpy(p, p3, sizeof p3 - 1);
	return encode_and_wipe(raw, n, size);
}

/* Length of user as an RFC 5801 saslname (',' and '=' take 3 bytes). */
static size_t
saslname_len(const char *user)
{
	size_t n = 0;

	for (; *user != '\0'; user++)
		n += (*user == ',' || *user == '=') ? 3 : 1;
	return n;
}

/* Write user as a saslname at p; returns the end. */
static char *
saslname_write(char *p, const char *user)
{
	for (; *user != '\0'; user++) {
		if (*user == ',') {
			memcpy(p, "=2C", 3);
			p += 3;
		} else if (*user == '=') {
			memcpy(p, "=3D", 3);
			p += 3;
		} else
			*p++ = *user;
	}
	return p;
}

/* The base64 OAUTHBEARER (RFC 7628) initial response, or NULL. */
struct pm_secret *
sasl_oauthbearer(const char *user, const char *host, unsigned port,
    const struct pm_secret *tok)
{
	char head[64], *raw, *p;
	size_t tlen = secret_len(tok), hlen = strlen(host), n, size, headlen;
	static const char tail[] = "\001\001";

	if (has_byte(user, strlen(user), '\001') ||
	    has_byte(host, hlen, '\001') ||
	    has_byte(secret_reveal(tok), tlen, '\001'))
		return NULL;
	/* "\001port=N\001auth=Bearer " */
	headlen = (size_t)snprintf(head, sizeof head,
	    "\001port=%u\001auth=Bearer ", port);
	n = 4 + saslname_len(user) + 1 + 6 + hlen + headlen + tlen +
	    sizeof tail - 1;
	size = n + 1;
	p = raw = xmalloc(size);
	memcpy(p, "n,a=", 4);
	p = saslname_write(p + 4, user);
	memcpy(p, ",\001host=", 7);
	p += 7;
	memcpy(p, host, hlen);
	p += hlen;
	memcpy(p, head, headlen);
	p += headlen;
	memcpy(p, secret_reveal(tok), tlen);
	p += tlen;
	memcpy(p, tail, sizeof tail - 1);
	return encode_and_wipe(raw, n, size);
}

/* The base64 PLAIN response for user and password, or NULL on a NUL. */
struct pm_secret *
sasl_plain(const char *user, const struct pm_secret *pw)
{
	size_t ulen = strlen(user), plen = secret_len(pw), n, size;
	char *raw;

	if (has_byte(secret_reveal(pw), plen, '\0'))
		return NULL;
	n = 1 + ulen + 1 + plen;
	size = n + 1;
	raw = xmalloc(size);
	raw[0] = '\0';
	memcpy(raw + 1, user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, secret_reveal(pw), plen);
	return encode_and_wipe(raw, n, size);
}

/* 1 if the whitespace-separated list mechs holds mech (any case). */
static int
mech_offered(const char *mechs, const char *mech)
{
	size_t len = strlen(mech), wlen;
	const char *p = mechs, *w;

	if (p == NULL)
		return 0;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		w = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		wlen = (size_t)(p - w);
		if (wlen == len && strncasecmp(w, mech, len) == 0)
			return 1;
	}
}

/* The server's mechanisms fit to quote: printable, single-spaced, capped.
 * malloc'd. */
static char *
mechs_quote(const char *mechs)
{
	char *out = xmalloc(MECHS_QUOTE_MAX + 4), *o = out;
	const unsigned char *p = (const unsigned char *)mechs;

	for (; p != NULL && *p != '\0'; p++) {
		if (o - out >= MECHS_QUOTE_MAX) {
			memcpy(o, "...", 3);
			o += 3;
			break;
		}
		if (*p == ' ' || *p == '\t') {
			if (o != out && o[-1] != ' ')
				*o++ = ' ';
		} else if (*p > ' ' && *p < 0x7f)
			*o++ = (char)*p;
	}
	if (o != out && o[-1] == ' ')
		o--;
	*o = '\0';
	return out;
}

/* Fail with "server does not offer WHAT (it offers: ...)". */
static const char *
not_offered(const char *what, const char *mechs, char **err)
{
	char *q = mechs_quote(mechs);

	if (*q == '\0')
		errf(err, PM_ECONFIG, "server does not offer %s (it offers "
		    "no SASL mechanism)", what);
	else
		errf(err, PM_ECONFIG, "server does not offer %s (it offers: "
		    "%s)", what, q);
	free(q);
	return NULL;
}

/* Pick the SASL mechanism for the account's auth setting from the server's
 * list; NULL with *err set when none fits. */
const char *
sasl_choose(int auth, int oauth, const char *server_mechs, char **err)
{
	int have_oauth = (oauth & SASL_HAVE_OAUTH) != 0;
	int have_pw = !have_oauth || (oauth & SASL_HAVE_PASSWORD) != 0;
	const char *mech;

	switch (auth) {
	case AUTH_AUTO:
		if (have_oauth) {
			if (mech_offered(server_mechs, "XOAUTH2"))
				return "XOAUTH2";
			if (mech_offered(server_mechs, "OAUTHBEARER"))
				return "OAUTHBEARER";
			return not_offered("AUTH=XOAUTH2 or AUTH=OAUTHBEARER",
			    server_mechs, err);
		}
		if (mech_offered(server_mechs, "PLAIN"))
			return "PLAIN";
		if (mech_offered(server_mechs, "LOGIN"))
			return "LOGIN";
		return not_offered("AUTH=PLAIN or AUTH=LOGIN", server_mechs,
		    err);
	case AUTH_XOAUTH2:
	case AUTH_OAUTHBEARER:
		mech = auth == AUTH_XOAUTH2 ? "XOAUTH2" : "OAUTHBEARER";
		if (!have_oauth) {
			errf(err, PM_ECONFIG, "auth = %s needs OAuth, but no "
			    "OAuth client is configured (set oauth_provider "
			    "and oauth_client_id, or use user = "
			    "MAILBOX@CLIENTID@TENANTID)",
			    auth == AUTH_XOAUTH2 ? "xoauth2" : "oauthbearer");
			return NULL;
		}
		break;
	case AUTH_PLAIN:
	case AUTH_LOGIN:
		mech = auth == AUTH_PLAIN ? "PLAIN" : "LOGIN";
		if (!have_pw) {
			errf(err, PM_ECONFIG, "auth = %s needs a password, but "
			    "the account is set up for OAuth and has none (use "
			    "auth = auto, xoauth2 or oauthbearer)",
			    auth == AUTH_PLAIN ? "plain" : "login");
			return NULL;
		}
		break;
	default:
		errf(err, PM_ECONFIG, "unknown auth mechanism %d", auth);
		return NULL;
	}
	if (!mech_offered(server_mechs, mech)) {
		char what[32];

		snprintf(what, sizeof what, "AUTH=%s", mech);
		return not_offered(what, server_mechs, err);
	}
	return mech;
}

/*
 * A tolerant scanner for the small JSON object of an OAuth error challenge
 * (RFC 7628 section 3.2.2).  It only needs top-level string or bare
 * values; nested objects and arrays are skipped.
 */
struct jscan {
	const char *p;
	const char *end;
};

/* Skip JSON whitespace. */
static void
js_space(struct jscan *js)
{
	while (js->p < js->end && (*js->p == ' ' || *js->p == '\t' ||
	    *js->p == '\r' || *js->p == '\n'))
		js->p++;
}

/*
 * Read a string at js->p (which is '"').  When out is not NULL, store at
 * most cap - 1 printable bytes of it there (escapes reduced to one
 * character, control characters dropped, other bytes as '?').  -1 if the
 * string is not terminated.
 */
static int
js_string(struct jscan *js, char *out, size_t cap)
{
	size_t o = 0;
	unsigned char c;

	js->p++;
	while (js->p < js->end) {
		c = (unsigned char)*js->p++;
		if (c == '"') {
			if (out != NULL)
				out[o] = '\0';
			return 0;
		}
		if (c == '\\') {
			if (js->p >= js->end)
				return -1;
			c = (unsigned char)*js->p++;
			switch (c) {
			case 'u':
				if (js->end - js->p < 4)
					return -1;
				js->p += 4;
				c = '?';
				break;
			case 'n': case 't': case 'r': case 'b': case 'f':
				c = ' ';
				break;
			}
		}
		if (out == NULL || o + 1 >= cap)
			continue;
		if (c < ' ' || c == 0x7f)
			continue;
		out[o++] = c < 0x80 ? (char)c : '?';
	}
	return -1;
}

/* Skip a nested object or array at js->p; -1 if unbalanced. */
static int
js_skip_nested(struct jscan *js)
{
	int depth = 0;

	while (js->p < js->end) {
		if (*js->p == '"') {
			if (js_string(js, NULL, 0) != 0)
				return -1;
			continue;
		}
		if (*js->p == '{' || *js->p == '[')
			depth++;
		else if (*js->p == '}' || *js->p == ']')
			depth--;
		js->p++;
		if (depth == 0)
			return 0;
	}
	return -1;
}

/* Read a value into out (as js_string; a bare number or word is copied,
 * nested values give ""). */
static int
js_value(struct jscan *js, char *out, size_t cap)
{
	size_t o = 0;
	char c;

	out[0] = '\0';
	if (js->p >= js->end)
		return -1;
	if (*js->p == '"')
		return js_string(js, out, cap);
	if (*js->p == '{' || *js->p == '[')
		return js_skip_nested(js);
	while (js->p < js->end) {
		c = *js->p;
		if (c == ',' || c == '}' || c == ' ' || c == '\t' ||
		    c == '\r' || c == '\n')
			break;
		if (c == '"' || c == '{' || c == '[' || c == ':' ||
		    (unsigned char)c < ' ' || (unsigned char)c >= 0x7f)
			return -1;
		if (o + 1 < cap)
			out[o++] = c;
		js->p++;
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

/* Append ", NAME VALUE" (or "NAME VALUE" first) to the summary. */
static void
summary_add(char *sum, const char *name, const char *value)
{
	size_t len = strlen(sum);

	if (*value == '\0')
		return;
	snprintf(sum + len, OAUTH_ERR_SUMMARY_MAX - len, "%s%s %s",
	    len > 0 ? ", " : "", name, value);
}

/* Decode an OAuth error challenge into its status and a printable summary. */
int
sasl_oauth_error(const char *challenge_b64, char **status_r,
    char **summary_r)
{
	struct jscan js;
	unsigned char *raw = NULL;
	size_t rawlen;
	char key[32], value[OAUTH_ERR_VALUE_MAX];
	char status[OAUTH_ERR_VALUE_MAX] = "", schemes[OAUTH_ERR_VALUE_MAX] = "";
	char scope[OAUTH_ERR_VALUE_MAX] = "", sum[OAUTH_ERR_SUMMARY_MAX] = "";

	*status_r = NULL;
	*summary_r = NULL;
	if (challenge_b64 == NULL || base64_decode(BASE64_STD,
	    challenge_b64, strlen(challenge_b64), &raw, &rawlen) != 0)
		goto bad;
	js.p = (const char *)raw;
	js.end = js.p + rawlen;
	js_space(&js);
	if (js.p >= js.end || *js.p != '{')
		goto bad;
	js.p++;
	js_space(&js);
	if (js.p < js.end && *js.p == '}')
		goto bad;
	for (;;) {
		js_space(&js);
		if (js.p >= js.end || *js.p != '"' ||
		    js_string(&js, key, sizeof key) != 0)
			goto bad;
		js_space(&js);
		if (js.p >= js.end || *js.p != ':')
			goto bad;
		js.p++;
		js_space(&js);
		if (js_value(&js, value, sizeof value) != 0)
			goto bad;
		if (strcmp(key, "status") == 0)
			memcpy(status, value, sizeof status);
		else if (strcmp(key, "schemes") == 0)
			memcpy(schemes, value, sizeof schemes);
		else if (strcmp(key, "scope") == 0)
			memcpy(scope, value, sizeof scope);
		js_space(&js);
		if (js.p >= js.end)
			goto bad;
		if (*js.p == '}')
			break;
		if (*js.p != ',')
			goto bad;
		js.p++;
	}
	if (*status == '\0')
		goto bad;
	free(raw);
	summary_add(sum, "status", status);
	summary_add(sum, "schemes", schemes);
	summary_add(sum, "scope", scope);
	*status_r = xstrdup(status);
	*summary_r = xstrdup(sum);
	return 0;

bad:
	free(raw);
	*summary_r = xstrdup("the server's error challenge could not be "
	    "decoded");
	return -1;
}

/* Whether mech is one of the OAuth mechanisms (XOAUTH2, OAUTHBEARER). */
int
sasl_is_oauth(const char *mech)
{
	return strcasecmp(mech, "XOAUTH2") == 0 ||
	    strcasecmp(mech, "OAUTHBEARER") == 0;
}

/* Whether l's initial response may go on p's start line. */
static int
ir_fits(const struct pm_sasl_proto *p, const struct sasl_login *l)
{
	if (l->ir == NULL || !l->server_ir)
		return 0;
	if (p->xoauth2_two_step && strcasecmp(l->mech, "XOAUTH2") == 0)
		return 0;
	if (p->max_line > 0 && strlen(l->mech) + secret_len(l->ir) +
	    p->overhead > p->max_line)
		return 0;
	return 1;
}

/* The answer to a challenge: LOGIN's user, then password; a deferred
 * initial response; an OAuth error challenge noted in *status_r and
 * *summary_r and answered as required (RFC 7628 3.2.3: %x01; XOAUTH2:
 * empty); else "*", which cancels. */
static struct pm_secret *
sasl_answer(const struct sasl_login *l, const char *challenge,
    int *login_step, int *sent_ir, char **status_r, char **summary_r)
{
	if (strcasecmp(l->mech, "LOGIN") == 0) {
		switch ((*login_step)++) {
		case 0:
			return base64_encode_secret(l->user, strlen(l->user));
		case 1:
			if (l->password != NULL)
				return base64_encode_secret(
				    secret_reveal(l->password),
				    secret_len(l->password));
			break;
		}
		return secret_from_str("*");
	}
	if (!*sent_ir && l->ir != NULL) {
		*sent_ir = 1;
		return secret_dup(l->ir);
	}
	if (sasl_is_oauth(l->mech) && *summary_r == NULL) {
		free(*status_r);
		*status_r = NULL;
		sasl_oauth_error(challenge, status_r, summary_r);
		return secret_from_str(strcasecmp(l->mech, "OAUTHBEARER") ==
		    0 ? "AQ==" : "");
	}
	return secret_from_str("*");
}

/* Run one SASL exchange over p (contract in sasl.h). */
int
sasl_exchange(const struct pm_sasl_proto *p, void *ctx,
    const struct sasl_login *l, int *token_refused_r, char **err)
{
	struct pm_secret *resp;
	char *text = NULL, *oauth_status = NULL, *oauth_summary = NULL;
	int r, kind, rounds, sent_ir, login_step = 0;

	*token_refused_r = 0;
	sent_ir = ir_fits(p, l);
	r = p->start(ctx, l->mech, sent_ir ? l->ir : NULL, err);
	for (rounds = 0; r == PM_OK; rounds++) {
		free(text);
		text = NULL;
		if (rounds > SASL_MAX_ROUNDS) {
			r = errf(err, PM_EPROTO, "AUTHENTICATE %s: too many "
			    "challenges from the server", l->mech);
			break;
		}
		if ((r = p->reply(ctx, &kind, &text, err)) != PM_OK)
			break;
		if (kind == PM_SASL_SUCCESS)
			break;
		if (kind == PM_SASL_FAILURE) {
			*token_refused_r = sasl_is_oauth(l->mech);
			r = errf(err, PM_EAUTH, "server refused the %s login "
			    "for %s: %s%s%s%s", l->mech, l->user,
			    text != NULL ? text : "",
			    oauth_summary != NULL ? " (" : "",
			    oauth_summary != NULL ? oauth_summary : "",
			    oauth_summary != NULL ? ")" : "");
			break;
		}
		resp = sasl_answer(l, text != NULL ? text : "", &login_step,
		    &sent_ir, &oauth_status, &oauth_summary);
		r = p->respond(ctx, resp, err);
		secret_free(resp);
	}
	free(text);
	free(oauth_status);
	free(oauth_summary);
	return r;
}
