#!/bin/sh
# Benchmarks, not tests: pullmail and its peers (mbsync, mpop, fetchmail)
# fetching the same generated workloads from the same private Dovecot into
# the same kind of Maildir, every message durable.
#
#   make bench                            (from a build directory)
#   BENCH_WORKLOADS="small large" BENCH_SMALL=500 make bench
#
# Prints one Markdown table: per workload and tool, the messages delivered,
# wall time, CPU time (user + sys, children included: fetchmail's MDA),
# peak RSS (the largest of the process and its children) and the ratio of
# the wall time to pullmail over IMAP.  Nothing passes or fails on speed;
# the numbers are for people.  A run that did not deliver every message is
# flagged in the table (and the script exits 1): it must not look fast.
#
# Workloads (BENCH_WORKLOADS, default all four, in this order):
#   small   BENCH_SMALL (5000) messages of BENCH_SMALL_KB (4) KiB, loopback
#   rtt     BENCH_RTT (1000) messages of BENCH_SMALL_KB KiB through a delaying
#           relay (bench/delay-relay.c) adding a BENCH_RTT_MS (20) ms round
#           trip: a server in the cloud
#   medium  BENCH_MEDIUM (200) messages of BENCH_MEDIUM_KB (1024) KiB, loopback
#   large   one message of BENCH_LARGE_MB (50) MiB, loopback
#
# Tools (BENCH_TOOLS): pullmail-imap, pullmail-pop3, mbsync (IMAP), mpop
# (POP3), fetchmail-pop3 and, not by default (it takes longer than all
# the others together), fetchmail-imap.  fetchmail hands every message to
# procmail, its usual MDA, which writes the Maildir.  A peer that is not
# installed is skipped with a line saying how to install it.  Every tool
# uses implicit TLS verified against the test CA.  pullmail logs in with
# XOAUTH2 and a token it gets from the test OAuth server (one token request
# a run: its token cache is wiped with its state); the peers log in with a
# password, which Dovecot accepts for the benchmark's users only
# (SRV_PASSWORD_USERS, see tests/servers/servers.sh).
#
# Every tool leaves the server's copies alone (keep, no flags changed);
# between runs the local Maildir and the tool's state are wiped.  After
# seeding, doveadm reads every message once, so that no tool pays for
# Dovecot's first indexing.
#
# BENCH_RUNS (1): runs per tool and workload, in rounds (every tool once,
# then again); the table shows the run with the median wall time.
# BENCH_TIMEOUT (900): seconds before a run is killed.
# BENCH_CALLGRIND=1 (with valgrind installed) adds the instruction count of
# pullmail on each workload (one more, untimed run), which unlike seconds
# is repeatable on a busy machine.
. "${top_srcdir:-$(dirname "$0")/..}/tests/e2e/lib.sh"
. "$top_srcdir/bench/relay.sh"

# What the caller set, for the line saying how the table was made.
BENCH_SET=$(env | grep '^BENCH_' | sort | sed 's/^\([^=]*\)=\(.*\)$/\1="\2"/' | tr '\n' ' ')
BENCH_DIR=$top_srcdir/bench
: "${BENCH_WORKLOADS:=small rtt medium large}"
: "${BENCH_TOOLS:=pullmail-imap pullmail-pop3 mbsync mpop fetchmail-pop3}"
: "${BENCH_SMALL:=5000}" "${BENCH_SMALL_KB:=4}"
: "${BENCH_RTT:=1000}" "${BENCH_RTT_MS:=20}"
: "${BENCH_MEDIUM:=200}" "${BENCH_MEDIUM_KB:=1024}"
: "${BENCH_LARGE_MB:=50}"
: "${BENCH_RUNS:=1}" "${BENCH_TIMEOUT:=900}"
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (apt-get install time)"; exit 1; }

# bench_program TOOL: the program TOOL runs, and the Debian package it is in.
bench_program() {
	case $1 in
	pullmail-*) echo "$PULLMAIL -" ;;
	mbsync) echo "mbsync isync" ;;
	mpop) echo "mpop mpop" ;;
	fetchmail-*) echo "fetchmail fetchmail" ;;
	*) echo "bench: unknown tool $1 (BENCH_TOOLS)" >&2; exit 1 ;;
	esac
}

# The tools to run: those of BENCH_TOOLS whose programs are installed.
TOOLS=
for tool in $BENCH_TOOLS; do
	# shellcheck disable=SC2046
	set -- $(bench_program "$tool")
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "$1 not installed: apt-get install $2 (skipping $tool)"
		continue
	fi
	case $tool in
	fetchmail-*)
		command -v procmail >/dev/null 2>&1 || {
			echo "procmail not installed: apt-get install procmail (skipping $tool)"
			continue
		} ;;
	esac
	TOOLS="$TOOLS $tool"
