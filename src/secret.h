/* Secrets: passwords, client secrets, tokens, SASL responses.  Their own
 * type so that printing one by mistake does not compile cleanly; the bytes
 * are wiped on free and excluded from core dumps where the kernel allows. */
#ifndef PM_SECRET_H
#define PM_SECRET_H

#include <stddef.h>

#include <pullmail/host.h>

struct pm_secret {
	char *data;	/* NUL-terminated, len bytes before the NUL */
	size_t len;
};

struct pm_secret *secret_new(const void *data, size_t len);
struct pm_secret *secret_from_str(const char *s);
struct pm_secret *secret_dup(const struct pm_secret *s);
/* Wipe and free; NULL is fine. */
void secret_free(struct pm_secret *s);
/* The bytes, for the few places that must send them. */
const char *secret_reveal(const struct pm_secret *s);
size_t secret_len(const struct pm_secret *s);
/* Overwrite memory that held secret bytes (not optimised away). */
void secret_wipe(void *p, size_t n);
/* Constant-time comparison; 1 if equal. */
int secret_equal(const struct pm_secret *a, const struct pm_secret *b);

#endif
