#!/bin/sh
# The daemon (pullmail --daemon) against a real Dovecot and a real OAuth
# server: new mail delivered within seconds through IMAP IDLE, several
# folders and accounts at once, polling where IDLE is off, SIGUSR1, SIGHUP
# adding an account, short-lived tokens, Dovecot restarted underneath, the
# OAuth server forgetting the cached token under an IDLE session, and
# SIGTERM in the middle of a large fetch (nothing lost, nothing twice).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

# Mail saved while the daemon idles arrives within seconds, byte for byte.
case_idle() {
	local more t0 t1
	seed_messages
	account acct "poll_interval=3600" | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	wait_grep 'IDLE' "$LAST_OUT.err" 10
	# The daemon idles now: a new message is pushed to it.
	sleep 1
	more=$(make_messages "$CASE_DIR/more" "$CASE_NAME-more" | head -n 2)
	t0=$(date +%s%N)
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $more
	wait_count "$CASE_DIR/Maildir" $((NSEEDS + 2)) 5
	t1=$(date +%s%N)
	echo "delivered $(((t1 - t0) / 1000000)) ms after it was saved"
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
	assert_grep "^acct: 2 messages delivered" "$LAST_OUT.out"
	assert_grep 'stopped' "$LAST_OUT.err"
	# It logged out, and the poll interval never came into it.
	assert_no_grep 'retrying' "$LAST_OUT.err"
}

# Two accounts, one with two folders: three IDLE sessions at once.
case_idle_many() {
	local a b w u2
	u2=other-$CASE_USER
	{
		account acct1 "folder=INBOX" "folder=Work" \
			"deliver=maildir:$CASE_DIR/M1"
		account acct2 "user=$u2" "deliver=maildir:$CASE_DIR/M2"
	} | write_config "$CASE_DIR/config"
	a=$(make_messages "$CASE_DIR/a" "$CASE_NAME-a" | head -n 1)
	srv_seed "$CASE_USER" INBOX $a
	srv_seed "$CASE_USER" Work "$(make_messages "$CASE_DIR/w0" "$CASE_NAME-w0" | head -n 1)"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/M1" 2 20
	wait_grep 'acct2: .*0 new of 0' "$LAST_OUT.err" 20
	sleep 1
	b=$(make_messages "$CASE_DIR/b" "$CASE_NAME-b" | head -n 2)
	w=$(make_messages "$CASE_DIR/w" "$CASE_NAME-w" | head -n 1)
	# shellcheck disable=SC2086
	srv_seed "$u2" INBOX $b
	srv_seed "$CASE_USER" Work $w
	wait_count "$CASE_DIR/M2" 2 5
	wait_count "$CASE_DIR/M1" 3 5
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/M1" $(srv_server_files "$CASE_USER") \
		$(srv_server_files "$CASE_USER" Work)
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/M2" $(srv_server_files "$u2")
}

# idle = no: a poll every poll_interval; SIGUSR1 polls at once.
case_poll_and_usr1() {
	local more
	seed_messages
	account acct "idle=no" "poll_interval=2" | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config"
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	more_mail 1 6
	stop_daemon
	assert_rc 0
	account acct "idle=no" "poll_interval=3600" | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_grep '0 new of' "$LAST_OUT.err" 20
	more="$more $(make_messages "$CASE_DIR/usr1" "$CASE_NAME-usr1" | head -n 1)"
	srv_seed "$CASE_USER" INBOX "${more##* }"
	sleep 1
	assert_eq $((NSEEDS + 1)) "$(maildir_count "$CASE_DIR/Maildir")" "before SIGUSR1"
	kill -USR1 "$DPID"
	wait_count "$CASE_DIR/Maildir" $((NSEEDS + 2)) 6
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
}

