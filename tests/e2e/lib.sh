# Shared helpers for pullmail's end-to-end tests; sourced by tests/e2e/*.sh.
#
# A script calls e2e_start_servers once (if it needs servers), then runs
# cases with run_case NAME FUNCTION and ends with e2e_finish.  Each case runs
# in a subshell with its own directory ($CASE_DIR) and mailbox ($CASE_USER);
# the first failed assertion ends it.
#
# Environment (set by `make check`, or by hand):
#   PULLMAIL                   the binary under test
#   PULLMAIL_PLUGIN_DIR        where imap.so is
#   PULLMAIL_TEST_PLUGIN_DIR   where the test plugins (badabi.so) are
#   top_srcdir, top_builddir
#   PULLMAIL_TEST_NODE_MODULES a node_modules holding oidc-provider and
#                              hoodiecrow-imap (optional)
#   PULLMAIL_TEST_RUN_BASE     where run directories go (default
#                              $top_builddir/tests/run, /tmp if that is not
#                              reachable by the user nobody)
#   PULLMAIL_TEST_KEEP=1       keep the run directory even on success
#   PULLMAIL_ALLOW_SKIP=1      exit 77 (skip) when a server program is absent
#   PULLMAIL_WRAPPER           a command put in front of every pullmail run,
#                              e.g. "valgrind --error-exitcode=99 ..." (make
#                              check-valgrind); PM_TIMEOUT then defaults to
#                              600 seconds

E2E_NAME=$(basename "$0" .sh)
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
top_srcdir=$(cd "$top_srcdir" && pwd)
top_builddir=$(cd "$top_builddir" && pwd)
: "${PULLMAIL:=$top_builddir/pullmail}"
: "${PULLMAIL_PLUGIN_DIR:=$top_builddir/plugins/.libs}"
: "${PULLMAIL_TEST_PLUGIN_DIR:=$top_builddir/tests/plugins/.libs}"
export PULLMAIL_PLUGIN_DIR PULLMAIL_TEST_PLUGIN_DIR

# With a wrapper, PULLMAIL becomes a script that runs the binary under it,
# so that every way a test starts pullmail goes through it.
if [ -n "${PULLMAIL_WRAPPER:-}" ]; then
	PM_WRAPPED=$top_builddir/tests/run/pullmail-wrapped.$$
	mkdir -p "$top_builddir/tests/run"
	printf '#!/bin/sh\nexec %s %s "$@"\n' "$PULLMAIL_WRAPPER" \
		"'$PULLMAIL'" >"$PM_WRAPPED"
	chmod 755 "$PM_WRAPPED"
	PULLMAIL=$PM_WRAPPED
	: "${PM_TIMEOUT:=600}"
fi

SRV_DIR=$top_srcdir/tests/servers
# Under tests/run: `make clean` removes it, so distcheck finds no leftovers.
SRV_NPM_DIR=$top_builddir/tests/run/npm
. "$SRV_DIR/servers.sh"

# Never let a user's own configuration leak into a test.
XDG_CONFIG_HOME=/nonexistent/pullmail-tests
export XDG_CONFIG_HOME
unset PULLMAIL_CONFIG 2>/dev/null

E2E_PASSED=0
E2E_FAILED=0
E2E_FAILED_NAMES=
E2E_SERVERS=0
E2E_RUN=

# A directory whose every parent is traversable by others (as root,
# Dovecot's mail processes run as nobody and must reach the Maildirs).
e2e_reachable() {
	local d=$1
	[ "$(id -u)" = 0 ] || return 0
	while [ "$d" != / ] && [ -n "$d" ]; do
		case $(stat -c %A "$d" 2>/dev/null) in
		*[xt]) ;;
		*) return 1 ;;
		esac
		d=$(dirname "$d")
	done
	return 0
}

e2e_make_run_dir() {
	local base=${PULLMAIL_TEST_RUN_BASE:-$top_builddir/tests/run}
	mkdir -p "$base" 2>/dev/null && chmod 0755 "$base" 2>/dev/null
	if [ -d "$base" ] && e2e_reachable "$(cd "$base" && pwd)"; then
		E2E_RUN=$(cd "$base" && pwd)/$E2E_NAME-$$
	else
		E2E_RUN=$(mktemp -d /tmp/pullmail-e2e-$E2E_NAME.XXXXXX) || exit 1
	fi
	srv_init "$E2E_RUN"
	mkdir -p "$E2E_RUN/cases"
}

