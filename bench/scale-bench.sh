#!/bin/sh
# Benchmarks, not tests: pullmail over many mailboxes of one tenant, the
# targets of issue 9.  Run by hand (make bench-scale), never in CI.
#
#   make bench-scale                            (from a build directory)
#   SCALE_WORKLOADS=many SCALE_MAILBOXES=100 make bench-scale
#
# One private Dovecot with a user per mailbox (scaleN@example.test,
# idleN@example.test) and the test OAuth server.  Every account logs in
# with XOAUTH2 and the SAME app-only access token (client credentials of
# one app): the token's claim mail_user is "*@example.test", which
# Dovecot's oauth2 passdb (username_attribute = mail_user, username_format =
# %Ld) compares with the domain of the login name, so the login name alone
# says which mailbox, as with Exchange Online's app-only IMAP.  The token is
# a signed JWT that Dovecot validates locally (SRV_OAUTH_JWT=1, see
# tests/servers/servers.sh), as Exchange Online validates Microsoft's: no
# introspection request per login, which would cost the OAuth server and
# Dovecot's auth process CPU time on the CPUs pullmail runs on.  All
# accounts share a state_dir, hence one token cache: the table shows the
# token requests each run made.  Dovecot's limits are raised for
# the run (SRV_DOVECOT_EXTRA): imap-login in high-performance mode, imap
# processes reused (one session at a time) up to the mailbox count, the
# client limits of auth, anvil and stats.
#
# Workloads (SCALE_WORKLOADS, default "many idle"):
#   many  SCALE_MAILBOXES (300) mailboxes with SCALE_MESSAGES (3) new
#         messages of SCALE_KB (4) KiB each, through bench/delay-relay.c
#         adding a SCALE_RTT_MS (20) ms round trip.  pullmail runs over one
#         mailbox alone SCALE_ONE_RUNS (5) times and over SCALE_MAILBOXES
#         mailboxes SCALE_MANY_RUNS (3) times, taking turns; the medians
#         count.  Each run has mailboxes of its own, seeded alike, that no
#         client has opened yet, as a poll meets newly delivered mail.
#         Between runs the local Maildirs and pullmail's state (token cache
#         included) are wiped.  Target: the ratio of the two medians at
#         most 12, peak RSS at most 64 MB.  SCALE_PEERS=fetchmail adds
#         fetchmail (IMAP, one poll entry per mailbox, procmail as MDA)
#         over the 300 mailboxes, after pullmail has opened them.
#         SCALE_MAX_CONNECTIONS and
#         SCALE_SERVER_CONNECTIONS, when set, go into [defaults] as
#         max_connections and server_connections (unset: pullmail's
#         defaults).
#   idle  SCALE_IDLE_MAILBOXES (1000) mailboxes, one message each, fetched
#         by one `pullmail --daemon` with idle = yes (poll_interval
#         SCALE_POLL_INTERVAL, 900 s), through the same relay.  Once every
#         mailbox's message is delivered and Dovecot shows a session in IDLE
#         per mailbox, RSS and CPU time (/proc/PID/stat, all threads) are
#         measured over SCALE_IDLE_SECONDS (30) s; then a message is saved
#         (doveadm save, which makes Dovecot send EXISTS to the idling
#         session at once) into SCALE_IDLE_PROBES (10) random mailboxes, one
#         after another, each timed from the start of doveadm save until the
#         file is in the local Maildir.  Then SIGTERM; the daemon must exit
#         0.  Target: RSS at most 100 MB, CPU near zero while idle, every
#         probe delivered within 2 s.  Skipped, with a line saying so, when
#         `pullmail --help` does not mention --daemon.  Dovecot notices new
#         mail for an idling session through inotify, one instance per
#         session, and the kernel allows a user 128 by default: raise
#         fs.inotify.max_user_instances first (the script says how);
#         otherwise Dovecot polls each mailbox every second and the table
#         says how many sessions went without.  Dovecot itself waits half a
#         second after a change before it tells the client.
#
# Every delivered message is compared byte for byte with the server's copy
# (bench/samemail.py); a run that did not deliver everything, or delivered
# something else, is flagged in the table and the script exits 1.
# SCALE_DOVECOT_EXTRA: more lines for dovecot.conf (to try Dovecot tuning).
# SCALE_TIMEOUT (900): seconds before a run is killed.  SCALE_READY_TIMEOUT
# (600): seconds the daemon may take to idle on every mailbox.
. "${top_srcdir:-$(dirname "$0")/..}/tests/e2e/lib.sh"
. "$top_srcdir/bench/relay.sh"

