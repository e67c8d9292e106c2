#!/bin/sh
# The component boundaries, held by the build: which source files may
# include which libraries' headers.
#
#   GnuTLS   only the transport (src/transport.c) and the crypto
#            primitives built on it (src/crypto.c);
#   libcurl  only the token module's HTTP client (src/oauth/http.c);
#   json-c   only the token module's JSON reader (src/oauth/json.c);
#   plugins  only <pullmail/...> (the public ABI), their own folder,
#            plugins/common and the build's autoconf.h: never the core.
#
# check_tree DIR prints every violation under DIR and fails if there is
# one.  The script checks the source tree, then plants one violation of
# each rule in a scratch tree and makes sure each is caught, so that the
# check itself cannot silently pass.
set -u

top=${top_srcdir:-.}

# allowed FILE PATTERN...: succeed if FILE matches one of the patterns
allowed() {
	f=$1
	shift
	for p in "$@"; do
		case $f in
		$p) return 0 ;;
		esac
	done
	return 1
}

check_tree() {
	root=$1
	bad=0
	# The core (src/, recursively) and the plugins, C sources and headers.
	files=$(cd "$root" && find src plugins -name '*.[ch]' 2>/dev/null |
		LC_ALL=C sort)
	for f in $files; do
		grep -n '^[[:space:]]*#[[:space:]]*include' "$root/$f" |
			sed 's/^\([0-9]*\):[[:space:]]*#[[:space:]]*include[[:space:]]*/\1 /' >"$scratch/inc"
		while read -r line what; do
			case $what in
			\<gnutls/*)
				allowed "$f" src/transport.c src/crypto.c || {
					echo "$f:$line: GnuTLS header $what outside the transport"
					bad=1
				} ;;
			\<curl/*)
				allowed "$f" src/oauth/http.c || {
					echo "$f:$line: libcurl header $what outside src/oauth/http.c"
					bad=1
				} ;;
			\<json-c/* | \<json.h\> | \<json_*)
				allowed "$f" src/oauth/json.c || {
					echo "$f:$line: json-c header $what outside src/oauth/json.c"
					bad=1
				} ;;
			esac
			case $f in
			plugins/*)
				dir=${f%/*}
				case $what in
				\<pullmail/*) ;;
				\<*) ;;	# system headers (libc)
				\"autoconf.h\") ;;
				\"*\")
					name=${what#\"}
					name=${name%\"}
					case $name in
					*/*) ok=no ;;
					*) if [ -f "$root/$dir/$name" ] ||
						[ -f "$root/plugins/common/$name" ]; then
						ok=yes
					else
						ok=no
					fi ;;
					esac
					[ $ok = yes ] || {
						echo "$f:$line: plugin includes $what (only <pullmail/...>, its own folder and plugins/common)"
						bad=1
					} ;;
				*)
					echo "$f:$line: plugin includes $what (only <pullmail/...>, its own folder and plugins/common)"
					bad=1 ;;
				esac ;;
			esac
		done <"$scratch/inc"
	done
	return $bad
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/pm-bound.XXXXXX") || exit 99
trap 'rm -rf "$scratch"' EXIT

fail=0
echo "# checking $top"
if ! check_tree "$top"; then
	echo "FAIL: forbidden includes in the source tree (see above)"
	fail=1
fi

# Each planted violation must be found.
plant() {
	desc=$1 file=$2 text=$3
	rm -rf "$scratch/tree"
	mkdir -p "$scratch/tree/src/oauth" "$scratch/tree/plugins/imap" \
		"$scratch/tree/plugins/common"
	printf '#include <stdio.h>\n#include "imap-parse.h"\n#include "plugin-util.h"\n#include <pullmail/plugin.h>\n' \
		>"$scratch/tree/plugins/imap/imap.c"
	: >"$scratch/tree/plugins/imap/imap-parse.h"
	: >"$scratch/tree/plugins/common/plugin-util.h"
	printf '#include <gnutls/gnutls.h>\n' >"$scratch/tree/src/transport.c"
	printf '#include <curl/curl.h>\n' >"$scratch/tree/src/oauth/http.c"
	printf '#include <json-c/json.h>\n' >"$scratch/tree/src/oauth/json.c"
	if ! check_tree "$scratch/tree" >"$scratch/out0"; then
		echo "FAIL: the clean scratch tree was refused:"
		cat "$scratch/out0"
		fail=1
		return
	fi
	mkdir -p "$scratch/tree/${file%/*}"
	printf '%s\n' "$text" >>"$scratch/tree/$file"
	if check_tree "$scratch/tree" >"$scratch/out"; then
		echo "FAIL: planted violation not caught: $desc"
		fail=1
	elif ! grep -q "^$file:" "$scratch/out"; then
		echo "FAIL: planted violation reported at the wrong place: $desc"
		cat "$scratch/out"
		fail=1
	else
		echo "ok - caught: $desc"
	fi
}
plant "GnuTLS in the config reader" src/config.c '#include <gnutls/gnutls.h>'
plant "GnuTLS in the token module" src/oauth/token.c '#include <gnutls/crypto.h>'
plant "libcurl outside the HTTP client" src/session.c '#include <curl/curl.h>'
plant "json-c outside the JSON reader" src/oauth/cache.c '#include <json-c/json.h>'
plant "a plugin including a core header" plugins/imap/imap.c '#include "secret.h"'
plant "a plugin reaching into src/" plugins/imap/imap.c '#include "../../src/util.h"'
plant "a plugin including GnuTLS" plugins/imap/imap.c '#include <gnutls/gnutls.h>'
plant "a plugin including another plugin's header" plugins/pop3/pop3.c '#include "imap-parse.h"'

exit $fail
