#!/usr/bin/env bash
# The mobile API's speed goals (docs/benchmarks.md, "The mobile API"),
# with the server and the load generator in separate processes on separate
# cores: cmd/onedoor's BenchmarkMobileAPI_Home and _Search run held
# (ONEDOOR_BENCH_HOLD) under `taskset -c 0` with GOMAXPROCS=1 (OneDoor on
# SQLite, the seeded citizen, the static fiber handler with the same bytes,
# 5,000 services), and `load -api` (deploy/load/api.go) drives them from
# `taskset -c 1` with GOMAXPROCS=1: the maximum rate with closed-loop
# callers, then open loop at half of it, latency from each request's due
# time. Search also sends its answer from memory at its rate (static_search),
# the floor the machine sets. It prints every run and the median table.
#
#   bash deploy/load/api.sh
#
# Knobs: RUNS (3), LOAD_ARGS (more flags for `load -api`, e.g.
# "-api-d 20s"), SERVER_CPU (0), LOAD_CPU (1), BENCHES (Home Search).
set -euo pipefail

cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCHES=${BENCHES:-Home Search}
LOAD_ARGS=${LOAD_ARGS:-}

command -v taskset >/dev/null || {
	echo "api.sh: taskset (util-linux) is needed" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/onedoor-apiload.XXXXXX")
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building the test binary of cmd/onedoor and the load generator"
go test -c -o "$work/onedoor.test" ./cmd/onedoor
go build -o "$work/load" ./deploy/load

echo "== $(nproc) cores; server on CPU $SERVER_CPU, generator on CPU $LOAD_CPU, GOMAXPROCS=1 each"
echo "== before: $(uptime)"
for bench in $BENCHES; do
	hold="$work/hold-$bench.json"
	echo "== BenchmarkMobileAPI_$bench: starting the held server"
	# The test binary runs in its package directory, as `go test` runs it.
	(cd cmd/onedoor && exec taskset -c "$SERVER_CPU" env GOMAXPROCS=1 ONEDOOR_BENCH_HOLD=30m ONEDOOR_BENCH_HOLD_FILE="$hold" \
		"$work/onedoor.test" -test.run '^$' -test.bench "^BenchmarkMobileAPI_$bench\$" -test.benchtime 1x) >"$work/server-$bench.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1200); do
		[ -f "$hold" ] && break
		kill -0 "$server_pid" 2>/dev/null || {
			cat "$work/server-$bench.log" >&2
			echo "api.sh: the benchmark exited before holding" >&2
			exit 1
		}
		sleep 0.1
	done
	[ -f "$hold" ] || {
		echo "api.sh: the benchmark did not hold within 2 minutes" >&2
		exit 1
	}
	# Search's hold also serves its answer from memory (static_search), sent
	# at the search's rate: the latency floor of this machine at that rate.
	rate_from=""
	[ "$bench" = Search ] && rate_from="-api-rate-from search"
	# shellcheck disable=SC2086 # LOAD_ARGS and rate_from are separate flags
	taskset -c "$LOAD_CPU" env GOMAXPROCS=1 "$work/load" -api "$hold" -api-runs "$RUNS" $rate_from $LOAD_ARGS | tee -a "$work/results.txt"
	rm -f "$hold" # releases the benchmark
	wait "$server_pid" || {
		cat "$work/server-$bench.log" >&2
		exit 1
	}
	server_pid=""
done
echo "== after: $(uptime)"

echo
echo "== goals (medians of $RUNS runs)"
awk '
function field(k,   i, kv) {
	for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
	return ""
}
/^RESULT / {
	t = field("target"); max[t] = field("max_per_s"); p99[t] = field("p99_ms"); errs[t] = field("errors")
}
END {
	if ("home" in max && "static" in max && max["static"] > 0) {
		r = max["home"] / max["static"]
		printf "home / static maximum rate: %.2f (goal >= 0.5): %s\n", r, r >= 0.5 ? "met" : "NOT met"
	}
	if ("home" in p99)
		printf "home p99 at half its maximum: %.2f ms (goal <= 10 ms): %s\n", p99["home"], p99["home"] <= 10 && errs["home"] == 0 ? "met" : "NOT met"
	if ("static" in p99)
		printf "static p99 at half its maximum: %.2f ms (reference)\n", p99["static"]
	if ("search" in p99)
		printf "search p99 at half its maximum: %.2f ms (goal <= 5 ms): %s\n", p99["search"], p99["search"] <= 5 && errs["search"] == 0 ? "met" : "NOT met"
	if ("static_search" in p99)
		printf "the search answer from memory, same rate: p99 %.2f ms (reference: the floor at that rate)\n", p99["static_search"]
}' "$work/results.txt"
