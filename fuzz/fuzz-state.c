/*
 * Fuzz target: the UID state file (state_open() in state.c).  The input is
 * written as the state file of account "fuzz" in a private directory
 * (under /dev/shm when there is one: no disk writes) and opened.  When it
 * loads, a UID with every awkward byte is added and saved; the file
 * pullmail wrote must load again and know that UID.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pullmail/host.h>

#include "fuzz-util.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[96];

/* Remove the files a binding mismatch set aside ("fuzz.state.replaced-*"):
 * one per input otherwise, and each makes the next name's search longer. */
static void
remove_replaced(void)
{
	char p[sizeof path + 256];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(fuzz_dir())) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "fuzz.state.replaced-", 20) == 0) {
			snprintf(p, sizeof p, "%s/%s", fuzz_dir(), de->d_name);
			unlink(p);
		}
	closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char box[] = "In\tbox %41\x7f";
	static const char uid[] = "u 1\t%\n";
	static const struct state_binding b = { "imap", "Mail.Example",
	    993, "u\tser %41" };
	struct state *st;
	char *err = NULL;
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof path, "%s/fuzz.state", fuzz_dir());
	if ((f = fopen(path, "w")) == NULL ||
	    fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	if (state_open(fuzz_dir(), "fuzz", &b, &st, &err) != PM_OK) {
		if (err == NULL)
			abort();
		free(err);
		return 0;
	}
	(void)state_known(st, "INBOX", "1");
	(void)state_validity(st, box, "42");
	state_add(st, box, uid);
	if (state_save(st, &err) != PM_OK)
		abort();
	state_close(st);
	if (state_open(fuzz_dir(), "fuzz", &b, &st, &err) != PM_OK ||
	    !state_known(st, box, uid))
		abort();
	state_close(st);
	remove_replaced();
	return 0;
}
