#!/bin/sh
# The UID state belongs to one mailbox (protocol, server, port, user).  An
# account pointed at another user whose messages carry the same UIDs (IMAP,
# same UIDVALIDITY) or UIDLs (POP3) must fetch all of them, not take them
# for delivered and delete them undelivered with keep = no.  Against a real
# Dovecot, two users seeded alike, every message compared byte for byte.
# The state file and its lock are never followed through a symbolic link.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

# uidvalidity USER: the UIDVALIDITY of USER's INBOX.
uidvalidity() {
	srv_doveadm -f flow mailbox status -u "$1" uidvalidity INBOX |
		sed -n 's/.*uidvalidity=\([0-9]*\).*/\1/p'
}

# seed_two: seed CASE_USER (A) and B_USER (B) with different messages, the
# same number, under the same UIDVALIDITY: their UIDs, and so their POP3
# UIDLs (Dovecot's %08Xu%08Xv), are the same.  Sets SEEDS_A, SEEDS_B, N.
seed_two() {
	B_USER=b-$CASE_USER
	SEEDS_A=$(make_messages "$CASE_DIR/seed-a" "$CASE_NAME-a")
	SEEDS_B=$(make_messages "$CASE_DIR/seed-b" "$CASE_NAME-b")
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $SEEDS_A || fail "seeding A failed"
	# shellcheck disable=SC2086
	srv_seed "$B_USER" INBOX $SEEDS_B || fail "seeding B failed"
	N=$(echo "$SEEDS_A" | wc -l | tr -d ' ')
	assert_eq "$N" "$(srv_count "$CASE_USER")" "messages of A"
	assert_eq "$N" "$(srv_count "$B_USER")" "messages of B"
	srv_doveadm mailbox update -u "$B_USER" \
		--uid-validity "$(uidvalidity "$CASE_USER")" INBOX ||
		fail "doveadm mailbox update"
	assert_eq "$(uidvalidity "$CASE_USER")" "$(uidvalidity "$B_USER")" \
		"UIDVALIDITY of A and B"
	srv_flags "$CASE_USER" | cut -d' ' -f1 >"$CASE_DIR/uids-a"
	srv_flags "$B_USER" | cut -d' ' -f1 >"$CASE_DIR/uids-b"
	assert_file_same "$CASE_DIR/uids-a" "$CASE_DIR/uids-b"
}

# assert_set_aside WHAT: the notice names WHAT as changed and the old state
# file is kept beside the new one.
assert_set_aside() {
	assert_grep "^pullmail: acct: $1 changed: the state file .* is kept as " \
		"$LAST_OUT.err"
	[ "$(find "$CASE_DIR/state" -name 'acct.state.replaced-*' | wc -l)" = 1 ] ||
		fail "the old state file was not kept aside once: $(ls "$CASE_DIR/state")"
}

# IMAP: A fetched with keep = no (its UIDs stay recorded until the next
# listing), then the account is pointed at B.
case_imap_user_switch() {
	seed_two
	account acct "keep=no" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS_A
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on A"

	account acct "keep=no" "user=$B_USER" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_set_aside user
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS_A $SEEDS_B
	assert_eq 0 "$(srv_count "$B_USER")" "messages left on B"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# POP3: A fetched with keep = yes (with keep = no a POP3 run forgets the
# UIDLs it deleted), then B with keep = no.
case_pop3_user_switch() {
	seed_two
	account acct protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3 \
		keep=yes | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS_A
	assert_eq "$N" "$(srv_count "$CASE_USER")" "messages kept on A"

	account acct protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3 \
		keep=no "user=$B_USER" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_set_aside user
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS_A $SEEDS_B
	assert_eq 0 "$(srv_count "$B_USER")" "messages left on B"
	assert_eq "$N" "$(srv_count "$CASE_USER")" "messages kept on A"
}

# Another name for the same server and another port (STARTTLS) count as
# another mailbox too: the messages come again (duplicates, never losses),
# the notice says what changed.
case_server_and_port() {
	seed_messages
	account acct keep=yes | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	account acct keep=yes server=localhost "port=$IMAP_PORT" tls=starttls |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_set_aside "server and port"
	assert_eq "$((2 * NSEEDS))" "$(maildir_count "$CASE_DIR/Maildir")" \
		"local messages"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# A state file from before the binding is adopted: nothing fetched twice.
case_upgrade() {
	seed_messages
	account acct keep=yes | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# The same records, as a version 1 file (no B lines).
	sed -e '1s/.*/pullmail-state 1/' -e '/^B	/d' \
		"$CASE_DIR/state/acct.state" >"$CASE_DIR/state/v1"
	mv "$CASE_DIR/state/v1" "$CASE_DIR/state/acct.state"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_grep 'an older pullmail wrote it.*it is now bound to imap user' \
		"$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(maildir_count "$CASE_DIR/Maildir")" "local messages"
	assert_grep '^B	user	' "$CASE_DIR/state/acct.state"
}

# A state file or lock that is a symbolic link is refused before anything
# is fetched; the link's target stays as it was, the mail on the server.
case_symlinks() {
	seed_messages
	account acct keep=no | write_config "$CASE_DIR/config"
	mkdir -m 700 "$CASE_DIR/state"
	printf 'precious\n' >"$CASE_DIR/target"
	# The lock first: the refused state file leaves a lock behind.
	for f in acct.lock acct.state; do
		ln -s "$CASE_DIR/target" "$CASE_DIR/state/$f" || fail "ln -s"
		run_pm -c "$CASE_DIR/config"
		assert_rc 73
		assert_grep -F "$CASE_DIR/state/$f is a symbolic link; refusing to follow it" \
			"$LAST_OUT.err"
		assert_eq precious "$(cat "$CASE_DIR/target")" "the link's target"
		assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
		rm "$CASE_DIR/state/$f"
	done
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
}

run_case imap_user_switch case_imap_user_switch
run_case pop3_user_switch case_pop3_user_switch
run_case server_and_port case_server_and_port
run_case upgrade case_upgrade
run_case symlinks case_symlinks
e2e_finish
