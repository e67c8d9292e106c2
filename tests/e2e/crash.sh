#!/bin/sh
# Crash consistency: pullmail killed with SIGKILL at random instants while
# it fetches from a real Dovecot (IMAP and POP3, keep = yes and keep = no)
# into a Maildir, an mbox and an MDA (procmail into a Maildir), then run
# again to completion: no message lost, every one byte for byte the
# original, no partial message left in the target (right after a kill, an
# mbox may end in the one partial message the killed run's lock marks for
# the next run to cut), at most one duplicate
# per kill, every state file parseable after each kill.  Then the disk
# fills up (a small tmpfs, root only) at a random point: a temporary error,
# nothing lost, and a run after space is freed delivers everything.
# tests/e2e/crash.py drives each scenario; see there for the checks.
#
#   PULLMAIL_CRASH_KILLS   kills in all (default 30; `make crashtest`: 240)
#   PULLMAIL_CRASH_SEED    the seed of the random delays (printed; give it
#                          again to replay a failure)
#   PULLMAIL_CRASH_ONLY    run only the scenarios whose names match this
#                          extended regular expression
#   PULLMAIL_CRASH_MAX_DUPS duplicates allowed per kill (default 1)
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require procmail python3
e2e_start_servers

KILLS=${PULLMAIL_CRASH_KILLS:-30}
SEED=${PULLMAIL_CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
ONLY=${PULLMAIL_CRASH_ONLY:-.}
echo "crash: $KILLS kills, seed $SEED (PULLMAIL_CRASH_SEED=$SEED replays this run)"

# Kills per scenario: the total spread evenly over the twelve (IMAP and
# POP3, keep = yes and no, three targets), rounded up.
PER=$(((KILLS + 11) / 12))
# Full-disk rounds per scenario: one, and one more for every four kills
# per scenario.
DISK_ROUNDS=$((PER / 4 + 1))
FIGURES=$E2E_RUN/figures
: >"$FIGURES"

# The originals: 40 distinct messages of mixed sizes (make_messages'
# five kinds, one with mbox-quotable From lines, one of about 300 kB).
ORIG=$E2E_RUN/originals
mkdir -p "$ORIG"
CASE_USER=crash@$MAIL_DOMAIN
i=0
while [ $i -lt 7 ]; do
	i=$((i + 1))
	for f in $(make_messages "$E2E_RUN/orig-$i" "crash-$i"); do
		mv "$f" "$ORIG/$i-$(basename "$f")"
	done
done
for i in 1 2 3; do
	{
		echo "From: Mixed Sizes <sizes@example.org>"
		echo "To: $CASE_USER"
		echo "Subject: $i of mixed sizes"
		echo "Message-ID: <size-$i@example.org>"
		echo
		seq 1 $((i * 900)) | sed 's/^/a line of text, number /'
	} >"$ORIG/size-$i.eml"
done
cat >"$ORIG/from-lines.eml" <<EOF
From: Quoting <quote@example.org>
To: $CASE_USER
Subject: From lines an mbox must quote

From the start of a line.
>From once quoted.
>>From twice quoted.
.
..
EOF
{
	echo "From: Big <big@example.org>"
	echo "To: $CASE_USER"
	echo "Subject: about 300 kB"
	echo "Message-ID: <big@example.org>"
	echo
	head -c 225000 /dev/urandom | base64 -w 76
} >"$ORIG/big.eml"
echo "originals: $(ls "$ORIG" | wc -l) messages, $(du -sk "$ORIG" | cut -f1) kB"

# procmail files every message into the Maildir $DEST/Maildir.
# shellcheck disable=SC2016
printf 'LOGFILE=$DEST/procmail.log\n:0\n$DEST/Maildir/\n' >"$E2E_RUN/procmailrc"

OWNER=
[ "$(id -u)" = 0 ] && OWNER=$(id -u "$SRV_MAIL_USER"):$(id -g "$SRV_MAIL_USER")

# crash_case PROTO KEEP TARGET [--disk-full]: one scenario of crash.py.
crash_case() {
	local proto=$1 keep=$2 target=$3 deliver port scope
	shift 3
	case $target in
	maildir) deliver=maildir:@DIR@/Maildir ;;
	mbox) deliver=mbox:@DIR@/mbox ;;
	mda) deliver="mda:/usr/bin/procmail -f %F DEST=@DIR@ $E2E_RUN/procmailrc"
		# An MDA is a process per message: fewer messages keep the
		# run short.
		set -- --messages 12 "$@" ;;
	esac
	if [ "$proto" = pop3 ]; then
		port=$POP3S_PORT scope=pop3
	else
		port=$IMAPS_PORT scope=imap
	fi
	account @ACCOUNT@ "protocol=$proto" "port=$port" "oauth_scope=$scope" \
		"user=@USER@" "keep=$keep" "deliver=$deliver" \
		"state_dir=@STATE@" "lock_timeout=5" |
		write_config "$CASE_DIR/template"
	"$SRV_PYTHON" "$top_srcdir/tests/e2e/crash.py" --name "$CASE_NAME" \
		--pullmail "$PULLMAIL" --template "$CASE_DIR/template" \
		--target "$target" --keep "$keep" --originals "$ORIG" \
		--mailroot "$SRV_RUN/mail" --owner "$OWNER" \
		--user-prefix "$CASE_NAME" --domain "$MAIL_DOMAIN" \
		--work "$CASE_DIR/work" --kills "$PER" --rounds "$DISK_ROUNDS" \
		--seed "$SEED" --max-dups "${PULLMAIL_CRASH_MAX_DUPS:-1}" \
		--figures "$FIGURES" "$@"
}

# scenario NAME PROTO KEEP TARGET [--disk-full]: run_case NAME, unless
# PULLMAIL_CRASH_ONLY leaves it out.
scenario() {
	echo "$1" | grep -Eq -- "$ONLY" || return 0
	SCENARIO_ARGS="$2 $3 $4 ${5:-}"
	run_case "$1" scenario_case
}
scenario_case() {
	# shellcheck disable=SC2086
	crash_case $SCENARIO_ARGS
}

for p in imap pop3; do
	for k in yes no; do
		for t in maildir mbox mda; do
			scenario "$p-keep-$k-$t" $p $k $t
		done
	done
done

# The full disk: a tmpfs, so root only (and a kernel that lets us mount).
mkdir -p "$E2E_RUN/probe"
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: full-disk scenarios: mounting a tmpfs needs root"
elif ! mount -t tmpfs -o size=64k pullmail-crash "$E2E_RUN/probe" \
	2>"$E2E_RUN/probe.err"; then
	echo "SKIP: full-disk scenarios: cannot mount a tmpfs: $(cat "$E2E_RUN/probe.err")"
else
	umount "$E2E_RUN/probe"
	for p in imap pop3; do
		for t in maildir mbox; do
			scenario "$p-disk-$t" $p no $t --disk-full
		done
	done
fi

# The figures, per scenario and in all (tmp-left: temporary files left
# behind in a Maildir's tmp/ or beside a state file, not counted as mail).
echo "scenario                 rounds  kills losses   dups partial tmp-left"
awk '{ printf "%-24s %6d %6d %6d %6d %7d %8d\n", $1, $3, $4, $5, $6, $7, $8
	r += $3; k += $4; l += $5; d += $6; p += $7; t += $8 }
	END { printf "%-24s %6d %6d %6d %6d %7d %8d\n", "all", r, k, l, d, p, t }' \
	"$FIGURES"
e2e_finish
