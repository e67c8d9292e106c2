#!/bin/sh
# LMTP delivery into Dovecot's real LMTP service, over its unix socket and
# over TCP.  Dovecot puts Return-Path, Delivered-To and Received in front
# of each message; same-after-trace.py strips exactly those and compares
# the rest byte for byte with the server's copies.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers
echo "lmtp: port $LMTP_PORT, socket $SRV_BASE/lmtp"

SAME=$top_srcdir/tests/e2e/deliver/same-after-trace.py

# lmtp_case TARGET: deliver CASE_USER's mail to a second Dovecot user.
lmtp_case() {
	local rcpt=dest-$CASE_USER hostile
	seed_messages
	hostile=$CASE_DIR/hostile.eml
	cat >"$hostile" <<-EOF
	From: "; rm -rf ~"@x
	To: $CASE_USER
	Subject: hostile sender

	body
	EOF
	srv_seed "$CASE_USER" INBOX "$hostile" || fail "seeding failed"
	account acct "keep=no" "recipient=$rcpt" "deliver=lmtp:$1" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" "$(srv_maildir "$rcpt")" $SEEDS "$hostile" \
	    >"$CASE_DIR/senders" || fail "messages differ"
	assert_grep -F 'Return-Path: <carol@example.org>' "$CASE_DIR/senders"
	assert_grep -F 'Return-Path: <"; rm -rf ~"@x>' "$CASE_DIR/senders"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	assert_eq "$((NSEEDS + 1))" "$(srv_count "$rcpt")" "messages Dovecot holds"
}

case_socket() {
	lmtp_case "$SRV_BASE/lmtp"
}

case_tcp() {
	lmtp_case "127.0.0.1:$LMTP_PORT"
}

# A socket nobody listens on: temporary, nothing lost.
case_no_socket() {
	seed_messages
	account acct "keep=no" "recipient=x@$MAIL_DOMAIN" \
	    "deliver=lmtp:$CASE_DIR/no-such-socket" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'lmtp: .*no-such-socket: cannot connect' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

run_case socket case_socket
run_case tcp case_tcp
run_case no_socket case_no_socket
e2e_finish
