/*
 * The token module's delegated side: the per-account token store (refresh
 * and access token, locked and written atomically), the refresh-token
 * grant, `pullmail authorize` with the device authorization grant (RFC
 * 8628) or the authorization code grant with PKCE (RFC 7636) and a
 * loopback redirect (RFC 8252), and notify_command for failures a human
 * must fix.  With oauth.c, the only file that uses libcurl or json-c.
 *
 * Threads: no state of its own is shared; the token store of an account
 * is locked with flock, which also keeps two threads of one process
 * apart (each opens the lock file itself).  notify_command and the
 * browser are started with the program found and the environment built
 * before fork(), so the child calls only async-signal-safe functions.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

extern char **environ;

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "notify.h"
#include "oauth.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

#define STORE_MAX_FILE		(256 * 1024)
#define STORE_MARGIN		300	/* seconds left at reuse */
#define DEVICE_DEFAULT_INTERVAL	5
#define DEVICE_MAX_INTERVAL	60
#define REDIRECT_WAIT		600	/* seconds for the human */
#define REDIRECT_MAX_REQUEST	8192
#define DEVICE_GRANT \
	"urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"


/* What the token store of an account holds. */
struct store {
	struct pm_secret *refresh_token;
	struct pm_secret *access_token;	/* NULL when dropped */
	int64_t obtained_at;
	int64_t expires_at;
};

/* The account name for messages. */
static const char *
who(const struct oauth_request *req)
{
	return req->account != NULL ? req->account : "oauth";
}

/* "<token url>\n<client id>": the authorization a store belongs to. */
static char *
store_key(const struct oauth_request *req)
{
	return xasprintf("%s\n%s", req->token_url, req->client_id);
}

/* The store of req's account: DIR/delegated-HASH.json. */
char *
oauth_store_path(const struct oauth_request *req)
{
	char hash[17];

	if (req->cache_dir == NULL || *req->cache_dir == '\0' ||
	    req->account == NULL)
		return NULL;
	hash_hex(req->account, hash);
	return xasprintf("%s/delegated-%s.json", req->cache_dir, hash);
}

/* Free the secrets of st and zero it. */
static void
store_clear(struct store *st)
{
	secret_free(st->refresh_token);
	secret_free(st->access_token);
	memset(st, 0, sizeof *st);
}

/*
 * Read the store at path into st.  0 when it holds a refresh token for
 * req's token URL and client; -1 when it is missing, foreign or corrupt
 * (*why says which).
 */
static int
store_read(const struct oauth_request *req, const char *path,
    struct store *st, const char **why)
{
	struct json_object *obj;
	const char *key, *rt, *at;
	char *data, *want;
	size_t len;
	int bad = 0, rc = -1;

	memset(st, 0, sizeof *st);
	if (read_small_file(path, STORE_MAX_FILE, &data, &len) < 0) {
		*why = errno == ENOENT ? "no authorization is stored" :
		    "the token store cannot be read";
		return -1;
	}
	obj = oauth_parse_object(data, len, why);
	secret_wipe(data, len);
	free(data);
	if (obj == NULL) {
		*why = "the token store is corrupt";
		return -1;
	}
	want = store_key(req);
	key = oauth_get_string(obj, "key", &bad);
	rt = oauth_get_string(obj, "refresh_token", &bad);
	at = oauth_get_string(obj, "access_token", &bad);
	if (bad || key == NULL || rt == NULL ||
	    !oauth_token_ok(rt, strlen(rt)))
		*why = "the token store is corrupt";
	else if (strcmp(key, want) != 0)
		*why = "the stored authorization is for another token URL or "
		    "client ID";
	else {
		st->refresh_token = secret_from_str(rt);
		if (at != NULL && oauth_token_ok(at, strlen(at)) &&
		    oauth_get_int64(obj, "expires_at", &st->expires_at) == 0)
			st->access_token = secret_from_str(at);
		if (oauth_get_int64(obj, "obtained_at", &st->obtained_at) < 0)
			st->obtained_at = 0;
		rc = 0;
	}
	free(want);
	json_object_put(obj);
	return rc;
}