SCALE_SET=$(env | grep '^SCALE_' | sort | sed 's/^\([^=]*\)=\(.*\)$/\1="\2"/' | tr '\n' ' ')
BENCH_DIR=$top_srcdir/bench
: "${SCALE_WORKLOADS:=many idle}"
: "${SCALE_MAILBOXES:=300}" "${SCALE_MESSAGES:=3}" "${SCALE_KB:=4}"
: "${SCALE_RTT_MS:=20}" "${SCALE_ONE_RUNS:=5}" "${SCALE_MANY_RUNS:=3}"
: "${SCALE_PEERS:=}"
: "${SCALE_IDLE_MAILBOXES:=1000}" "${SCALE_IDLE_SECONDS:=30}"
: "${SCALE_IDLE_PROBES:=10}" "${SCALE_POLL_INTERVAL:=900}"
: "${SCALE_TIMEOUT:=900}" "${SCALE_READY_TIMEOUT:=600}"
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (apt-get install time)"; exit 1; }

for w in $SCALE_WORKLOADS; do
	case $w in
	many|idle) ;;
	*) echo "bench: unknown workload $w (SCALE_WORKLOADS)"; exit 1 ;;
	esac
done
case " $SCALE_WORKLOADS " in
*" idle "*)
	if ! "$PULLMAIL" --help 2>&1 | grep -q -e '--daemon'; then
		echo "idle: skipped: this pullmail has no --daemon (pullmail --help does not mention it)"
		SCALE_WORKLOADS=$(echo " $SCALE_WORKLOADS " | sed 's/ idle / /g')
	fi ;;
esac
for p in $SCALE_PEERS; do
	case $p in
	fetchmail)
		if ! command -v fetchmail >/dev/null || ! command -v procmail >/dev/null; then
			echo "fetchmail or procmail not installed: apt-get install fetchmail procmail (skipping)"
			SCALE_PEERS=
		fi ;;
	*) echo "bench: unknown peer $p (SCALE_PEERS)"; exit 1 ;;
	esac
done

# A thousand sessions want a thousand descriptors in pullmail, the relay
# and Dovecot, which all inherit this limit.
ulimit -n "$(ulimit -H -n)" 2>/dev/null

# The mailboxes as many Dovecot users; fetchmail logs in with a password.
MANY=$SCALE_MAILBOXES IDLE=0
case " $SCALE_WORKLOADS " in *" many "*) ;; *) MANY=0 ;; esac
case " $SCALE_WORKLOADS " in *" idle "*) IDLE=$SCALE_IDLE_MAILBOXES ;; esac
SRV_PASSWORD_USERS=
if [ -n "$SCALE_PEERS" ] && [ "$MANY" -gt 0 ]; then
	SRV_PASSWORD_USERS=$(seq 1 "$MANY" | sed "s/.*/scale&@$MAIL_DOMAIN/" | tr '\n' ' ')
fi
export SRV_PASSWORD_USERS
SESSIONS=$((MANY > IDLE ? MANY : IDLE))
[ "$SCALE_MANY_RUNS" -ge 1 ] && [ "$SCALE_ONE_RUNS" -ge 1 ] ||
	{ echo "bench: SCALE_MANY_RUNS and SCALE_ONE_RUNS must be at least 1"; exit 1; }
