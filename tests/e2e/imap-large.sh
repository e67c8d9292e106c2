#!/bin/sh
# A 50 MB message over IMAPS, delivered intact, with flat memory: peak RSS
# stays within a few MB of a run that fetches a small message.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

LARGE_SIZE=$((50 * 1024 * 1024))
# Limits in kB: absolute peak, and growth over the small-message run.
RSS_LIMIT=${PULLMAIL_TEST_RSS_LIMIT:-30720}
RSS_GROWTH_LIMIT=${PULLMAIL_TEST_RSS_GROWTH:-8192}

TIME=
if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
	TIME=/usr/bin/time
fi

# Under ASan the absolute figure means nothing; growth still does once
# freed memory is not held in ASan's quarantine.
SANITIZED=0
if ldd "$PULLMAIL" 2>/dev/null | grep -q 'libasan'; then
	SANITIZED=1
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0
	export ASAN_OPTIONS
fi

# run_pm_rss ARG...: run_pm, with the peak RSS (kB) in RSS.
run_pm_rss() {
	local saved=$PULLMAIL tf
	if [ -z "$TIME" ]; then
		RSS=
		run_pm "$@"
		return 0
	fi
	tf=$CASE_DIR/time.$PM_RUN_SEQ
	PULLMAIL=$TIME
	run_pm -v -o "$tf" "$saved" "$@"
	PULLMAIL=$saved
	RSS=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tf")
	echo "peak RSS ${RSS} kB"
}

case_large() {
	local small large rss_small t0 t1
	# A small message first, for the baseline.
	small=$(make_messages "$CASE_DIR/small" "$CASE_NAME-small" | head -n 1)
	srv_seed "$CASE_USER" INBOX "$small" || fail "seeding"
	account acct | write_config "$CASE_DIR/config"
	run_pm_rss -c "$CASE_DIR/config"
	assert_rc 0
	rss_small=$RSS

	large=$CASE_DIR/large.eml
	"$SRV_PYTHON" "$SRV_DIR/probe.py" genmsg "$LARGE_SIZE" "$CASE_NAME" "$large" ||
		fail "cannot generate the large message"
	# The large one, then a small one behind it: framing must survive.
	local after
	after=$(make_messages "$CASE_DIR/after" "$CASE_NAME-after" | sed -n 2p)
	srv_seed "$CASE_USER" INBOX "$large" "$after" || fail "seeding"
	t0=$(date +%s)
	run_pm_rss -c "$CASE_DIR/config"
	t1=$(date +%s)
	assert_rc 0
	assert_grep '^acct: 2 messages delivered' "$LAST_OUT.out"
	echo "fetched in $((t1 - t0)) s"
	assert_same_messages "$CASE_DIR/Maildir" "$small" "$large" "$after"
	# And with cmp, for a readable message if it ever differs.
	local f got=
	for f in $(maildir_files "$CASE_DIR/Maildir"); do
		[ "$(stat -c %s "$f")" -gt 1000000 ] && got=$f
	done
	[ -n "$got" ] || fail "no large message delivered"
	assert_file_same "$large" "$got"

	# Under a wrapper (valgrind) the figures would be the wrapper's.
	if [ -n "${PULLMAIL_WRAPPER:-}" ]; then
		echo "SKIP: run under $PULLMAIL_WRAPPER, peak memory not measured"
		return 0
	fi
	# CI never skips the memory check.
	if [ -z "$TIME" ]; then
		[ "${PULLMAIL_ALLOW_SKIP:-0}" = 1 ] ||
			fail "no usable /usr/bin/time (Debian package time): peak memory not measured (set PULLMAIL_ALLOW_SKIP=1 to skip it)"
		echo "SKIP: no /usr/bin/time, peak memory not measured"
		return 0
	fi
	[ -n "$rss_small" ] && [ -n "$RSS" ] || fail "no RSS figures from /usr/bin/time"
	echo "peak RSS: small message ${rss_small} kB, 50 MB message ${RSS} kB"
	[ $((RSS - rss_small)) -le "$RSS_GROWTH_LIMIT" ] ||
		fail "peak RSS grew by $((RSS - rss_small)) kB for a 50 MB message (limit $RSS_GROWTH_LIMIT kB)"
	if [ "$SANITIZED" = 0 ]; then
		[ "$RSS" -le "$RSS_LIMIT" ] ||
			fail "peak RSS $RSS kB over $RSS_LIMIT kB"
	fi
}

# keep = no after a large message: deleted only once it is in the Maildir.
case_large_delete() {
	local large=$CASE_DIR/large.eml
	"$SRV_PYTHON" "$SRV_DIR/probe.py" genmsg $((20 * 1024 * 1024)) "$CASE_NAME" "$large" ||
		fail "cannot generate the large message"
	srv_seed "$CASE_USER" INBOX "$large" || fail "seeding"
	account acct "keep=no" "auth=oauthbearer" "tls=starttls" "port=$IMAP_PORT" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_same_messages "$CASE_DIR/Maildir" "$large"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

run_case large case_large
run_case large_delete case_large_delete
e2e_finish
