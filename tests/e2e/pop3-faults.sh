#!/bin/sh
# The POP3 plugin when things go wrong, with a fault injector
# (tests/servers/faultproxy.py) between pullmail and the real Dovecot: the
# connection cut in the middle of a RETR, or after DELE and before QUIT
# (POP3 applies deletions only at QUIT); a server without UIDL; a server
# without SASL (USER/PASS); a message holding bare-LF "." lines; a reply
# out of step right after a message.  Nothing may be lost, nothing
# delivered twice, and the next run must complete.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers
echo "pop3 $POP3_PORT"

# start_proxy [--first-only] [--fault F]...: a fault injector in front of
# Dovecot's plaintext POP3 listener; sets PROXY_PORT and PROXY_LOG.  It is
# stopped when the case ends.
start_proxy() {
	start_injector faultproxy.py "$POP3_PORT" "$@"
	PROXY_PORT=$INJ_PORT PROXY_LOG=$INJ_LOG
}

# proxy_account NAME [key=value]...: a POP3 account through the proxy (in
# clear on loopback: the proxy must see the dialogue).
proxy_account() {
	local name=$1
	shift
	account "$name" protocol=pop3 "port=$PROXY_PORT" tls=none \
		oauth_scope=pop3 "$@"
}

# Seed CASE_USER; SEEDS, NSEEDS.
seed() {
	SEEDS=$(make_messages "$CASE_DIR/seed" "$CASE_NAME")
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $SEEDS || fail "seeding failed"
	NSEEDS=$(echo "$SEEDS" | wc -l | tr -d ' ')
}

