#!/bin/sh
# `pullmail import fetchmailrc` and `pullmail import getmailrc`:
#  - what the importer reads from each rc file of tests/import/fetchmail is
#    what fetchmail itself reads (`fetchmail --configdump`, the oracle);
#  - each broken rc file of tests/import/fetchmail-bad gets FILE:LINE: and
#    the message its first line names, exit status 78, and fetchmail rejects
#    it too (unless its second line says fetchmail accepts it);
#  - every import that dropped nothing important passes --check-config,
#    with the passwords in 0600 files of --secrets-dir and never on stdout;
#  - imports of forms fetchmail 6 cannot read (tests/import/fetchmail7) and
#    of getmail files (tests/import/getmail) match their .expected output
#    and exit status;
#  - getmail6's own reading of each getmailrc matches the importer's.
set -u

: "${PULLMAIL:=$top_builddir/pullmail}"
cd "$top_srcdir" || exit 99
FETCHMAIL=$(command -v fetchmail) || {
	echo "fetchmail is not installed (apt-get install fetchmail)" >&2
	exit 99
}
if ! /usr/bin/python3 -c 'import getmailcore' 2>/dev/null; then
	echo "getmail6 is not installed (apt-get install getmail6)" >&2
	exit 99
fi
PYTHON=${PYTHON:-python3}
PYTHONDONTWRITEBYTECODE=1; export PYTHONDONTWRITEBYTECODE
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $*"; }
not_ok() { fail=$((fail + 1)); echo "FAIL $*"; }

# 1. fetchmail as the oracle.
if "$PYTHON" tests/import/fetchmail-oracle.py "$PULLMAIL" "$FETCHMAIL" \
    tests/import/fetchmail/*.rc >"$tmp/oracle" 2>&1; then
	ok "fetchmail --configdump agrees on $(grep -c '^ok' "$tmp/oracle") rc files"
else
	not_ok "fetchmail --configdump disagrees:"
	cat "$tmp/oracle"
fi

kind_of() {
	case $1 in
	*/getmail*) echo getmailrc ;;
	*) echo fetchmailrc ;;
	esac
}

