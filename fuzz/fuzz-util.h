/* Small helpers shared by the fuzz targets. */
#ifndef PM_FUZZ_UTIL_H
#define PM_FUZZ_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The next line of in[0..size) from *pos on, as a server's reader hands it
 * over: NUL-terminated in place, its CRLF or LF removed, its length in
 * *len_r.  *pos moves past it.  NULL when nothing is left.
 */
static inline char *
fuzz_line(char *in, size_t size, size_t *pos, size_t *len_r)
{
	char *line = in + *pos, *nl;
	size_t len;

	if (*pos >= size)
		return NULL;
	nl = memchr(line, '\n', size - *pos);
	len = nl != NULL ? (size_t)(nl - line) : size - *pos;
	*pos += len + (nl != NULL);
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	*len_r = len;
	return line;
}

static char fuzz_dir_path[64];

/* Remove the private directory and what is in it. */
static inline void
fuzz_dir_remove(void)
{
	char path[sizeof fuzz_dir_path + 256];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(fuzz_dir_path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", fuzz_dir_path, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(fuzz_dir_path);
}

/* A private directory for the files a target writes, under /dev/shm when
 * there is one (no disk writes); made on the first call, removed at exit. */
static inline const char *
fuzz_dir(void)
{
	if (fuzz_dir_path[0] == '\0') {
		snprintf(fuzz_dir_path, sizeof fuzz_dir_path,
		    "%s/pullmail-fuzz-XXXXXX",
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(fuzz_dir_path) == NULL)
			abort();
		atexit(fuzz_dir_remove);
	}
	return fuzz_dir_path;
}

#endif
