#!/bin/sh
# Exchange Online's live-session replies, played by a fault injector of our
# own (tests/servers/exchangefault.py) in front of the real Dovecot (IMAP,
# and POP3 for a throttled login) and the real OAuth server: a throttled
# login, "User is authenticated but not connected", "BYE Session
# invalidated - AccessTokenExpired" in the middle of a fetch, and access
# tokens that expire during a fetch.  One run completes the fetch each
# time, byte for byte, nothing twice, exit 0, and notify_command never
# runs: none of these needs a human.  A throttle that never ends gives exit
# 75 after the bounded attempts, its waits capped by throttle_max_wait.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

# The client whose tokens live a few seconds (servers.sh: SHORT_ID).
SRV_SHORT_TTL=5
export SRV_SHORT_TTL
e2e_start_servers

# start_exchange OPTION...: the injector in front of Dovecot's plaintext
# IMAP listener; sets RELAY_PORT and RELAY_LOG.
start_exchange() {
	start_injector exchangefault.py "$IMAP_PORT" --lifetime 300 "$@"
	RELAY_PORT=$INJ_PORT RELAY_LOG=$INJ_LOG
}

# exchange_config [key=value]...: one account through the relay (in clear
# on loopback: the relay must see the dialogue), with a notify_command
# that leaves a file behind if it ever runs.
exchange_config() {
	account acct "port=$RELAY_PORT" tls=none \
		"notify_command=touch $CASE_DIR/notified" "$@" |
		write_config "$CASE_DIR/config"
}

# The run never took any of it for a failure a human must fix.
assert_no_human() {
	[ ! -e "$CASE_DIR/notified" ] || fail "notify_command ran"
	assert_no_grep -E "[Aa]uthentication failed|refused the" "$LAST_OUT.err"
}