e2e_cleanup() {
	local rc=$?
	srv_stop_all
	if [ -n "$E2E_RUN" ] && [ -d "$E2E_RUN" ]; then
		if [ "$E2E_FAILED" -eq 0 ] && [ "$rc" -eq 0 ] &&
		    [ "${PULLMAIL_TEST_KEEP:-0}" != 1 ]; then
			rm -rf "$E2E_RUN"
		else
			echo "run directory kept: $E2E_RUN"
		fi
	fi
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM HUP

# Skip (77) only when allowed and a program is absent; CI never skips.
e2e_require() {
	local missing=
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "${PULLMAIL_ALLOW_SKIP:-0}" = 1 ]; then
		echo "SKIP: missing program(s):$missing"
		trap - EXIT
		exit 77
	fi
	echo "FAIL: missing program(s):$missing (set PULLMAIL_ALLOW_SKIP=1 to skip)"
	trap - EXIT
	exit 1
}

# Start oidc-provider and Dovecot once for the whole script.
e2e_start_servers() {
	# shellcheck disable=SC2046
	e2e_require $(echo node dovecot doveadm certtool python3 curl)
	# npm only when the node packages have to be installed.
	[ -n "${PULLMAIL_TEST_NODE_MODULES:-}" ] ||
		srv_npm_complete "$SRV_DIR/node_modules" ||
		srv_npm_complete "$SRV_NPM_DIR/node_modules" ||
		e2e_require npm
	[ -n "$E2E_RUN" ] || e2e_make_run_dir
	local t0 t1
	t0=$(date +%s%N)
	srv_start_all
	t1=$(date +%s%N)
	E2E_SERVERS=1
	echo "servers: oauth $OAUTH_URL, imap $IMAP_PORT, imaps $IMAPS_PORT, run $E2E_RUN ($(((t1 - t0) / 1000000)) ms)"
}

# e2e_start_servers_postfix: e2e_start_servers, then Postfix
# (tests/servers/postfix.sh; SMTP_PORT), stopped at exit.  Postfix starts
# only as root: otherwise a skip when allowed, else a failure.
e2e_start_servers_postfix() {
	e2e_require postfix
	if [ "$(id -u)" != 0 ]; then
		if [ "${PULLMAIL_ALLOW_SKIP:-0}" = 1 ]; then
			echo "SKIP: Postfix can only be started as root"
			trap - EXIT
			exit 77
		fi
		echo "FAIL: Postfix can only be started as root (set PULLMAIL_ALLOW_SKIP=1 to skip)"
		trap - EXIT
		exit 1
	fi
	e2e_start_servers
	. "$SRV_DIR/postfix.sh"
	trap 'pf_rc=$?; pf_stop; (exit $pf_rc); e2e_cleanup' EXIT
	pf_start "$E2E_RUN/postfix"
	echo "postfix: smtp $SMTP_PORT"
}

# --- cases -----------------------------------------------------------------

# run_case NAME FUNCTION: run FUNCTION in a subshell with CASE_DIR and
# CASE_USER set; count the result.
run_case() {
	local name=$1 fn=$2 rc t0 t1
	# E2E_ONLY="case ...": run only those (by hand, when debugging).
	case " ${E2E_ONLY:-$name} " in *" $name "*) ;; *) return 0 ;; esac
	t0=$(date +%s%N)
	[ -n "$E2E_RUN" ] || e2e_make_run_dir
	CASE_NAME=$name
	CASE_DIR=$E2E_RUN/cases/$name
	CASE_USER=$(echo "$name" | tr 'A-Z_' 'a-z-')@$MAIL_DOMAIN
	mkdir -p "$CASE_DIR"
	(
		LAST_OUT=
		"$fn"
	) >"$CASE_DIR/case.log" 2>&1
	rc=$?
	t1=$(date +%s%N)
	t1=$(((t1 - t0) / 1000000))
	if [ $rc -eq 0 ]; then
		E2E_PASSED=$((E2E_PASSED + 1))
		echo "PASS: $name (${t1} ms)"
	else
		E2E_FAILED=$((E2E_FAILED + 1))
		E2E_FAILED_NAMES="$E2E_FAILED_NAMES $name"
		echo "FAIL: $name (${t1} ms)"
		sed 's/^/    /' "$CASE_DIR/case.log"
	fi
}