/* Write the store atomically; access and scope may be NULL.  0 or -1. */
static int
store_write(const struct oauth_request *req, const char *path,
    const struct pm_secret *refresh, const struct pm_secret *access,
    time_t obtained_at, time_t expires_at, const char *scope)
{
	struct json_object *obj;
	char *key;
	int rc;

	if (mkdir_p(req->cache_dir, 0700) < 0) {
		log_warn("%s: cannot create %s", who(req), req->cache_dir);
		return -1;
	}
	key = store_key(req);
	obj = json_object_new_object();
	json_object_object_add(obj, "key", json_object_new_string(key));
	json_object_object_add(obj, "refresh_token",
	    json_object_new_string_len(secret_reveal(refresh),
	    (int)secret_len(refresh)));
	if (access != NULL)
		oauth_json_add_access(obj, access, obtained_at, expires_at,
		    scope);
	free(key);
	rc = oauth_write_json(req->cache_dir, path, obj);
	json_object_put(obj);
	return rc;
}

/* Whether a stored access token is good for a while yet. */
static int
store_fresh(const struct store *st, time_t now)
{
	int64_t life, margin = STORE_MARGIN;

	if (st->access_token == NULL)
		return 0;
	life = st->obtained_at > 0 ? st->expires_at - st->obtained_at : 0;
	if (life > 0 && life / 2 < margin)
		margin = life / 2;
	return st->expires_at - (int64_t)now >= margin;
}

/* --- a human must act ----------------------------------------------------- */

/* Rewrite *err of a refused refresh into the one line for a human. */
static int
human_needed(const struct oauth_request *req, const char *what, char **err)
{
	char *msg;

	msg = xasprintf("a human must act: %s%s%s; run: pullmail authorize %s",
	    what, err != NULL && *err != NULL ? ": " : "",
	    err != NULL && *err != NULL ? *err : "", who(req));
	notify_human(req->notify_command, req->cache_dir, req->account,
	    (unsigned)req->timeout, msg);
	if (err != NULL) {
		free(*err);
		*err = msg;
	} else
		free(msg);
	return PM_EAUTH;
}

/* --- the refresh-token grant ---------------------------------------------- */

/* The scope parameter ("&scope=..."), or "". */
static char *
scope_param(const struct oauth_request *req)
{
	char *enc, *p;

	if (req->scope == NULL || *req->scope == '\0')
		return xstrdup("");
	enc = oauth_form_encode(req->scope, strlen(req->scope));
	p = xasprintf("&scope=%s", enc);
	free(enc);
	return p;
}

/* The account's token store path (*path_r, malloc'd), its directory
 * created, and the store's lock held (*lock_r).  On failure nothing is
 * left to free. */
static int
store_lock(const struct oauth_request *req, char **path_r, int *lock_r,
    char **err)
{
	char *path;
	int rc;

	if ((path = oauth_store_path(req)) == NULL)
		return errf(err, PM_ECONFIG, "no state directory for the "
		    "token store");
	if (mkdir_p(req->cache_dir, 0700) < 0) {
		rc = errf(err, PM_ETEMP, "cannot create %s: %s",
		    req->cache_dir, pm_strerror(errno));
		free(path);
		return rc;
	}
	if ((rc = oauth_lock(req, path, lock_r, err)) != PM_OK) {
		free(path);
		return rc;
	}
	*path_r = path;
	return PM_OK;
}

/* An access token for a delegated account (contract in oauth.h). */
int
oauth_delegated_token(const struct oauth_request *req,
    struct pm_secret **token_r, int *cached_r, char **err)
{
	struct oauth_token tok;
	struct store st;
	const char *why;
	const struct pm_secret *rt;
	const char *hint;
	char *path, *enc, *scope, *grant;
	time_t now;
	int lock, rc;

	/* Held until the refreshed tokens are saved: a second process waits
	 * here and then finds a fresh access token in the store. */
	if ((rc = store_lock(req, &path, &lock, err)) != PM_OK)
		return rc;
	if (store_read(req, path, &st, &why) < 0) {
		oauth_unlock(lock);
		free(path);
		return human_needed(req, why, err);
	}
	now = time(NULL);
	if (store_fresh(&st, now)) {
		*token_r = st.access_token;
		st.access_token = NULL;
		if (cached_r != NULL)
			*cached_r = 1;
		log_debug("oauth", "%s: using the stored access token",
		    who(req));
		goto done;
	}

