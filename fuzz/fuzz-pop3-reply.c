/*
 * Fuzz target: POP3 reply lines (pop3-parse.c).  The input, split into
 * lines at LF, goes line by line through the status (plain and SASL),
 * CAPA, UIDL and LIST parsers, the way pop3.c hands them lines:
 * NUL-terminated, CRLF removed (the multi-line reader is fuzz-pop3-undot's
 * and fuzz-pop3-session's).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "pop3-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pop3_caps caps;
	char *in = malloc(size + 1), *line, *err = NULL;
	const char *text, *uid;
	size_t pos = 0, len, ulen;
	unsigned long num;
	uint64_t msize;
	int status;

	if (in == NULL)
		abort();
	memcpy(in, data, size);
	in[size] = '\0';
	memset(&caps, 0, sizeof caps);
	pop3_caps_reset(&caps);
	while ((line = fuzz_line(in, size, &pos, &len)) != NULL) {
		(void)pop3_parse_status(line, len, 0, &status, &text, &err);
		(void)pop3_parse_status(line, len, 1, &status, &text, &err);
		(void)pop3_caps_line(line, len, &caps, &err);
		if (pop3_parse_uidl(line, len, &num, &uid, &ulen, &err) ==
		    PM_OK && (ulen < 1 || ulen > POP3_UID_MAX ||
		    uid < line || uid + ulen > line + len))
			abort();
		(void)pop3_parse_list(line, len, &num, &msize, &err);
		free(err);
		err = NULL;
	}
	pop3_caps_free(&caps);
	free(in);
	return 0;
}
