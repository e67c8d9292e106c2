/*
 * Fuzz target: the POP3 multi-line body reader (pop3_undot in
 * pop3-parse.c).  The body is fed once whole and once cut into chunks
 * (sizes from the first input byte and the input itself), each chunk in a
 * buffer of its exact size and the output in one of exactly len + 1 bytes
 * as the contract says.  Both ways must give the same bytes, the same end
 * and the same terminator position: the reader must not depend on where
 * the network splits the stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed in[0..len) in chunks; the unstuffed bytes go to *out_r (malloc'd),
 * the bytes consumed to *used_r; returns whether the terminator came. */
static int
feed(const uint8_t *in, size_t len, unsigned seed, char **out_r,
    size_t *olen_r, size_t *used_r)
{
	struct pop3_undot u;
	char *all, *cin, *cout, *chunk, *out;
	size_t pos = 0, n, o, used, total = 0;
	int end = 0;

	/* Each chunk and its output buffer end where these end, so that a
	 * sanitizer sees a read or write past either. */
	all = malloc(len + 1);
	cin = malloc(len + 1);
	cout = malloc(len + 1);
	if (all == NULL || cin == NULL || cout == NULL)
		abort();
	pop3_undot_init(&u);
	while (pos < len && !end) {
		n = len - pos;
		if (seed != 0) {
			/* Chunks of 1 to seed bytes, varied by the data. */
			n = 1 + (in[pos] + pos) % seed;
			if (n > len - pos)
				n = len - pos;
		}
		chunk = cin + len + 1 - n;
		out = cout + len - n;
		memcpy(chunk, in + pos, n);
		end = pop3_undot(&u, chunk, n, out, &o, &used);
		if (o > n + 1 || used > n || (!end && used != n) ||
		    (end && used == 0))
			abort();
		/* Unstuffing never makes the body longer. */
		if (total + o > len + 1)
			abort();
		memcpy(all + total, out, o);
		total += o;
		pos += used;
	}
	free(cin);
	free(cout);
	*out_r = all;
	*olen_r = total;
	*used_r = pos;
	return end;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *a, *b;
	size_t alen, blen, aused, bused;
	int aend, bend;

	if (size < 1)
		return 0;
	aend = feed(data + 1, size - 1, 0, &a, &alen, &aused);
	bend = feed(data + 1, size - 1, (data[0] & 0x1f) + 1, &b, &blen,
	    &bused);
	/* A CR held back at a chunk's end may come out with the next one,
	 * so only the complete result is compared. */
	if (aend != bend || aused != bused || alen != blen ||
	    memcmp(a, b, alen) != 0)
		abort();
	free(a);
	free(b);
	return 0;
}
