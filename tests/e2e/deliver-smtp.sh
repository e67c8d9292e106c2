#!/bin/sh
# SMTP delivery into a real MTA: a private Postfix on a loopback port
# delivering to Maildirs.  Messages arrive intact (Postfix puts its own
# Return-Path, X-Original-To, Delivered-To and Received lines in front
# and drops a Return-Path the message carries; same-after-trace.py allows
# exactly that before comparing byte for byte), the envelope sender comes from the message, and a 450 and a 550
# from a Postfix recipient restriction keep the messages on the server.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require postfix
if [ "$(id -u)" != 0 ]; then
	if [ "${PULLMAIL_ALLOW_SKIP:-0}" = 1 ]; then
		echo "SKIP: Postfix can only be started as root"
		trap - EXIT
		exit 77
	fi
	echo "FAIL: Postfix can only be started as root (set PULLMAIL_ALLOW_SKIP=1 to skip)"
	trap - EXIT
	exit 1
fi
e2e_start_servers
. "$SRV_DIR/postfix.sh"
trap 'pf_rc=$?; pf_stop; (exit $pf_rc); e2e_cleanup' EXIT
pf_start "$E2E_RUN/postfix"
echo "postfix: smtp $SMTP_PORT"

SAME=$top_srcdir/tests/e2e/deliver/same-after-trace.py

case_intact() {
	seed_messages
	account acct "keep=no" "recipient=r1@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	pf_wait "r1@$PF_DOMAIN" "$NSEEDS" || fail "Postfix did not deliver"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r1)" $SEEDS >"$CASE_DIR/senders" ||
		fail "messages differ"
	# Return-Path of the first seed, From of the others.
	assert_grep -F 'Return-Path: <carol@example.org>' "$CASE_DIR/senders"
	assert_grep -F 'Return-Path: <juergen@example.de>' "$CASE_DIR/senders"
	assert_grep -F 'Return-Path: <ci@example.net>' "$CASE_DIR/senders"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# The optional header lines, in front of the message as it was.
case_extra_headers() {
	local f
	seed_messages
	account acct "keep=no" "recipient=r2@$PF_DOMAIN" \
	    "add_return_path=yes" "add_delivered_to=yes" "add_received=yes" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	pf_wait "r2@$PF_DOMAIN" "$NSEEDS" || fail "Postfix did not deliver"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r2)" $SEEDS >/dev/null ||
		fail "messages differ"
	f=$(grep -l 'Subject: Quarterly' "$(pf_maildir r2)"/new/*)
	assert_grep '^Received: from 127\.0\.0\.1 \(account acct, folder INBOX, uid [0-9]+\)$' "$f"
	assert_grep '^	by [^ ]+ \(pullmail\) with IMAP$' "$f"
	assert_grep "^	for <r2@$PF_DOMAIN>; [A-Z][a-z]{2}, [0-9]{2} " "$f"
	[ "$(grep -c '^Delivered-To: r2@' "$f")" = 2 ] ||
		fail "expected our Delivered-To and Postfix's"
	# Postfix drops every Return-Path it receives (ours too) and writes
	# its own; the unit tests check ours.
	[ "$(grep -c '^Return-Path: <carol@example.org>' "$f")" = 1 ] ||
		fail "expected Postfix's Return-Path"
	assert_no_grep "$APP_SECRET" "$f"
}

# 450 from the MTA: temporary, everything stays on the server.
case_tempfail() {
	seed_messages
	account acct "keep=no" "recipient=tempfail@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'RCPT TO:<tempfail@pullmail.test> refused: 450 4\.7\.1' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

# 550 from the MTA: failed, reported, still on the server.
case_reject() {
	seed_messages
	account acct "keep=no" "recipient=reject@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep 'RCPT TO:<reject@pullmail.test> refused: 550 5\.7\.1' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

# Nobody listening: temporary, nothing lost.
case_no_mta() {
	local port
	seed_messages
	port=$("$SRV_PYTHON" "$SRV_DIR/probe.py" freeports 1)
	account acct "keep=no" "recipient=r3@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$port" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'cannot connect: Connection refused' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

run_case intact case_intact
run_case extra_headers case_extra_headers
run_case tempfail case_tempfail
run_case reject case_reject
run_case no_mta case_no_mta
e2e_finish
