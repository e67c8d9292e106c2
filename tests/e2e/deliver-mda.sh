#!/bin/sh
# Delivery through an MDA: real procmail and maildrop filing by Subject into
# two Maildir folders, exit 75 keeping one message on the server while the
# others are delivered, failures and timeouts, a hostile envelope
# sender reaching the MDA as one harmless argument, no MDA started for a
# message cut short (a fault injector), and a spool directory ($TMPDIR)
# that cannot be written or fills up.
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
	# An MDA that never reads its input, and one that reads it and hangs.
	account acct "keep=no" "mda_timeout=1" "deliver=mda:/bin/sleep 30" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'sleep did not read its input for 1 seconds' "$LAST_OUT.err"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	account acct "keep=no" "mda_timeout=1" "deliver=mda:/bin/sh -c 'cat >/dev/null; exec sleep 30'" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'sh did not finish within 1 seconds' "$LAST_OUT.err"
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

# big_message FILE SUBJECT KB: a message of about KB kilobytes (LF line
# endings) for CASE_USER.
big_message() {
	{
		printf 'From: Big Sender <big@example.org>\nTo: %s\n' "$CASE_USER"
		printf 'Subject: %s\nMessage-ID: <%s.%s@example.org>\n\n' "$2" "$2" "$CASE_NAME"
		awk -v n="$3" 'BEGIN { for (i = 0; i < n * 16; i++)
			printf "%05d the quick brown fox jumps over the lazy dog %05d\n", i, i }'
	} >"$1"
}

