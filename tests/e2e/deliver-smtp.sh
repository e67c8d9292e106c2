#!/bin/sh
# SMTP delivery into a real MTA: a private Postfix on a loopback port
# delivering to Maildirs.  Messages arrive intact (Postfix puts its own
# Return-Path, X-Original-To, Delivered-To and Received lines in front
# and drops a Return-Path the message carries; same-after-trace.py allows
# exactly that before comparing byte for byte), the envelope sender comes from the message, a 450 and a 550
# from a Postfix recipient restriction keep the messages on the server, and
# so do a 450 and a 550 in reply to the end of DATA (a Postfix end-of-data
# restriction on the envelope sender) while the other messages go through.
# A run of 20 messages is one SMTP session (counted in Postfix's log), also
# with a 450 in the middle (RSET, and the session goes on); a connection
# cut in the middle of DATA loses only that message to the next run.  A
# message with bare CRs, "<CR>.<CR>" and NUL bytes arrives as one message
# with its lines ended properly and no NUL.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers_postfix
# A port on 127.0.0.1 that refuses connections (CLOSED_PORT).
srv_closed_port

SAME=$top_srcdir/tests/e2e/deliver/same-after-trace.py

case_intact() {
	seed_messages
	account acct "keep=no" "recipient=r1@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	pf_wait "r1@$PF_DOMAIN" "$NSEEDS" || fail "Postfix did not deliver"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r1)" $SEEDS >"$CASE_DIR/senders" ||
		fail "messages differ"
	# Return-Path of the first seed, From of the others.
	assert_grep -F 'Return-Path: <carol@example.org>' "$CASE_DIR/senders"
	assert_grep -F 'Return-Path: <juergen@example.de>' "$CASE_DIR/senders"
	assert_grep -F 'Return-Path: <ci@example.net>' "$CASE_DIR/senders"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# The optional header lines, in front of the message as it was.
case_extra_headers() {
	local f
	seed_messages
	account acct "keep=no" "recipient=r2@$PF_DOMAIN" \
	    "add_return_path=yes" "add_delivered_to=yes" "add_received=yes" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	pf_wait "r2@$PF_DOMAIN" "$NSEEDS" || fail "Postfix did not deliver"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r2)" $SEEDS >/dev/null ||
		fail "messages differ"
	f=$(grep -l 'Subject: Quarterly' "$(pf_maildir r2)"/new/*)
	assert_grep '^Received: from 127\.0\.0\.1 \(account acct, folder INBOX, uid [0-9]+\)$' "$f"
	assert_grep '^	by [^ ]+ \(pullmail\) with IMAP$' "$f"
	assert_grep "^	for <r2@$PF_DOMAIN>; [A-Z][a-z]{2}, [0-9]{2} " "$f"
	[ "$(grep -c '^Delivered-To: r2@' "$f")" = 2 ] ||
		fail "expected our Delivered-To and Postfix's"
	# Postfix drops every Return-Path it receives (ours too) and writes
	# its own; the unit tests check ours.
	[ "$(grep -c '^Return-Path: <carol@example.org>' "$f")" = 1 ] ||
		fail "expected Postfix's Return-Path"
	assert_no_grep "$APP_SECRET" "$f"
}

# 450 from the MTA: temporary, everything stays on the server.
case_tempfail() {
	seed_messages
	account acct "keep=no" "recipient=tempfail@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'RCPT TO:<tempfail@pullmail.test> refused: 450 4\.7\.1' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

# 550 from the MTA: failed, reported, still on the server.
case_reject() {
	seed_messages
	account acct "keep=no" "recipient=reject@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_grep 'RCPT TO:<reject@pullmail.test> refused: 550 5\.7\.1' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

# eod_case SENDER RC RCPT CODE: one message whose envelope sender Postfix
# refuses in its reply to the end of DATA (smtpd_end_of_data_restrictions,
# the durability point) among the seeds: exit RC, that message stays on
# the server (keep = no) and is not delivered, the others are.
eod_case() {
	local sender=$1 rc=$2 rcpt=$3 code=$4 m d
	m=$CASE_DIR/eod.eml
	cat >"$m" <<-EOF
	Return-Path: <$sender>
	From: <$sender>
	To: $rcpt
	Subject: refused at the end of DATA

	This one must stay on the server.
	EOF
	# First, so the others go over the same connection after the refusal.
	srv_seed "$CASE_USER" INBOX "$m" || fail "seeding failed"
	seed_messages
	account acct "keep=no" "recipient=$rcpt" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc "$rc"
	assert_grep "smtp: 127\.0\.0\.1:$SMTP_PORT: message refused after DATA: $code " "$LAST_OUT.err"
	pf_wait "$rcpt" "$NSEEDS" || fail "Postfix did not deliver the others"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir "$rcpt")" $SEEDS >/dev/null ||
		fail "the other messages differ"
	# Postfix delivers asynchronously: give a stray copy time to show.
	sleep 0.5
	d=$(pf_maildir "$rcpt")
	assert_eq "$NSEEDS" "$(find "$d/new" "$d/cur" -type f | wc -l | tr -d ' ')" \
	    "messages Postfix delivered"
	grep -rq 'Subject: refused at the end of DATA' "$d" &&
		fail "the refused message was delivered"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	d=$(srv_maildir "$CASE_USER")
	cat "$d"/new/* "$d"/cur/* >"$CASE_DIR/left" 2>/dev/null
	assert_grep -F "Return-Path: <$sender>" "$CASE_DIR/left"
}

# 450 in reply to the end of DATA: temporary (75).
case_eod_tempfail() {
	eod_case eod-tempfail@example.org 75 "r4@$PF_DOMAIN" '450 4\.7\.1'
}

# 550 in reply to the end of DATA: failed (73), reported.
case_eod_reject() {
	eod_case eod-reject@example.org 73 "r5@$PF_DOMAIN" '550 5\.7\.1'
}

# Nobody listening: temporary, nothing lost.
case_no_mta() {
	seed_messages
	account acct "keep=no" "recipient=r3@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$CLOSED_PORT" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'cannot connect: Connection refused' "$LAST_OUT.err"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
}

# SMTP sessions Postfix has logged, once every one of them has ended.
pf_sessions() {
	sessions_logged "$PF_DIR/postfix.log" ': connect from ' ': disconnect from '
}

# The command counts of the last session Postfix logged.
pf_last_session() {
	grep ': disconnect from ' "$PF_DIR/postfix.log" | tail -n 1 |
		sed 's/.*disconnect from [^ ]* //'
}

# A message with bare CRs, "<CR>.<CR>" followed by SMTP commands, a bare
# LF "." line and NUL bytes (made by deliver/bare-cr.sh; fetched over
# POP3, whose Dovecot passes NULs on) arrives as one whole message with
# every line ended properly and the NULs gone, the messages after it
# arrive intact, and Postfix saw no command but ours.
case_bare_cr_nul() {
	sh "$top_srcdir/tests/e2e/deliver/bare-cr.sh" "$CASE_DIR/bare.eml" \
	    "$CASE_DIR/want.eml" "r9@$PF_DOMAIN"
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/bare.eml" || fail "seeding failed"
	seed_messages
	account acct "keep=no" "recipient=r9@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" \
	    protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3 |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	pf_wait "r9@$PF_DOMAIN" "$((NSEEDS + 1))" || fail "Postfix did not deliver"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r9)" \
	    "$CASE_DIR/want.eml" $SEEDS >/dev/null || fail "messages differ"
	assert_eq "ehlo=1 mail=$((NSEEDS + 1)) rcpt=$((NSEEDS + 1)) data=$((NSEEDS + 1)) quit=1 commands=$((3 * NSEEDS + 5))" \
	    "$(pf_last_session)" "commands of the session"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# 20 messages in one run: one SMTP session, each arrives byte for byte.
case_one_session() {
	local before
	seed_many 20
	account acct "keep=no" "recipient=r6@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	before=$(pf_sessions)
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	pf_wait "r6@$PF_DOMAIN" 20 || fail "Postfix did not deliver"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r6)" $SEEDS >/dev/null ||
		fail "messages differ"
	assert_eq 1 "$(($(pf_sessions) - before))" "SMTP sessions"
	assert_eq "ehlo=1 mail=20 rcpt=20 data=20 quit=1 commands=62" \
	    "$(pf_last_session)" "commands of the session"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A 450 at the end of DATA for the 11th of 21 messages: RSET, and the
# same session carries the ten after it; only that one stays on the server.
case_refused_in_the_middle() {
	local before m d first last
	seed_many 10
	first=$SEEDS
	m=$CASE_DIR/eod.eml
	cat >"$m" <<-EOF
	Return-Path: <eod-tempfail@example.org>
	From: <eod-tempfail@example.org>
	To: r7@$PF_DOMAIN
	Subject: refused in the middle

	This one must stay on the server.
	EOF
	srv_seed "$CASE_USER" INBOX "$m" || fail "seeding failed"
	srv_count "$CASE_USER" >/dev/null
	seed_many 10 last
	last=$SEEDS
	SEEDS="$first $last"
	assert_eq "refused in the middle" "$(srv_doveadm -f flow fetch -u "$CASE_USER" \
	    hdr.subject mailbox INBOX uid 11 | sed 's/^hdr.subject=//')" "UID 11"
	account acct "keep=no" "recipient=r7@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$SMTP_PORT" | write_config "$CASE_DIR/config"
	before=$(pf_sessions)
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep "message refused after DATA: 450 4\.7\.1 " "$LAST_OUT.err"
	pf_wait "r7@$PF_DOMAIN" 20 || fail "Postfix did not deliver the others"
	# shellcheck disable=SC2086
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r7)" $SEEDS >/dev/null ||
		fail "the other messages differ"
	assert_eq 1 "$(($(pf_sessions) - before))" "SMTP sessions"
	assert_eq "ehlo=1 mail=21 rcpt=21 data=20/21 rset=1 quit=1 commands=65/66" \
	    "$(pf_last_session)" "commands of the session"
	sleep 0.5
	d=$(pf_maildir r7)
	assert_eq 20 "$(find "$d/new" "$d/cur" -type f | wc -l | tr -d ' ')" \
	    "messages Postfix delivered"
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	d=$(srv_maildir "$CASE_USER")
	cat "$d"/new/* "$d"/cur/* >"$CASE_DIR/left" 2>/dev/null
	assert_grep -F "Subject: refused in the middle" "$CASE_DIR/left"
}

# A fault injector between pullmail and Postfix (no MTA drops a session in
# the middle of a given message on demand), written to FILE: at the end of
# the data of the Nth message it forwards nothing, answers 421 and closes
# both sides.  Later connections are passed through untouched.
# Usage: python3 FILE UPSTREAM-PORT PORT-FILE N
write_cut_proxy() {
	cat >"$1" <<-'EOF'
	import os, socket, sys, threading
	up, port_file, cut_at = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
	ls = socket.socket()
	ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	ls.bind(("127.0.0.1", 0))
	ls.listen(8)
	with open(port_file + ".tmp", "w") as f:
	    f.write("%d\n" % ls.getsockname()[1])
	os.rename(port_file + ".tmp", port_file)
	ends = 0
	def pump(src, dst):
	    try:
	        while True:
	            b = src.recv(65536)
	            if not b:
	                break
	            dst.sendall(b)
	        dst.shutdown(socket.SHUT_WR)
	    except OSError:
	        pass
	def serve(c):
	    global ends
	    s = socket.create_connection(("127.0.0.1", up))
	    threading.Thread(target=pump, args=(s, c), daemon=True).start()
	    data = False
	    for line in c.makefile("rb"):
	        if data and line == b".\r\n":
	            data = False
	            ends += 1
	            if ends == cut_at:
	                print("cut at the end of message %d" % ends, flush=True)
	                c.sendall(b"421 4.4.2 cut by the test proxy\r\n")
	                s.shutdown(socket.SHUT_RDWR)
	                s.close()
	                c.shutdown(socket.SHUT_RDWR)
	                return
	        elif not data and line.upper() == b"DATA\r\n":
	            data = True
	        s.sendall(line)
	    s.shutdown(socket.SHUT_WR)
	while True:
	    c, _ = ls.accept()
	    print("connection", flush=True)
	    threading.Thread(target=serve, args=(c,), daemon=True).start()
	EOF
}

# The session is cut at the end of the data of the 8th of 20 messages:
# the seven before it are delivered and count, the 8th stays on the server
# (Postfix never saw its end), the next message connects again and the
# other twelve arrive.
case_cut_in_flight() {
	local before pxpid port i left d
	seed_many 20
	write_cut_proxy "$CASE_DIR/proxy.py"
	"$SRV_PYTHON" "$CASE_DIR/proxy.py" "$SMTP_PORT" "$CASE_DIR/proxy.port" 8 \
	    >"$CASE_DIR/proxy.log" 2>&1 &
	pxpid=$!
	trap 'kill "$pxpid" 2>/dev/null' EXIT
	i=0
	while [ ! -s "$CASE_DIR/proxy.port" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && fail "the proxy did not start"
		sleep 0.05
	done
	port=$(cat "$CASE_DIR/proxy.port")
	account acct "keep=no" "recipient=r8@$PF_DOMAIN" \
	    "deliver=smtp:127.0.0.1:$port" | write_config "$CASE_DIR/config"
	before=$(pf_sessions)
	run_pm -c "$CASE_DIR/config"
	kill "$pxpid" 2>/dev/null
	wait "$pxpid" 2>/dev/null
	assert_rc 75
	assert_grep "message refused after DATA: 421 4\.4\.2 cut by the test proxy" "$LAST_OUT.err"
	assert_grep "cut at the end of message 8" "$CASE_DIR/proxy.log"
	assert_eq 2 "$(grep -c '^connection$' "$CASE_DIR/proxy.log")" "connections to the proxy"
	pf_wait "r8@$PF_DOMAIN" 19 || fail "Postfix did not deliver the others"
	assert_eq 2 "$(($(pf_sessions) - before))" "SMTP sessions"
	grep -q 'lost connection after DATA' "$PF_DIR/postfix.log" ||
		fail "Postfix did not see the cut"
	sleep 0.5
	assert_eq 1 "$(srv_count "$CASE_USER")" "messages on the server"
	# shellcheck disable=SC2086
	set -- $SEEDS
	shift 7
	left=$1
	# shellcheck disable=SC2046
	"$SRV_PYTHON" "$SAME" --drops-return-path "$(pf_maildir r8)" \
	    $(echo "$SEEDS" | tr ' ' '\n' | grep -v -x -F "$left") >/dev/null ||
		fail "the other messages differ (or the 8th was delivered)"
	d=$(srv_maildir "$CASE_USER")
	cat "$d"/new/* "$d"/cur/* | cmp -s - "$left" ||
		fail "the message left on the server is not the 8th"
}

run_case intact case_intact
run_case extra_headers case_extra_headers
run_case tempfail case_tempfail
run_case reject case_reject
run_case eod_tempfail case_eod_tempfail
run_case eod_reject case_eod_reject
run_case no_mta case_no_mta
run_case one_session case_one_session
run_case bare_cr_nul case_bare_cr_nul
run_case refused_in_the_middle case_refused_in_the_middle
run_case cut_in_flight case_cut_in_flight
e2e_finish
