/*
 * The delegated flows' token store: per account, the refresh token and the
 * last access token, locked (flock) while read and refreshed, written
 * atomically; the refresh-token grant, and the one line a human gets when
 * only `pullmail authorize` can help.
 *
 * Threads: no state of its own is shared; the token store of an account
 * is locked with flock, which also keeps two threads of one process
 * apart (each opens the lock file itself).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "oauth-int.h"
#include "provider.h"
#include "secret.h"
#include "util.h"


/* What the token store of an account holds. */
struct store {
	struct pm_secret *refresh_token;
	struct pm_secret *access_token;	/* NULL when dropped */
	int64_t obtained_at;
	int64_t expires_at;
};

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
	oauth_json_free(obj);
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
	obj = oauth_json_new();
	oauth_json_set_string(obj, "key", key);
	oauth_json_set_string_len(obj, "refresh_token",
	    secret_reveal(refresh), secret_len(refresh));
	if (access != NULL)
		oauth_json_add_access(obj, access, obtained_at, expires_at,
		    scope);
	free(key);
	rc = oauth_write_json(req->cache_dir, path, obj);
	oauth_json_free(obj);
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

/* Rewrite *err of a refused refresh into the one line for a human. */
static int
human_needed(const struct oauth_request *req, const char *what, char **err)
{
	char *msg;

	msg = xasprintf("a human must act: %s%s%s; run: pullmail authorize %s",
	    what, err != NULL && *err != NULL ? ": " : "",
	    err != NULL && *err != NULL ? *err : "", who(req));
	notify_human(req->notify_command, req->cache_dir,
	    req->account, (unsigned)req->timeout, msg);
	if (err != NULL) {
		free(*err);
		*err = msg;
	} else
		free(msg);
	return PM_EAUTH;
}

/* --- the refresh-token grant ---------------------------------------------- */

/* The scope parameter ("&scope=..."), or "". */
char *
oauth_scope_param(const struct oauth_request *req)
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

/* An access token for a delegated account (contract in oauth-int.h). */
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
	scope = oauth_scope_param(req);
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
		/* The hints of the provider table are for apps; say it for a person. */
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
int
oauth_store_save(const struct oauth_request *req, struct oauth_token *tok,
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
