#!/bin/sh
# Benchmarks, not tests: throughput and peak memory of a real fetch over
# IMAPS from the test Dovecot, with a token from the test OAuth server.
#
#   make bench                       (from a build directory)
#   BENCH_SMALL=2000 BENCH_LARGE_MB=200 make bench
#
# Reports, for each scenario: messages, bytes, wall time, MB/s, peak RSS,
# and (when valgrind is installed and BENCH_CALLGRIND=1) the instruction
# count of the client, which unlike seconds is repeatable on a busy machine.
# Nothing here passes or fails on speed; the numbers are for people.
. "${top_srcdir:-$(dirname "$0")/..}/tests/e2e/lib.sh"

SMALL=${BENCH_SMALL:-1000}
LARGE_MB=${BENCH_LARGE_MB:-100}
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (package time)"; exit 1; }

e2e_start_servers

# bench_run NAME: fetch CASE_USER's mailbox once; print one result line.
bench_run() {
	local name=$1 tf t0 t1 ms rss bytes n
	tf=$CASE_DIR/time
	account bench >"$CASE_DIR/pm.conf"
	chmod 600 "$CASE_DIR/pm.conf"
	t0=$(date +%s%N)
	/usr/bin/time -v -o "$tf" "$PULLMAIL" -q -c "$CASE_DIR/pm.conf" \
		</dev/null >"$CASE_DIR/out" 2>&1
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tf")
	n=$(find "$CASE_DIR/Maildir/new" -type f | wc -l)
	bytes=$(find "$CASE_DIR/Maildir/new" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
	printf '%-22s %6d msgs %10d bytes %7d ms %8.1f MB/s  peak RSS %6d kB\n' \
		"$name" "$n" "$bytes" "$ms" \
		"$(awk -v b="$bytes" -v ms="$ms" 'BEGIN {print ms ? b / 1048576 / (ms / 1000) : 0}')" \
		"$rss"
	if [ "${BENCH_CALLGRIND:-0}" = 1 ] && command -v valgrind >/dev/null; then
		rm -rf "$CASE_DIR/Maildir" "$CASE_DIR/state"
		valgrind --tool=callgrind --callgrind-out-file="$CASE_DIR/cg.out" \
			"$PULLMAIL" -q -c "$CASE_DIR/pm.conf" </dev/null >/dev/null 2>&1
		printf '%-22s instructions: %s\n' "$name" \
			"$(sed -n 's/^summary: //p' "$CASE_DIR/cg.out")"
	fi
}

bench_small() {
	local i dir=$CASE_DIR/seed
	mkdir -p "$dir"
	# make_messages writes five messages a call.
	i=1
	while [ "$i" -le $(((SMALL + 4) / 5)) ]; do
		make_messages "$dir/$i" "bench-$i" >/dev/null
		i=$((i + 1))
	done
	# shellcheck disable=SC2046
	srv_seed "$CASE_USER" INBOX $(find "$dir" -name '*.eml' | head -n "$SMALL") ||
		fail "seeding failed"
	bench_run "small x$SMALL"
}

bench_large() {
	"$SRV_PYTHON" "$SRV_DIR/probe.py" genmsg $((LARGE_MB * 1048576)) 7 \
		"$CASE_DIR/large.eml" || fail "genmsg failed"
	srv_seed "$CASE_USER" INBOX "$CASE_DIR/large.eml" || fail "seeding failed"
	bench_run "one of ${LARGE_MB} MB"
}

echo "pullmail benchmark: fetch over IMAPS into a Maildir"
run_case small bench_small
cat "$E2E_RUN/cases/small/case.log" | grep -v '^pullmail' || true
run_case large bench_large
cat "$E2E_RUN/cases/large/case.log" | grep -v '^pullmail' || true
e2e_finish