# Print the summary, show server logs on failure, exit 0 or 1.
e2e_finish() {
	echo "$E2E_PASSED passed, $E2E_FAILED failed"
	if [ "$E2E_FAILED" -ne 0 ]; then
		echo "failed:$E2E_FAILED_NAMES"
		if [ "$E2E_SERVERS" = 1 ]; then
			echo "--- last lines of $SRV_RUN/dovecot.log"
			tail -n 40 "$SRV_RUN/dovecot.log" 2>/dev/null
			echo "--- last lines of $OAUTH_LOG"
			tail -n 20 "$OAUTH_LOG" 2>/dev/null
		fi
		exit 1
	fi
	exit 0
}

# fail MESSAGE: end the current case.
fail() {
	echo "assertion failed: $*"
	if [ -n "${LAST_OUT:-}" ]; then
		echo "--- pullmail $LAST_ARGS (exit $RC)"
		echo "--- stdout:"
		head -n 40 "$LAST_OUT.out"
		echo "--- stderr:"
		head -n 40 "$LAST_OUT.err"
	fi
	exit 1
}

# --- assertions ------------------------------------------------------------

assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-values differ}: expected '$1', got '$2'"
}

assert_ne() {
	[ "$1" != "$2" ] || fail "${3:-values equal}: did not expect '$1'"
}

assert_rc() {
	[ "$RC" = "$1" ] || fail "exit status: expected $1, got $RC"
}

# assert_grep [-F|-E] [--] PATTERN FILE
assert_grep() {
	local mode=-E
	case $1 in -F|-E) mode=$1; shift ;; esac
	[ "$1" = -- ] && shift
	grep -q $mode -e "$1" "$2" || {
		echo "--- $2:"
		head -n 40 "$2"
		fail "'$1' not found in $(basename "$2")"
	}
}

assert_no_grep() {
	local mode=-E
	case $1 in -F|-E) mode=$1; shift ;; esac
	[ "$1" = -- ] && shift
	if grep -q $mode -e "$1" "$2"; then
		fail "'$1' found in $(basename "$2") but must not be there"
	fi
}

assert_file_same() {
	cmp -s "$1" "$2" || fail "files differ: $1 $2 ($(cmp "$1" "$2" 2>&1 | head -n 1))"
}

# The message files of a local Maildir, one path a line.
maildir_files() {
	find "$1/new" "$1/cur" -type f 2>/dev/null | sort
}

maildir_count() {
	maildir_files "$1" | wc -l | tr -d ' '
}

# assert_same_messages DIR FILE...: the messages in Maildir DIR are byte for
# byte the FILEs, each exactly once, nothing more.
assert_same_messages() {
	local dir=$1 got want
	shift
	got=$(maildir_files "$dir" | xargs -r sha256sum | cut -d' ' -f1 | sort)
	want=$(for f in "$@"; do sha256sum <"$f"; done | cut -d' ' -f1 | sort)
	[ "$(maildir_count "$dir")" = "$#" ] ||
		fail "$dir holds $(maildir_count "$dir") messages, expected $#"
	[ "$got" = "$want" ] ||
		fail "the messages in $dir differ from the server's copies"
	# Nothing left half-written in tmp/.
	[ -z "$(find "$dir/tmp" -type f 2>/dev/null)" ] ||
		fail "files left in $dir/tmp"
}

# assert_server_copies DIR USER [FOLDER]: DIR holds exactly the messages the
# server holds for USER.
assert_server_copies() {
	local dir=$1 user=$2 folder=${3:-INBOX}
	# shellcheck disable=SC2046
	assert_same_messages "$dir" $(srv_server_files "$user" "$folder")
}

# --- pullmail ----------------------------------------------------------------

# write_config FILE: stdin becomes FILE, mode 0600.
write_config() {
	(umask 077 && cat >"$1") || fail "cannot write $1"
	chmod 0600 "$1"
}