# SIGHUP with a new account: it starts; the first keeps its session.
case_sighup_adds() {
	local u2 b
	u2=other-$CASE_USER
	seed_messages
	account acct1 "poll_interval=3600" | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	b=$(make_messages "$CASE_DIR/b" "$CASE_NAME-b" | head -n 2)
	# shellcheck disable=SC2086
	srv_seed "$u2" INBOX $b
	{
		account acct1 "poll_interval=3600"
		account acct2 "user=$u2" "deliver=maildir:$CASE_DIR/M2" \
			"poll_interval=3600"
	} | write_config "$CASE_DIR/config"
	kill -HUP "$DPID"
	wait_count "$CASE_DIR/M2" 2 10
	wait_grep '1 account kept, 1 started, 0 stopped' "$LAST_OUT.err" 5
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/M2" $b
	# acct1 logged in once: its session survived the reload.
	assert_eq 1 "$(grep -c "acct1: .*new of" "$LAST_OUT.err")" "acct1 passes"
}

# Access tokens that live 5 s: polls every 2 s go on across many expiries
# without an error.
case_short_tokens() {
	local all
	seed_messages
	all=$SEEDS
	account acct "idle=no" "poll_interval=2" "oauth_client_id=$SHORT_ID" \
		"oauth_client_secret=$SHORT_SECRET" |
		write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config"
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	trickle 3 4 8
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $all
	assert_no_grep 'retrying|refused|failed' "$LAST_OUT.err"
	# Several tokens were issued: they did expire in between.
	[ "$(srv_token_requests "$SHORT_ID")" -ge 3 ] ||
		fail "$(srv_token_requests "$SHORT_ID") tokens issued, expected 3 or more"
}

# Dovecot stopped and started again under an idling daemon: it
# reconnects and goes on.
case_dovecot_restart() {
	local more pid kids i=0
	seed_messages
	account acct "poll_interval=3600" | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	sleep 1
	pid=$(cat "$SRV_BASE/master.pid")
	kids=$(ps -o pid= --ppid "$pid")
	kill -TERM "$pid"
	while srv_running "$pid"; do
		i=$((i + 1))
		[ $i -gt 200 ] && break
		sleep 0.05
	done
	# No imap process outlives the master: its process group, and its
	# children by name (one was seen alive, holding the IDLE session,
	# after the group was killed).
	# shellcheck disable=SC2086
	kill -KILL -- "-$pid" $kids 2>/dev/null
	i=0
	until grep -q 'retrying in' "$LAST_OUT.err"; do
		i=$((i + 1))
		[ $i -gt 100 ] && break
		sleep 0.1
	done
	# Start it again whatever happened, for the cases after this one.
	dovecot -c "$SRV_RUN/dovecot.conf" </dev/null >>"$SRV_RUN/dovecot.out" 2>&1 ||
		fail "dovecot did not start again"
	assert_grep 'retrying in' "$LAST_OUT.err"
	more_mail 2 30
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
}

# The OAuth server forgets every token (restarted, as after a revocation)
# while the daemon idles, then Dovecot ends the IDLE session: the daemon's
# next login with the cached token is refused; it drops that token, gets
# one new one and goes on delivering.
case_idle_token_revoked() {
	local more before
	seed_messages
	account acct "poll_interval=3600" | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	wait_grep 'waiting for new mail \(IDLE\)' "$LAST_OUT.err" 10
	srv_oauth_restart
	before=$(srv_token_requests "$APP_ID")
	srv_doveadm kick "$CASE_USER" >/dev/null ||
		fail "doveadm kick failed"
	more_mail 2 30
	stop_daemon
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
	assert_grep 'refused the cached access token; getting a new one' \
		"$LAST_OUT.err"
	assert_grep 'INTROSPECT status=200 active=false' "$OAUTH_LOG"
	assert_eq 1 "$(($(srv_token_requests "$APP_ID") - before))" \
		"token requests after the revocation"
	assert_no_grep 'needs a human\|notify' "$LAST_OUT.err"
}

