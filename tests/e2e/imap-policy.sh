#!/bin/sh
# What happens on the server after delivery: keep (leave untouched),
# mark_seen (\Seen), keep = no (\Deleted + expunge), and never before the
# message is safe in the local Maildir.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

# The messages of CASE_USER on the server flagged \Seen.
seen_count() {
	srv_flags "$CASE_USER" | grep -c '\\Seen'
}

# The server's Maildir file names carry the same flags (":2,S").
seen_files() {
	srv_server_files "$CASE_USER" | grep -c ':2,[A-Z]*S[A-Z]*$'
}

case_keep() {
	seed_messages
	account acct "keep=yes" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_eq 0 "$(seen_count)" "messages marked seen without mark_seen"
	srv_flags "$CASE_USER" >"$CASE_DIR/flags"
	assert_no_grep 'Deleted' "$CASE_DIR/flags"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_eq "$NSEEDS" "$(maildir_count "$CASE_DIR/Maildir")" "local messages"
}

case_mark_seen() {
	seed_messages
	account acct "keep=yes" "mark_seen=yes" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_eq "$NSEEDS" "$(seen_count)" "messages marked seen (doveadm)"
	assert_eq "$NSEEDS" "$(seen_files)" "messages marked seen (Maildir names)"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# Messages the user already read on the server are fetched too, and stay.
case_already_seen() {
	seed_messages
	account acct "mark_seen=yes" | write_config "$CASE_DIR/config"
	srv_doveadm flags add -u "$CASE_USER" '\Seen' mailbox INBOX all ||
		fail "doveadm flags add"
	assert_eq "$NSEEDS" "$(seen_count)" "seen before the fetch"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
}

case_delete() {
	seed_messages
	account acct "keep=no" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	assert_eq "" "$(srv_server_files "$CASE_USER")" "message files left on the server"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	# More mail later: fetched, then deleted, the earlier ones untouched.
	local more
	more=$(make_messages "$CASE_DIR/more" "$CASE_NAME-more" | head -n 2)
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $more
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# keep = no with mark_seen = yes: deleted all the same.
case_delete_seen() {
	seed_messages
	account acct "keep=no" "mark_seen=yes" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# Delivery fails: nothing may be deleted or flagged on the server.
case_delivery_fails() {
	seed_messages
	: >"$CASE_DIR/not-a-directory"
	account acct "keep=no" "mark_seen=yes" \
		"deliver=maildir:$CASE_DIR/not-a-directory/Maildir" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep '^pullmail: acct: ' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_eq 0 "$(seen_count)" "messages marked seen"
	srv_flags "$CASE_USER" >"$CASE_DIR/flags"
	assert_no_grep 'Deleted' "$CASE_DIR/flags"
	# Once delivery works again, everything arrives, then is deleted.
	account acct "keep=no" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A Maildir that cannot take one more message midway (its new/ replaced by
# a file after a first delivery): the earlier messages stay delivered, the
# rest stay on the server, nothing is lost.
case_delivery_fails_later() {
	local first
	first=$(make_messages "$CASE_DIR/a" "$CASE_NAME-a" | head -n 2)
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $first
	account acct "keep=no" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_eq 0 "$(srv_count "$CASE_USER")" "first messages deleted"
	seed_messages
	mv "$CASE_DIR/Maildir/tmp" "$CASE_DIR/Maildir/tmp.saved"
	: >"$CASE_DIR/Maildir/tmp"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	rm "$CASE_DIR/Maildir/tmp"
	mv "$CASE_DIR/Maildir/tmp.saved" "$CASE_DIR/Maildir/tmp"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $first $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# The state is what prevents duplicates: without it, kept messages come
# again (duplicates are bounded, losses are zero).
case_state_lost() {
	seed_messages
	account acct "keep=yes" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	[ -d "$CASE_DIR/state" ] || fail "no state directory"
	[ -n "$(find "$CASE_DIR/state" -type f)" ] || fail "no state file written"
	rm -rf "$CASE_DIR/state"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_eq "$((2 * NSEEDS))" "$(maildir_count "$CASE_DIR/Maildir")" "local messages"
}

run_case keep case_keep
run_case mark_seen case_mark_seen
run_case already_seen case_already_seen
run_case delete case_delete
run_case delete_seen case_delete_seen
run_case delivery_fails case_delivery_fails
run_case delivery_fails_later case_delivery_fails_later
run_case state_lost case_state_lost
e2e_finish
