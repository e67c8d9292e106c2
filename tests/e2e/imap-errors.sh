#!/bin/sh
# Failures against the real servers: each a clear error on stderr, the
# documented exit status, and nothing deleted or flagged on the server.
# Also: no secret, token or SASL blob in -v, -vv or --trace output.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

# A port on 127.0.0.1 that refuses connections (CLOSED_PORT).
srv_closed_port

# After a failed run: the server still holds every seeded message, none of
# them flagged, and nothing arrived locally.
assert_untouched() {
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	srv_flags "$CASE_USER" >"$CASE_DIR/flags"
	assert_no_grep 'Seen|Deleted' "$CASE_DIR/flags"
	assert_eq 0 "$(maildir_count "$CASE_DIR/Maildir")" "messages delivered"
}

# One line on stderr, naming the account.
assert_clear_error() {
	assert_grep '^pullmail: acct: ' "$LAST_OUT.err"
	assert_eq "" "$(cat "$LAST_OUT.out")" "stdout of a failed run"
}

# assert_secret_free FILE: none of the test's secrets is in FILE.
assert_secret_free() {
	local s
	for s in "$APP_SECRET" "$BASIC_SECRET" "$POP3ONLY_SECRET" \
	    "$MS_CLIENT_SECRET" "$INTRO_SECRET" "$PASSWORD_SECRET"; do
		assert_no_grep -F "$s" "$1"
	done
}

case_wrong_secret() {
	seed_messages
	account acct "keep=no" "oauth_client_secret=wrong-$APP_SECRET" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_clear_error
	assert_grep -F 'invalid_client' "$LAST_OUT.err"
	assert_secret_free "$LAST_OUT.err"
	assert_no_grep -F "wrong-" "$LAST_OUT.err"
	assert_untouched
}

case_unknown_tenant() {
	seed_messages
	write_config "$CASE_DIR/config" <<-EOF
	[account acct]
	server = 127.0.0.1
	port = $IMAPS_PORT
	ca_file = $CA_FILE
	user = $CASE_USER@$MS_CLIENT_ID@00000000-0000-0000-0000-000000000000
	password = $MS_CLIENT_SECRET
	oauth_token_url = $OAUTH_URL/{tenant}/oauth2/v2.0/token
	keep = no
	deliver = maildir:$CASE_DIR/Maildir
	state_dir = $CASE_DIR/state
	EOF
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_clear_error
	assert_grep -F 'AADSTS90002' "$LAST_OUT.err"
	assert_secret_free "$LAST_OUT.err"
	assert_untouched
}

# The cached token is no longer known to the server (the OAuth server
# restarted and forgot it, as after a revocation): pullmail drops it, gets
# a fresh one once, and succeeds.
case_rejected_token() {
	local before
	seed_messages
	account acct "keep=no" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	srv_oauth_restart
	before=$(srv_token_requests "$APP_ID")
	local more
	more=$(make_messages "$CASE_DIR/more" "$CASE_NAME-more" | head -n 2)
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $more
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep '^acct: 2 messages delivered' "$LAST_OUT.out"
	assert_eq 1 "$(($(srv_token_requests "$APP_ID") - before))" "fresh token requests"
	assert_grep 'INTROSPECT status=200 active=false' "$OAUTH_LOG"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
	# The fresh token was cached: no request on the next run.
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_eq 1 "$(($(srv_token_requests "$APP_ID") - before))" "token requests after caching"
}

