/*
 * Client-credentials tokens: the per-app cache file (keyed by token URL,
 * client id and scope, so every mailbox of one app shares a token) and one
 * fetch per app at a time within the process.
 *
 * Threads: the tokens of one app are got through an app_slot in app_slots,
 * guarded by app_lock: the first thread that needs a token reads the cache
 * or fetches, the others that ask meanwhile wait on the slot's condition
 * and take its result, so one request goes to the token endpoint however
 * many mailboxes need the token at once.  Across processes the flock on
 * the cache file's lock does the same; oauth_app_invalidate leaves a cache
 * that holds a newer token than the refused one, so N refused mailboxes
 * make one new request, not N.
 */
#include "autoconf.h"

#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
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
#include "secret.h"
#include "util.h"


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
	oauth_json_free(obj);
	return token;
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
	obj = oauth_json_new();
	oauth_json_set_string(obj, "key", key);
	oauth_json_add_access(obj, token, obtained_at, expires_at, scope);
	free(key);
	oauth_write_json(req->cache_dir, path, obj);
	oauth_json_free(obj);
}

/* Remove the cache file of req, under the cache lock, unless it no longer
 * holds the refused token (contract in oauth-int.h). */
void
oauth_app_invalidate(const struct oauth_request *req,
    const struct pm_secret *refused)
{
	struct pm_secret *cur;
	char *path, *err = NULL;
	int fd;

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
void
oauth_app_free(void)
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
int
oauth_app_token(const struct oauth_request *req, struct pm_secret **token_r,
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
