/*
 * Replays the inputs kept for a fuzz target without libFuzzer, so that
 * `make check` runs every seed and every former crasher through the
 * target under the normal compiler (and under the sanitizers in the
 * --enable-sanitizers build).  Linked with one fuzz/fuzz-TARGET.c; run
 * with no arguments it reads $top_srcdir/fuzz/corpus/TARGET and
 * $top_srcdir/fuzz/regress/TARGET, else the files and folders named.  A
 * crash ends the program (the test fails); otherwise it prints how many
 * inputs ran.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_TARGET
#error FUZZ_TARGET must name the target
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long ran;

/* Run one input file; -1 when it cannot be read. */
static int
replay_file(const char *path)
{
	FILE *f;
	uint8_t *buf = NULL, *copy;
	size_t len = 0, cap = 0, n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap != 0 ? cap * 2 : 4096;
			if ((buf = realloc(buf, cap)) == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: read error\n", path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	/* The input in a buffer of its exact size, as libFuzzer gives it,
	 * so that a sanitizer sees any read past its end. */
	if ((copy = malloc(len != 0 ? len : 1)) == NULL)
		abort();
	memcpy(copy, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
	ran++;
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every file of a folder (in name order), or one file; a missing
 * folder is fine when optional. */
static int
replay_path(const char *path, int optional)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	char **names = NULL, *p;
	size_t n = 0, i;
	int r = 0;

	if (stat(path, &st) != 0) {
		if (optional && errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((names = realloc(names, (n + 1) * sizeof *names)) == NULL ||
		    (names[n++] = strdup(de->d_name)) == NULL)
			abort();
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof *names, name_cmp);
	for (i = 0; i < n; i++) {
		if (asprintf(&p, "%s/%s", path, names[i]) < 0)
			abort();
		if (replay_file(p) != 0)
			r = -1;
		free(p);
		free(names[i]);
	}
	free(names);
	return r;
}

int
main(int argc, char **argv)
{
	const char *top = getenv("top_srcdir");
	char *dir;
	int i, r = 0;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i], 0) != 0)
				r = 1;
	} else {
		if (top == NULL)
			top = ".";
		if (asprintf(&dir, "%s/fuzz/corpus/%s", top, FUZZ_TARGET) < 0)
			abort();
		if (replay_path(dir, 0) != 0)
			r = 1;
		free(dir);
		if (asprintf(&dir, "%s/fuzz/regress/%s", top, FUZZ_TARGET) < 0)
			abort();
		if (replay_path(dir, 1) != 0)
			r = 1;
		free(dir);
	}
	if (ran == 0 && r == 0) {
		fprintf(stderr, "fuzz-%s: no inputs found\n", FUZZ_TARGET);
		r = 1;
	}
	fprintf(stderr, "fuzz-%s: %lu inputs replayed\n", FUZZ_TARGET, ran);
	fprintf(stderr, "%lu passed, %d failed\n", ran, r);
	return r;
}