SRV_DOVECOT_EXTRA="
# --- the scale benchmark (bench/scale-bench.sh) ---
# Process titles say IDLE: the benchmark counts the idling sessions.
verbose_proctitle = yes
# imap-login in high-performance mode: a few processes proxy every TLS
# session, instead of one process per session (at most 100 by default).
service imap-login {
  service_count = 0
  process_min_avail = 2
  process_limit = 8
  client_limit = $((SESSIONS + 200))
  vsz_limit = 1G
}
# An imap process serves one session at a time (its title then names the
# user and says IDLE) but is reused for the next login instead of being
# started anew: that halves Dovecot's CPU time a session (about 40 ms to
# 17 ms here), which on a machine this size bounds the one-shot run.
service imap {
  process_limit = $((SESSIONS + 100))
  service_count = 0
  process_min_avail = 4
}
service auth {
  client_limit = $((SESSIONS * 2 + 500))
}
service anvil {
  client_limit = $((SESSIONS * 2 + 500))
}
service stats {
  client_limit = $((SESSIONS * 2 + 500))
}
${SCALE_DOVECOT_EXTRA:-}"
# Dovecot tells an idling session of new mail at once only through inotify,
# one instance per imap process, all of them the mail user's.  Past the
# per-user limit it falls back to checking every mailbox_idle_check_interval
# (30 s): that would be measured as pullmail's delay.
INOTIFY_MAX=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)
if [ "$IDLE" -gt 0 ] && [ "$INOTIFY_MAX" -lt $((IDLE + 200)) ]; then
	echo "idle: fs.inotify.max_user_instances is $INOTIFY_MAX; Dovecot needs one per idling"
	echo "  session (and other Dovecots of the same user take theirs) to notify at once."
	echo "  Raise it first, as root: sysctl -w fs.inotify.max_user_instances=$(((IDLE + 200) * 2))"
	echo "  Going on with Dovecot checking every mailbox each second (mailbox_idle_check_interval):"
	echo "  new mail may wait up to a second more in Dovecot; the table says so."
	SRV_DOVECOT_EXTRA="$SRV_DOVECOT_EXTRA
mailbox_idle_check_interval = 1 secs"
fi

# JWT access tokens, validated by Dovecot itself: Exchange Online does not
# ask the token issuer about every login either, and introspecting 300
# logins would cost about a second of the OAuth server's CPU (plus Dovecot
# auth's HTTP client) on the same CPUs as pullmail.  SRV_OAUTH_JWT=0 in
# the environment: opaque tokens and introspection, to compare.
: "${SRV_OAUTH_JWT:=1}"
e2e_start_servers
RESULTS=$E2E_RUN/results
: >"$RESULTS"
TICK=$(getconf CLK_TCK)
DAEMON=

# --- helpers ---------------------------------------------------------------------

# The server Maildir pattern of user PREFIX%d (for genmaildir and samemail).
server_pattern() {
	echo "$SRV_RUN/mail/$1%d@$MAIL_DOMAIN"
}

# seed PREFIX COUNT MESSAGES TAG: MESSAGES messages in each of COUNT
# mailboxes, their files named as Dovecot's own delivery names them (sizes
# in the name), then let Dovecot index them all once (no run pays for it).
seed() {
	local prefix=$1 count=$2 msgs=$3 t0 t1
	t0=$(date +%s%N)
	"$SRV_PYTHON" "$BENCH_DIR/genmaildir.py" --each "$count" --sizes \
		"$(server_pattern "$prefix")" "$msgs" $((SCALE_KB * 1024)) "$4-%d" ||
		{ echo "bench: seeding failed"; return 1; }
	srv_chown "$SRV_RUN/mail"
	seq 1 "$count" | sed "s/.*/$prefix&@$MAIL_DOMAIN/" >"$E2E_RUN/$prefix.users"
	doveadm -c "$SRV_RUN/dovecot.conf" fetch -F "$E2E_RUN/$prefix.users" \
		uid mailbox INBOX all </dev/null >/dev/null ||
		{ echo "bench: doveadm fetch failed"; return 1; }
	t1=$(date +%s%N)
	echo "seeded $count mailboxes x $msgs messages in $(((t1 - t0) / 1000000)) ms"
}

# start_relay: the delaying relay in front of Dovecot's IMAPS; sets RELAY
# (its pid) and RPORT (its port).  SCALE_RTT_MS=0: no relay.
start_relay() {
	RELAY= RPORT=$IMAPS_PORT
	[ "$SCALE_RTT_MS" = 0 ] && return 0
	relay_start "$SCALE_RTT_MS" $((SCALE_TIMEOUT * 20)) "$IMAPS_PORT" || return 1
	RELAY=$RELAY_PID RPORT=$RELAY_PORTS
}

stop_relay() {
	relay_stop
	RELAY=
}