# The connection drops in the middle of the third message: the two before
# it are delivered and recorded, nothing is deleted (no QUIT); a new
# session in the same run deletes those two without delivering them again
# and fetches the rest.
case_cut_mid_retr_delete() {
	seed
	start_proxy --first-only --fault cut-retr:3
	proxy_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -v --trace
	assert_rc 0
	assert_grep 'FAULT in the body of RETR #3' "$PROXY_LOG"
	assert_grep 'acct: RETR 3: .*; reconnecting in 1.0 s' "$LAST_OUT.err"
	assert_grep "acct: $NSEEDS messages delivered" "$LAST_OUT.out"
	assert_grep 'deleting 2 messages delivered by an earlier run' "$LAST_OUT.err"
	assert_grep 'C: DELE 1' "$LAST_OUT.err"
	assert_eq 1 "$(grep -c 'C: RETR 1$' "$LAST_OUT.err")" "RETR 1 sent"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# The same with keep = yes: the new session fetches only the rest.
case_cut_mid_retr_keep() {
	seed
	start_proxy --first-only --fault cut-retr:2
	proxy_account acct keep=yes | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_grep 'acct: RETR 2: .*; reconnecting in 1.0 s' "$LAST_OUT.err"
	assert_grep "acct: $NSEEDS messages delivered" "$LAST_OUT.out"
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# Every message delivered and marked with DELE, then the connection drops
# before QUIT: the server keeps them all (POP3 deletes only at QUIT), the
# state has them, so the next run deletes them and delivers nothing.
case_cut_before_quit() {
	seed
	start_proxy --first-only --fault cut-before-quit
	proxy_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 75
	assert_grep 'FAULT QUIT withheld' "$PROXY_LOG"
	assert_grep 'C: DELE' "$LAST_OUT.err"
	assert_grep "acct: $NSEEDS messages delivered" "$LAST_OUT.out"
	assert_grep 'stay on the server until the next run' "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	run_pm -c "$CASE_DIR/config" --trace -v
	assert_rc 1
	assert_no_grep 'C: RETR' "$LAST_OUT.err"
	assert_grep "deleting $NSEEDS messages delivered by an earlier run" \
		"$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A server without UIDL: a clear error and nothing touched, unless
# fetch_all = yes.
case_no_uidl() {
	seed
	start_proxy --fault no-uidl
	proxy_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 78
	assert_grep 'FAULT UIDL refused' "$PROXY_LOG"
	assert_grep 'acct: the server does not support UIDL.*set fetch_all = yes' \
		"$LAST_OUT.err"
	assert_no_grep 'C: RETR' "$LAST_OUT.err"
	assert_eq 0 "$(maildir_count "$CASE_DIR/Maildir")" "local messages"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	proxy_account acct keep=no fetch_all=yes | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A password server without SASL: USER and PASS, the password redacted.
case_user_pass() {
	CASE_USER=$PASSWORD_USER
	seed
	start_proxy --fault no-sasl
	{
		echo "[account pw]"
		echo "server = 127.0.0.1"
		echo "port = $PROXY_PORT"
		echo "protocol = pop3"
		echo "tls = none"
		echo "user = $PASSWORD_USER"
		echo "password = $PASSWORD_SECRET"
		echo "keep = no"
		echo "deliver = maildir:$CASE_DIR/Maildir"
		echo "state_dir = $CASE_DIR/state"
	} | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_grep "C: USER $PASSWORD_USER" "$LAST_OUT.err"
	assert_grep 'C: PASS ' "$LAST_OUT.err"
	assert_no_grep 'C: AUTH' "$LAST_OUT.err"
	assert_no_grep -F -- "$PASSWORD_SECRET" "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$PASSWORD_USER")" "messages left on the server"
}

# A message whose text holds bare-LF "." lines, one of them followed by a
# line that reads as a reply (the fault injector adds them to message 2;
# Dovecot itself sends every line end as CRLF).  Servers stuff only lines
# that start after CRLF, so only CRLF "." CRLF ends a message: with
# PIPELINING every message arrives byte for byte as served, none under
# another's UIDL, and with keep = no nothing leaves the server undelivered
# over two runs.  (A reader that ended message 2 at "\n.\n" delivered its
# rest as message 3, and so on.)
case_bare_lf_dot() {
	local f
	seed
	mkdir -p "$CASE_DIR/served" "$CASE_DIR/want"
	start_proxy --fault bare-lf-dot:2 --record "$CASE_DIR/served"
	proxy_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_grep 'FAULT bare-LF "." lines in the body of message 2' \
		"$PROXY_LOG"
	assert_grep 'S: PIPELINING' "$LAST_OUT.err"
	assert_grep "acct: $NSEEDS messages delivered" "$LAST_OUT.out"
	assert_eq "$NSEEDS" "$(find "$CASE_DIR/served" -type f | wc -l)" \
		"messages served"
	# What was served, with the line ends pullmail stores (LF).
	for f in "$CASE_DIR/served"/*; do
		sed 's/\r$//' "$f" >"$CASE_DIR/want/${f##*/}"
	done
	assert_eq 1 "$(grep -l 'forged reply from the fault injector' \
		"$CASE_DIR/want"/* | wc -l)" "served messages with the fault"
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/Maildir" $(ls "$CASE_DIR/want"/*)
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 1
	assert_no_grep 'C: RETR' "$LAST_OUT.err"
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/Maildir" $(ls "$CASE_DIR/want"/*)
}

# A line that is no reply right after message 2 (fault injector, first
# connection only), with PIPELINING: the replies are out of step, so
# message 2, whole as it looked, is not kept (it may have been cut short
# and its rest sent as that line); nothing is deleted, and the next run
# fetches it and the rest, each once.
case_junk_after_message() {
	seed
	start_proxy --first-only --fault junk-after:2
	proxy_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 76
	assert_grep 'FAULT junk after message 2' "$PROXY_LOG"
	assert_grep 'message 2 before it stays on the server' "$LAST_OUT.err"
	assert_grep 'S: PIPELINING' "$LAST_OUT.err"
	assert_no_grep 'C: DELE' "$LAST_OUT.err"
	assert_eq 1 "$(maildir_count "$CASE_DIR/Maildir")" "local messages"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

run_case cut_mid_retr_delete case_cut_mid_retr_delete
run_case cut_mid_retr_keep case_cut_mid_retr_keep
run_case cut_before_quit case_cut_before_quit
run_case no_uidl case_no_uidl
run_case user_pass case_user_pass
run_case bare_lf_dot case_bare_lf_dot
run_case junk_after_message case_junk_after_message
e2e_finish
