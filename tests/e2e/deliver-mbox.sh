#!/bin/sh
# mbox delivery: mboxrd quoting round-trips through an independent reader
# (Python's mailbox module), a concurrent procmail never interleaves with
# us, a write failing in the middle (a full tmpfs, else RLIMIT_FSIZE)
# leaves the mbox exactly as it was and the message on the server, a
# held lock is reported, the lock and half message of a killed run are
# cleared by the next run, and an mbox (or a Maildir) that is a symbolic
# link, or an mbox with a second hard link, is refused with the messages
# left on the server and nothing written behind the link.
#
# Python's mailbox.mbox reads mboxo/mboxrd files but does not undo mboxrd
# quoting, so the reader below takes one '>' off every ^>+From  line
# itself before comparing with the server's copy.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require procmail python3
e2e_start_servers

# mbox_messages MBOX OUTDIR: write each message of MBOX, mboxrd-unquoted,
# to OUTDIR/N (without the From_ line); print the count.
mbox_messages() {
	"$SRV_PYTHON" - "$1" "$2" <<-'EOF'
	import mailbox, os, re, sys
	box = mailbox.mbox(sys.argv[1], create=False)
	os.makedirs(sys.argv[2], exist_ok=True)
	n = 0
	for key in box.keys():
	    raw = box.get_bytes(key)
	    raw = re.sub(rb"(?m)^>(>*From )", rb"\1", raw)
	    n += 1
	    with open(os.path.join(sys.argv[2], str(n)), "wb") as f:
	        f.write(raw)
	print(n)
	EOF
}

# assert_mbox_holds MBOX FILE...: MBOX holds exactly the FILEs, in any
# order.
assert_mbox_holds() {
	local mbox=$1 n got want
	shift
	rm -rf "$CASE_DIR/read"
	n=$(mbox_messages "$mbox" "$CASE_DIR/read") || fail "python cannot read $mbox"
	assert_eq "$#" "$n" "messages in $mbox"
	got=$(for f in "$CASE_DIR"/read/*; do sha256sum <"$f"; done | sort)
	want=$(for f in "$@"; do sha256sum <"$f"; done | sort)
	[ "$got" = "$want" ] || fail "the messages in $mbox differ from the originals"
}

case_roundtrip() {
	local q
	seed_messages
	q=$CASE_DIR/quoted.eml
	cat >"$q" <<-EOF
	Return-Path: <bob@example.org>
	From: Bob <bob@example.org>
	To: $CASE_USER
	Subject: From lines

	From the start of a line.
	>From once quoted.
	>>From twice quoted.
	>>>>>From five deep.
	From
	>From
	 From not at the start.
	From: a header-like body line
	EOF
	printf 'From the last line without a line end' >>"$q"
	srv_seed "$CASE_USER" INBOX "$q" || fail "seeding failed"
	account acct "keep=no" "deliver=mbox:$CASE_DIR/mbox" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# The raw file is mboxrd: one more '>' on every ^>*From  line.
	assert_grep -F -- '>From the start of a line.' "$CASE_DIR/mbox"
	assert_grep -F -- '>>From once quoted.' "$CASE_DIR/mbox"
	assert_grep -F -- '>>>From twice quoted.' "$CASE_DIR/mbox"
	assert_grep -F -- '>>>>>>From five deep.' "$CASE_DIR/mbox"
	assert_grep '^From$' "$CASE_DIR/mbox"
	assert_grep '^>From$' "$CASE_DIR/mbox"
	assert_grep '^>From the last line without a line end$' "$CASE_DIR/mbox"
	assert_eq 6 "$(grep -c '^From ' "$CASE_DIR/mbox")" "From_ lines"
	assert_grep '^From bob@example.org [A-Z][a-z][a-z] [A-Z][a-z][a-z] [ 0-9][0-9] [0-9:]{8} [0-9]{4}$' "$CASE_DIR/mbox"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	# The message without a final line end gets one; the rest is exact.
	cp "$q" "$CASE_DIR/quoted-lf.eml" && echo >>"$CASE_DIR/quoted-lf.eml"
	# shellcheck disable=SC2086
	assert_mbox_holds "$CASE_DIR/mbox" $SEEDS "$CASE_DIR/quoted-lf.eml"
	[ -e "$CASE_DIR/mbox.lock" ] && fail "dotlock left behind"
	return 0
}

# procmail appends to the same mbox while pullmail does: with both taking
# the dotlock and the fcntl lock, no message is ever cut by another.
# pullmail starts only once procmail has appended a message, and procmail
# goes on until pullmail has finished, so the writers really overlap:
# procmail's messages must show up both before and after pullmail's.
case_concurrent() {
	local i body pmpid order
	mkdir -p "$CASE_DIR/big" "$CASE_DIR/pm"
	body=$(head -c 150000 /dev/zero | tr '\0' 'x' | fold -w 76)
	for i in $(seq 1 12); do
		{
			echo "From: big$i@example.org"
			echo "To: $CASE_USER"
			echo "Subject: big $i"
			echo
			echo "$body"
			echo "end of big $i"
		} >"$CASE_DIR/big/$i.eml"
	done
	# shellcheck disable=SC2046
	srv_seed "$CASE_USER" INBOX $(ls "$CASE_DIR"/big/*.eml) || fail "seeding failed"
	# LOCKSLEEP: retry a held dotlock every second, not every eight.
	printf 'LOCKSLEEP=1\n:0:\n$MBOX\n' >"$CASE_DIR/procmailrc"
	account acct "keep=no" "deliver=mbox:$CASE_DIR/mbox" | write_config "$CASE_DIR/config"
	(
		# Until pullmail is done, then three more (400 at most).
		i=0 after=0
		while [ $after -lt 3 ] && [ $i -lt 400 ]; do
			[ -e "$CASE_DIR/pm-done" ] && after=$((after + 1))
			i=$((i + 1))
			{
				echo "From: pm$i@example.org"
				echo "Subject: procmail $i"
				echo
				echo "$body" | head -n 800
				echo "end of procmail $i"
			} >"$CASE_DIR/pm/$i.eml"
			procmail -f "pm$i@example.org" MBOX="$CASE_DIR/mbox" \
			    "$CASE_DIR/procmailrc" <"$CASE_DIR/pm/$i.eml" || exit 1
		done
	) &
	pmpid=$!
	i=0
	until grep -q '^end of procmail 1$' "$CASE_DIR/mbox" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && fail "procmail did not append"
		sleep 0.05
	done
	run_pm -c "$CASE_DIR/config"
	touch "$CASE_DIR/pm-done"
	wait $pmpid || fail "procmail failed"
	assert_rc 0
	# shellcheck disable=SC2046
	assert_mbox_holds "$CASE_DIR/mbox" $(ls "$CASE_DIR"/big/*.eml "$CASE_DIR"/pm/*.eml)
	# The order of the writers in the mbox: p (procmail) and b (pullmail).
	order=$(sed -n 's/^Subject: \(procmail\|big\) .*/\1/p' "$CASE_DIR/mbox" |
	    sed 's/^procmail$/p/; s/^big$/b/' | tr -d '\n')
	echo "writers in mbox order: $order"
	case $order in
	p*b*p) ;;
	*) fail "procmail's messages are not both before and after pullmail's: $order" ;;
	esac
}