# account NAME [key=value]...: an [account NAME] section fetching CASE_USER
# over IMAPS with the app's client credentials into $CASE_DIR/Maildir.
# A key=value replaces the default of that key; key= drops it; keys without
# a default are appended.  A key given twice (folder) appears twice.
account() {
	local name=$1 kv k v seen
	shift
	echo "[account $name]"
	for kv in \
	    "server=127.0.0.1" \
	    "port=$IMAPS_PORT" \
	    "protocol=imap" \
	    "tls=implicit" \
	    "ca_file=$CA_FILE" \
	    "user=$CASE_USER" \
	    "auth=xoauth2" \
	    "oauth_provider=generic" \
	    "oauth_token_url=$OAUTH_TOKEN_URL" \
	    "oauth_client_id=$APP_ID" \
	    "oauth_client_secret=$APP_SECRET" \
	    "oauth_scope=imap" \
	    "deliver=maildir:$CASE_DIR/Maildir" \
	    "state_dir=$CASE_DIR/state"; do
		k=${kv%%=*}
		seen=0
		for o in "$@"; do
			[ "${o%%=*}" = "$k" ] || continue
			seen=1
			v=${o#*=}
			[ -n "$v" ] && echo "$k = $v"
		done
		[ $seen = 1 ] || echo "$k = ${kv#*=}"
	done
	for o in "$@"; do
		case " server port protocol tls ca_file user auth oauth_provider oauth_token_url oauth_client_id oauth_client_secret oauth_scope deliver state_dir " in
		*" ${o%%=*} "*) ;;
		*) echo "${o%%=*} = ${o#*=}" ;;
		esac
	done
	echo
}

# run_pm ARG...: run pullmail, output in $LAST_OUT.out/.err, status in RC.
PM_RUN_SEQ=0
run_pm() {
	PM_RUN_SEQ=$((PM_RUN_SEQ + 1))
	LAST_OUT=$CASE_DIR/run$PM_RUN_SEQ
	LAST_ARGS="$*"
	timeout -k 5 "${PM_TIMEOUT:-60}" "$PULLMAIL" "$@" \
		</dev/null >"$LAST_OUT.out" 2>"$LAST_OUT.err"
	RC=$?
	echo "pullmail $* -> exit $RC"
	[ "$RC" = 124 ] && fail "pullmail timed out"
	return 0
}

# run_pm_syslog ARG...: run_pm with --syslog, syslog(3) captured in
# $CASE_DIR/syslog by an LD_PRELOAD shim (tests/plugins/syslogcap.c), each
# message as "<priority> text".
SYSLOG_SHIM=$PULLMAIL_TEST_PLUGIN_DIR/syslogcap.so
run_pm_syslog() {
	[ -f "$SYSLOG_SHIM" ] || fail "no $SYSLOG_SHIM (make check builds it)"
	PULLMAIL_TEST_SYSLOG=$CASE_DIR/syslog
	LD_PRELOAD=$SYSLOG_SHIM
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	export PULLMAIL_TEST_SYSLOG LD_PRELOAD ASAN_OPTIONS
	run_pm --syslog "$@"
	unset LD_PRELOAD PULLMAIL_TEST_SYSLOG
}

# --- messages ------------------------------------------------------------------