	enc = oauth_form_encode(secret_reveal(st.refresh_token),
	    secret_len(st.refresh_token));
	scope = scope_param(req);
	grant = xasprintf("grant_type=refresh_token&refresh_token=%s%s", enc,
	    scope);
	oauth_free_wiped(enc);
	free(scope);
	log_debug("oauth", "%s: refreshing the access token", who(req));
	rc = oauth_exchange(req, grant, &tok, err);
	oauth_free_wiped(grant);
	if (rc == PM_OK) {
		/* Save a rotated refresh token before anything uses the new
		 * access token: the old one is void from now on. */
		rt = tok.refresh_token != NULL ? tok.refresh_token :
		    st.refresh_token;
		if (store_write(req, path, rt, tok.access_token, now,
		    tok.expires_at, tok.scope) < 0) {
			rc = errf(err, PM_ETEMP, "cannot save the %srefresh "
			    "token in %s; the new access token is not used",
			    tok.refresh_token != NULL ? "rotated " : "", path);
		} else {
			log_info("%s: refreshed the access token, valid for "
			    "%lld s%s", who(req),
			    (long long)(tok.expires_at - now),
			    tok.refresh_token != NULL ?
			    " (new refresh token saved)" : "");
			*token_r = tok.access_token;
			tok.access_token = NULL;
		}
	} else if (rc == PM_EAUTH) {
		/* The hints of oauth.c are for apps; say it for a person. */
		hint = oauth_error_hint(NULL, tok.error_description);
		free(*err);
		*err = xasprintf("%s%s%s%s%s", tok.error != NULL ? tok.error :
		    "refused", tok.error_description != NULL ? ": " : "",
		    tok.error_description != NULL ? tok.error_description : "",
		    hint != NULL ? "; " : "", hint != NULL ? hint : "");
		rc = human_needed(req, "the authorization server refused the "
		    "stored refresh token", err);
	} else {
		/* The endpoint is down, but the old token still works. */
		if (rc == PM_ETEMP && st.access_token != NULL &&
		    st.expires_at > (int64_t)now + 30) {
			log_warnx("%s: %s; using the stored access token, "
			    "valid for %lld s more", who(req), *err,
			    (long long)(st.expires_at - (int64_t)now));
			free(*err);
			*err = NULL;
			*token_r = st.access_token;
			st.access_token = NULL;
			if (cached_r != NULL)
				*cached_r = 1;
			rc = PM_OK;
		}
	}
	oauth_token_clear(&tok);
	if (rc != PM_OK) {
		store_clear(&st);
		oauth_unlock(lock);
		free(path);
		return rc;
	}
done:
	notify_reset(req->cache_dir, req->account);
	store_clear(&st);
	oauth_unlock(lock);
	free(path);
	return PM_OK;
}

/* Drop the stored access token, keeping the refresh token. */
void
oauth_delegated_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused)
{
	struct store st;
	const char *why;
	char *path, *err = NULL;
	int lock;

	if ((path = oauth_store_path(req)) == NULL)
		return;
	/* Without the lock a rewrite could undo a concurrent rotation. */
	if (oauth_lock(req, path, &lock, &err) != PM_OK) {
		log_warnx("%s; the stored access token is kept", err);
		free(err);
		free(path);
		return;
	}
	if (store_read(req, path, &st, &why) == 0 && st.access_token != NULL &&
	    refused != NULL && !secret_equal(st.access_token, refused))
		log_debug("oauth", "%s: the store holds a newer access token",
		    who(req));
	else if (st.access_token != NULL &&
	    store_write(req, path, st.refresh_token, NULL, 0, 0, NULL) == 0)
		log_debug("oauth", "%s: dropped the stored access token",
		    who(req));
	store_clear(&st);
	oauth_unlock(lock);
	free(path);
}

/* Save what `pullmail authorize` obtained. */
static int
authorize_save(const struct oauth_request *req, struct oauth_token *tok,
    char **err)
{
	char *path;
	int lock, rc = PM_OK;

	if (tok->refresh_token == NULL)
		return errf(err, PM_EAUTH, "the authorization server issued "
		    "no refresh token (does oauth_scope need offline_access?)");
	if ((rc = store_lock(req, &path, &lock, err)) != PM_OK)
		return rc;
	if (store_write(req, path, tok->refresh_token, tok->access_token,
	    time(NULL), tok->expires_at, tok->scope) < 0)
		rc = errf(err, PM_ETEMP, "cannot write %s", path);
	oauth_unlock(lock);
	if (rc == PM_OK) {
		notify_reset(req->cache_dir, req->account);
		printf("%s: authorized; the refresh token is stored in %s\n",
		    who(req), path);
		fflush(stdout);
	}
	free(path);
	return rc;
}