# A write fails half way (a full disk): the mbox is cut back to what it
# was, the message stays on the server (keep = no), exit 75.  The full disk
# is a 256 kB tmpfs when this process may mount one (CI runs as root),
# else the file size limit (RLIMIT_FSIZE); $E2E_RUN/full-disk says which.
case_write_failure() {
	local one big limit fs=$CASE_DIR/fs mode
	mkdir -p "$fs"
	if [ "$(id -u)" = 0 ] &&
	    mount -t tmpfs -o size=256k,mode=0755 pullmail-test "$fs" 2>/dev/null; then
		mode=tmpfs
		trap 'umount "$fs" 2>/dev/null' EXIT
	else
		mode=RLIMIT_FSIZE
	fi
	echo "$mode" >"$E2E_RUN/full-disk"
	echo "full disk simulated with $mode"
	one=$(make_messages "$CASE_DIR/seed" "$CASE_NAME" | head -n 1)
	srv_seed "$CASE_USER" INBOX "$one" || fail "seeding failed"
	account acct "keep=no" "deliver=mbox:$fs/mbox" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	cp "$fs/mbox" "$CASE_DIR/mbox.before"
	big=$CASE_DIR/big.eml
	{
		echo "From: big@example.org"
		echo "Subject: too big for the disk"
		echo
		head -c 300000 /dev/zero | tr '\0' 'y' | fold -w 76
		echo
	} >"$big"
	srv_seed "$CASE_USER" INBOX "$big" || fail "seeding failed"
	LAST_OUT=$CASE_DIR/limited
	if [ $mode = tmpfs ]; then
		run_pm -c "$CASE_DIR/config"
	else
		limit=$(($(stat -c %s "$fs/mbox") + 100000))
		"$SRV_PYTHON" -c 'import os, resource, sys
n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
os.execv(sys.argv[2], sys.argv[2:])' "$limit" "$PULLMAIL" -c "$CASE_DIR/config" \
		    </dev/null >"$LAST_OUT.out" 2>"$LAST_OUT.err"
		RC=$?
	fi
	assert_rc 75
	if [ $mode = tmpfs ]; then
		assert_grep 'No space left on device' "$LAST_OUT.err"
	else
		assert_grep 'File too large' "$LAST_OUT.err"
	fi
	assert_file_same "$CASE_DIR/mbox.before" "$fs/mbox"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	[ -e "$fs/mbox.lock" ] && fail "dotlock left behind"
	# With room again the next run delivers it.
	if [ $mode = tmpfs ]; then
		cp "$fs/mbox" "$CASE_DIR/mbox.moved" || fail "cannot copy the mbox"
		umount "$fs" || fail "cannot unmount $fs"
		trap - EXIT
		cp "$CASE_DIR/mbox.moved" "$fs/mbox" || fail "cannot copy the mbox"
	fi
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_mbox_holds "$fs/mbox" "$one" "$big"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages on the server"
}

