#!/bin/sh
# A server's text cannot forge a log line: through a fault injector
# (tests/servers/imapfault.py, --fault forged-alert) in front of the real
# Dovecot, an IMAP ALERT whose text holds a CR, a made-up "pullmail: acct:
# 5 messages delivered" line, an ANSI escape and a byte that is not UTF-8
# reaches stderr and syslog (captured by an LD_PRELOAD shim,
# tests/plugins/syslogcap.c) as one line with those bytes escaped, and the
# mail is still delivered byte for byte.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

# The ALERT as the log must show it: the CR, ESC and 0xff escaped.
ESCAPED='server alert: maintenance at 22:00\\rpullmail: acct: 5 messages delivered\\x1b\[2K\\xff$'

# assert_no_raw FILE: no CR, ESC or byte above 0x7f in FILE.
assert_no_raw() {
	if LC_ALL=C grep -q "$(printf '[\r\033\200-\377]')" "$1"; then
		fail "raw control or 8-bit bytes in $1"
	fi
}

case_forged_alert() {
	seed_messages
	start_injector imapfault.py "$IMAP_PORT" --lifetime 300 \
		--fault forged-alert
	account acct "port=$INJ_PORT" tls=none keep=yes |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_grep 'FAULT forged ALERT' "$INJ_LOG"
	assert_grep "^pullmail: acct: $ESCAPED" "$LAST_OUT.err"
	assert_no_grep '^pullmail: acct: 5 messages delivered' "$LAST_OUT.err"
	assert_eq 1 "$(grep -c 'messages delivered' "$LAST_OUT.err")" \
		"stderr lines naming the forged text"
	assert_no_raw "$LAST_OUT.err"

	# syslog gets the same single line, as a warning.
	rm -rf "$CASE_DIR/Maildir" "$CASE_DIR/state"
	run_pm_syslog -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_grep "^<4> acct: $ESCAPED" "$CASE_DIR/syslog"
	assert_eq 1 "$(grep -c 'messages delivered' "$CASE_DIR/syslog")" \
		"syslog lines naming the forged text"
	assert_no_raw "$CASE_DIR/syslog"
}

run_case forged_alert case_forged_alert
e2e_finish