/* --- device authorization grant (RFC 8628) -------------------------------- */

/* An integer member given as a number (or a string of digits). */
static long
get_long(struct json_object *obj, const char *key, long dflt)
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

/* Ask the device authorization endpoint for a user code; print it. */
static int
device_start(const struct oauth_request *req, char **device_code_r,
    long *interval_r, time_t *deadline_r, char **err)
{
	struct http_reply reply;
	struct json_object *obj;
	const char *why, *dc, *uc, *uri, *msg, *error, *desc;
	char *grant, *c1, *c2, *c3;
	long status;
	int bad = 0, rc;

	grant = scope_param(req);
	/* Drop the leading '&': this body has no grant_type. */
	rc = oauth_http_post(req, req->device_url, *grant == '&' ? grant + 1 :
	    grant, &reply, err);
	free(grant);
	if (rc != PM_OK)
		return rc;
	obj = oauth_parse_object(reply.body != NULL ? reply.body : "",
	    reply.len, &why);
	status = reply.status;
	oauth_reply_free(&reply);
	if (obj == NULL)
		return errf(err, status >= 500 ? PM_ETEMP : PM_EPROTO,
		    "%s answered HTTP %ld without usable JSON (%s)",
		    req->device_url, status, why);
	error = oauth_get_string(obj, "error", &bad);
	if (error != NULL) {
		desc = oauth_get_string(obj, "error_description", &bad);
		c1 = oauth_clean_text(error, 64);
		c2 = desc != NULL ? oauth_clean_text(desc, 300) : NULL;
		rc = errf(err, status >= 500 ? PM_ETEMP : PM_EAUTH,
		    "device authorization refused: %s%s%s (hint: %s)", c1,
		    c2 != NULL ? ": " : "", c2 != NULL ? c2 : "",
		    oauth_error_hint(error, desc) != NULL ?
		    oauth_error_hint(error, desc) : "check oauth_client_id, "
		    "oauth_scope and that the app allows public client flows");
		free(c1);
		free(c2);
		json_object_put(obj);
		return rc;
	}
	dc = oauth_get_string(obj, "device_code", &bad);
	uc = oauth_get_string(obj, "user_code", &bad);
	uri = oauth_get_string(obj, "verification_uri", &bad);
	if (uri == NULL)	/* Google's older name */
		uri = oauth_get_string(obj, "verification_url", &bad);
	msg = oauth_get_string(obj, "message", &bad);
	if (bad || dc == NULL || !oauth_token_ok(dc, strlen(dc)) ||
	    uc == NULL || uri == NULL) {
		json_object_put(obj);
		return errf(err, PM_EPROTO, "%s: malformed device "
		    "authorization response", req->device_url);
	}
	c1 = oauth_clean_text(uri, 512);
	c2 = oauth_clean_text(uc, 64);
	printf("To authorize pullmail for %s, open %s and enter the code "
	    "%s\n", who(req), c1, c2);
	if (msg != NULL) {
		c3 = oauth_clean_text(msg, 512);
		printf("%s\n", c3);
		free(c3);
	}
	printf("Waiting for the authorization...\n");
	fflush(stdout);
	free(c1);
	free(c2);
	*device_code_r = xstrdup(dc);
	*interval_r = get_long(obj, "interval", DEVICE_DEFAULT_INTERVAL);
	*deadline_r = time(NULL) + get_long(obj, "expires_in", 900);
	json_object_put(obj);
	return PM_OK;
}