# pm_config DIR PREFIX FIRST LAST [key=value]...: a pullmail config in
# DIR/config with accounts PREFIX FIRST..LAST, each delivering into
# DIR/Maildir/N; everything they share is in [defaults].
pm_config() {
	local dir=$1 prefix=$2 first=$3 last=$4 kv
	shift 4
	{
		echo "[defaults]"
		echo "server = 127.0.0.1"
		echo "port = $RPORT"
		echo "protocol = imap"
		echo "tls = implicit"
		echo "ca_file = $CA_FILE"
		echo "auth = xoauth2"
		echo "oauth_provider = generic"
		echo "oauth_token_url = $OAUTH_TOKEN_URL"
		echo "oauth_client_id = $APP_ID"
		echo "oauth_client_secret = $APP_SECRET"
		echo "oauth_scope = imap"
		echo "state_dir = $dir/state"
		for kv in "$@"; do
			echo "${kv%%=*} = ${kv#*=}"
		done
		seq "$first" "$last" | awk -v p="$prefix" -v d="$MAIL_DOMAIN" \
			-v m="$dir/Maildir" '{
			printf "\n[account %s%d]\nuser = %s%d@%s\ndeliver = maildir:%s/%d\n",
			    p, $1, p, $1, d, m, $1 }'
	} | write_config "$dir/config"
}

# The [defaults] lines for the connection limits the caller chose.
limits() {
	[ -z "${SCALE_MAX_CONNECTIONS:-}" ] || echo "max_connections=$SCALE_MAX_CONNECTIONS"
	[ -z "${SCALE_SERVER_CONNECTIONS:-}" ] || echo "server_connections=$SCALE_SERVER_CONNECTIONS"
}

# CPU time (ticks) of the server side so far, "DOVECOT OAUTH RELAY":
# Dovecot's processes (the master's reaped children included), the OAuth
# server, the relay.
server_ticks() {
	local master p d o r
	master=$(cat "$SRV_BASE/master.pid" 2>/dev/null) || { echo 0 0 0; return; }
	d=$({
		sed 's/^.*) //' "/proc/$master/stat" | awk '{print $12 + $13 + $14 + $15}'
		for p in $(ps -o pid= --ppid "$master"); do
			sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'
		done
	} | awk '{t += $1} END {print t + 0}')
	o=$(sed 's/^.*) //' "/proc/$(cat "$SRV_RUN/oauth/pid")/stat" | awk '{print $12 + $13}')
	r=0
	[ -z "$RELAY" ] || r=$(sed 's/^.*) //' "/proc/$RELAY/stat" | awk '{print $12 + $13}')
	echo "$d ${o:-0} ${r:-0}"
}

# --- workload many -----------------------------------------------------------------

# many_run LABEL TOOL PREFIX FIRST LAST RUN: fetch mailboxes PREFIX FIRST to
# PREFIX LAST once into fresh Maildirs; append "label tool count delivered
# want wall_ms cpu_s rss_kb tokens exit correct server_ticks" to RESULTS.
many_run() {
	local label=$1 tool=$2 prefix=$3 first=$4 last=$5 run=$6 count
	local dir cmd t0 t1 rc n tok cpu rss ok st
	count=$((last - first + 1))
	dir=$E2E_RUN/many/$label
	rm -rf "$dir"
	mkdir -p "$dir/Maildir"
	case $tool in
	pullmail)
		# shellcheck disable=SC2046
		pm_config "$dir" "$prefix" "$first" "$last" $(limits)
		cmd="$PULLMAIL -c $dir/config" ;;
	fetchmail)
		# Only ever over scale1 to scaleN (the password users).
		conf_fetchmail "$dir" "$count"
		cmd="fetchmail -s -f $dir/config" ;;
	esac
	echo "$cmd" >"$dir/command"
	tok=$(srv_token_requests "$APP_ID")
	sync
	st=$(server_ticks)
	t0=$(date +%s%N)
	# shellcheck disable=SC2086
	FETCHMAILHOME=$dir /usr/bin/time -f '%U %S %M' -o "$dir/time" \
		timeout -k 5 "$SCALE_TIMEOUT" $cmd </dev/null >"$dir/out" 2>"$dir/err"
	rc=$?
	t1=$(date +%s%N)
	# shellcheck disable=SC2046
	st=$(printf '%s %s %s %s %s %s\n' $st $(server_ticks) |
		awk '{printf "%d/%d/%d", $4 - $1, $5 - $2, $6 - $3}')
	tok=$(($(srv_token_requests "$APP_ID") - tok))
	[ "$tool" = pullmail ] || tok=-
	n=$(find "$dir/Maildir" -path '*/new/*' -type f -o -path '*/cur/*' -type f | wc -l)
	# fetchmail adds a Received field of its own.
	set --
	[ "$tool" = fetchmail ] && set -- --drop-field '(fetchmail-'
	# shellcheck disable=SC2046
	if "$SRV_PYTHON" "$BENCH_DIR/samemail.py" "$@" "$(server_pattern "$prefix")" \
		"$dir/Maildir/%d" "$count" $(seq "$first" "$last") >"$dir/compare" 2>&1; then
		ok=yes
	else
		ok=no
	fi
	cpu=$(awk 'END {printf "%.2f", $1 + $2}' "$dir/time")
	rss=$(awk 'END {print $3}' "$dir/time")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$tool" \
		"$count" "$n" $((count * SCALE_MESSAGES)) $(((t1 - t0) / 1000000)) \
		"$cpu" "$rss" "$tok" "$rc" "$ok" "$st" >>"$RESULTS"
	printf '  %-22s run %d: %5s of %s messages, %7d ms, exit %s, %s\n' \
		"$label" "$run" "$n" $((count * SCALE_MESSAGES)) \
		$(((t1 - t0) / 1000000)) "$rc" "$(cat "$dir/compare")"
	if [ "$ok" != yes ] || [ "$rc" -gt 1 ]; then
		tail -n 20 "$dir/err" | sed 's/^/    | /'
	fi
	[ "${PULLMAIL_TEST_KEEP:-0}" = 1 ] || rm -rf "$dir/Maildir"
}

