#!/bin/sh
# `make installcheck`: what `make install` put in place works.  The
# installed pullmail, with the plugins from the installed plugin directory,
# fetches over IMAP and POP3 from the test servers (real Dovecot and
# oidc-provider, started as the end-to-end tests start them) and the
# messages arrive byte for byte; the installed systemd units name the
# installed binary and pass `systemd-analyze verify`; the sample
# configuration, the Microsoft 365 checklist, the examples and the bash
# completion are installed.
#
# Environment (set by the installcheck-local rule of Makefile.am):
#   PULLMAIL          $(DESTDIR)$(bindir)/pullmail
#   DESTDIR           as given to make
#   IC_BINDIR, IC_SYSCONFDIR, IC_PKGLIBDIR, IC_DOCDIR, IC_SYSTEMUNITDIR,
#   IC_USERUNITDIR, IC_COMPLETIONDIR   the configured directories ("no" for
#                     the units or completion not installed)
. "${top_srcdir:-$(dirname "$0")/..}/tests/e2e/lib.sh"

# The installed binary finds its plugins by itself (the configured
# $(pkglibdir)); only a staged install (DESTDIR) needs to be told.
if [ -n "${DESTDIR:-}" ]; then
	PULLMAIL_PLUGIN_DIR=$DESTDIR$IC_PKGLIBDIR
	export PULLMAIL_PLUGIN_DIR
else
	unset PULLMAIL_PLUGIN_DIR
fi
echo "installed pullmail: $PULLMAIL (plugins: $DESTDIR$IC_PKGLIBDIR)"

SYSTEM_UNITS="pullmail.service pullmail@.service pullmail-fetch.service"
USER_UNITS="pullmail.service pullmail-fetch.service"

case_installed_files() {
	[ -x "$PULLMAIL" ] || fail "$PULLMAIL is not installed"
	run_pm --version
	assert_rc 0
	for p in imap pop3; do
		[ -f "$DESTDIR$IC_PKGLIBDIR/$p.so" ] ||
			fail "plugin $p.so not in $DESTDIR$IC_PKGLIBDIR"
	done
	for f in pullmail.conf.example m365-checklist.md; do
		[ -s "$DESTDIR$IC_DOCDIR/$f" ] || fail "$f not in $IC_DOCDIR"
	done
	n=$(ls "$DESTDIR$IC_DOCDIR/examples/"*.conf 2>/dev/null | wc -l)
	[ "$n" -eq "$(ls "$top_srcdir/contrib/examples/"*.conf | wc -l)" ] ||
		fail "$n examples in $IC_DOCDIR/examples"
	if [ "$IC_COMPLETIONDIR" != no ]; then
		f=$DESTDIR$IC_COMPLETIONDIR/pullmail
		[ -f "$f" ] || fail "no bash completion in $IC_COMPLETIONDIR"
		assert_grep -F "complete -F _pullmail pullmail" "$f"
		assert_grep -F "'$IC_SYSCONFDIR/pullmail.conf'" "$f"
	fi
	# Never a configuration in place of the admin's.
	[ ! -e "$DESTDIR$IC_SYSCONFDIR/pullmail.conf" ] ||
		fail "make install wrote $IC_SYSCONFDIR/pullmail.conf"
}

# check_unit FILE: FILE runs the installed pullmail, with nothing left
# unsubstituted.
check_unit() {
	assert_no_grep -E '@(bindir|sysconfdir)@' "$1"
	assert_no_grep -F '${' "$1"
	assert_grep -F "ExecStart=$IC_BINDIR/pullmail " "$1"
	if [ "$IC_BINDIR" != /usr/local/bin ]; then
		assert_no_grep -F /usr/local/bin "$1"
	fi
}

# verify DIR MODE UNIT...: systemd-analyze verify on copies of the
# installed units whose ExecStart names the file as it is now (under
# DESTDIR when staged).
verify() {
	local from=$1 mode=$2 dir=$CASE_DIR/verify-$2 u rt rc
	shift 2
	mkdir -p "$dir"
	for u in "$@"; do
		case $u in *.timer) cp "$from/$u" "$dir/" ; continue ;; esac
		sed "s|^ExecStart=$IC_BINDIR/pullmail |ExecStart=$PULLMAIL |" \
			"$from/$u" >"$dir/$u"
	done
	# The user manager wants a runtime directory (none in a build job),
	# short enough for the socket paths other packages' user units name.
	rt=$(mktemp -d /tmp/pullmail-rt.XXXXXX) || fail "mktemp failed"
	(cd "$dir" && XDG_RUNTIME_DIR=$rt \
		systemd-analyze $mode verify --man=no \
		$(echo "$*" | sed 's/pullmail@\.service/pullmail@test.service/')) \
		>"$dir/out" 2>&1
	rc=$?
	rm -rf "$rt"
	cat "$dir/out"
	assert_eq 0 "$rc" "systemd-analyze $mode verify exit status"
	assert_eq "" "$(cat "$dir/out")" "systemd-analyze $mode verify output"
}

# units_case MODE DIR CONFIG UNIT...: the UNITs and pullmail-fetch.timer
# are in DIR (as configured; under DESTDIR), run the installed binary with
# -c CONFIG, and pass systemd-analyze MODE verify.
units_case() {
	local mode=$1 d=$DESTDIR$2 conf=$3 u
	shift 3
	for u in "$@" pullmail-fetch.timer; do
		[ -f "$d/$u" ] || fail "$u not in $2"
		case $u in *.timer) continue ;; esac
		check_unit "$d/$u"
		assert_grep -F " -c $conf" "$d/$u"
	done
	if command -v systemd-analyze >/dev/null 2>&1; then
		verify "$d" "$mode" "$@" pullmail-fetch.timer
	else
		echo "no systemd-analyze: units not verified"
	fi
}
case_system_units() {
	units_case --system "$IC_SYSTEMUNITDIR" "$IC_SYSCONFDIR/pullmail" \
		$SYSTEM_UNITS
}
case_user_units() {
	units_case --user "$IC_USERUNITDIR" "%E/pullmail/config" $USER_UNITS
}

# fetch_case PROTOCOL PORT SCOPE: the installed pullmail fetches the seeded
# messages byte for byte, then finds nothing new.
fetch_case() {
	seed_messages
	account acct "protocol=$1" "port=$2" "oauth_scope=$3" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
}
case_fetch_imap() { fetch_case imap "$IMAPS_PORT" imap; }
case_fetch_pop3() { fetch_case pop3 "$POP3S_PORT" pop3; }

run_case installed-files case_installed_files
if [ "$IC_SYSTEMUNITDIR" != no ]; then
	run_case system-units case_system_units
else
	echo "configured --with-systemdsystemunitdir=no: no system units to check"
fi
if [ "$IC_USERUNITDIR" != no ]; then
	run_case user-units case_user_units
else
	echo "configured --with-systemduserunitdir=no: no user units to check"
fi

missing=
for p in node dovecot doveadm certtool python3 curl; do
	command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "SKIP: fetching with the installed pullmail: the test servers need$missing"
else
	e2e_start_servers
	run_case fetch-imap case_fetch_imap
	run_case fetch-pop3 case_fetch_pop3
fi
e2e_finish