/* The device flow: user code, then poll the token endpoint. */
static int
authorize_device(const struct oauth_request *req, char **err)
{
	struct oauth_token tok;
	char *dc = NULL, *enc, *grant;
	long interval = DEVICE_DEFAULT_INTERVAL;
	time_t deadline = 0;
	int rc;

	if (req->device_url == NULL)
		return errf(err, PM_ECONFIG, "no device authorization "
		    "endpoint: set oauth_device_url");
	rc = device_start(req, &dc, &interval, &deadline, err);
	if (rc != PM_OK)
		return rc;
	enc = oauth_form_encode(dc, strlen(dc));
	oauth_free_wiped(dc);
	grant = xasprintf("grant_type=%s&device_code=%s", DEVICE_GRANT, enc);
	oauth_free_wiped(enc);
	for (;;) {
		if (time(NULL) + interval > deadline) {
			rc = errf(err, PM_EAUTH, "the code expired before the "
			    "authorization was completed; run pullmail "
			    "authorize %s again", who(req));
			break;
		}
		oauth_sleep_ms(interval * 1000L);
		rc = oauth_exchange(req, grant, &tok, err);
		if (rc == PM_OK) {
			rc = authorize_save(req, &tok, err);
			oauth_token_clear(&tok);
			break;
		}
		if (rc == PM_EAUTH && tok.error != NULL &&
		    (strcmp(tok.error, "authorization_pending") == 0 ||
		    strcmp(tok.error, "slow_down") == 0)) {
			if (strcmp(tok.error, "slow_down") == 0 &&
			    interval < DEVICE_MAX_INTERVAL)
				interval += 5;
			log_debug("oauth", "%s: %s, polling every %ld s",
			    who(req), tok.error, interval);
			oauth_token_clear(&tok);
			free(*err);
			*err = NULL;
			continue;
		}
		if (rc == PM_ETEMP) {
			log_warnx("%s: %s; still polling", who(req), *err);
			oauth_token_clear(&tok);
			free(*err);
			*err = NULL;
			continue;
		}
		if (rc == PM_EAUTH && tok.error != NULL &&
		    strcmp(tok.error, "access_denied") == 0) {
			free(*err);
			*err = NULL;
			rc = errf(err, PM_EAUTH, "the authorization was "
			    "denied at the sign-in page");
		} else if (rc == PM_EAUTH && tok.error != NULL &&
		    strcmp(tok.error, "expired_token") == 0) {
			free(*err);
			*err = NULL;
			rc = errf(err, PM_EAUTH, "the code expired before the "
			    "authorization was completed; run pullmail "
			    "authorize %s again", who(req));
		}
		oauth_token_clear(&tok);
		break;
	}
	oauth_free_wiped(grant);
	return rc;
}

/* --- authorization code with PKCE and a loopback redirect ----------------- */