# A token the server refuses every time (it lacks the imap scope): one
# retry with a fresh token at most, then exit 77.
case_no_imap_scope() {
	local before
	seed_messages
	account acct "keep=no" "oauth_client_id=$POP3ONLY_ID" \
		"oauth_client_secret=$POP3ONLY_SECRET" "oauth_scope=pop3" |
		write_config "$CASE_DIR/config"
	before=$(srv_token_requests "$POP3ONLY_ID")
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_clear_error
	assert_secret_free "$LAST_OUT.err"
	assert_untouched
	local n=$(($(srv_token_requests "$POP3ONLY_ID") - before))
	[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "$n token requests, expected 1 or 2"
	# The same over STARTTLS with OAUTHBEARER.
	account acct "keep=no" "oauth_client_id=$POP3ONLY_ID" \
		"oauth_client_secret=$POP3ONLY_SECRET" "oauth_scope=pop3" \
		"tls=starttls" "port=$IMAP_PORT" "auth=oauthbearer" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_clear_error
	assert_untouched
}

# The token endpoint refuses the scope itself.
case_scope_refused() {
	seed_messages
	account acct "keep=no" "oauth_client_id=$POP3ONLY_ID" \
		"oauth_client_secret=$POP3ONLY_SECRET" "oauth_scope=imap" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_clear_error
	assert_grep -F 'invalid_scope' "$LAST_OUT.err"
	assert_untouched
}

case_unknown_ca() {
	seed_messages
	account acct "keep=no" "ca_file=" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 76
	assert_clear_error
	assert_untouched
	account acct "keep=no" "ca_file=$OTHER_CA_FILE" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 76
	assert_clear_error
	assert_untouched
	account acct "keep=no" "ca_file=$OTHER_CA_FILE" "tls=starttls" \
		"port=$IMAP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 76
	assert_clear_error
	assert_untouched
}

# A run with a cached token never starts libcurl; the TLS checks are the
# same: the system store alone or another CA's ca_file is refused.
case_cached_token_tls() {
	local before ca
	account acct | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	before=$(srv_token_requests "$APP_ID")
	seed_messages
	for ca in "" "$OTHER_CA_FILE"; do
		account acct "keep=no" "ca_file=$ca" | write_config "$CASE_DIR/config"
		run_pm -c "$CASE_DIR/config"
		assert_rc 76
		assert_clear_error
		assert_grep -F 'not trusted' "$LAST_OUT.err"
		assert_untouched
	done
	account acct | write_config "$CASE_DIR/config"
	run_pm -vv -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep 'certificate verified' "$LAST_OUT.err"
	assert_grep 'using cached access token' "$LAST_OUT.err"
	assert_eq "$before" "$(srv_token_requests "$APP_ID")" "token requests"
}

# 127.0.0.2 reaches the same Dovecot, whose certificate does not name it.
case_wrong_host() {
	seed_messages
	account acct "keep=no" "server=127.0.0.2" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 76
	assert_clear_error
	assert_grep -F '127.0.0.2' "$LAST_OUT.err"
	assert_untouched
	account acct "keep=no" "server=127.0.0.2" "tls=starttls" \
		"port=$IMAP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 76
	assert_clear_error
	assert_untouched
}

case_server_down() {
	seed_messages
	account acct "keep=no" "port=$CLOSED_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_clear_error
	assert_untouched
}

case_token_endpoint_down() {
	seed_messages
	account acct "keep=no" "oauth_token_url=http://127.0.0.1:$CLOSED_PORT/token" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_clear_error
	assert_untouched
}

# Several accounts: each one's result, the most severe status wins.
case_severity() {
	seed_messages
	{
		account good
		account bad "oauth_client_secret=wrong" \
			"deliver=maildir:$CASE_DIR/Maildir-bad" "state_dir=$CASE_DIR/state-bad"
		account down "port=$CLOSED_PORT" \
			"deliver=maildir:$CASE_DIR/Maildir-down" "state_dir=$CASE_DIR/state-down"
	} | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_grep "^good: $NSEEDS messages delivered" "$LAST_OUT.out"
	assert_grep '^pullmail: bad: .*invalid_client' "$LAST_OUT.err"
	assert_grep '^pullmail: down: ' "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	run_pm -c "$CASE_DIR/config" good down
	assert_rc 75
	assert_grep '^good: no new messages$' "$LAST_OUT.out"
}

# trace_case NAME AUTH: a successful fetch with -vv --trace must show the
# dialogue but no secret, token or SASL blob.
trace_case() {
	local auth=$1 token blob out=$CASE_DIR/trace-$1 before
	account acct "auth=$auth" "state_dir=$CASE_DIR/state-$auth" \
		"deliver=maildir:$CASE_DIR/Maildir-$auth" | write_config "$CASE_DIR/config"
	before=$(srv_token_requests "$APP_ID")
	run_pm -vv --trace -c "$CASE_DIR/config"
	assert_rc 0
	assert_eq 1 "$(($(srv_token_requests "$APP_ID") - before))" "token requests"
	cat "$LAST_OUT.out" "$LAST_OUT.err" >"$out"
	# The trace is really on: the dialogue is there, with the mechanism
	# asked for and no other.
	case $auth in
	xoauth2) assert_grep ' AUTHENTICATE XOAUTH2' "$out"
		assert_no_grep 'AUTHENTICATE OAUTHBEARER' "$out" ;;
	oauthbearer) assert_grep ' AUTHENTICATE OAUTHBEARER' "$out"
		assert_no_grep 'AUTHENTICATE XOAUTH2' "$out" ;;
	esac
	assert_grep 'UID FETCH' "$out"
	token=$(issued_tokens | tail -n 1)
	[ ${#token} -ge 20 ] || fail "no token in the OAuth server's log"
	case $auth in
	xoauth2) blob=$(printf 'user=%s\001auth=Bearer %s\001\001' "$CASE_USER" "$token" | base64 -w0) ;;
	oauthbearer) blob=$(printf 'n,a=%s,\001auth=Bearer %s\001\001' "$CASE_USER" "$token" | base64 -w0) ;;
	esac
	assert_no_grep -F "$token" "$out"
	assert_no_grep -F "$(echo "$token" | cut -c1-12)" "$out"
	assert_no_grep -F "$blob" "$out"
	assert_no_grep -F "$(echo "$blob" | cut -c1-40)" "$out"
	assert_secret_free "$out"
	# The token cache holds it, privately.
	grep -rqF -e "$token" "$CASE_DIR/state-$auth" || fail "token not cached in the state dir"
	[ -z "$(find "$CASE_DIR/state-$auth" -type f -perm /077)" ] ||
		fail "state files readable by others"
}

