/*
 * Fuzz target: POP3 reply lines (pop3-parse.c).  The first input byte
 * picks the parser (status, SASL status, CAPA, UIDL, LIST) and the rest,
 * split into lines at LF, goes through it line by line, the way pop3.c
 * hands lines over: NUL-terminated, CRLF removed (the multi-line reader
 * is fuzz-pop3-undot's and fuzz-pop3-session's).  One parser per input,
 * not every parser on every line: a line costs one parse (and one error
 * string), so a run reaches its millions of executions.
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
	char *in, *line, *err = NULL;
	const char *text, *uid;
	size_t pos = 0, len, ulen;
	unsigned long num;
	uint64_t msize;
	int status, which;

	if (size == 0)
		return 0;
	which = data[0] % 5;
	data++;
	size--;
	if ((in = malloc(size + 1)) == NULL)
		abort();
	memcpy(in, data, size);
	in[size] = '\0';
	memset(&caps, 0, sizeof caps);
	pop3_caps_reset(&caps);
	while ((line = fuzz_line(in, size, &pos, &len)) != NULL) {
		switch (which) {
		case 0:
		case 1:
			if (pop3_parse_status(line, len, which, &status, &text,
			    &err) == PM_OK && (text < line || text > line + len))
				abort();
			break;
		case 2:
			(void)pop3_caps_line(line, len, &caps, &err);
			if (caps.mechs == NULL ||
			    strlen(caps.mechs) != caps.mlen)
				abort();
			break;
		case 3:
			if (pop3_parse_uidl(line, len, &num, &uid, &ulen,
			    &err) == PM_OK && (ulen < 1 ||
			    ulen > POP3_UID_MAX || uid < line ||
			    uid + ulen > line + len))
				abort();
			break;
		default:
			(void)pop3_parse_list(line, len, &num, &msize, &err);
			break;
		}
		free(err);
		err = NULL;
	}
	pop3_caps_free(&caps);
	free(in);
	return 0;
}