/* Decode %XX and '+' in place. */
static void
url_decode(char *s)
{
	char *o = s, hex[3] = { 0, 0, 0 };

	for (; *s != '\0'; s++) {
		if (*s == '+')
			*o++ = ' ';
		else if (*s == '%' && s[1] != '\0' && s[2] != '\0' &&
		    strchr("0123456789abcdefABCDEF", s[1]) != NULL &&
		    strchr("0123456789abcdefABCDEF", s[2]) != NULL) {
			hex[0] = s[1];
			hex[1] = s[2];
			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

/* The value of name in query (decoded, malloc'd), or NULL. */
static char *
query_get(const char *query, const char *name)
{
	size_t n = strlen(name), len;
	const char *p = query, *end;
	char *v;

	while (p != NULL && *p != '\0') {
		end = strchr(p, '&');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			v = xstrndup(p + n + 1, len - n - 1);
			url_decode(v);
			return v;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* Answer the browser and close the connection. */
static void
http_answer(int fd, int status, const char *text)
{
	char *resp;

	resp = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n"
	    "Cache-Control: no-store\r\n\r\n%s", status, status == 200 ? "OK" :
	    status == 400 ? "Bad Request" : "Not Found", strlen(text), text);
	(void)write_full(fd, resp, strlen(resp));
	free(resp);
	close(fd);
}

/* Read a request head from fd (at most a few KiB, 10 s); NULL on failure. */
static char *
read_head(int fd)
{
	struct pollfd pfd;
	char *buf = xmalloc(REDIRECT_MAX_REQUEST + 1);
	size_t len = 0;
	ssize_t n;

	while (len < REDIRECT_MAX_REQUEST) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		n = read(fd, buf + len, REDIRECT_MAX_REQUEST - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL ||
		    strstr(buf, "\n\n") != NULL)
			return buf;
	}
	free(buf);
	return NULL;
}

/* A listening socket on 127.0.0.1:port (0: any) in *fd_r, its port in
 * *port_r. */
static int
listen_loopback(unsigned port, int *fd_r, unsigned *port_r, char **err)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errf(err, PM_ETEMP, "socket: %s", pm_strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		close(fd);
		return errf(err, port != 0 ? PM_ECONFIG : PM_ETEMP,
		    "cannot listen on 127.0.0.1:%u: %s", port,
		    pm_strerror(errno));
	}
	*port_r = ntohs(sin.sin_port);
	*fd_r = fd;
	return PM_OK;
}

/* Open url in a browser when there is a graphical session (no shell). */
static void
open_browser(const char *url)
{
	char *av[3], *path;
	pid_t pid;
	int fd;

	if (getenv("DISPLAY") == NULL && getenv("WAYLAND_DISPLAY") == NULL)
		return;
	if ((path = exec_resolve("xdg-open")) == NULL)
		return;
	av[0] = "xdg-open";
	av[1] = (char *)url;
	av[2] = NULL;
	pid = fork();
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execve(path, av, environ);
		_exit(127);
	}
	free(path);
	/* Not waited for: xdg-open returns at once; init reaps it. */
}

/* The authorization URL with all its parameters. */
static char *
authorize_url(const struct oauth_request *req, const char *redirect,
    const char *state, const char *challenge)
{
	char *id, *red, *scope, *url;

	id = oauth_form_encode(req->client_id, strlen(req->client_id));
	red = oauth_form_encode(redirect, strlen(redirect));
	scope = req->scope != NULL ? oauth_form_encode(req->scope,
	    strlen(req->scope)) : xstrdup("");
	url = xasprintf("%s%cresponse_type=code&client_id=%s&redirect_uri=%s"
	    "%s%s&state=%s&code_challenge=%s&code_challenge_method=S256",
	    req->authorize_url, strchr(req->authorize_url, '?') != NULL ?
	    '&' : '?', id, red, *scope != '\0' ? "&scope=" : "", scope, state,
	    challenge);
	free(id);
	free(red);
	free(scope);
	return url;
}

/* Wait for the redirect carrying the code; exchange it. */
static int
redirect_wait(const struct oauth_request *req, int lfd, const char *redirect,
    const char *state, const char *verifier, char **err)
{
	struct oauth_token tok;
	struct pollfd pfd;
	time_t deadline = time(NULL) + REDIRECT_WAIT;
	char *head, *path, *q, *sp, *code, *got_state, *error, *grant;
	char *ecode, *ered, *ever, *c;
	int fd, rc;

	for (;;) {
		if (time(NULL) >= deadline)
			return errf(err, PM_EAUTH, "no redirect arrived within "
			    "%d s; run pullmail authorize %s again",
			    REDIRECT_WAIT, who(req));
		pfd.fd = lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		if ((head = read_head(fd)) == NULL) {
			close(fd);
			continue;
		}
		if (strncmp(head, "GET ", 4) != 0 ||
		    (sp = strchr(head + 4, ' ')) == NULL) {
			http_answer(fd, 400, "pullmail: not a GET request\n");
			free(head);
			continue;
		}
		*sp = '\0';
		path = head + 4;
		q = strchr(path, '?');
		if (q != NULL)
			*q++ = '\0';
		if (strcmp(path, "/") != 0 || q == NULL) {
			http_answer(fd, 404, "pullmail: nothing here\n");
			free(head);
			continue;
		}
		got_state = query_get(q, "state");
		code = query_get(q, "code");
		error = query_get(q, "error");
		free(head);
		if (got_state == NULL || strcmp(got_state, state) != 0) {
			log_warnx("%s: refused a redirect whose state does "
			    "not match this authorization (forged or stale)",
			    who(req));
			http_answer(fd, 400, "pullmail: the state does not "
			    "match this authorization; refused\n");
			free(got_state);
			oauth_free_wiped(code);
			free(error);
			continue;
		}
		free(got_state);
		if (error != NULL || code == NULL) {
			c = oauth_clean_text(error != NULL ? error : "no code",
			    64);
			http_answer(fd, 200, "pullmail: the authorization "
			    "failed\n");
			rc = errf(err, PM_EAUTH, "the authorization server "
			    "redirected with error %s", c);
			free(c);
			free(error);
			oauth_free_wiped(code);
			return rc;
		}
		ecode = oauth_form_encode(code, strlen(code));
		ered = oauth_form_encode(redirect, strlen(redirect));
		ever = oauth_form_encode(verifier, strlen(verifier));
		grant = xasprintf("grant_type=authorization_code&code=%s"
		    "&redirect_uri=%s&code_verifier=%s", ecode, ered, ever);
		oauth_free_wiped(code);
		oauth_free_wiped(ecode);
		oauth_free_wiped(ever);
		free(ered);
		rc = oauth_exchange(req, grant, &tok, err);
		oauth_free_wiped(grant);
		if (rc == PM_OK)
			rc = authorize_save(req, &tok, err);
		oauth_token_clear(&tok);
		http_answer(fd, 200, rc == PM_OK ? "pullmail is authorized; "
		    "you may close this window.\n" : "pullmail: the code "
		    "exchange failed; see pullmail's output.\n");
		return rc;
	}
}

/* The authorization code flow with PKCE and the loopback listener. */
static int
authorize_code(const struct oauth_request *req, char **err)
{
	unsigned char digest[CRYPTO_SHA256_LEN];
	char *verifier, *state, *challenge, *redirect, *url;
	unsigned port = 0;
	int lfd = -1, rc;

	if (req->authorize_url == NULL)
		return errf(err, PM_ECONFIG, "no authorization endpoint: set "
		    "oauth_authorize_url");
	verifier = crypto_random_string(32);
	state = crypto_random_string(16);
	if (verifier == NULL || state == NULL ||
	    crypto_sha256(verifier, strlen(verifier), digest) < 0) {
		oauth_free_wiped(verifier);
		free(state);
		return errf(err, PM_EINTERNAL, "no random bytes");
	}
	challenge = crypto_base64url(digest, sizeof digest);
	rc = listen_loopback(req->redirect_port, &lfd, &port, err);
	if (rc != PM_OK) {
		oauth_free_wiped(verifier);
		free(state);
		free(challenge);
		return rc;
	}
	redirect = xasprintf("http://127.0.0.1:%u/", port);
	url = authorize_url(req, redirect, state, challenge);
	printf("To authorize pullmail for %s, open this URL in a browser:\n"
	    "%s\nWaiting for the redirect to %s ...\n", who(req), url,
	    redirect);
	fflush(stdout);
	open_browser(url);
	rc = redirect_wait(req, lfd, redirect, state, verifier, err);
	close(lfd);
	oauth_free_wiped(verifier);
	free(state);
	free(challenge);
	free(redirect);
	free(url);
	return rc;
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
		return authorize_device(req, err);
	case OAUTH_FLOW_AUTH_CODE:
		return authorize_code(req, err);
	default:
		return errf(err, PM_ECONFIG, "%s uses the client-credentials "
		    "grant, which needs no authorization; set oauth_flow = "
		    "device or authorization_code for a delegated login",
		    who(req));
	}
}

