# The delaying relay (bench/delay-relay, built from bench/delay-relay.c by
# the bench targets) for the benchmarks: sourced after tests/e2e/lib.sh,
# which sets E2E_RUN and top_builddir.
#
#   relay_start RTT_MS MAX_SECONDS PORT...
#       relay each PORT of 127.0.0.1 adding RTT_MS to the round trip, for
#       MAX_SECONDS at most; sets RELAY_PID and RELAY_PORTS (the relay's
#       ports, in the order of the PORTs)
#   relay_stop
RELAY_PID=

relay_start() {
	local rtt=$1 max=$2 p ups= i=0
	shift 2
	for p in "$@"; do
		ups="$ups --upstream $p"
	done
	if [ ! -x "$top_builddir/bench/delay-relay" ]; then
		echo "bench: $top_builddir/bench/delay-relay is missing (make bench/delay-relay)"
		return 1
	fi
	rm -f "$E2E_RUN/relay.ports"
	# shellcheck disable=SC2086
	"$top_builddir/bench/delay-relay" \
		--delay-ms "$(awk -v r="$rtt" 'BEGIN {print r / 2}')" $ups \
		--port-file "$E2E_RUN/relay.ports" --parent-pid $$ \
		--max-seconds "$max" </dev/null >"$E2E_RUN/relay.log" 2>&1 &
	RELAY_PID=$!
	while [ ! -s "$E2E_RUN/relay.ports" ]; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$RELAY_PID" 2>/dev/null; then
			cat "$E2E_RUN/relay.log"
			echo "bench: the delaying relay did not start"
			relay_stop
			return 1
		fi
		sleep 0.05
	done
	RELAY_PORTS=$(cat "$E2E_RUN/relay.ports")
}

relay_stop() {
	[ -n "$RELAY_PID" ] || return 0
	kill "$RELAY_PID" 2>/dev/null
	wait "$RELAY_PID" 2>/dev/null
	RELAY_PID=
}