# Someone else holds the lock longer than lock_timeout: a clear error,
# nothing written, the messages stay on the server.
case_lock_timeout() {
	local holder
	seed_messages
	account acct "keep=no" "lock_timeout=1" "deliver=mbox:$CASE_DIR/mbox" |
	    write_config "$CASE_DIR/config"
	echo 12345 >"$CASE_DIR/mbox.lock"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep "cannot lock .*mbox within 1 seconds: .*mbox.lock is held" "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	[ -s "$CASE_DIR/mbox" ] && fail "the mbox was written to"
	rm -f "$CASE_DIR/mbox.lock"

	# The fcntl lock alone (held by another process until told to let
	# go, however slowly pullmail gets there, e.g. under valgrind).
	"$SRV_PYTHON" -c 'import fcntl, os, sys, time
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
end = time.time() + 600
while not os.path.exists(sys.argv[3]) and time.time() < end:
    time.sleep(0.05)' "$CASE_DIR/mbox" "$CASE_DIR/held" "$CASE_DIR/release" &
	holder=$!
	while [ ! -e "$CASE_DIR/held" ]; do sleep 0.05; done
	run_pm -c "$CASE_DIR/config"
	touch "$CASE_DIR/release"
	wait $holder
	assert_rc 75
	assert_grep "another program holds its fcntl lock" "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	[ -e "$CASE_DIR/mbox.lock" ] && fail "dotlock left behind"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_mbox_holds "$CASE_DIR/mbox" $SEEDS
}

# The mbox a symbolic link, then a second hard link of another file: exit
# 73, every message still on the server, the file behind it untouched;
# then a plain file: delivered.  A Maildir that is a symbolic link: the
# same.
case_symlink_refused() {
	seed_messages
	echo "do not touch" >"$CASE_DIR/victim"
	ln -s victim "$CASE_DIR/mbox"
	account acct "keep=no" "deliver=mbox:$CASE_DIR/mbox" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep "mbox: .*/mbox is a symbolic link; refusing to deliver through it" "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_eq "do not touch" "$(cat "$CASE_DIR/victim")" "the link's target"

	rm "$CASE_DIR/mbox"
	ln "$CASE_DIR/victim" "$CASE_DIR/mbox"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep "mbox: .*/mbox has 2 hard links; refusing" "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_eq "do not touch" "$(cat "$CASE_DIR/victim")" "the other link"

	mkdir -p "$CASE_DIR/elsewhere/tmp" "$CASE_DIR/elsewhere/new" "$CASE_DIR/elsewhere/cur"
	ln -s elsewhere "$CASE_DIR/Maildir"
	account acct "keep=no" "deliver=maildir:$CASE_DIR/Maildir" |
	    write_config "$CASE_DIR/config.maildir"
	run_pm -c "$CASE_DIR/config.maildir"
	assert_rc 73
	assert_grep "maildir: .*/Maildir is a symbolic link; refusing" "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_eq 0 "$(find "$CASE_DIR/elsewhere" -type f | wc -l | tr -d ' ')" \
	    "files behind the link"

	rm "$CASE_DIR/mbox"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_mbox_holds "$CASE_DIR/mbox" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A run killed in the middle of a message left its dotlock (naming the
# offset the message began at) and half the message: the next run takes
# the lock at once, cuts the half message away and appends whole ones.
case_killed_run() {
	local first dead before
	seed_many 3 first
	first=$SEEDS
	account acct "keep=no" "lock_timeout=1" "deliver=mbox:$CASE_DIR/mbox" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# What a pullmail killed while appending leaves behind.
	dead=$(sh -c 'echo $$')
	before=$(stat -c '%d %i %s' "$CASE_DIR/mbox")
	printf 'pullmail %s %s\nappend %s\n' "$dead" "$(hostname)" "$before" \
	    >"$CASE_DIR/mbox.lock"
	printf 'From carol@example.org Mon Jun  2 09:12:44 2025\nSubject: ha' \
	    >>"$CASE_DIR/mbox"
	seed_many 2 second
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep "removed the lock .*mbox.lock left by pullmail process $dead, which no longer exists" "$LAST_OUT.err"
	assert_grep "cut .*mbox back to ${before##* } bytes: removed the 59 bytes" "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_mbox_holds "$CASE_DIR/mbox" $first $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	[ -e "$CASE_DIR/mbox.lock" ] && fail "dotlock left behind"
	return 0
}

run_case roundtrip case_roundtrip
run_case concurrent case_concurrent
run_case write_failure case_write_failure
echo "write_failure: full disk simulated with $(cat "$E2E_RUN/full-disk" 2>/dev/null)"
run_case lock_timeout case_lock_timeout
run_case killed_run case_killed_run
run_case symlink_refused case_symlink_refused
e2e_finish