/* --- pullmail token ACCOUNT --info ---------------------------------------- */

/* Decode base64url (padding optional); malloc'd, NUL-terminated, or NULL. */
static char *
base64url_decode(const char *s, size_t n, size_t *len_r)
{
	unsigned v = 0;
	size_t i, o = 0;
	int bits = 0, c;
	char *out;

	out = xmalloc(n * 3 / 4 + 2);
	for (i = 0; i < n && s[i] != '='; i++) {
		c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c -= 'A';
		else if (c >= 'a' && c <= 'z')
			c = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			c = c - '0' + 52;
		else if (c == '-' || c == '+')
			c = 62;
		else if (c == '_' || c == '/')
			c = 63;
		else {
			free(out);
			return NULL;
		}
		v = (v << 6) | (unsigned)c;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

/* A claim as text (string, number, or array of strings joined by ' '). */
static char *
claim_text(struct json_object *obj, const char *key)
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
	char *payload, *v, *aud, *scp, *roles, *upn, *want, *iss;
	size_t len, i;
	int warnings = 0, ms;

	d1 = strchr(token, '.');
	d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
	if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL) {
		printf("  format: opaque (not a JWT): no claims to show\n");
		return 0;
	}
	payload = base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &len);
	obj = payload != NULL ? oauth_parse_object(payload, len, &why) : NULL;
	free(payload);
	if (obj == NULL) {
		printf("  format: looks like a JWT but its claims do not "
		    "decode\n");
		return 0;
	}
	printf("  format: JWT\n");
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if ((v = claim_text(obj, keys[i])) != NULL)
			printf("  %s: %s\n", keys[i], v);
		free(v);
	}
	iss = claim_text(obj, "iss");
	ms = list_has(iss, "sts.windows.net") ||
	    list_has(iss, "login.microsoftonline");
	free(iss);
	aud = claim_text(obj, "aud");
	scp = claim_text(obj, "scp");
	roles = claim_text(obj, "roles");
	upn = claim_text(obj, "upn");
	if (upn == NULL)
		upn = claim_text(obj, "preferred_username");
	if (ms && aud != NULL && !list_has(aud, "outlook.office") &&
	    !list_has(aud, "00000002-0000-0ff1-ce00-000000000000")) {
		printf("  warning: the audience is not Exchange Online "
		    "(https://outlook.office365.com); check oauth_scope\n");
		warnings++;
	}
	want = xstrdup(strcmp(proto, "pop3") == 0 ? "POP." : "IMAP.");
	if (ms && (scp != NULL || roles != NULL) && !list_has(scp, want) &&
	    !list_has(roles, want)) {
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
	free(want);
	free(aud);
	free(scp);
	free(roles);
	free(upn);
	json_object_put(obj);
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
			json_object_put(obj);
			obj = NULL;
		}
		secret_free(rec);
		bad = 0;
		if (obj != NULL) {
			(void)oauth_get_int64(obj, "expires_at", exp_r);
			scope = oauth_get_string(obj, "scope", &bad);
			if (scope != NULL && !bad)
				*scope_r = oauth_clean_text(scope, 1000);
			json_object_put(obj);
		}
		secret_wipe(data, len);
		free(data);
	}
	free(path);
}