case_trace_secrets() {
	seed_messages
	trace_case xoauth2
	trace_case oauthbearer
	# A failed login, traced: the server's error challenge shows, the
	# token does not.
	account acct "oauth_client_id=$POP3ONLY_ID" "oauth_scope=pop3" \
		"oauth_client_secret=$POP3ONLY_SECRET" \
		"state_dir=$CASE_DIR/state-fail" | write_config "$CASE_DIR/config"
	run_pm -vv --trace -c "$CASE_DIR/config"
	assert_rc 77
	cat "$LAST_OUT.out" "$LAST_OUT.err" >"$CASE_DIR/trace-fail"
	assert_grep ' AUTHENTICATE XOAUTH2' "$CASE_DIR/trace-fail"
	local t
	for t in $(issued_tokens | tail -n 2); do
		assert_no_grep -F "$t" "$CASE_DIR/trace-fail"
	done
	assert_secret_free "$CASE_DIR/trace-fail"
	# A wrong secret with -v: the error, not the secret.
	account acct "oauth_client_secret=$APP_SECRET-typo" \
		"state_dir=$CASE_DIR/state-typo" | write_config "$CASE_DIR/config"
	run_pm -v --trace -c "$CASE_DIR/config"
	assert_rc 77
	cat "$LAST_OUT.out" "$LAST_OUT.err" >"$CASE_DIR/trace-typo"
	assert_secret_free "$CASE_DIR/trace-typo"
}

# A password account, traced: neither the password nor the PLAIN blob.
case_trace_password() {
	local blob
	CASE_USER=$PASSWORD_USER
	seed_messages
	account acct "user=$PASSWORD_USER" "auth=plain" \
		"password=$PASSWORD_SECRET" "oauth_provider=" \
		"oauth_token_url=" "oauth_client_id=" \
		"oauth_client_secret=" "oauth_scope=" | write_config "$CASE_DIR/config"
	run_pm -vv --trace -c "$CASE_DIR/config"
	assert_rc 0
	cat "$LAST_OUT.out" "$LAST_OUT.err" >"$CASE_DIR/trace"
	assert_grep ' AUTHENTICATE PLAIN' "$CASE_DIR/trace"
	blob=$(printf '\000%s\000%s' "$PASSWORD_USER" "$PASSWORD_SECRET" | base64 -w0)
	assert_no_grep -F "$blob" "$CASE_DIR/trace"
	assert_secret_free "$CASE_DIR/trace"
}

run_case wrong_secret case_wrong_secret
run_case unknown_tenant case_unknown_tenant
run_case no_imap_scope case_no_imap_scope
run_case scope_refused case_scope_refused
run_case unknown_ca case_unknown_ca
run_case cached_token_tls case_cached_token_tls
run_case wrong_host case_wrong_host
run_case server_down case_server_down
run_case token_endpoint_down case_token_endpoint_down
run_case severity case_severity
run_case trace_secrets case_trace_secrets
run_case trace_password case_trace_password
# Last: it restarts the OAuth server.
run_case rejected_token case_rejected_token
e2e_finish
