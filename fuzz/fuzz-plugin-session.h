/*
 * The body of the session fuzz targets (fuzz-imap-session.c,
 * fuzz-pop3-session.c): a plugin's slots driven as the fetch engine drives
 * them, against the tests' mock host, with the input as everything the
 * server says.  The first input byte picks how many bytes each read of the
 * body hands out (1 to 64, or 64 KiB), STARTTLS or implicit TLS, and
 * whether the messages are deleted or flagged seen afterwards.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/plugin.h>

#include "mock-host.h"

extern const struct pm_plugin pullmail_plugin;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FETCH_MAX 64	/* messages fetched at most */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pm_plugin *p = &pullmail_plugin;
	const struct pm_entry *ents;
	struct pm_conn *conn = NULL;
	struct pm_folder folder;
	size_t idx[FUZZ_FETCH_MAX], n, i;
	unsigned char done[FUZZ_FETCH_MAX];
	char *script, *err = NULL;
	int have, mode;

	if (size < 1)
		return 0;
	mode = data[0];
	script = malloc(size);
	if (script == NULL)
		abort();
	memcpy(script, data + 1, size - 1);
	script[size - 1] = '\0';
	mock_reset(script, FUZZ_PORT);
	M.inlen = size - 1;	/* NUL bytes included */
	M.chunk = (mode & 0x3f) == 0x3f ? 65536 : (size_t)(mode & 0x3f) + 1;
	if (mode & 0x40)
		M.acct.tls = PM_TLS_STARTTLS;
	M.acct.xoauth2_two_step = (mode & 0x80) != 0;

	memset(&folder, 0, sizeof folder);
	if (p->open(&mock_host, (struct pm_session *)&M, &conn, &err) != PM_OK)
		goto out;
	if (p->select(conn, FUZZ_FOLDER, &folder, &err) != PM_OK ||
	    p->list(conn, &ents, &n, &have, &err) != PM_OK)
		goto close;
	if (n > FUZZ_FETCH_MAX)
		n = FUZZ_FETCH_MAX;
	for (i = 0; i < n; i++)
		idx[i] = i;
	if (p->fetch(conn, idx, n, &mock_sink, (struct pm_fetch *)&M,
	    &err) != PM_OK)
		goto close;
	memset(done, 0, sizeof done);
	(void)p->dispose(conn, mode & 0x80 ? PM_DISPOSE_DELETE :
	    PM_DISPOSE_SEEN, idx, n, done, &err);
close:
	free(err);
	err = NULL;
	(void)p->close(conn, &err);
out:
	free(err);
	/* A message begun must have been ended, whatever the server said. */
	if (M.open_msgs != 0)
		abort();
	mock_reset("", FUZZ_PORT);
	free(script);
	return 0;
}
