/*
 * Fuzz target: the UID state file (state_open() in state.c).  The input is
 * written as the state file of account "fuzz" in a private directory
 * (under /dev/shm when there is one: no disk writes) and opened.  When it
 * loads, a UID with every awkward byte is added and saved; the file
 * pullmail wrote must load again and know that UID.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pullmail/host.h>

#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[96], lock[96];

/* Remove the directory at exit. */
static void
cleanup(void)
{
	unlink(path);
	unlink(lock);
	rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char box[] = "In\tbox %41\x7f";
	static const char uid[] = "u 1\t%\n";
	struct state *st;
	char *err = NULL;
	FILE *f;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof dir, "%s/pullmail-fuzz-XXXXXX",
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof path, "%s/fuzz.state", dir);
		snprintf(lock, sizeof lock, "%s/fuzz.lock", dir);
		atexit(cleanup);
	}
	if ((f = fopen(path, "w")) == NULL ||
	    fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	if (state_open(dir, "fuzz", &st, &err) != PM_OK) {
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
	if (state_open(dir, "fuzz", &st, &err) != PM_OK ||
	    !state_known(st, box, uid))
		abort();
	state_close(st);
	return 0;
}