done

# One mailbox per workload; the peers log in to it with a password.
SRV_PASSWORD_USERS=
for w in $BENCH_WORKLOADS; do
	case $w in
	small|rtt|medium|large) ;;
	*) echo "bench: unknown workload $w (BENCH_WORKLOADS)"; exit 1 ;;
	esac
	SRV_PASSWORD_USERS="$SRV_PASSWORD_USERS bench-$w@$MAIL_DOMAIN"
done
export SRV_PASSWORD_USERS

e2e_start_servers
RESULTS=$E2E_RUN/results
: >"$RESULTS"

# --- the tools' configurations -------------------------------------------------
# Each writes what TOOL needs into $RUN_DIR and prints the command to time.
# BHOST, BUSER, IMAPS, POP3S: where to connect (the relay for the rtt workload).

conf_pullmail() {
	local proto=$1 port=$IMAPS scope=imap
	[ "$proto" = pop3 ] && port=$POP3S scope=pop3
	account bench "server=$BHOST" "port=$port" "protocol=$proto" \
		"oauth_scope=$scope" "user=$BUSER" \
		"deliver=maildir:$RUN_DIR/Maildir" "state_dir=$RUN_DIR/state" |
		write_config "$RUN_DIR/config"
	echo "$PULLMAIL -q -c $RUN_DIR/config"
}

# isync 1.4 matches the certificate against DNS names only ("certificate
# owner does not match hostname 127.0.0.1"): it connects to localhost, the
# certificate's DNS name (Dovecot listens on 127.0.0.1 and ::1, the relay
# on 127.0.0.1, which isync tries next if ::1 is refused).
conf_mbsync() {
	write_config "$RUN_DIR/config" <<-EOF
	FSync yes

	IMAPAccount far
	Host localhost
	Port $IMAPS
	User $BUSER
	Pass $PASSWORD_SECRET
	AuthMechs LOGIN
	SSLType IMAPS
	CertificateFile $CA_FILE

	IMAPStore far
	Account far

	MaildirStore near
	Inbox $RUN_DIR/Maildir

	Channel bench
	Far :far:INBOX
	Near :near:INBOX
	Sync Pull
	Create Near
	Expunge None
	SyncState *
	EOF
	echo "mbsync -q -c $RUN_DIR/config bench"
}

conf_mpop() {
	write_config "$RUN_DIR/config" <<-EOF
	account bench
	host $BHOST
	port $POP3S
	tls on
	tls_starttls off
	tls_trust_file $CA_FILE
	user $BUSER
	password $PASSWORD_SECRET
	auth plain
	keep on
	only_new off
	received_header off
	uidls_file $RUN_DIR/uidls
	delivery maildir $RUN_DIR/Maildir
	EOF
	echo "mpop -q -C $RUN_DIR/config bench"
}

# fetchmail: procmail (-m: this rcfile only) writes the Maildir;
# FETCHMAILHOME keeps its lock and UID files in RUN_DIR.  Its certificate
# check, like isync's, wants a DNS name: sslcommonname.
conf_fetchmail() {
	local proto=$1 port=$POP3S
	[ "$proto" = imap ] && port=$IMAPS
	write_config "$RUN_DIR/procmailrc" <<-EOF
	DEFAULT=$RUN_DIR/Maildir/
	LOGFILE=$RUN_DIR/procmail.log
	:0
	$RUN_DIR/Maildir/
	EOF
	write_config "$RUN_DIR/config" <<-EOF
	set no syslog
	poll $BHOST service $port protocol $proto
	  user "$BUSER" password "$PASSWORD_SECRET" is root here
	  ssl sslcertck sslcertfile "$CA_FILE" sslcommonname localhost
	  keep fetchall
	  mda "/usr/bin/procmail -m $RUN_DIR/procmailrc"
	EOF
	chmod 0700 "$RUN_DIR/config"
	echo "fetchmail -s -f $RUN_DIR/config"
}

# --- one run ---------------------------------------------------------------------

