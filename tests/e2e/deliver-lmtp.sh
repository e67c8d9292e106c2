#!/bin/sh
# LMTP delivery into Dovecot's real LMTP service, over its unix socket and
# over TCP.  Dovecot puts Return-Path, Delivered-To and Received in front
# of each message; same-after-trace.py strips exactly those and compares
# the rest byte for byte with the server's copies.  A message over a
# user's quota is refused at the end of DATA with 552 (or 452 with
# quota_full_tempfail) and stays on the server while the others arrive.
# A run of 20 messages is one LMTP session (counted in Dovecot's log), also
# with such a refusal in the middle.  A message with bare CRs, "<CR>.<CR>"
# and NUL bytes arrives as one message with its lines ended properly and
# no NUL.
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

# A message with bare CRs, "<CR>.<CR>" followed by SMTP commands, a bare
# LF "." line and NUL bytes (made by deliver/bare-cr.sh; fetched over
# POP3, whose Dovecot passes NULs on) arrives as one whole message with
# every line ended properly and the NULs gone; the messages after it in
# the same session arrive intact.
case_bare_cr_nul() {
	local rcpt=dest-$CASE_USER
	sh "$top_srcdir/tests/e2e/deliver/bare-cr.sh" "$CASE_DIR/bare.eml" \
	    "$CASE_DIR/want.eml" "$rcpt"
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/bare.eml" || fail "seeding failed"
	seed_messages
	account acct "keep=no" "recipient=$rcpt" "deliver=lmtp:$SRV_BASE/lmtp" \
	    protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3 |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" "$(srv_maildir "$rcpt")" "$CASE_DIR/want.eml" \
	    $SEEDS >/dev/null || fail "messages differ"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
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

# quota_case USER RC CODE: a message over USER's quota among the seeds.
#
# Dovecot 2.3's LMTP does not refuse an unknown recipient here: the test
# userdb is static with allow_all_users=yes, so every RCPT TO is accepted.
# What it really refuses is a message over the user's quota (quota plugin,
# lmtp_rcpt_check_quota = no, the default): the check happens when it saves
# the message, so the refusal is LMTP's per-recipient reply to the end of
# DATA, the durability point: "552 5.2.2 <user> Quota exceeded", or
# "452 4.2.2" for a user with quota_full_tempfail.  servers.sh gives
# lmtp-quota and lmtp-quota-temp a 100 kB quota (lmtp-users).  Each user
# serves one case only (the quota use persists for the whole script).
quota_case() {
	local rcpt=$1 rc=$2 code=$3 big d
	big=$CASE_DIR/big.eml
	{
		echo "Return-Path: <big@example.org>"
		echo "From: big@example.org"
		echo "To: $rcpt"
		echo "Subject: over the quota"
		echo
		head -c 200000 /dev/zero | tr '\0' 'q' | fold -w 76
		echo
	} >"$big"
	# First, so the others go over the same connection after the refusal.
	srv_seed "$CASE_USER" INBOX "$big" || fail "seeding failed"
	seed_messages
	account acct "keep=no" "recipient=$rcpt" "deliver=lmtp:$SRV_BASE/lmtp" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc "$rc"
	assert_grep "lmtp: .*/lmtp: message refused after DATA: $code <$rcpt> Quota exceeded" \
	    "$LAST_OUT.err"
	# The others arrived intact, the big one did not arrive at all.
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" "$(srv_maildir "$rcpt")" $SEEDS >/dev/null ||
		fail "the other messages differ (or the big one was delivered)"
	assert_eq "$NSEEDS" "$(srv_count "$rcpt")" "messages Dovecot delivered"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	d=$(srv_maildir "$CASE_USER")
	cat "$d"/new/* "$d"/cur/* >"$CASE_DIR/left" 2>/dev/null
	assert_grep -F 'Subject: over the quota' "$CASE_DIR/left"
}

# 552 5.2.2 from Dovecot at the end of DATA: failed (73), kept.
case_quota_reject() {
	quota_case lmtp-quota 73 '552 5\.2\.2'
}

# 452 4.2.2 (quota_full_tempfail): temporary (75), kept.
case_quota_tempfail() {
	quota_case lmtp-quota-temp 75 '452 4\.2\.2'
}

# LMTP sessions Dovecot has logged, once every one of them has ended.
lmtp_sessions() {
	sessions_logged "$SRV_RUN/dovecot.log" 'lmtp([0-9]*): Info: Connect from ' \
		'lmtp([0-9]*): Info: Disconnect from '
}

# 20 messages in one run: one LMTP session, each arrives byte for byte.
case_one_session() {
	local rcpt=dest-$CASE_USER before
	seed_many 20
	account acct "keep=no" "recipient=$rcpt" "deliver=lmtp:$SRV_BASE/lmtp" |
	    write_config "$CASE_DIR/config"
	before=$(lmtp_sessions)
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" "$(srv_maildir "$rcpt")" $SEEDS >/dev/null ||
		fail "messages differ"
	assert_eq 1 "$(($(lmtp_sessions) - before))" "LMTP sessions"
	assert_eq 20 "$(grep -c "lmtp($rcpt).*: saved mail to INBOX" "$SRV_RUN/dovecot.log")" \
	    "messages Dovecot saved"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A message over the quota as the 11th of 21: refused at the end of DATA
# (452 with quota_full_tempfail), RSET, and the same session carries the
# other ten.  The user served case_quota_tempfail before: its mail is
# removed first so that the counts start from nothing.
case_refused_in_the_middle() {
	local rcpt=lmtp-quota-temp before first big d
	rm -rf "$(srv_maildir "$rcpt")"
	seed_many 10
	first=$SEEDS
	big=$CASE_DIR/big.eml
	{
		echo "Return-Path: <big@example.org>"
		echo "From: big@example.org"
		echo "To: $rcpt"
		echo "Subject: over the quota in the middle"
		echo
		head -c 200000 /dev/zero | tr '\0' 'q' | fold -w 76
		echo
	} >"$big"
	srv_seed "$CASE_USER" INBOX "$big" || fail "seeding failed"
	srv_count "$CASE_USER" >/dev/null
	seed_many 10 last
	SEEDS="$first $SEEDS"
	assert_eq "over the quota in the middle" "$(srv_doveadm -f flow fetch -u "$CASE_USER" \
	    hdr.subject mailbox INBOX uid 11 | sed 's/^hdr.subject=//')" "UID 11"
	account acct "keep=no" "recipient=$rcpt" "deliver=lmtp:$SRV_BASE/lmtp" |
	    write_config "$CASE_DIR/config"
	before=$(lmtp_sessions)
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep "lmtp: .*/lmtp: message refused after DATA: 452 4\.2\.2 <$rcpt> Quota exceeded" \
	    "$LAST_OUT.err"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" "$(srv_maildir "$rcpt")" $SEEDS >/dev/null ||
		fail "the other messages differ (or the big one was delivered)"
	assert_eq 1 "$(($(lmtp_sessions) - before))" "LMTP sessions"
	assert_eq 20 "$(srv_count "$rcpt")" "messages Dovecot delivered"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	d=$(srv_maildir "$CASE_USER")
	cat "$d"/new/* "$d"/cur/* >"$CASE_DIR/left" 2>/dev/null
	assert_grep -F 'Subject: over the quota in the middle' "$CASE_DIR/left"
}

run_case socket case_socket
run_case tcp case_tcp
run_case no_socket case_no_socket
run_case bare_cr_nul case_bare_cr_nul
run_case quota_reject case_quota_reject
run_case quota_tempfail case_quota_tempfail
run_case one_session case_one_session
run_case refused_in_the_middle case_refused_in_the_middle
e2e_finish
