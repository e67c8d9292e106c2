/*
 * Fuzz target: mboxrd quoting (mbox_write() and mbox_finish() in
 * deliver-mbox.c, static, so compiled in here).  The input after its first
 * byte is a message body (LF line ends, as the delivery stage hands it
 * over), written in chunks whose sizes the first byte picks, into a file
 * in memory.  Checked: no line of the result starts with "From ", taking
 * one '>' off every ">...>From " line gives the body back, and the result
 * ends with a blank line.
 */
#include "autoconf.h"

#include <stdint.h>
#include <sys/mman.h>

#include "deliver-mbox.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether the line s[0..n) is ">*From ". */
static int
from_line(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] == '>')
		i++;
	return n - i >= 5 && memcmp(s + i, "From ", 5) == 0;
}

/* Check what mbox_finish() left in the file against the body. */
static void
check(const char *out, size_t olen, const uint8_t *body, size_t blen)
{
	size_t i = 0, j = 0, n;
	const char *nl;

	if (olen < 1 || out[olen - 1] != '\n' ||
	    (olen >= 2 && out[olen - 2] != '\n'))
		abort();
	while (i < olen) {
		nl = memchr(out + i, '\n', olen - i);
		n = (size_t)(nl - (out + i)) + 1;	/* with the LF */
		if (n >= 5 && memcmp(out + i, "From ", 5) == 0)
			abort();
		if (from_line(out + i, n - 1)) {
			/* Quoted: the body had one '>' less. */
			if (out[i] != '>')
				abort();
			i++;
			n--;
		}
		if (j + n <= blen) {
			if (memcmp(out + i, body + j, n) != 0)
				abort();
		} else if (j < blen) {
			/* The body's last line, ended by finish(). */
			if (memcmp(out + i, body + j, blen - j) != 0 ||
			    n - (blen - j) != 1)
				abort();
		} else if (n != 1)
			abort();	/* only the blank line may follow */
		i += n;
		j += n;
	}
	if (j < blen)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct mbox mb;
	struct mbox_msg *mm;
	struct stat st;
	const uint8_t *body;
	size_t blen, pos = 0, n, step;
	char *err = NULL, *out;

	if (size < 1)
		return 0;
	if (fd < 0 && (fd = memfd_create("fuzz-mbox", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		abort();
	body = data + 1;
	blen = size - 1;
	step = (size_t)data[0] + 1;
	memset(&mb, 0, sizeof mb);
	mb.path = "fuzz.mbox";
	mb.fd = fd;
	mm = xcalloc(1, sizeof *mm);
	mm->bol = 1;
	mm->last = '\n';
	while (pos < blen) {
		n = data[0] == 0xff ? blen - pos : 1 + (body[pos] + pos) % step;
		if (n > blen - pos)
			n = blen - pos;
		if (mbox_write(&mb, mm, body + pos, n, &err) != PM_OK)
			abort();
		pos += n;
	}
	if (mbox_finish(&mb, mm, &err) != PM_OK)
		abort();
	if (fstat(fd, &st) < 0)
		abort();
	out = xmalloc((size_t)st.st_size + 1);
	if (pread(fd, out, (size_t)st.st_size, 0) != st.st_size)
		abort();
	check(out, (size_t)st.st_size, body, blen);
	free(out);
	return 0;
}