# Throttled twice at login: the suggested wait each time, then the fetch.
case_throttled_login() {
	seed_messages
	start_exchange --throttle-logins 2 --backoff-ms 700
	exchange_config throttle_max_wait=5
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_human
	assert_eq 2 "$(grep -c 'throttled by the server; retrying in 0.7 s' "$LAST_OUT.err")" \
		"throttle waits logged"
	assert_grep "LOGIN #3" "$RELAY_LOG"
	assert_no_grep "LOGIN #4" "$RELAY_LOG"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# A throttled login over POP3: Exchange's -ERR to AUTH, the suggested wait,
# then the fetch.
case_pop3_throttled_login() {
	seed_messages
	start_injector exchangefault.py "$POP3_PORT" --lifetime 300 --pop3 \
		--throttle-logins 1 --backoff-ms 500
	account acct protocol=pop3 "port=$INJ_PORT" tls=none oauth_scope=pop3 \
		"notify_command=touch $CASE_DIR/notified" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_human
	assert_grep -F "throttled by the server; retrying in 0.5 s" "$LAST_OUT.err"
	assert_grep "FAULT login #1 throttled \(POP3\)" "$INJ_LOG"
	assert_grep "LOGIN #2" "$INJ_LOG"
}

# A throttle that never ends: exit 75 after the bounded attempts, each
# wait cut to throttle_max_wait (the server asks for 30 s).
case_throttled_forever() {
	seed_messages
	start_exchange --throttle-logins -1 --backoff-ms 30000
	exchange_config throttle_max_wait=1
	start=$(date +%s)
	run_pm -c "$CASE_DIR/config" -v
	took=$(($(date +%s) - start))
	assert_rc 75
	assert_no_human
	assert_eq 0 "$(maildir_count "$CASE_DIR/Maildir")" "messages delivered"
	assert_grep -F "asks to wait 30.0 s; waiting 1.0 s (throttle_max_wait)" "$LAST_OUT.err"
	assert_grep "Request is throttled" "$LAST_OUT.err"
	# The first session and three more, three waits of 1 s.
	assert_grep "LOGIN #4" "$RELAY_LOG"
	assert_no_grep "LOGIN #5" "$RELAY_LOG"
	if [ "$took" -lt 3 ] || [ "$took" -gt 12 ]; then
		fail "the run took $took s, expected about 3"
	fi
}

# "User is authenticated but not connected." to the first SELECT: a new
# session a moment later.
case_not_connected() {
	seed_messages
	start_exchange --not-connected
	exchange_config
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_human
	assert_grep "FAULT SELECT: not connected" "$RELAY_LOG"
	assert_grep -F "not connected.; reconnecting in 1.0 s" "$LAST_OUT.err"
}

# BYE AccessTokenExpired in the middle of a fetch, after a whole message
# (other FETCH responses still due): a new session with a new token goes
# on where the first stopped.
case_expired_mid_fetch() {
	seed_many 30
	# One message over the size limit, listed by both sessions, is
	# skipped once.
	{ printf 'From: big@example.org\nSubject: big\n\n'
	  yes 'a line of a message over the size limit' | head -n 600; } \
		>"$CASE_DIR/big.eml"
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/big.eml" || fail "seeding failed"
	start_exchange --expire-after 7 --expire-in response
	exchange_config size_limit=10k
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_grep "^acct: 1 message skipped for size$" "$LAST_OUT.out"
	assert_no_human
	assert_grep "FAULT BYE AccessTokenExpired after body #7" "$RELAY_LOG"
	assert_grep "acct: 30 messages delivered" "$LAST_OUT.out"
	assert_grep "the access token expired; going on with a new token" "$LAST_OUT.err"
	# A new token, not the cached one again.
	assert_eq 2 "$(grep -c 'obtained a token from' "$LAST_OUT.err")" \
		"tokens obtained"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# The same BYE inside a body literal is message data; the cut after it is
# a lost connection: a new session after a short wait, the message cut
# short fetched whole.
case_expired_in_literal() {
	seed_many 30
	start_exchange --expire-after 7 --expire-in literal
	exchange_config
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_human
	assert_grep "FAULT BYE AccessTokenExpired inside body literal #8" "$RELAY_LOG"
	assert_grep "acct: 30 messages delivered" "$LAST_OUT.out"
	assert_grep "reconnecting in 1.0 s" "$LAST_OUT.err"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# Access tokens that live 5 s and a fetch (two folders) that takes longer:
# the session ends between the folders before the token expires and the
# run goes on with a new token; the server never has to end it.
case_renew_before_expiry() {
	seed_messages INBOX
	inbox=$SEEDS
	seed_messages Archive
	start_exchange --body-delay-ms 700 --token-lifetime 5
	account acct "port=$RELAY_PORT" tls=none \
		"notify_command=touch $CASE_DIR/notified" \
		"oauth_client_id=$SHORT_ID" "oauth_client_secret=$SHORT_SECRET" \
		folder=INBOX folder=Archive | write_config "$CASE_DIR/config"
	PM_TIMEOUT=60 run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_no_human
	assert_grep "the access token is about to expire; going on with a new session" "$LAST_OUT.err"
	assert_no_grep "FAULT" "$RELAY_LOG"
	assert_grep "LOGIN #2" "$RELAY_LOG"
	assert_eq 2 "$(grep -c 'obtained a token from' "$LAST_OUT.err")" \
		"tokens obtained"
	assert_grep "acct: 10 messages delivered" "$LAST_OUT.out"
	# shellcheck disable=SC2086
	set -- $inbox $SEEDS
	assert_same_messages "$CASE_DIR/Maildir" "$@"
}

# --- the daemon through the same injector ----------------------------------

# Throttled logins: the IDLE session waits what the server suggests and
# comes up; new mail then arrives within seconds; no human is called.
case_daemon_throttled() {
	local more
	seed_messages
	start_exchange --throttle-logins 2 --backoff-ms 700
	exchange_config throttle_max_wait=5 poll_interval=3600
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	wait_grep 'waiting for new mail \(IDLE\)' "$LAST_OUT.err" 10
	more_mail 1 10
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
	assert_no_human
	assert_grep 'Request is throttled.*retrying in 1 s' "$LAST_OUT.err"
	assert_grep "LOGIN #3" "$RELAY_LOG"
	assert_no_grep "paused" "$LAST_OUT.err"
}

# "User is authenticated but not connected" to the IDLE session's SELECT:
# a new session a second later.
case_daemon_not_connected() {
	seed_messages
	start_exchange --not-connected
	exchange_config poll_interval=3600
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	stop_daemon
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_human
	assert_grep "FAULT SELECT: not connected" "$RELAY_LOG"
	assert_grep 'not connected.*retrying in 1 s' "$LAST_OUT.err"
}

# An idling daemon whose sessions Exchange ends when their tokens expire
# (after 3 s; the tokens of this app live 5 s): the daemon renews its
# sessions before that or reconnects with a new token after the BYE, and
# mail saved at any time arrives, once, with no error a person would see.
case_daemon_tokens_expire() {
	local all
	seed_messages
	all=$SEEDS
	start_exchange --token-lifetime 3
	account acct "port=$RELAY_PORT" tls=none poll_interval=3600 \
		"notify_command=touch $CASE_DIR/notified" \
		"oauth_client_id=$SHORT_ID" "oauth_client_secret=$SHORT_SECRET" |
		write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	trickle 3 2 15
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $all
	assert_no_human
	assert_no_grep 'paused' "$LAST_OUT.err"
	# It went through several sessions and tokens.
	assert_grep "LOGIN #3" "$RELAY_LOG"
	[ "$(srv_token_requests "$SHORT_ID")" -ge 3 ] ||
		fail "$(srv_token_requests "$SHORT_ID") tokens issued, expected 3 or more"
}

run_case throttled_login case_throttled_login
run_case pop3_throttled_login case_pop3_throttled_login
run_case throttled_forever case_throttled_forever
run_case not_connected case_not_connected
run_case expired_mid_fetch case_expired_mid_fetch
run_case expired_in_literal case_expired_in_literal
run_case renew_before_expiry case_renew_before_expiry
run_case daemon_throttled case_daemon_throttled
run_case daemon_not_connected case_daemon_not_connected
run_case daemon_tokens_expire case_daemon_tokens_expire
e2e_finish
