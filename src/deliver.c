/*
 * The delivery stage seen from the core: picks the target's ops table and
 * streams each message through a CRLF-to-LF filter in bounded chunks.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "deliver.h"
#include "util.h"

#define DELIVER_CHUNK 65536

struct deliver {
	const struct deliver_ops *ops;
	void *ctx;
};

struct deliver_msg {
	struct deliver *d;
	void *m;
	int pending_cr;		/* the last chunk ended with CR */
	size_t len;
	char buf[DELIVER_CHUNK];
};

int
deliver_open(const struct account *a, struct deliver **d_r, char **err)
{
	const struct deliver_ops *ops;
	struct deliver *d;
	int r;

	switch (a->deliver_kind) {
	case DELIVER_MAILDIR:
		ops = &deliver_maildir_ops;
		break;
	default:
		return errf(err, PM_ECONFIG, "unsupported delivery target");
	}
	d = xcalloc(1, sizeof *d);
	d->ops = ops;
	r = ops->open(a->deliver_path, &d->ctx, err);
	if (r != PM_OK) {
		free(d);
		return r;
	}
	*d_r = d;
	return PM_OK;
}

int
deliver_begin(struct deliver *d, const struct deliver_info *info,
    struct deliver_msg **m_r, char **err)
{
	struct deliver_msg *m = xmalloc(sizeof *m);
	int r;

	m->d = d;
	m->pending_cr = 0;
	m->len = 0;
	r = d->ops->begin(d->ctx, info, &m->m, err);
	if (r != PM_OK) {
		free(m);
		return r;
	}
	*m_r = m;
	return PM_OK;
}

static int
flush_buf(struct deliver_msg *m, char **err)
{
	int r;

	if (m->len == 0)
		return PM_OK;
	r = m->d->ops->write(m->d->ctx, m->m, m->buf, m->len, err);
	m->len = 0;
	return r;
}

/* Append one byte to the output buffer, flushing when it is full. */
static int
put_byte(struct deliver_msg *m, char c, char **err)
{
	if (m->len == sizeof m->buf) {
		int r = flush_buf(m, err);

		if (r != PM_OK)
			return r;
	}
	m->buf[m->len++] = c;
	return PM_OK;
}

int
deliver_write(struct deliver_msg *m, const void *buf, size_t len, char **err)
{
	const char *p = buf;
	size_t i;
	int r;

	for (i = 0; i < len; i++) {
		char c = p[i];

		if (m->pending_cr) {
			m->pending_cr = 0;
			if (c != '\n' && (r = put_byte(m, '\r', err)) != PM_OK)
				return r;
		}
		if (c == '\r') {
			m->pending_cr = 1;
			continue;
		}
		if ((r = put_byte(m, c, err)) != PM_OK)
			return r;
	}
	return PM_OK;
}

int
deliver_finish(struct deliver_msg *m, char **err)
{
	struct deliver *d = m->d;
	int r = PM_OK;

	if (m->pending_cr)
		r = put_byte(m, '\r', err);
	if (r == PM_OK)
		r = flush_buf(m, err);
	if (r != PM_OK) {
		d->ops->abort(d->ctx, m->m);
		free(m);
		return r;
	}
	r = d->ops->finish(d->ctx, m->m, err);
	free(m);
	return r;
}

void
deliver_abort(struct deliver_msg *m)
{
	if (m == NULL)
		return;
	m->d->ops->abort(m->d->ctx, m->m);
	free(m);
}

int
deliver_sync(struct deliver *d, char **err)
{
	return d->ops->sync(d->ctx, err);
}

void
deliver_close(struct deliver *d)
{
	if (d == NULL)
		return;
	d->ops->close(d->ctx);
	free(d);
}