# 2. Broken files: FILE:LINE: message, exit 78.
for rc in tests/import/fetchmail-bad/*.rc tests/import/getmail-bad/*.rc; do
	want=$(sed -n '1s/^# error: //p' "$rc")
	line=${want%%:*}
	msg=${want#*: }
	"$PULLMAIL" import "$(kind_of "$rc")" "$rc" >"$tmp/out" 2>"$tmp/err"
	code=$?
	if [ "$code" -ne 78 ] || [ -s "$tmp/out" ] ||
	    ! grep -qF "$rc:$line: $msg" "$tmp/err"; then
		not_ok "$rc: exit $code, wanted 78 and '$rc:$line: $msg'; got:"
		cat "$tmp/err"
		continue
	fi
	if [ "$(kind_of "$rc")" = getmailrc ]; then
		ok "$rc: $line: $msg"
		continue
	fi
	cp "$rc" "$tmp/fetchmailrc" && chmod 600 "$tmp/fetchmailrc"
	HOME=$tmp "$FETCHMAIL" --configdump -f "$tmp/fetchmailrc" \
	    >"$tmp/dump" 2>&1
	if grep -q 'fetchmailrc = {' "$tmp/dump" &&
	    ! sed -n 2p "$rc" | grep -q 'fetchmail accepts'; then
		not_ok "$rc: fetchmail reads this file, pullmail does not"
		continue
	fi
	ok "$rc: $line: $msg"
done

if "$PYTHON" tests/import/getmail-oracle.py --rejects \
    tests/import/getmail-bad/*.rc >"$tmp/oracle" 2>&1; then
	ok "getmail6 rejects every file of tests/import/getmail-bad too"
else
	not_ok "getmail6 reads a file pullmail refuses:"
	cat "$tmp/oracle"
fi

# 3. Clean imports pass --check-config; secrets only in 0600 files.
mkdir -p "$tmp/home/.config"
(umask 077 && echo secret >"$tmp/home/.config/imap-pass")
for rc in tests/import/fetchmail/*.rc tests/import/fetchmail7/*.rc \
    tests/import/getmail/*.rc; do
	rm -rf "$tmp/secrets" && mkdir -m 700 "$tmp/secrets"
	"$PULLMAIL" import "$(kind_of "$rc")" --secrets-dir "$tmp/secrets" "$rc" \
	    >"$tmp/conf" 2>"$tmp/err"
	code=$?
	# No password of the rc file on stdout or stderr.
	sed -n -e 's/.*pass\(word\)\{0,1\}[ \t]*"\([^"]*\)".*/\2/p' \
	    -e 's/^password *= *//p' "$rc" |
	while IFS= read -r pw; do
		if [ ${#pw} -ge 4 ] && grep -qF -- "$pw" "$tmp/conf" "$tmp/err"; then
			echo "$pw"
		fi
	done >"$tmp/leaked"
	if [ -s "$tmp/leaked" ]; then
		not_ok "$rc: password on the output: $(cat "$tmp/leaked")"
		continue
	fi
	for f in "$tmp"/secrets/*; do
		[ -e "$f" ] || continue
		mode=$(stat -c %a "$f")
		if [ "$mode" != 600 ]; then
			not_ok "$rc: $f has mode $mode"
			continue 2
		fi
	done
	if [ "$code" -eq 1 ]; then
		if ! grep -q '^#* *# DROPPED: ' "$tmp/conf"; then
			not_ok "$rc: exit 1 without a DROPPED line"
		else
			ok "$rc: exit 1, $(grep -c 'DROPPED: ' "$tmp/conf") dropped"
		fi
		continue
	fi
	if [ "$code" -ne 0 ]; then
		not_ok "$rc: exit $code"
		cat "$tmp/err"
		continue
	fi
	chmod 600 "$tmp/conf"
	if HOME=$tmp/home "$PULLMAIL" -c "$tmp/conf" --check-config >"$tmp/check" 2>&1; then
		ok "$rc: $(cat "$tmp/check" | sed "s|$tmp/||")"
	else
		not_ok "$rc: pullmail --check-config refuses the import:"
		cat "$tmp/check" "$tmp/conf"
	fi
done

# The passwords in the files are the ones of the rc file.
rm -rf "$tmp/secrets" && mkdir -m 700 "$tmp/secrets"
"$PULLMAIL" import fetchmailrc --secrets-dir "$tmp/secrets" \
    tests/import/fetchmail/10-escapes.rc >"$tmp/conf" 2>/dev/null
# The rc file says "a\\b\"c": fetchmail's lexer takes the longest match, the
# bare word with its quotes, and unescapes it.
if printf '"a\\b"c"\n' | cmp -s - "$tmp/secrets/tab-here@esc.example.com.password" &&
    grep -qx "password_file = $tmp/secrets/tab-here@esc.example.com.password" "$tmp/conf"; then
	ok "--secrets-dir: the password, unescaped, in ACCOUNT.password"
else
	not_ok "--secrets-dir: wrong password file"
	ls -l "$tmp/secrets"; cat "$tmp/conf"
fi
# An existing file (or a symlink planted there) is never written through.
ln -s "$tmp/target" "$tmp/secrets/p1@shared.example.password"
"$PULLMAIL" import fetchmailrc --secrets-dir "$tmp/secrets" \
    tests/import/fetchmail/15-several-users.rc >"$tmp/conf" 2>"$tmp/err"
code=$?
if [ "$code" -eq 73 ] && [ ! -e "$tmp/target" ] && [ ! -s "$tmp/conf" ] &&
    grep -q 'p1@shared.example.password: File exists' "$tmp/err"; then
	ok "--secrets-dir: an existing file or symlink is refused (exit 73)"
else
	not_ok "--secrets-dir over a symlink: exit $code"
	cat "$tmp/err"
fi

# Without --secrets-dir the password is only mentioned.
"$PULLMAIL" import fetchmailrc tests/import/fetchmail/01-simple-pop3.rc \
    >"$tmp/conf" 2>&1
if grep -q 'password was not exported' "$tmp/conf" &&
    ! grep -q 's3cret' "$tmp/conf"; then
	ok "without --secrets-dir: the password is not exported"
else
	not_ok "without --secrets-dir"
	cat "$tmp/conf"
fi

# -v and -q before the command are taken, as `pullmail -v import ...` reads.
"$PULLMAIL" import fetchmailrc tests/import/fetchmail/01-simple-pop3.rc \
    >"$tmp/plain" 2>&1
for opts in "-v" "-vq" "--verbose -q"; do
	# shellcheck disable=SC2086
	if "$PULLMAIL" $opts import fetchmailrc \
	    tests/import/fetchmail/01-simple-pop3.rc >"$tmp/conf" 2>&1 &&
	    cmp -s "$tmp/plain" "$tmp/conf"; then
		ok "pullmail $opts import: the same output"
	else
		not_ok "pullmail $opts import"
		cat "$tmp/conf"
	fi
done

# The default file is ~/.fetchmailrc.
cp tests/import/fetchmail/01-simple-pop3.rc "$tmp/home/.fetchmailrc"
if HOME=$tmp/home "$PULLMAIL" import fetchmailrc >"$tmp/conf" 2>&1 &&
    grep -q '^server = pop.example.com$' "$tmp/conf"; then
	ok "default file ~/.fetchmailrc"
else
	not_ok "default file ~/.fetchmailrc"
	cat "$tmp/conf"
fi
"$PULLMAIL" import fetchmailrc "$tmp/missing" >/dev/null 2>"$tmp/err"
code=$?
if [ "$code" -eq 66 ] && grep -q "$tmp/missing: No such file" "$tmp/err"; then
	ok "a missing file: exit 66"
else
	not_ok "a missing file: exit $code"
fi

# Half a million noise words in a row: read in a loop, not by recursion
# (an unoptimised or ASan build would overflow its stack).
"$PYTHON" -c "print('poll noise.example ' + 'and ' * 500000 + 'user x')" \
    >"$tmp/noise.rc"
if "$PULLMAIL" import fetchmailrc --dump-facts "$tmp/noise.rc" 2>&1 |
    grep -q '"remote": "x"'; then
	ok "half a million noise words"
else
	not_ok "half a million noise words"
fi

# Usage errors: 64.
for args in "import" "import sendmailcf x" "import getmailrc" \
    "import fetchmailrc a b" "import fetchmailrc --bogus x"; do
	# shellcheck disable=SC2086
	"$PULLMAIL" $args >/dev/null 2>"$tmp/err"
	code=$?
	if [ "$code" -eq 64 ] && grep -q 'usage: pullmail import' "$tmp/err"; then
		ok "pullmail $args: usage, exit 64"
	else
		not_ok "pullmail $args: exit $code"
		cat "$tmp/err"
	fi
done

# 4. Expected outputs, byte for byte, and exit statuses.
for rc in tests/import/fetchmail7/*.rc tests/import/getmail/*.rc; do
	kind=$(kind_of "$rc")
	want_code=$(sed -n '1s/^# exit: //p' "${rc%.rc}.expected")
	"$PULLMAIL" import "$kind" "$rc" >"$tmp/out" 2>/dev/null
	code=$?
	if ! sed 1d "${rc%.rc}.expected" | cmp -s - "$tmp/out"; then
		not_ok "$rc: output differs from ${rc%.rc}.expected:"
		sed 1d "${rc%.rc}.expected" | diff -u - "$tmp/out"
	elif [ "$code" != "$want_code" ]; then
		not_ok "$rc: exit $code, wanted $want_code"
	else
		ok "$rc: as expected (exit $code)"
	fi
done

# 5. getmail6 as the oracle.
if "$PYTHON" tests/import/getmail-oracle.py "$PULLMAIL" \
    tests/import/getmail/*.rc >"$tmp/oracle" 2>&1; then
	ok "getmail6 agrees on $(grep -c '^ok' "$tmp/oracle") getmailrc files"
else
	not_ok "getmail6 disagrees:"
	cat "$tmp/oracle"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
