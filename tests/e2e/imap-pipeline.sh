#!/bin/sh
# Pipelined IMAP fetches against the real Dovecot: a few hundred messages
# with many UID FETCH commands in flight, byte for byte; and, through a
# fault injector (tests/servers/imapfault.py) between pullmail and Dovecot,
# another client expunging messages while the window is open, the
# connection cut in the middle of a window, and FETCH responses that carry
# their UID after the body literal, as Exchange Online sends them.  Nothing
# may be lost or delivered twice, and the next run must complete.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

# start_relay [--first-only] [--run CMD] [--fault F]...: the fault
# injector in front of Dovecot's plaintext IMAP listener; sets RELAY_PORT
# and RELAY_LOG.  It is stopped when the case ends.
start_relay() {
	start_injector imapfault.py "$IMAP_PORT" --lifetime 300 "$@"
	RELAY_PORT=$INJ_PORT RELAY_LOG=$INJ_LOG
}

# relay_account NAME [key=value]...: an account through the relay (in clear
# on loopback: the relay must see the dialogue).
relay_account() {
	local name=$1
	shift
	account "$name" "port=$RELAY_PORT" tls=none "$@"
}

# The UID FETCH commands pullmail sent before the first tagged reply to
# one of them arrived, from a --trace log.
fetches_in_flight() {
	awk '/C: A[0-9]+ UID FETCH [0-9:,]+ \(UID BODY.PEEK\[\]\)/ { n++ }
	     /S: A[0-9]+ OK/ && n > 0 { print n; exit }' "$1"
}

# Every delivered message is one of the seeds, none twice, and every
# message the server still holds was delivered.
assert_delivered_subset() {
	local dir=$1 got want server
	got=$(maildir_files "$dir" | xargs -r sha256sum | cut -d' ' -f1 | sort)
	want=$(echo "$SEEDS" | xargs sha256sum | cut -d' ' -f1 | sort)
	server=$(srv_server_files "$CASE_USER" INBOX | xargs -r sha256sum |
		cut -d' ' -f1 | sort)
	[ -z "$(echo "$got" | uniq -d)" ] || fail "a message was delivered twice"
	for h in $got; do
		echo "$want" | grep -qx "$h" || fail "delivered a message that was never seeded"
	done
	for h in $server; do
		echo "$got" | grep -qx "$h" || fail "a message on the server was not delivered"
	done
}

# A few hundred messages, many commands in flight, byte for byte; then
# deleted on the server.
case_pipelined_fetch() {
	seed_many 300
	account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_grep "^acct: 300 messages delivered" "$LAST_OUT.out"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	n=$(fetches_in_flight "$LAST_OUT.err")
	[ "${n:-0}" -ge 2 ] ||
		fail "only ${n:-0} UID FETCH command(s) were in flight at once"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# Another client expunges three messages after pullmail listed the folder
# and just before its first UID FETCH of bodies reaches the server: the
# others are delivered, nothing is taken for what it is not, and the next
# run has nothing new.
case_expunge_mid_window() {
	seed_many 40
	start_relay --first-only --fault on-first-fetch \
		--run "doveadm -c '$SRV_RUN/dovecot.conf' expunge -u '$CASE_USER' mailbox INBOX uid 3:5"
	relay_account acct | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_grep 'FAULT running' "$RELAY_LOG"
	assert_eq 37 "$(srv_count "$CASE_USER")" "messages left on the server"
	assert_delivered_subset "$CASE_DIR/Maildir"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_delivered_subset "$CASE_DIR/Maildir"
}

# The connection dies in the middle of the 25th body of a window: the 24
# complete ones are delivered and recorded, nothing is deleted; a new
# session in the same run deletes those without delivering them again and
# fetches the rest.
case_cut_mid_window() {
	seed_many 60
	start_relay --first-only --fault cut-body:25
	relay_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_grep 'FAULT cut in BODY\[\] literal #25' "$RELAY_LOG"
	assert_grep 'acct: .*; reconnecting in 1.0 s' "$LAST_OUT.err"
	assert_grep 'acct: INBOX: deleting 24 messages delivered by an earlier run' "$LAST_OUT.err"
	assert_grep "^acct: 60 messages delivered" "$LAST_OUT.out"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# Exchange Online's order: the UID after the body literal.  Every message
# arrives under its own UID, byte for byte.
case_uid_after_literal() {
	seed_many 20
	start_relay --fault exchange-order
	relay_account acct | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_eq 20 "$(grep -c 'FAULT UID [0-9]* moved behind' "$RELAY_LOG")" \
		"responses rewritten"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# On a terminal a progress line is drawn on standard error and taken away
# at the end; written to a file there is none, nor with -q.
case_progress_line() {
	seed_many 30
	account acct | write_config "$CASE_DIR/config"
	TERM=xterm script -qefc "'$PULLMAIL' -c '$CASE_DIR/config'" /dev/null \
		</dev/null >"$CASE_DIR/tty.out" 2>&1 || fail "pullmail failed on a terminal"
	assert_grep 'acct: INBOX: 30/30 messages, ' "$CASE_DIR/tty.out"
	assert_grep 'acct: 30 messages delivered' "$CASE_DIR/tty.out"
	assert_eq 30 "$(maildir_count "$CASE_DIR/Maildir")" "messages delivered"
	rm -rf "$CASE_DIR/Maildir" "$CASE_DIR/state"
	TERM=xterm script -qefc "'$PULLMAIL' -q -c '$CASE_DIR/config'" /dev/null \
		</dev/null >"$CASE_DIR/tty-q.out" 2>&1 || fail "pullmail -q failed on a terminal"
	assert_no_grep 'messages, ' "$CASE_DIR/tty-q.out"
	rm -rf "$CASE_DIR/Maildir" "$CASE_DIR/state"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_no_grep 'messages, ' "$LAST_OUT.err"
}

run_case pipelined_fetch case_pipelined_fetch
run_case progress_line case_progress_line
run_case expunge_mid_window case_expunge_mid_window
run_case cut_mid_window case_cut_mid_window
run_case uid_after_literal case_uid_after_literal
e2e_finish
