/*
 * Fuzz target: the configuration file (config_load() in config.c).  The
 * input is written to a private file (mode 0600, under /dev/shm when there
 * is one) and loaded.  Inputs naming a *_command key are skipped: loading
 * them runs the command.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pullmail/host.h>

#include "config.h"
#include "fuzz-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[96];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg;
	struct account *a;
	char *err = NULL;
	int fd, r;

	if (memmem(data, size, "_command", 8) != NULL)
		return 0;
	if (path[0] == '\0') {
		snprintf(path, sizeof path, "%s/config", fuzz_dir());
		/* Paths with ~ expand here, not in the user's home. */
		setenv("HOME", fuzz_dir(), 1);
		unsetenv("XDG_STATE_HOME");
		unsetenv("CREDENTIALS_DIRECTORY");
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) != 0)
		abort();
	r = config_load(path, &cfg, &err);
	if (r == PM_OK) {
		if (cfg == NULL || err != NULL || cfg->accounts == NULL)
			abort();
		for (a = cfg->accounts; a != NULL; a = a->next)
			if (a->name == NULL || a->server == NULL ||
			    a->nfolders == 0 || config_find(cfg, a->name) == NULL)
				abort();
		config_free(cfg);
	} else if (err == NULL || cfg != NULL)
		abort();
	free(err);
	return 0;
}
