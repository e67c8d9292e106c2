/*
 * Fuzz target: envelope addresses from a message's header section
 * (envelope.c).  The input is a header section: the sender is taken from
 * it, and every field value found is extracted and checked the way the
 * delivery stage does.  Whatever envelope_sender() returns must pass
 * envelope_addr_valid(), since it goes into MDA arguments and SMTP
 * commands.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "Return-Path", "Sender", "From",
	    "To", "Delivered-To" };
	const char *hdr = (const char *)data;
	char *s, *v, *a;
	size_t i;

	s = envelope_sender(hdr, size);
	if (s == NULL || (*s != '\0' && !envelope_addr_valid(s, 1)))
		abort();
	free(s);
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		v = envelope_header(hdr, size, names[i]);
		if (v == NULL)
			continue;
		a = envelope_extract(v);
		if (a != NULL) {
			(void)envelope_addr_valid(a, 1);
			(void)envelope_addr_valid(a, 0);
		}
		free(a);
		free(v);
	}
	/* The input as one address, as a recipient from the config is. */
	if (memchr(data, '\0', size) == NULL) {
		s = malloc(size + 1);
		if (s == NULL)
			abort();
		memcpy(s, data, size);
		s[size] = '\0';
		(void)envelope_addr_valid(s, 0);
		free(s);
	}
	return 0;
}