# bench_run WORKLOAD TOOL WANT RUN: fetch once into a fresh Maildir, append
# "workload tool delivered want wall_ms cpu_s rss_kb exit" to RESULTS.
bench_run() {
	local w=$1 tool=$2 want=$3 run=$4 cmd t0 t1 rc n cpu rss
	RUN_DIR=$E2E_RUN/$w/$tool
	rm -rf "$RUN_DIR"
	mkdir -p "$RUN_DIR/Maildir/new" "$RUN_DIR/Maildir/cur" "$RUN_DIR/Maildir/tmp"
	case $tool in
	pullmail-imap) cmd=$(conf_pullmail imap) ;;
	pullmail-pop3) cmd=$(conf_pullmail pop3) ;;
	mbsync) cmd=$(conf_mbsync) ;;
	mpop) cmd=$(conf_mpop) ;;
	fetchmail-pop3) cmd=$(conf_fetchmail pop3) ;;
	fetchmail-imap) cmd=$(conf_fetchmail imap) ;;
	esac
	echo "$cmd" >"$RUN_DIR/command"
	# The previous run's dirty pages are not this run's to write.
	sync
	t0=$(date +%s%N)
	# shellcheck disable=SC2086
	FETCHMAILHOME=$RUN_DIR /usr/bin/time -f '%U %S %M' -o "$RUN_DIR/time" \
		timeout -k 5 "$BENCH_TIMEOUT" $cmd \
		</dev/null >"$RUN_DIR/out" 2>&1
	rc=$?
	t1=$(date +%s%N)
	n=$(maildir_count "$RUN_DIR/Maildir")
	cpu=$(awk 'END {printf "%.2f", $1 + $2}' "$RUN_DIR/time")
	rss=$(awk 'END {print $3}' "$RUN_DIR/time")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$tool" "$n" "$want" \
		$(((t1 - t0) / 1000000)) "$cpu" "$rss" "$rc" >>"$RESULTS"
	printf '  %-15s run %d: %5s of %s messages, %6d ms, exit %s\n' \
		"$tool" "$run" "$n" "$want" $(((t1 - t0) / 1000000)) "$rc"
	[ "$n" = "$want" ] || tail -n 20 "$RUN_DIR/out" | sed 's/^/    | /'
	case $tool in
	pullmail-*)
		# Instruction counts repeat: one run is enough.
		[ "${BENCH_CALLGRIND:-0}" = 1 ] && [ "$run" = 1 ] &&
			bench_callgrind "$w" "$tool" "$cmd" ;;
	esac
}

# The instruction count of one more pullmail run (not timed).
bench_callgrind() {
	command -v valgrind >/dev/null || return 0
	rm -rf "$RUN_DIR/Maildir" "$RUN_DIR/state"
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --callgrind-out-file="$RUN_DIR/cg.out" \
		$3 </dev/null >/dev/null 2>&1
	printf '%s\t%s\t%s\n' "$1" "$2" \
		"$(sed -n 's/^summary: //p' "$RUN_DIR/cg.out")" >>"$RESULTS.callgrind"
}

# --- workloads -------------------------------------------------------------------

