#!/bin/sh
# A small MDA for pullmail's end-to-end tests: stores the message in the
# Maildir $1, except that while the file $2 exists a message whose Subject
# contains $3 is refused with exit 75 (EX_TEMPFAIL).
dir=$1 flag=$2 pattern=$3
name=$(date +%s).$$.tempfail
cat >"$dir/tmp/$name" || exit 75
if [ -e "$flag" ] && sed '/^$/q' "$dir/tmp/$name" | grep -q "^Subject:.*$pattern"; then
	rm -f "$dir/tmp/$name"
	echo "refusing for now: $pattern" >&2
	exit 75
fi
mv "$dir/tmp/$name" "$dir/new/$name"
