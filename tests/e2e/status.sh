#!/bin/sh
# `pullmail status` after one-shot runs against Dovecot and the OAuth
# server: no status file yet, a success (delivered count, token expiry),
# an authentication failure (needs a human: exit 2), a server that is down
# (backing off: exit 1), and the records of separate runs side by side.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers
# A port on 127.0.0.1 that refuses connections (CLOSED_PORT).
srv_closed_port

# run_status ARG...: `pullmail -c CONFIG status ARG...`, as run_pm.
run_status() {
	run_pm -c "$CASE_DIR/config" status "$@"
}

# The status file of the case (one in the state directory).
status_file() {
	ls "$CASE_DIR"/state/status-* 2>/dev/null | grep -v '\.lock$'
}

case_no_file() {
	account acct | write_config "$CASE_DIR/config"
	run_status
	assert_rc 3
	assert_grep -F "no status yet: $CASE_DIR/state/status-" "$LAST_OUT.out"
	assert_grep -F "does not exist" "$LAST_OUT.out"
	run_status nosuch
	assert_rc 64
	assert_grep -F "no account named 'nosuch'" "$LAST_OUT.err"
}

case_success() {
	seed_messages
	account acct | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	f=$(status_file)
	[ -n "$f" ] || fail "no status file in $CASE_DIR/state"
	assert_eq 600 "$(stat -c %a "$f")" "status file mode"
	assert_eq "" "$(ls "$CASE_DIR/state" | grep '\.tmp$')" "temp files left"
	run_status
	assert_rc 0
	out=$LAST_OUT.out
	assert_grep -E "^acct$" "$out"
	assert_grep -E "^  state:         idle since [0-9-]+ [0-9:]+ \([0-9]+ s ago\)$" "$out"
	assert_grep -E "^  last success:  [0-9-]+ [0-9:]+ \([0-9]+ s ago\)$" "$out"
	assert_grep -E "^  last error:    none$" "$out"
	assert_grep -E "^  delivered:     $NSEEDS since " "$out"
	# The token the run got from the OAuth server, not yet expired.
	assert_grep -E "^  token expires: [0-9-]+ [0-9:]+ \(in [0-9]+ (min|h [0-9]+ min)\)$" "$out"
	assert_grep -E "^  written by:    pid [0-9]+, no longer running, at " "$out"
	# A run with nothing new: nothing delivered by that run.
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	run_status acct
	assert_rc 0
	assert_grep -E "^  delivered:     0 since " "$LAST_OUT.out"
}

# A wrong client secret: a human must act; the last success stays.
case_needs_human() {
	seed_messages
	account acct | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	account acct "oauth_client_secret=wrong-Secret-4711" |
		write_config "$CASE_DIR/config"
	rm -rf "$CASE_DIR/state/tokens"	# else the cached token still works
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	run_status
	assert_rc 2
	out=$LAST_OUT.out
	assert_grep -E "^  state:         NEEDS A HUMAN: see the last error$" "$out"
	assert_grep -E "^  last success:  [0-9-]+ [0-9:]+ \([0-9]+ s ago\)$" "$out"
	assert_grep -E "^  last error:    [0-9-]+ [0-9:]+ \([0-9]+ s ago\): .*invalid_client" "$out"
	assert_no_grep -F "wrong-Secret-4711" "$(status_file)"
	assert_no_grep -F "wrong-Secret-4711" "$out"
}

# The server is down: backing off until the next run, exit 1.
case_backing_off() {
	account acct "port=$CLOSED_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	run_status
	assert_rc 1
	out=$LAST_OUT.out
	assert_grep -E "^  state:         backing off: the next run tries again$" "$out"
	assert_grep -E "^  last success:  never$" "$out"
	assert_grep -E "^  last error:    .* s ago\): .*(refused|connect)" "$out"
}

# Runs of single accounts keep each other's records; status names them.
case_separate_runs() {
	seed_messages
	{ account one; account two "deliver=maildir:$CASE_DIR/Maildir2" \
	    "port=$CLOSED_PORT"; } | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" one
	assert_rc 0
	run_pm -c "$CASE_DIR/config" two
	assert_rc 75
	run_status
	assert_rc 1
	assert_grep -E "^one$" "$LAST_OUT.out"
	assert_grep -E "^two$" "$LAST_OUT.out"
	assert_grep -E "^  delivered:     $NSEEDS since " "$LAST_OUT.out"
	run_status one
	assert_rc 0
	assert_no_grep -E "^two$" "$LAST_OUT.out"
	run_status two one
	assert_rc 1
	assert_eq two "$(head -n 1 "$LAST_OUT.out")" "first account shown"
}

run_case no_file case_no_file
run_case success case_success
run_case needs_human case_needs_human
run_case backing_off case_backing_off
run_case separate_runs case_separate_runs
e2e_finish
