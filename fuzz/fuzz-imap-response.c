/*
 * Fuzz target: IMAP response lines (imap-parse.c).  The input is what a
 * server sends, split into lines at LF: every line goes through the
 * response, capability, literal and SEARCH parsers, and a line starting a
 * FETCH response is followed through its literals (the bytes of each
 * literal are skipped, as the plugin reads them) to its end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "imap-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One line: every parser that takes a whole line. */
static void
one_line(const char *line, size_t len)
{
	struct imap_resp r;
	struct imap_caps c;
	uint32_t *uids = NULL;
	uint64_t n;
	size_t nuids;
	char *err = NULL;
	int found;

	memset(&r, 0, sizeof r);
	if (imap_parse_resp(line, len, &r, &err) == PM_OK) {
		memset(&c, 0, sizeof c);
		if (r.word != NULL && strcmp(r.word, "CAPABILITY") == 0)
			(void)imap_parse_caps(r.text, &c, &err);
		else if (r.code != NULL &&
		    strncmp(r.code, "CAPABILITY ", 11) == 0)
			(void)imap_parse_caps(r.code + 11, &c, &err);
		imap_caps_free(&c);
		if (r.word != NULL && strcmp(r.word, "SEARCH") == 0 &&
		    imap_parse_search(r.text, &uids, &nuids, &err) == PM_OK)
			free(uids);
		imap_resp_free(&r);
	}
	free(err);
	err = NULL;
	(void)imap_literal(line, len, IMAP_LITERAL_MAX, &found, &n, &err);
	free(err);
}

/* A FETCH response from line on: *pos advances past its literals. */
static void
fetch(char *in, size_t size, size_t *pos, const char *line, size_t len)
{
	struct imap_fetch f;
	char *err = NULL;
	int r;

	r = imap_parse_fetch(line, len, IMAP_LITERAL_MAX, &f, &err);
	while (r == PM_OK && !f.done && f.literal_pending) {
		if (f.literal > size - *pos)
			break;
		*pos += (size_t)f.literal;
		if ((line = fuzz_line(in, size, pos, &len)) == NULL)
			break;
		r = imap_parse_fetch_more(line, len, IMAP_LITERAL_MAX, &f,
		    &err);
	}
	imap_fetch_free(&f);
	free(err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *line;
	size_t pos = 0, len;

	if (in == NULL)
		abort();
	memcpy(in, data, size);
	in[size] = '\0';
	while ((line = fuzz_line(in, size, &pos, &len)) != NULL) {
		one_line(line, len);
		if (len > 2 && line[0] == '*' && strstr(line, "FETCH") != NULL)
			fetch(in, size, &pos, line, len);
	}
	free(in);
	return 0;
}
