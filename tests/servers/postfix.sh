# A private Postfix for pullmail's SMTP delivery tests; sourced after
# servers.sh (uses SRV_PYTHON, SRV_DIR, srv_die).
#
#   pf_start DIR    render the configuration under DIR and start Postfix
#                   on a free loopback port: sets SMTP_PORT, PF_DIR
#   pf_maildir RCPT the Maildir a recipient of PF_DOMAIN (r1 to r9) delivers
#                   into
#   pf_wait RCPT N  wait (10 s at most) until it holds N messages
#   pf_stop         stop it (also from the EXIT trap)
#
# Postfix must be started as root (it drops to its own user).  Recipients
# tempfail@PF_DOMAIN and reject@PF_DOMAIN are refused with 450 and 550.
# At the end of DATA, envelope senders eod-tempfail@ANY and eod-reject@ANY
# are refused with 450 and 550.

PF_DOMAIN=pullmail.test
PF_DIR=

pf_start() {
	local dir=$1 ports uid gid i
	[ "$(id -u)" = 0 ] || srv_die "Postfix can only be started as root"
	command -v postfix >/dev/null 2>&1 || srv_die "postfix is not installed"
	PF_DIR=$(mkdir -p "$dir" && cd "$dir" && pwd) || srv_die "cannot create $dir"
	mkdir -p "$PF_DIR/conf" "$PF_DIR/mail" "$PF_DIR/data" "$PF_DIR/queue"
	ports=$("$SRV_PYTHON" "$SRV_DIR/probe.py" freeports 1) || srv_die "no free port"
	SMTP_PORT=$ports
	uid=$(id -u nobody) gid=$(id -g nobody)
	sed -e "s|@PF@|$PF_DIR|g" -e "s|@DOMAIN@|$PF_DOMAIN|g" \
	    -e "s|@UID@|$uid|g" -e "s|@GID@|$gid|g" \
	    "$SRV_DIR/postfix/main.cf.in" >"$PF_DIR/conf/main.cf" ||
		srv_die "cannot render main.cf"
	sed -e "s|@LISTEN@|127.0.0.1:$SMTP_PORT|g" \
	    "$SRV_DIR/postfix/master.cf.in" >"$PF_DIR/conf/master.cf" ||
		srv_die "cannot render master.cf"
	for i in 1 2 3 4 5 6 7 8 9 tempfail reject; do
		echo "r$i@$PF_DOMAIN r$i/"
	done | sed 's/^rt/t/; s/^rr/r/' >"$PF_DIR/mailboxes"
	printf '/^tempfail@/ 450 4.7.1 try again later (test)\n/^reject@/ 550 5.7.1 refused for good (test)\n' \
	    >"$PF_DIR/access.regexp"
	printf '/^eod-tempfail@/ 450 4.7.1 not now at end of data (test)\n/^eod-reject@/ 550 5.7.1 never at end of data (test)\n' \
	    >"$PF_DIR/eod-access.regexp"
	chown postfix "$PF_DIR/data"
	chown "$uid:$gid" "$PF_DIR/mail"
	postfix -c "$PF_DIR/conf" start >"$PF_DIR/start.out" 2>&1 || {
		cat "$PF_DIR/start.out" "$PF_DIR/postfix.log" >&2 2>/dev/null
		srv_die "postfix did not start"
	}
	i=0
	until "$SRV_PYTHON" -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
sys.exit(0 if s.recv(100).startswith(b"220") else 1)' "$SMTP_PORT" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			cat "$PF_DIR/start.out" "$PF_DIR/postfix.log" >&2 2>/dev/null
			pf_stop
			srv_die "postfix does not answer on port $SMTP_PORT"
		fi
		sleep 0.1
	done
}

pf_maildir() {
	echo "$PF_DIR/mail/${1%@*}"
}

pf_wait() {
	local d i=0
	d=$(pf_maildir "$1")
	while [ "$(find "$d/new" "$d/cur" -type f 2>/dev/null | wc -l)" -lt "$2" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.1
	done
	return 0
}

pf_stop() {
	local pid i=0
	[ -n "$PF_DIR" ] || return 0
	pid=$(tr -d ' ' <"$PF_DIR/queue/pid/master.pid" 2>/dev/null)
	postfix -c "$PF_DIR/conf" stop >/dev/null 2>&1
	case $pid in ''|*[!0-9]*) PF_DIR=; return 0 ;; esac
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 50 ]; then
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep 0.1
	done
	PF_DIR=
}
