#!/bin/sh
# SMTP delivery into a real MTA: a private Postfix on a loopback port
# delivering to Maildirs.  Messages arrive intact (Postfix puts its own
# Return-Path, X-Original-To, Delivered-To and Received lines in front
# and drops a Return-Path the message carries; same-after-trace.py allows
# exactly that before comparing byte for byte), the envelope sender comes from the message, a 450 and a 550
# from a Postfix recipient restriction keep the messages on the server, and
# so do a 450 and a 550 in reply to the end of DATA (a Postfix end-of-data
# restriction on the envelope sender) while the other messages go through.
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

# eod_case SENDER RC RCPT CODE: one message whose envelope sender Postfix
# refuses in its reply to the end of DATA (smtpd_end_of_data_restrictions,
# the durability point) among the seeds: exit RC, that message stays on
# the server (keep = no) and is not delivered, the others are.
eod_case() {
	local sender=$1 rc=$2 rcpt=$3 code=$4 m d
	m=$CASE_DIR/eod.eml
	cat >"$m" <<-EOF
	Return-Path: <$sender>
	From: <$sender>
	To: $rcpt
	Subject: refused at the end of DATA

	This one must stay on the server.
	EOF
	# First, so the others go over the same connection after the refusal.
	srv_seed "$CASE_USER" INBOX "$m" || fail "seeding failed"
	seed_messages
	account acct "keep=no" "recipient=$rcpt" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc "$rc"
	assert_grep "smtp: 127\.0\.0\.1:$SMTP_PORT: message refused after DATA: $code " "$LAST_OUT.err"
	pf_wait "$rcpt" "$NSEEDS" || fail "Postfix did not deliver the others"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir "$rcpt")" $SEEDS >/dev/null ||
		fail "the other messages differ"
	# Postfix delivers asynchronously: give a stray copy time to show.
	sleep 0.5
	d=$(pf_maildir "$rcpt")
	assert_eq "$NSEEDS" "$(find "$d/new" "$d/cur" -type f | wc -l | tr -d ' ')" \
	    "messages Postfix delivered"
	grep -rq 'Subject: refused at the end of DATA' "$d" &&
		fail "the refused message was delivered"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	d=$(srv_maildir "$CASE_USER")
	cat "$d"/new/* "$d"/cur/* >"$CASE_DIR/left" 2>/dev/null
	assert_grep -F "Return-Path: <$sender>" "$CASE_DIR/left"
}

# 450 in reply to the end of DATA: temporary (75).
case_eod_tempfail() {
	eod_case eod-tempfail@example.org 75 "r4@$PF_DOMAIN" '450 4\.7\.1'
}

# 550 in reply to the end of DATA: failed (73), reported.
case_eod_reject() {
	eod_case eod-reject@example.org 73 "r5@$PF_DOMAIN" '550 5\.7\.1'
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
run_case eod_tempfail case_eod_tempfail
run_case eod_reject case_eod_reject
run_case no_mta case_no_mta
e2e_finish