# bench_workload NAME COUNT BYTES [RTT_MS]
bench_workload() {
	local w=$1 count=$2 bytes=$3 rtt=${4:-0} tool run t0 t1
	BUSER=bench-$w@$MAIL_DOMAIN
	BHOST=127.0.0.1 IMAPS=$IMAPS_PORT POP3S=$POP3S_PORT
	t0=$(date +%s%N)
	"$SRV_PYTHON" "$BENCH_DIR/genmaildir.py" "$(srv_maildir "$BUSER")" \
		"$count" "$bytes" "$w" || { echo "bench: seeding failed"; return 1; }
	srv_chown "$(srv_maildir "$BUSER")"
	srv_doveadm fetch -u "$BUSER" 'uid pop3.uidl size.virtual' \
		mailbox INBOX all >/dev/null || { echo "bench: doveadm fetch failed"; return 1; }
	[ "$(srv_count "$BUSER")" = "$count" ] ||
		{ echo "bench: Dovecot sees $(srv_count "$BUSER") messages, not $count"; return 1; }
	t1=$(date +%s%N)
	echo "workload $w: $count x $bytes bytes${4:+, ${rtt} ms round trip} (seeded in $(((t1 - t0) / 1000000)) ms)"
	if [ "$rtt" != 0 ]; then
		relay_start "$rtt" $((BENCH_TIMEOUT * 20)) "$IMAPS_PORT" "$POP3S_PORT" ||
			return 1
		# shellcheck disable=SC2086
		set -- $RELAY_PORTS
		IMAPS=$1 POP3S=$2
	fi
	# Round by round (every tool once, then again): a machine that
	# drifts during the workload weighs on every tool alike.
	run=1
	while [ "$run" -le "$BENCH_RUNS" ]; do
		for tool in $TOOLS; do
			bench_run "$w" "$tool" "$count" "$run"
		done
		run=$((run + 1))
	done
	relay_stop
	# The next workload's mail needs the room.
	rm -rf "$(srv_maildir "$BUSER")"
	[ "${PULLMAIL_TEST_KEEP:-0}" = 1 ] || rm -rf "$E2E_RUN/$w"/*/Maildir
}

# --- the table -------------------------------------------------------------------

# One row per workload and tool: the run with the median wall time.
bench_table() {
	echo "| workload | tool | messages | wall s | cpu s | peak RSS MB | wall / pullmail-imap |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
	sort -t "$(printf '\t')" -k1,1 -k2,2 -k5,5n "$RESULTS" | awk -F '\t' \
		-v order="$BENCH_WORKLOADS" -v tools="$TOOLS" '
	{
		k = $1 SUBSEP $2
		nrun[k]++
		row[k, nrun[k]] = $0
	}
	END {
		nw = split(order, ws, " ")
		nt = split(tools, ts, " ")
		for (i = 1; i <= nw; i++) {
			base = ""
			for (j = 1; j <= nt; j++) {
				k = ws[i] SUBSEP ts[j]
				if (!(k in nrun))
					continue
				split(row[k, int((nrun[k] + 1) / 2)], f, "\t")
				ok = f[3] == f[4] && f[8] == 0
				if (ts[j] == "pullmail-imap" && ok)
					base = f[5]
				msgs = f[3] == f[4] ? f[3] : "**" f[3] " of " f[4] "**"
				if (!ok)
					msgs = msgs " **exit " f[8] "**"
				ratio = (base != "" && ok) ? sprintf("%.2f", f[5] / base) : "-"
				printf "| %s | %s | %s | %.2f | %.2f | %.1f | %s |\n", \
					ws[i], ts[j], msgs, f[5] / 1000, f[6], f[7] / 1024, ratio
			}
		}
	}'
}

# The versions of the tools and of Dovecot, in one line.
bench_versions() {
	local t v out=
	for t in pullmail $TOOLS dovecot; do
		case $t in
		pullmail) v=$("$PULLMAIL" --version | sed -n '1s/^pullmail //p') ;;
		mbsync) v=$(mbsync --version | sed 's/^isync //') ;;
		mpop) v=$(mpop --version | sed -n '1s/^mpop version //p') ;;
		fetchmail-*)
			v=$(fetchmail --version 2>/dev/null |
				sed -n 's/^This is fetchmail release \([0-9.]*\).*/\1/p')
			v="$v, procmail $(procmail -v 2>&1 | sed -n '1s/^procmail v\([^ ]*\).*/\1/p')"
			t=fetchmail ;;
		dovecot) v=$(dovecot --version | cut -d' ' -f1) ;;
		*) continue ;;
		esac
		case $out in *"$t "*) continue ;; esac
		out="$out${out:+, }$t $v"
	done
	echo "$out"
}

BENCH_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "tools:$TOOLS; runs per tool: $BENCH_RUNS"
for w in $BENCH_WORKLOADS; do
	case $w in
	small) bench_workload small "$BENCH_SMALL" $((BENCH_SMALL_KB * 1024)) ;;
	rtt) bench_workload rtt "$BENCH_RTT" $((BENCH_SMALL_KB * 1024)) "$BENCH_RTT_MS" ;;
	medium) bench_workload medium "$BENCH_MEDIUM" $((BENCH_MEDIUM_KB * 1024)) ;;
	large) bench_workload large 1 $((BENCH_LARGE_MB * 1048576)) ;;
	esac || E2E_FAILED=1
done

echo
echo "Produced by: ${BENCH_SET}make bench"
echo "$(uname -sr), $(nproc) CPUs, load average at the start $BENCH_LOAD;" \
	"$(bench_versions)"
echo
bench_table
echo
echo "Each tool fsyncs every message before it links or renames it into the"
echo "Maildir.  pullmail logs in with XOAUTH2 (one token request a run), the"
echo "others with a password.  cpu and peak RSS include child processes:"
echo "fetchmail's MDA, one procmail per message."
if [ -s "$RESULTS.callgrind" ]; then
	echo
	echo "| workload | tool | instructions (callgrind) |"
	echo "| --- | --- | ---: |"
	awk -F '\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$RESULTS.callgrind"
fi
echo
if awk -F '\t' '$3 != $4 { bad = 1 } END { exit !bad }' "$RESULTS" || [ "$E2E_FAILED" != 0 ]; then
	echo "WARNING: some runs did not deliver every message (marked above); run directory kept"
	E2E_FAILED=1
	exit 1
fi
exit 0