/* When token, which oauth_get_token() gave for req, expires (contract in
 * oauth.h). */
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

/* `pullmail token ACCOUNT --info` (contract in oauth.h). */
int
oauth_token_info(const struct oauth_request *req, const char *user,
    const char *proto, char **err)
{
	struct pm_secret *token = NULL;
	int64_t exp;
	time_t now;
	char *granted;
	int cached = 0, rc, warnings;

	rc = oauth_get_token(req, &token, &cached, err);
	if (rc != PM_OK)
		return rc;
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
	secret_free(token);
	fflush(stdout);
	return warnings > 0 ? errf(err, PM_EAUTH, "the token cannot fit "
	    "this account (%d warning%s above)", warnings, warnings == 1 ?
	    "" : "s") : PM_OK;
}

/* --- OpenID discovery ----------------------------------------------------- */

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

/* OpenID discovery (contract in oauth.h). */
int
oauth_discover(struct account *a, char **err)
{
	struct oauth_request req;
	struct http_reply reply;
	struct json_object *obj;
	const char *why, *iss;
	char *url;
	size_t n, m;
	int bad = 0, rc;

	if (a->oauth_issuer == NULL ||
	    (a->oauth_token_url != NULL && (a->oauth_flow !=
	    OAUTH_FLOW_DEVICE || a->oauth_device_url != NULL) &&
	    (a->oauth_flow != OAUTH_FLOW_AUTH_CODE ||
	    a->oauth_authorize_url != NULL)))
		return PM_OK;
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
	    &a->oauth_token_url, err)) != PM_OK ||
	    (rc = discovered(obj, url, "device_authorization_endpoint",
	    &a->oauth_device_url, err)) != PM_OK ||
	    (rc = discovered(obj, url, "authorization_endpoint",
	    &a->oauth_authorize_url, err)) != PM_OK)
		;
	else if (a->oauth_token_url == NULL)
		rc = errf(err, PM_ECONFIG, "OpenID discovery at %s: no "
		    "token endpoint; set oauth_token_url", url);
	else if (a->oauth_flow == OAUTH_FLOW_DEVICE &&
	    a->oauth_device_url == NULL)
		rc = errf(err, PM_ECONFIG, "the issuer offers no device flow; "
		    "set oauth_flow = authorization_code");
	else if (a->oauth_flow == OAUTH_FLOW_AUTH_CODE &&
	    a->oauth_authorize_url == NULL)
		rc = errf(err, PM_ECONFIG, "the issuer has no authorization "
		    "endpoint");
	else
		log_debug("oauth", "%s: discovered token endpoint %s",
		    a->name, a->oauth_token_url);
	json_object_put(obj);
	free(url);
	return rc;
}
