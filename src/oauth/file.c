/*
 * The token module's files: the access-token fields shared by the cache
 * and the delegated store, atomic writes (0600 temp file, fsync, rename,
 * fsync of the directory) and the flock next to each file.  The temp files
 * carry a process-wide counter besides the PID, so two threads never
 * write the same one.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* The access token fields shared by the cache and the delegated store. */
void
oauth_json_add_access(struct json_object *obj, const struct pm_secret *access,
    time_t obtained_at, time_t expires_at, const char *scope)
{
	oauth_json_set_string_len(obj, "access_token", secret_reveal(access),
	    secret_len(access));
	oauth_json_set_int64(obj, "obtained_at", (int64_t)obtained_at);
	oauth_json_set_int64(obj, "expires_at", (int64_t)expires_at);
	if (scope != NULL)
		oauth_json_set_string(obj, "scope", scope);
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

	text = oauth_json_text(obj);

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