# SIGTERM while a large fetch runs (from a slow server: the fault
# injector holds every body back 60 ms): exit 0 after the grace time; what
# was delivered is recorded, the message in flight is not; a later run
# fetches the rest; every message exactly once, nothing left on the server.
case_sigterm_mid_fetch() {
	local n
	seed_many 300
	start_injector exchangefault.py "$IMAP_PORT" --lifetime 300 \
		--body-delay-ms 60
	account acct "idle=no" "keep=no" "port=$INJ_PORT" tls=none |
		write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_grep '300 new of 300' "$LAST_OUT.err" 20
	sleep 2
	stop_daemon
	assert_rc 0
	assert_grep 'cutting the sessions still fetching' "$LAST_OUT.err"
	n=$(maildir_count "$CASE_DIR/Maildir")
	echo "$n delivered before the stop"
	[ "$n" -gt 0 ] && [ "$n" -lt 300 ] ||
		fail "$n messages delivered: the stop did not fall in the fetch"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep "acct: $((300 - n)) messages delivered" "$LAST_OUT.out"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A login only a person can fix (a wrong client secret): the account is
# paused, notify_command runs once, nothing is retried; the other account
# goes on; SIGHUP with the secret fixed resumes it.
case_human_pause() {
	local u2
	u2=other-$CASE_USER
	seed_messages
	srv_seed "$u2" INBOX $(make_messages "$CASE_DIR/b" "$CASE_NAME-b" | head -n 1)
	printf '#!/bin/sh\necho "$PULLMAIL_MESSAGE" >>%s/notified\n' "$CASE_DIR" \
		>"$CASE_DIR/notify.sh"
	chmod +x "$CASE_DIR/notify.sh"
	{
		account bad "idle=no" "poll_interval=1" \
			"oauth_client_id=no-such-client" \
			"notify_command=$CASE_DIR/notify.sh"
		account good "user=$u2" "deliver=maildir:$CASE_DIR/M2" \
			"poll_interval=3600"
	} | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_grep 'bad: .*paused until the configuration is reloaded' "$LAST_OUT.err" 20
	wait_count "$CASE_DIR/M2" 1 20
	# poll_interval is 1 s: a paused account would have been tried again.
	sleep 3
	assert_eq 1 "$(grep -c 'paused until' "$LAST_OUT.err")" "pauses logged"
	assert_eq 1 "$(wc -l <"$CASE_DIR/notified" | tr -d ' ')" "notify_command runs"
	assert_grep 'invalid_client' "$CASE_DIR/notified"
	assert_eq 0 "$(maildir_count "$CASE_DIR/Maildir")" "delivered for bad"
	{
		account bad "idle=no" "poll_interval=3600"
		account good "user=$u2" "deliver=maildir:$CASE_DIR/M2" \
			"poll_interval=3600"
	} | write_config "$CASE_DIR/config"
	kill -HUP "$DPID"
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	wait_grep '1 account kept, 1 started, 1 stopped' "$LAST_OUT.err" 5
	stop_daemon
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	# The good account's session was never restarted.
	assert_eq 1 "$(grep -c 'good: .*new of' "$LAST_OUT.err")" "good passes"
}

# SIGHUP without an account: its IDLE session ends; the other goes on.
case_sighup_removes() {
	local u2 more
	u2=other-$CASE_USER
	seed_messages
	{
		account one "poll_interval=3600"
		account two "user=$u2" "deliver=maildir:$CASE_DIR/M2" \
			"poll_interval=3600"
	} | write_config "$CASE_DIR/config"
	start_daemon "$CASE_DIR/config" -v
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	wait_grep 'two: INBOX: waiting for new mail' "$LAST_OUT.err" 20
	account one "poll_interval=3600" | write_config "$CASE_DIR/config"
	kill -HUP "$DPID"
	wait_grep '1 account kept, 0 started, 1 stopped' "$LAST_OUT.err" 5
	more=$(make_messages "$CASE_DIR/more" "$CASE_NAME-more" | head -n 1)
	srv_seed "$u2" INBOX $more
	srv_seed "$CASE_USER" INBOX $more
	wait_count "$CASE_DIR/Maildir" $((NSEEDS + 1)) 10
	sleep 1
	assert_eq 0 "$(maildir_count "$CASE_DIR/M2")" "delivered for the removed account"
	# Dovecot saw two's session log out.
	stop_daemon
	assert_rc 0
}

# systemd's notify protocol: READY=1 once running, a STATUS line, watchdog
# pings at half of WATCHDOG_USEC, RELOADING=1 and READY=1 around SIGHUP,
# STOPPING=1 at SIGTERM; datagrams to a socket the test binds.
case_sd_notify() {
	local sock=$CASE_DIR/notify.sock log=$CASE_DIR/notify.log lpid
	seed_messages
	"$SRV_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    f.write("BOUND\n"); f.flush()
    while True:
        f.write(s.recv(4096).decode().replace("\n", " ") + "\n"); f.flush()
' "$sock" "$log" &
	lpid=$!
	kill_at_case_end TERM "$lpid"
	wait_grep BOUND "$log" 10
	account acct "poll_interval=3600" | write_config "$CASE_DIR/config"
	NOTIFY_SOCKET=$sock WATCHDOG_USEC=1000000 WATCHDOG_PID= \
		start_daemon "$CASE_DIR/config" -v
	wait_grep '^READY=1' "$log" 20
	wait_count "$CASE_DIR/Maildir" "$NSEEDS" 20
	wait_grep '^STATUS=.*1 ' "$log" 10
	sleep 2
	[ "$(grep -c '^WATCHDOG=1' "$log")" -ge 3 ] ||
		fail "$(grep -c '^WATCHDOG=1' "$log") watchdog pings in 2 s, expected 3 or more"
	kill -HUP "$DPID"
	wait_grep '^RELOADING=1' "$log" 10
	wait_grep 'reloaded' "$LAST_OUT.err" 10
	assert_eq 2 "$(grep -c '^READY=1' "$log")" "READY=1 datagrams"
	stop_daemon
	assert_rc 0
	assert_grep '^STOPPING=1' "$log"
}

# One run over many accounts: they are fetched at once, within
# server_connections, then within max_connections (the fault injector, a
# slow server here, counts the sessions open at once); the summaries come
# out in the config's order.
case_run_bounds() {
	local i peak
	for i in 1 2 3 4 5 6; do
		srv_seed "u$i-$CASE_USER" INBOX \
			$(make_messages "$CASE_DIR/s$i" "$CASE_NAME-$i" | head -n 2)
	done
	start_injector exchangefault.py "$IMAP_PORT" --lifetime 300 \
		--body-delay-ms 300
	for bounds in "server_connections = 2" "max_connections = 3"; do
		{
			printf '[defaults]\n%s\n\n' "$bounds"
			for i in 1 2 3 4 5 6; do
				account "a$i" "user=u$i-$CASE_USER" "port=$INJ_PORT" \
					tls=none "deliver=maildir:$CASE_DIR/M$i" \
					"state_dir=$CASE_DIR/state-${bounds%% *}"
			done
		} | write_config "$CASE_DIR/config"
		: >"$INJ_LOG"
		run_pm -c "$CASE_DIR/config"
		assert_rc 0
		peak=$(sed -n 's/^.*OPEN #[0-9]*, \([0-9]*\) open.*$/\1/p' "$INJ_LOG" |
			sort -n | tail -n 1)
		echo "$bounds: at most $peak sessions at once"
		assert_eq "${bounds##* }" "$peak" "sessions at once with $bounds"
		assert_eq "a1 a2 a3 a4 a5 a6" \
			"$(sed -n 's/^\(a[0-9]\): 2 messages delivered.*/\1/p' "$LAST_OUT.out" | tr '\n' ' ' | sed 's/ $//')" \
			"summary lines in the config's order"
		for i in 1 2 3 4 5 6; do
			# shellcheck disable=SC2046
			assert_same_messages "$CASE_DIR/M$i" \
				$(srv_server_files "u$i-$CASE_USER")
			rm -rf "$CASE_DIR/M$i"
		done
	done
}

run_case idle case_idle
run_case idle_many case_idle_many
run_case poll_and_usr1 case_poll_and_usr1
run_case sighup_adds case_sighup_adds
run_case short_tokens case_short_tokens
run_case dovecot_restart case_dovecot_restart
run_case idle_token_revoked case_idle_token_revoked
run_case sigterm_mid_fetch case_sigterm_mid_fetch
run_case human_pause case_human_pause
run_case sighup_removes case_sighup_removes
run_case sd_notify case_sd_notify
run_case run_bounds case_run_bounds
e2e_finish
