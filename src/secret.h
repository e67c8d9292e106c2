/* Secrets: passwords, client secrets, tokens, SASL responses.  Their own
 * type so that printing one by mistake does not compile cleanly; the bytes
 * are wiped on free and excluded from core dumps where the kernel allows. */
#ifndef PM_SECRET_H
#define PM_SECRET_H

#include <stddef.h>

#include <pullmail/host.h>

/* A secret shorter than this is not looked for in text to be logged: it
 * would match ordinary words. */
#define SECRET_REDACT_MIN	6

struct pm_secret {
	char *data;	/* NUL-terminated, len bytes before the NUL */
	size_t len;
	/* The registry of live secrets (secret.c); reg_prev NULL: not in. */
	struct pm_secret *reg_next;
	struct pm_secret **reg_prev;
};

/* A new secret, registered for redaction (secret_register). */
struct pm_secret *secret_new(const void *data, size_t len);
struct pm_secret *secret_from_str(const char *s);
struct pm_secret *secret_dup(const struct pm_secret *s);
/* Wipe, take out of the registry and free; NULL is fine. */
void secret_free(struct pm_secret *s);
/* Add s, built by hand with its reg_ fields zero, to the registry of
 * secrets that secret_redact looks for; a no-op when it is in already or
 * shorter than SECRET_REDACT_MIN.  Its bytes must not change afterwards. */
void secret_register(struct pm_secret *s);
/* The bytes, for the few places that must send them. */
const char *secret_reveal(const struct pm_secret *s);
size_t secret_len(const struct pm_secret *s);
/* Overwrite memory that held secret bytes (not optimised away). */
void secret_wipe(void *p, size_t n);
/* Wipe the first n bytes of p, then free it: the one way to release a
 * buffer that held secret bytes; NULL is fine. */
void secret_wipe_free(void *p, size_t n);
/*
 * A copy of text with every live registered secret replaced by
 * "<redacted>", in any form a server or a log may carry it: raw,
 * percent- or form-encoded (%XX in either case, '+' or %20 for a space),
 * with JSON or C escapes, and base64 or base64url, alone or inside a longer
 * blob at any alignment (as in HTTP Basic, whose base64 holds the
 * form-encoded "id:secret"; the whole blob is replaced).  NULL when text
 * holds no secret.
 */
char *secret_redacted(const char *text);
/* The same on a malloc'd string: *text is wiped and replaced when it held
 * a secret.  NULL and *text NULL are fine. */
void secret_redact(char **text);
/*
 * Read fd to its end into a new secret of at most max bytes, not
 * registered for redaction (a file's whole text is not a word to look
 * for).  hint, the size the caller expects (a regular file's st_size, or
 * 0), sets the first buffer; it doubles as more arrives, each old buffer
 * wiped, so a small file neither allocates nor wipes max bytes.  0, or -1
 * with errno (EFBIG: more than max bytes); nothing is left allocated then.
 */
int secret_read_fd(int fd, size_t max, size_t hint, struct pm_secret **s_r);
/* Constant-time comparison; 1 if equal. */
int secret_equal(const struct pm_secret *a, const struct pm_secret *b);

#endif
