#!/bin/sh
# MDA wrapper for pullmail's end-to-end tests: records its arguments (one
# per line, then a NUL-separated copy byte for byte) and the PULLMAIL_
# environment in $RECORD_DIR, then runs the real MDA given after "--".
rec=${RECORD_DIR:?}/argv.$$
: >"$rec.nul"
for a in "$@"; do
	[ "$a" = -- ] && break
	printf '%s\0' "$a" >>"$rec.nul"
done
env | grep '^PULLMAIL_' | sort >"$rec.env"
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	shift
done
shift
exec "$@"