# set_tmpdir DIR: TMPDIR (where pullmail spools for the MDA) for the runs
# that follow; set_tmpdir with no argument puts back the one we had.
E2E_TMPDIR=${TMPDIR-}
set_tmpdir() {
	if [ $# -gt 0 ]; then
		TMPDIR=$1
		export TMPDIR
	elif [ -n "$E2E_TMPDIR" ]; then
		TMPDIR=$E2E_TMPDIR
	else
		unset TMPDIR
	fi
}

# The MDA runs only on a whole message: the connection is cut (a fault
# injector, tests/servers/imapfault.py) in the middle of a 300 KB body,
# well after its header section: the recording MDA is never started for
# it (one MDA run in all is recorded); the message stays on the server and
# the new session of the same run delivers it byte for byte.
case_cut_mid_message() {
	mkdir -p "$CASE_DIR/msgs" "$CASE_DIR/pm" "$CASE_DIR/rec"
	big_message "$CASE_DIR/msgs/big.eml" "cut short" 300
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/msgs/big.eml" || fail "seeding failed"
	start_injector imapfault.py "$IMAP_PORT" --lifetime 300 --first-only \
	    --fault cut-body:1
	account acct "keep=no" "port=$INJ_PORT" "tls=none" \
	    "deliver=mda:/bin/sh $FIX/mda-record.sh %F %T -- /usr/bin/procmail -f %F DEST=$CASE_DIR/pm $FIX/procmailrc" |
	    write_config "$CASE_DIR/config"
	RECORD_DIR=$CASE_DIR/rec
	export RECORD_DIR
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep 'FAULT cut in BODY\[\] literal #1' "$INJ_LOG"
	assert_eq 2 "$(ls "$CASE_DIR/rec" | wc -l)" "MDA runs recorded (argv, env)"
	assert_same_messages "$CASE_DIR/pm/other" "$CASE_DIR/msgs/big.eml"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages on the server"
}

# in_mount_ns DIR OPTIONS: make PULLMAIL a wrapper that runs pullmail in a
# private mount namespace with a tmpfs mounted on DIR with OPTIONS (root
# only; the mount disappears with the process).
in_mount_ns() {
	cat >"$CASE_DIR/in-ns.sh" <<-EOF
	#!/bin/sh
	exec unshare -m sh -c 'mount -t tmpfs -o $2 pm-spool "$1" || exit 99; exec "\$0" "\$@"' "$PULLMAIL" "\$@"
	EOF
	chmod +x "$CASE_DIR/in-ns.sh"
	E2E_PULLMAIL=$PULLMAIL
	PULLMAIL=$CASE_DIR/in-ns.sh
}

# The spool directory ($TMPDIR) cannot be written: every message is a
# temporary failure that names the directory, nothing reaches the MDA and
# nothing is deleted (keep = no); with TMPDIR fixed, everything arrives.
# As root the directory is a read-only tmpfs (in a mount namespace of its
# own), otherwise mode 0555 (or missing, for root that cannot mount); as
# root also a full one: a 64 KB tmpfs takes the small messages and refuses
# the 300 KB one, which stays on the server.
case_spool_unwritable() {
	local rc_full ns spool
	seed_messages
	mkdir -p "$CASE_DIR/out/tmp" "$CASE_DIR/out/new" "$CASE_DIR/out/cur" \
	    "$CASE_DIR/spool" "$CASE_DIR/rec"
	account acct "keep=no" \
	    "deliver=mda:/bin/sh $FIX/mda-record.sh -- /bin/sh $FIX/mda-tempfail.sh $CASE_DIR/out $CASE_DIR/never x" |
	    write_config "$CASE_DIR/config"
	RECORD_DIR=$CASE_DIR/rec
	export RECORD_DIR
	# Can we mount in a mount namespace of our own (root, not confined)?
	unshare -m mount -t tmpfs -o size=4k pm-probe "$CASE_DIR/spool" 2>/dev/null &&
		ns=1 || ns=0
	spool=$CASE_DIR/spool
	if [ $ns = 1 ]; then
		in_mount_ns "$spool" ro
	elif [ "$(id -u)" != 0 ]; then
		chmod 0555 "$spool"
	else
		# root that cannot mount writes everywhere: a missing one
		spool=$CASE_DIR/no-such-dir
	fi
	set_tmpdir "$spool"
	if [ -n "${PULLMAIL_WRAPPER:-}" ]; then
		# valgrind (make check-valgrind) keeps files of its own in
		# TMPDIR and does not start without a writable one: this run
		# is make check's alone.
		echo "    unwritable spool: not run under PULLMAIL_WRAPPER, which needs TMPDIR itself"
	else
		run_pm -c "$CASE_DIR/config"
		assert_rc 75
		assert_grep "mda: cannot spool the message in $spool: (Read-only file system|Permission denied|No such file or directory) \(it must be a writable directory; set TMPDIR to choose another\)" "$LAST_OUT.err"
		assert_grep 'left on the server' "$LAST_OUT.err"
		[ -z "$(ls "$CASE_DIR/rec")" ] || fail "the MDA was started"
		assert_eq 0 "$(maildir_count "$CASE_DIR/out")" "messages delivered"
		assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	fi
	if [ $ns = 1 ]; then
		PULLMAIL=$E2E_PULLMAIL
	fi
	chmod 0755 "$CASE_DIR/spool"

	if [ $ns = 1 ]; then
		set_tmpdir "$CASE_DIR/spool"
		big_message "$CASE_DIR/big.eml" "too big for the spool" 300
		srv_seed "$CASE_USER" INBOX "$CASE_DIR/big.eml" || fail "seeding failed"
		in_mount_ns "$CASE_DIR/spool" size=64k
		run_pm -c "$CASE_DIR/config"
		rc_full=$RC
		PULLMAIL=$E2E_PULLMAIL
		assert_eq 75 "$rc_full" "exit status with a full spool"
		assert_grep "mda: cannot spool the message in $CASE_DIR/spool: No space left on device \(it needs room for the largest message; set TMPDIR to choose another\)" "$LAST_OUT.err"
		# shellcheck disable=SC2086
		assert_same_messages "$CASE_DIR/out" $SEEDS
		assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
		SEEDS="$SEEDS $CASE_DIR/big.eml"
	fi

	set_tmpdir
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/out" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages on the server"
}

run_case procmail case_procmail
run_case maildrop case_maildrop
run_case tempfail case_tempfail
run_case failures case_failures
run_case hostile_sender case_hostile_sender
run_case cut_mid_message case_cut_mid_message
run_case spool_unwritable case_spool_unwritable
e2e_finish