# conf_fetchmail DIR COUNT: one poll entry per mailbox, each handing its
# messages to procmail, which writes DIR/Maildir/N (its first argument).
conf_fetchmail() {
	local dir=$1 count=$2
	write_config "$dir/procmailrc" <<-EOF
	LOGFILE=$dir/procmail.log
	:0
	\$1/
	EOF
	{
		echo "set no syslog"
		seq 1 "$count" | while read -r n; do
			cat <<-EOF
			poll 127.0.0.1 service $RPORT protocol imap
			  user "scale$n@$MAIL_DOMAIN" password "$PASSWORD_SECRET" is root here
			  ssl sslcertck sslcertfile "$CA_FILE" sslcommonname localhost
			  keep fetchall
			  mda "/usr/bin/procmail -m $dir/procmailrc $dir/Maildir/$n"
			EOF
		done
	} | write_config "$dir/config"
	chmod 0700 "$dir/config"
}

workload_many() {
	local run=1
	echo "workload many: $MANY mailboxes x $SCALE_MESSAGES messages of $SCALE_KB KiB, ${SCALE_RTT_MS} ms round trip"
	# Every run its own mailboxes, seeded alike: a mailbox no client has
	# opened yet costs Dovecot more (its first SELECT moves the mail from
	# new/ to cur/ and starts the cache), and every run meets only such
	# mailboxes, as a poll meets newly delivered mail.  Runs over MANY
	# mailboxes use scale1..., the base runs one1 to oneN.
	seed scale $((MANY * SCALE_MANY_RUNS)) "$SCALE_MESSAGES" scale || return 1
	seed one "$SCALE_ONE_RUNS" "$SCALE_MESSAGES" one || return 1
	start_relay || return 1
	# Round by round, so that a machine drifting during the workload
	# weighs on both kinds of run alike.
	while [ "$run" -le "$SCALE_ONE_RUNS" ] || [ "$run" -le "$SCALE_MANY_RUNS" ]; do
		[ "$run" -gt "$SCALE_ONE_RUNS" ] ||
			many_run one-mailbox pullmail one "$run" "$run" "$run"
		[ "$run" -gt "$SCALE_MANY_RUNS" ] ||
			many_run "$MANY-mailboxes" pullmail scale \
				$(((run - 1) * MANY + 1)) $((run * MANY)) "$run"
		run=$((run + 1))
	done
	# A peer meets the mailboxes of pullmail's first run, which pullmail
	# has opened (less work for Dovecot than pullmail's run had).
	for p in $SCALE_PEERS; do
		many_run "$MANY-mailboxes-$p" "$p" scale 1 "$MANY" 1
	done
	stop_relay
}

# --- workload idle -----------------------------------------------------------------

