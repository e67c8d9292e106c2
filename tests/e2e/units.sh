#!/bin/sh
# The systemd units: generated with the configured bindir and sysconfdir,
# installed by `make install` into the configured unit directory, and
# accepted by `systemd-analyze verify` (skipped, exit 77, where there is
# no systemd-analyze: Debian's systemd package has it).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

MAKE=${MAKE:-make}
UNITS="pullmail.service pullmail@.service pullmail-fetch.service"
eval "$($MAKE -s -C "$top_builddir" --no-print-directory print-unit-paths)"
echo "bindir=$bindir sysconfdir=$sysconfdir unitdir=$unitdir"

# check_unit FILE: FILE runs $bindir/pullmail with a config in $sysconfdir
# and has no placeholder left.
check_unit() {
	assert_no_grep -F "@bindir@" "$1"
	assert_no_grep -F "@sysconfdir@" "$1"
	assert_no_grep -F '${' "$1"
	assert_grep -F "ExecStart=$bindir/pullmail " "$1"
	assert_grep -F " -c $sysconfdir/pullmail" "$1"
}

case_generated() {
	for u in $UNITS; do
		[ -f "$top_builddir/contrib/$u" ] || fail "contrib/$u not built"
		check_unit "$top_builddir/contrib/$u"
	done
	for u in pullmail.service pullmail@.service; do
		f=$top_builddir/contrib/$u
		assert_grep -E '^Type=notify$' "$f"
		assert_grep -F "ExecStart=$bindir/pullmail --daemon --syslog " "$f"
		assert_grep -F 'ExecReload=/bin/kill -HUP $MAINPID' "$f"
		assert_grep -E '^WatchdogSec=' "$f"
		assert_grep -E '^\[Install\]$' "$f"
	done
	assert_grep -F " -c $sysconfdir/pullmail/%i.conf" \
		"$top_builddir/contrib/pullmail@.service"
	assert_grep -E '^Type=oneshot$' "$top_builddir/contrib/pullmail-fetch.service"
}

# `make install` puts every unit (and the timer) into the unit directory,
# with the configured bindir; the sample config goes into the doc dir.
case_installed() {
	if [ "$unitdir" = no ]; then
		echo "configured --with-systemdsystemunitdir=no: nothing to install"
		return 0
	fi
	dest=$CASE_DIR/dest
	$MAKE -s -C "$top_builddir" --no-print-directory \
		install-systemdsystemunitDATA install-docDATA DESTDIR="$dest" ||
		fail "make install of the units failed"
	for u in $UNITS; do
		[ -f "$dest$unitdir/$u" ] || fail "$u not installed in $unitdir"
		check_unit "$dest$unitdir/$u"
	done
	[ -f "$dest$unitdir/pullmail-fetch.timer" ] || fail "timer not installed"
	[ -n "$(find "$dest" -name pullmail.conf.example)" ] ||
		fail "pullmail.conf.example not installed"
	[ -z "$(find "$dest" -name pullmail.conf)" ] ||
		fail "make install wrote a pullmail.conf"
}

# systemd-analyze verify on copies whose ExecStart names the built
# pullmail (verify wants an executable there; the installed one may not
# exist yet).
case_verify() {
	dir=$CASE_DIR/units
	mkdir -p "$dir"
	for u in $UNITS; do
		sed "s|^ExecStart=$bindir/pullmail |ExecStart=$top_builddir/pullmail |" \
			"$top_builddir/contrib/$u" >"$dir/$u"
	done
	cp "$top_srcdir/contrib/pullmail-fetch.timer" "$dir/"
	(cd "$dir" && systemd-analyze verify --man=no pullmail.service \
		pullmail@test.service pullmail-fetch.service \
		pullmail-fetch.timer) >"$dir/verify.out" 2>&1
	rc=$?
	cat "$dir/verify.out"
	assert_eq 0 "$rc" "systemd-analyze verify exit status"
	# Warnings (unknown keys, bad values) come without a failure status.
	assert_eq "" "$(cat "$dir/verify.out")" "systemd-analyze verify output"
}

run_case generated case_generated
run_case installed case_installed
if command -v systemd-analyze >/dev/null 2>&1; then
	run_case verify case_verify
elif [ "$E2E_FAILED" -eq 0 ]; then
	echo "SKIP: verify: no systemd-analyze on this machine (Debian: apt-get install systemd)"
	echo "$E2E_PASSED passed, $E2E_FAILED failed"
	exit 77
fi
e2e_finish