# make_messages DIR TAG: write a handful of realistic, distinct messages
# (LF line endings, as pullmail stores them) into DIR; print their paths.
make_messages() {
	local dir=$1 tag=$2
	mkdir -p "$dir"
	cat >"$dir/1.eml" <<-EOF
	Return-Path: <carol@example.org>
	Received: from mx.example.org (mx.example.org [192.0.2.25])
	 by mail.example.test with ESMTPS id 4Xy7Lk2q; Mon, 2 Jun 2025 09:12:44 +0000
	From: Carol Sender <carol@example.org>
	To: $CASE_USER
	Subject: Quarterly report ($tag)
	Date: Mon, 02 Jun 2025 09:12:40 +0000
	Message-ID: <1.$tag@example.org>
	MIME-Version: 1.0
	Content-Type: text/plain; charset=us-ascii

	Hello,

	the quarterly report is attached to the intranet page.
	Nothing else to add.

	Carol
	EOF
	cat >"$dir/2.eml" <<-EOF
	From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>
	To: $CASE_USER
	Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= ($tag)
	Date: Tue, 03 Jun 2025 14:01:00 +0200
	Message-ID: <2.$tag@example.de>
	MIME-Version: 1.0
	Content-Type: text/plain; charset=utf-8
	Content-Transfer-Encoding: 8bit

	Grüße aus München! Ein Satz mit Umlauten: äöü ÄÖÜ ß.
	.
	A line above holds a single dot; the next one starts with two.
	..not a terminator
	EOF
	cat >"$dir/3.eml" <<-EOF
	From: Build Robot <ci@example.net>
	To: $CASE_USER
	Subject: [ci] build #4711 passed ($tag)
	Date: Wed, 04 Jun 2025 03:00:00 +0000
	Message-ID: <3.$tag@example.net>
	MIME-Version: 1.0
	Content-Type: multipart/alternative; boundary="=-b-$tag"

	--=-b-$tag
	Content-Type: text/plain; charset=us-ascii

	All 214 tests passed.

	--=-b-$tag
	Content-Type: text/html; charset=us-ascii

	<html><body><p>All <b>214</b> tests passed.</p></body></html>

	--=-b-$tag--
	EOF
	cat >"$dir/4.eml" <<-EOF
	From: Dave <dave@example.com>
	To: $CASE_USER
	Cc: Eve <eve@example.com>,
	 Frank <frank@example.com>
	Subject: Lunch? ($tag)
	Date: Thu, 05 Jun 2025 11:30:00 +0100
	Message-ID: <4.$tag@example.com>
	In-Reply-To: <lunch-1@example.com>
	X-Long-Header: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

	Noon at the usual place?
	EOF
	cat >"$dir/5.eml" <<-EOF
	From: Notifications <no-reply@example.org>
	To: $CASE_USER
	Subject: Empty body ($tag)
	Date: Fri, 06 Jun 2025 08:00:00 +0000
	Message-ID: <5.$tag@example.org>

	EOF
	ls "$dir"/*.eml
}

# start_injector SCRIPT UPSTREAM_PORT [ARG]...: start the fault injector
# tests/servers/SCRIPT in front of 127.0.0.1:UPSTREAM_PORT with the
# remaining arguments; sets INJ_PORT (where it listens) and INJ_LOG (what
# it did).  It is stopped when the case ends.
start_injector() {
	local script=$1 upstream=$2 i=0
	shift 2
	INJ_LOG=$CASE_DIR/${script%.py}.log
	rm -f "$CASE_DIR/injector.port"
	"$SRV_PYTHON" "$SRV_DIR/$script" --upstream-port "$upstream" \
		--port-file "$CASE_DIR/injector.port" --log "$INJ_LOG" "$@" \
		</dev/null >>"$CASE_DIR/injector.out" 2>&1 &
	INJ_PID=$!
	kill_at_case_end TERM "$INJ_PID"
	while [ ! -s "$CASE_DIR/injector.port" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] && kill -0 "$INJ_PID" 2>/dev/null ||
			fail "the fault injector did not start: $(cat "$CASE_DIR/injector.out")"
		sleep 0.05
	done
	INJ_PORT=$(cat "$CASE_DIR/injector.port")
}

# kill_at_case_end SIGNAL PID: when the case's subshell exits (passed or
# failed), send SIGNAL to PID.
CASE_KILLS=
kill_at_case_end() {
	CASE_KILLS="$CASE_KILLS $1:$2"
	trap 'for k in $CASE_KILLS; do kill -"${k%%:*}" "${k#*:}" 2>/dev/null; done' EXIT
}

# start_daemon CONFIG [ARG...]: run pullmail --daemon in the background
# (DPID; output in $LAST_OUT.out/.err); killed when the case ends.
start_daemon() {
	local conf=$1
	shift
	PM_RUN_SEQ=$((PM_RUN_SEQ + 1))
	LAST_OUT=$CASE_DIR/run$PM_RUN_SEQ
	LAST_ARGS="-c $conf --daemon $*"
	"$PULLMAIL" -c "$conf" --daemon "$@" </dev/null >"$LAST_OUT.out" \
		2>"$LAST_OUT.err" &
	DPID=$!
	echo "daemon pid $DPID"
	kill_at_case_end KILL "$DPID"
}

# stop_daemon: SIGTERM, then the exit status in RC; fails after 30 s.
stop_daemon() {
	local i=0 t0 t1
	t0=$(date +%s%N)
	kill -TERM "$DPID" 2>/dev/null
	while kill -0 "$DPID" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 300 ] && { kill -KILL "$DPID"; fail "the daemon did not stop within 30 s"; }
		sleep 0.1
	done
	wait "$DPID"
	RC=$?
	t1=$(date +%s%N)
	echo "daemon exited $RC, $(((t1 - t0) / 1000000)) ms after SIGTERM"
}

# wait_count DIR N SECONDS: until the Maildir DIR holds N messages.
wait_count() {
	local i=0 n=$(($3 * 10))
	while [ "$(maildir_count "$1")" -lt "$2" ]; do
		i=$((i + 1))
		if [ $i -gt $n ]; then
			[ -z "${DPID:-}" ] || kill -0 "$DPID" 2>/dev/null ||
				fail "the daemon died"
			fail "$1 holds $(maildir_count "$1") messages after $3 s, expected $2"
		fi
		sleep 0.1
	done
}

# wait_grep PATTERN FILE SECONDS: until the extended regex PATTERN is in
# FILE.
wait_grep() {
	local i=0 n=$(($3 * 10))
	until grep -q -E -e "$1" "$2" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt $n ] && fail "'$1' did not appear in $(basename "$2") within $3 s"
		sleep 0.1
	done
}

# more_mail N SECONDS: save N new messages (their files in $more) into
# CASE_USER's INBOX and wait (at most SECONDS) until $CASE_DIR/Maildir,
# which held NSEEDS, holds them too.
more_mail() {
	more=$(make_messages "$CASE_DIR/more" "$CASE_NAME-more" | head -n "$1")
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $more
	wait_count "$CASE_DIR/Maildir" $((NSEEDS + $1)) "$2"
}

# trickle N GAP SECONDS: N times, wait GAP seconds, save one new message
# into CASE_USER's INBOX and wait (at most SECONDS) until the daemon has
# delivered it to $CASE_DIR/Maildir, which held NSEEDS before; the
# messages are added to $all.
trickle() {
	local i more
	for i in $(seq "$1"); do
		sleep "$2"
		more=$(make_messages "$CASE_DIR/m$i" "$CASE_NAME-m$i" | head -n 1)
		all="$all $more"
		srv_seed "$CASE_USER" INBOX $more
		wait_count "$CASE_DIR/Maildir" $((NSEEDS + i)) "$3"
	done
}

# start_hoodiecrow CONFIG: start hoodiecrow-imap for this case with the
# JSON CONFIG (tests/servers/hoodiecrow.mjs); sets HC_PORT.  It is stopped
# when the case ends; hoodiecrow_dump prints what it holds.
start_hoodiecrow() {
	srv_hoodiecrow_start "$CASE_NAME" "$1"
	trap 'kill $(cat "$SRV_RUN/hoodiecrow-$CASE_NAME/pid") 2>/dev/null' EXIT
}

hoodiecrow_dump() {
	srv_hoodiecrow_dump "$CASE_NAME"
}

# sessions_logged FILE CONNECT_RE DISCONNECT_RE: how many sessions a
# server logged in FILE, once every one of them has ended (waiting up to
# 10 s for the last disconnect line).
sessions_logged() {
	local i=0 c d
	while :; do
		c=$(grep -c -e "$2" "$1")
		d=$(grep -c -e "$3" "$1")
		[ "$c" = "$d" ] && break
		i=$((i + 1))
		[ $i -gt 100 ] && break
		sleep 0.1
	done
	echo "$c"
}

# seed_many N [TAG]: seed CASE_USER's INBOX with N distinct messages in
# rounds of five (make_messages), each round numbered by Dovecot before the
# next, so that UIDs follow the order of SEEDS; sets SEEDS (the files) and
# NSEEDS.
seed_many() {
	local round=0 tag=${2:-seed} more have=0
	SEEDS=
	while [ "$have" -lt "$1" ]; do
		round=$((round + 1))
		more=$(make_messages "$CASE_DIR/$tag-$round" "$CASE_NAME-$tag-$round" |
			head -n $(($1 - have)))
		# shellcheck disable=SC2086
		srv_seed "$CASE_USER" INBOX $more || fail "seeding failed"
		srv_count "$CASE_USER" >/dev/null
		SEEDS="$SEEDS $more"
		have=$(echo "$SEEDS" | wc -w)
	done
	NSEEDS=$have
}

# seed_messages [FOLDER]: make messages for CASE_USER, seed them, set SEEDS
# (the seed files) and NSEEDS.
seed_messages() {
	local folder=${1:-INBOX}
	SEEDS=$(make_messages "$CASE_DIR/seed-$(echo "$folder" | tr / -)" "$CASE_NAME-$folder")
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" "$folder" $SEEDS || fail "seeding failed"
	NSEEDS=$(echo "$SEEDS" | wc -l | tr -d ' ')
}

# The access tokens the OAuth server issued (it logs them; test server only).
issued_tokens() {
	sed -n 's/.* access_token=\([^ ]*\).*/\1/p' "$OAUTH_LOG"
}

# Every other secret the OAuth server issued or received (refresh tokens,
# authorization codes, PKCE verifiers, device codes, client assertions).
exchanged_secrets() {
	grep ' SECRETS ' "$OAUTH_LOG" | tr ' ' '\n' |
		sed -nE 's/^(issued_rt|rt_sent|code|issued_code|code_verifier|device_code|client_assertion)=(.+)$/\2/p' |
		grep -vx -- '-' | sort -u
}