# Sessions of our Dovecot whose process title says IDLE.
idle_sessions() {
	local master
	master=$(cat "$SRV_BASE/master.pid" 2>/dev/null) || { echo 0; return; }
	ps -o args= --ppid "$master" | grep -c ' IDLE\]'
}

# "utime+stime in ticks" of process $1 (every thread; field 2, the name,
# may hold spaces: count from the closing parenthesis).
cpu_ticks() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# A line of /proc/$1/status in kB: status_kb PID VmRSS.
status_kb() {
	awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"
}

stop_daemon() {
	[ -n "$DAEMON" ] || return 0
	kill -TERM "$DAEMON" 2>/dev/null
	wait "$DAEMON" 2>/dev/null
	DAEMON=
}
trap 'rc=$?; stop_daemon; stop_relay; (exit $rc); e2e_cleanup' EXIT

workload_idle() {
	local dir=$E2E_RUN/idle n=$IDLE t0 t1 t2 i got idling c0 c1 rss hwm
	local probes p lat save rc ok
	echo "workload idle: $n mailboxes idling in one daemon, ${SCALE_RTT_MS} ms round trip"
	seed idle "$n" 1 idle || return 1
	start_relay || return 1
	rm -rf "$dir"
	mkdir -p "$dir/Maildir" "$dir/probes"
	# shellcheck disable=SC2046
	pm_config "$dir" idle 1 "$n" idle=yes "poll_interval=$SCALE_POLL_INTERVAL" \
		$(limits)
	t0=$(date +%s%N)
	"$PULLMAIL" -c "$dir/config" --daemon </dev/null >"$dir/out" 2>"$dir/err" &
	DAEMON=$!
	# Ready: every first message delivered and a session in IDLE per mailbox.
	i=0
	while :; do
		got=$(find "$dir/Maildir" -path '*/new/*' -type f -o -path '*/cur/*' -type f | wc -l)
		idling=$(idle_sessions)
		[ "$got" -ge "$n" ] && [ "$idling" -ge "$n" ] && break
		if ! kill -0 "$DAEMON" 2>/dev/null; then
			wait "$DAEMON"
			echo "bench: the daemon exited ($?) before it was ready"
			tail -n 20 "$dir/err" | sed 's/^/    | /'
			DAEMON=
			return 1
		fi
		i=$((i + 1))
		if [ $i -gt $((SCALE_READY_TIMEOUT * 5)) ]; then
			echo "bench: after ${SCALE_READY_TIMEOUT} s: $got of $n delivered, $idling sessions in IDLE"
			tail -n 20 "$dir/err" | sed 's/^/    | /'
			return 1
		fi
		sleep 0.2
	done
	t1=$(date +%s%N)
	echo "  ready after $(((t1 - t0) / 1000000)) ms: $got delivered, $idling sessions in IDLE"
	c0=$(cpu_ticks "$DAEMON")
	sleep "$SCALE_IDLE_SECONDS"
	c1=$(cpu_ticks "$DAEMON")
	rss=$(status_kb "$DAEMON" VmRSS)
	hwm=$(status_kb "$DAEMON" VmHWM)
	printf 'idle\tstart\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" \
		$(((t1 - t0) / 1000000)) "$c0" $((c1 - c0)) "$rss" "$hwm" \
		"$(status_kb "$DAEMON" Threads 2>/dev/null || echo -)" \
		"$(ls "/proc/$DAEMON/fd" | wc -l)" >>"$RESULTS"
	echo "  idle ${SCALE_IDLE_SECONDS} s: $((c1 - c0)) ticks of CPU, RSS $rss kB (peak $hwm kB)"
	# New mail, one mailbox after another.
	probes=$(shuf -i 1-"$n" -n "$SCALE_IDLE_PROBES")
	for p in $probes; do
		"$SRV_PYTHON" "$BENCH_DIR/genmaildir.py" "$dir/probes/$p" 1 \
			$((SCALE_KB * 1024)) "probe-$p" || return 1
		set -- "$dir/probes/$p"/new/*
		t0=$(date +%s%N)
		doveadm -c "$SRV_RUN/dovecot.conf" save -u "idle$p@$MAIL_DOMAIN" \
			<"$1" || { echo "bench: doveadm save failed"; return 1; }
		t1=$(date +%s%N)
		i=0
		while [ "$(find "$dir/Maildir/$p/new" "$dir/Maildir/$p/cur" -type f | wc -l)" -lt 2 ]; do
			i=$((i + 1))
			[ $i -gt 1000 ] && break
			sleep 0.01
		done
		t2=$(date +%s%N)
		lat=$(((t2 - t0) / 1000000)) save=$(((t1 - t0) / 1000000))
		[ $i -gt 1000 ] && lat=-
		printf 'idle\tprobe\t%s\t%s\t%s\n' "$p" "$lat" "$save" >>"$RESULTS"
		echo "  probe idle$p: delivered after $lat ms (doveadm save took $save ms)"
	done
	t0=$(date +%s%N)
	kill -TERM "$DAEMON"
	wait "$DAEMON"
	rc=$?
	t1=$(date +%s%N)
	DAEMON=
	stop_relay
	# shellcheck disable=SC2086
	if "$SRV_PYTHON" "$BENCH_DIR/samemail.py" "$(server_pattern idle)" \
		"$dir/Maildir/%d" "$n" >"$dir/compare" 2>&1; then
		ok=yes
	else
		ok=no
	fi
	echo "  SIGTERM: exit $rc after $(((t1 - t0) / 1000000)) ms; $(cat "$dir/compare")"
	echo "  the daemon logged $(cat "$dir/out" "$dir/err" |
		grep -c -E ': [0-9]+ messages? delivered') delivery lines"
	i=$(grep -c 'Inotify instance limit' "$SRV_RUN/dovecot.log")
	[ "$i" = 0 ] || echo "  Dovecot: $i sessions without inotify (their new mail is noticed by polling)"
	printf 'idle\tinotify\t%s\n' "$i" >>"$RESULTS"
	printf 'idle\tstop\t%s\t%s\t%s\n' "$rc" $(((t1 - t0) / 1000000)) "$ok" >>"$RESULTS"
	[ "${PULLMAIL_TEST_KEEP:-0}" = 1 ] || rm -rf "$dir/Maildir"
}

# --- the tables --------------------------------------------------------------------

table_many() {
	echo "| run | tool | mailboxes | messages | identical | wall s | cpu s | peak RSS MB | token requests | server cpu s (dovecot / oauth / relay) | wall / one mailbox |"
	echo "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	# Runs of the same label and tool make one row: the run with the
	# median wall time (of an even count, the lower middle one).  The
	# one-mailbox median is the base.
	sort -t "$(printf '\t')" -k6,6n "$RESULTS" | awk -F '\t' -v tick="$TICK" '
	$1 == "idle" { next }
	{
		k = $1 "\t" $2
		if (!(k in n))
			order[++groups] = k
		row[k, ++n[k]] = $0
		walls[k] = walls[k] sprintf(" %.2f", $6 / 1000)
	}
	END {
		base = ""
		kb = "one-mailbox\tpullmail"
		if (kb in n) {
			split(row[kb, int((n[kb] + 1) / 2)], f, "\t")
			base = f[6]
		}
		# The base first, then the rest, the fastest first.
		for (g = 0; g <= groups; g++) {
			k = g ? order[g] : kb
			if ((g && k == kb) || !(k in n))
				continue
			split(row[k, int((n[k] + 1) / 2)], f, "\t")
			ok = 1
			for (i = 1; i <= n[k]; i++) {
				split(row[k, i], e, "\t")
				if (e[4] != e[5] || e[10] > 1 || e[11] != "yes")
					ok = 0
			}
			msgs = f[4] == f[5] ? f[4] : "**" f[4] " of " f[5] "**"
			if (f[10] > 1)
				msgs = msgs " **exit " f[10] "**"
			label = n[k] > 1 ? f[1] " (median of " n[k] ")" : f[1]
			ratio = base != "" && ok ? sprintf("%.1f", f[6] / base) : "-"
			split(f[12], sv, "/")
			printf "| %s | %s | %s | %s | %s | %.2f | %.2f | %.1f | %s | %.2f (%.2f / %.2f / %.2f) | %s |\n",
			    label, f[2], f[3], msgs, ok ? "yes" : "**no**",
			    f[6] / 1000, f[7], f[8] / 1024, f[9],
			    (sv[1] + sv[2] + sv[3]) / tick, sv[1] / tick, sv[2] / tick, sv[3] / tick, ratio
		}
		print ""
		printf "Wall s of every run, sorted:"
		for (g = 1; g <= groups; g++) {
			split(order[g], f, "\t")
			printf "%s %s%s", (g > 1 ? ";" : ""), f[1], walls[order[g]]
		}
		print ""
	}'
}

table_idle() {
	awk -F '\t' -v secs="$SCALE_IDLE_SECONDS" -v tick="$TICK" '
	$1 != "idle" { next }
	$2 == "start" { n = $3; ready = $4; startcpu = $5; idlecpu = $6; rss = $7; hwm = $8; thr = $9; fds = $10 }
	$2 == "probe" { np++; lat[np] = $4; if ($4 == "-") lost++ }
	$2 == "stop" { rc = $3; stopms = $4; same = $5 }
	$2 == "inotify" { noinotify = $3 }
	END {
		if (!n)
			exit
		# Sort the latencies (a few values: insertion sort).
		for (i = 2; i <= np; i++)
			for (j = i; j > 1 && (lat[j] == "-" || (lat[j - 1] != "-" && lat[j - 1] + 0 > lat[j] + 0)); j--) {
				t = lat[j]; lat[j] = lat[j - 1]; lat[j - 1] = t
			}
		print "| mailboxes | ready after s | cpu s to get ready | cpu s over " secs " s idle | RSS MB | peak RSS MB | threads | fds | new mail, median / max s (" np " probes) | identical | SIGTERM |"
		print "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
		med = np ? lat[int((np + 1) / 2)] : "-"
		max = np ? lat[np] : "-"
		if (rc == "")
			rc = "-"
		printf "| %d | %.1f | %.2f | %.2f | %.1f | %.1f | %s | %s | %s / %s%s | %s | exit %s in %.1f s |\n",
		    n, ready / 1000, startcpu / tick, idlecpu / tick, rss / 1024, hwm / 1024,
		    thr, fds, med == "-" ? "-" : sprintf("%.2f", med / 1000),
		    max == "-" ? (np ? "**not delivered**" : "-") : sprintf("%.2f", max / 1000),
		    lost ? " (**" lost " not delivered**)" : "",
		    same == "yes" ? "yes" : "**no**", rc, stopms / 1000
		if (noinotify)
			print "\n**" noinotify " of Dovecot'"'"'s sessions had no inotify instance** (fs.inotify.max_user_instances): it noticed their new mail by polling, which the latencies include."
	}' "$RESULTS"
}

BENCH_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for w in $SCALE_WORKLOADS; do
	case $w in
	many) workload_many ;;
	idle) workload_idle ;;
	esac || E2E_FAILED=1
done

echo
echo "Produced by: ${SCALE_SET}make bench-scale"
echo "$(uname -sr), $(nproc) CPUs, load average at the start $BENCH_LOAD;" \
	"pullmail $("$PULLMAIL" --version | sed -n '1s/^pullmail //p')," \
	"dovecot $(dovecot --version | cut -d' ' -f1)"
case " $SCALE_WORKLOADS " in
*" many "*)
	echo
	table_many
	echo
	echo "Targets (issue 9): wall / one mailbox at most 12, peak RSS at most 64 MB."
	echo "cpu s: the client's (children included); server cpu s: Dovecot, the OAuth"
	echo "server and the relay over the same run, on the same CPUs."
	[ -z "$SCALE_PEERS" ] || echo "fetchmail's messages are compared without the Received field it adds." ;;
esac
case " $SCALE_WORKLOADS " in
*" idle "*)
	echo
	table_idle
	echo
	echo "Targets (issue 9): RSS at most 100 MB, CPU near zero while idle, new"
	echo "mail delivered within 2 s (timed from the start of doveadm save)." ;;
esac
echo
if awk -F '\t' '
	$1 == "idle" && $2 == "probe" && $4 == "-" { bad = 1 }
	$1 == "idle" && $2 == "stop" && ($3 != 0 || $5 != "yes") { bad = 1 }
	$1 != "idle" && ($4 != $5 || $10 > 1 || $11 != "yes") { bad = 1 }
	END { exit !bad }' "$RESULTS" || [ "$E2E_FAILED" != 0 ]; then
	echo "WARNING: some runs did not deliver every message correctly (marked above); run directory kept"
	E2E_FAILED=1
	exit 1
fi
exit 0
