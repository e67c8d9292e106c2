#!/bin/sh
# Delivery through an MDA: real procmail and maildrop filing by Subject into
# two Maildir folders, exit 75 keeping one message on the server while the
# others are delivered, failures and timeouts, and a hostile envelope
# sender reaching the MDA as one harmless argument.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require procmail maildrop
e2e_start_servers

FIX=$top_srcdir/tests/e2e/deliver

# The seeds whose Subject says [ci], and the others.
seeds_ci() {
	for f in $SEEDS; do grep -l '^Subject: \[ci\]' "$f"; done
}
seeds_other() {
	for f in $SEEDS; do grep -L '^Subject: \[ci\]' "$f"; done
}

# Messages are filed by Subject, byte for byte as the server holds them.
case_procmail() {
	seed_messages
	mkdir -p "$CASE_DIR/pm"
	account acct "keep=no" \
	    "deliver=mda:/usr/bin/procmail -f %F DEST=$CASE_DIR/pm $FIX/procmailrc" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/pm/ci" $(seeds_ci)
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/pm/other" $(seeds_other)
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

case_maildrop() {
	local d
	seed_messages
	for d in ci other; do
		mkdir -p "$CASE_DIR/md/$d/tmp" "$CASE_DIR/md/$d/new" "$CASE_DIR/md/$d/cur"
	done
	# maildrop refuses a filter file others may read.
	cp "$FIX/mailfilter" "$CASE_DIR/mailfilter" && chmod 0600 "$CASE_DIR/mailfilter"
	account acct "keep=no" \
	    "deliver=mda:/usr/bin/maildrop -f %F $CASE_DIR/mailfilter $CASE_DIR/md" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/md/ci" $(seeds_ci)
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/md/other" $(seeds_other)
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# Exit 75 for one message: it stays on the server even with keep = no, the
# others are delivered and deleted, the run exits 75; the next run
# delivers it once the MDA accepts it.
case_tempfail() {
	local lunch
	seed_messages
	mkdir -p "$CASE_DIR/out/tmp" "$CASE_DIR/out/new" "$CASE_DIR/out/cur"
	touch "$CASE_DIR/refuse"
	account acct "keep=no" \
	    "deliver=mda:/bin/sh $FIX/mda-tempfail.sh $CASE_DIR/out $CASE_DIR/refuse Lunch" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'refusing for now: Lunch' "$LAST_OUT.err"
	assert_grep 'left on the server' "$LAST_OUT.err"
	assert_eq 4 "$(maildir_count "$CASE_DIR/out")" "messages delivered"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages left on the server"
	lunch=$(grep -l '^Subject: Lunch' $SEEDS)
	assert_same_messages "$(srv_maildir "$CASE_USER")" "$lunch"
	rm -f "$CASE_DIR/refuse"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/out" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# Any other exit status, a command that cannot run, a timeout: nothing is
# lost, the reason is reported, the exit status says delivery failed (or,
# for a timeout, that it will be tried again).
case_failures() {
	local one
	one=$(make_messages "$CASE_DIR/seed" "$CASE_NAME" | head -n 1)
	srv_seed "$CASE_USER" INBOX "$one" || fail "seeding failed"
	account acct "keep=no" "deliver=mda:/bin/sh -c 'cat >/dev/null; echo nope >&2; exit 67'" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep 'exited with status 67 \(nope\)' "$LAST_OUT.err"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"

	account acct "keep=no" "deliver=mda:$CASE_DIR/no-such-mda %T" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep 'cannot run .*no-such-mda: No such file' "$LAST_OUT.err"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"

	# A timeout is temporary: exit 75, the message stays for the next run.
	account acct "keep=no" "mda_timeout=1" "deliver=mda:/bin/sleep 30" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'did not finish within 1 seconds' "$LAST_OUT.err"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"

	# Killed by a signal.
	account acct "keep=no" "deliver=mda:/bin/sh -c 'kill -9 \$\$'" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep 'killed by signal 9' "$LAST_OUT.err"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
}

# A hostile envelope sender reaches procmail as one argument, byte for
# byte, and no shell ever sees it.
case_hostile_sender() {
	local rec
	mkdir -p "$CASE_DIR/msgs" "$CASE_DIR/pm" "$CASE_DIR/rec"
	# Return-Path starts with '-' and Sender is two addresses: both are
	# refused, so From wins.
	cat >"$CASE_DIR/msgs/1.eml" <<-EOF
	Return-Path: <-oQ/tmp/evil@example.org>
	Sender: a@example.org,
	 \$(touch $CASE_DIR/pwned2)@example.org
	From: "; touch $CASE_DIR/pwned; rm -rf ~"@x
	To: $CASE_USER
	Subject: hostile

	body
	EOF
	# Nothing valid at all: the empty sender, MAILER-DAEMON for %F.
	cat >"$CASE_DIR/msgs/2.eml" <<-EOF
	From: \`touch $CASE_DIR/pwned3\` <\$(touch $CASE_DIR/pwned4)>
	To: $CASE_USER
	Subject: [ci] no sender

	body
	EOF
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/msgs/1.eml" || fail "seeding failed"
	account acct "keep=no" "recipient=alice" \
	    "deliver=mda:/bin/sh $FIX/mda-record.sh %F %T -- /usr/bin/procmail -f %F DEST=$CASE_DIR/pm $FIX/procmailrc" |
	    write_config "$CASE_DIR/config"
	RECORD_DIR=$CASE_DIR/rec
	export RECORD_DIR
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	rec=$(ls "$CASE_DIR"/rec/argv.*.nul)
	printf '%s\0%s\0' "\"; touch $CASE_DIR/pwned; rm -rf ~\"@x" alice >"$CASE_DIR/want.nul"
	assert_file_same "$CASE_DIR/want.nul" "$rec"
	assert_grep -F "PULLMAIL_SENDER=\"; touch $CASE_DIR/pwned; rm -rf ~\"@x" "${rec%.nul}.env"
	assert_grep -F "PULLMAIL_RECIPIENT=alice" "${rec%.nul}.env"
	assert_same_messages "$CASE_DIR/pm/other" "$CASE_DIR/msgs/1.eml"
	[ -e "$CASE_DIR/pwned" ] && fail "the sender reached a shell"
	[ -e "$CASE_DIR/pwned2" ] && fail "the Sender reached a shell"

	rm -f "$CASE_DIR"/rec/*
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/msgs/2.eml" || fail "seeding failed"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	rec=$(ls "$CASE_DIR"/rec/argv.*.nul)
	printf '%s\0%s\0' MAILER-DAEMON alice >"$CASE_DIR/want.nul"
	assert_file_same "$CASE_DIR/want.nul" "$rec"
	assert_grep '^PULLMAIL_SENDER=$' "${rec%.nul}.env"
	assert_same_messages "$CASE_DIR/pm/ci" "$CASE_DIR/msgs/2.eml"
	[ -e "$CASE_DIR/pwned3" ] || [ -e "$CASE_DIR/pwned4" ] &&
		fail "the From header reached a shell"
	return 0
}

run_case procmail case_procmail
run_case maildrop case_maildrop
run_case tempfail case_tempfail
run_case failures case_failures
run_case hostile_sender case_hostile_sender
e2e_finish
