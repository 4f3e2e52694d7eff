#!/usr/bin/env bash
# Load test of OneDoor on this machine: builds onedoor and the load generator,
# runs the server on the embedded default (SQLite in a temporary data dir) at
# http://localhost:18080, registers the clients with `onedoor client create`,
# drives each mode for DURATION with CONCURRENCY clients and prints a table
# with the ratios to the raw ES256 sign rate of the same machine and, for
# client_credentials, to the bare baseline: a plain net/http token endpoint
# (deploy/load/bare.go, Basic check against a keyed hash, one ES256 JWT,
# JSON) served by the load binary on 127.0.0.1:18082 and driven the same
# way immediately before OneDoor's client_credentials run.
#
#   bash deploy/load/run.sh
#
# With ONEDOOR_LOAD_POSTGRES_DSN and ONEDOOR_LOAD_REDIS_URL set it repeats
# everything on PostgreSQL + Redis, in a fresh schema (created and dropped
# with psql) and with ONEDOOR_MASTER_KEY (generated unless set):
#
#   ONEDOOR_LOAD_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
#   ONEDOOR_LOAD_REDIS_URL=redis://127.0.0.1:6379/0 bash deploy/load/run.sh
#
# Knobs: DURATION (10s), CONCURRENCY (32), MODES (all four). Everything stays
# on loopback; docs/benchmarks.md explains the figures.
set -euo pipefail

cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
MODES=${MODES:-client_credentials private_key_jwt code_exchange introspection}
ADDR=127.0.0.1:18080
BARE_ADDR=127.0.0.1:18082
ISSUER=http://localhost:18080
REDIRECT_URI=http://127.0.0.1:9/callback
CITIZEN=000000000001 # a fake demo citizen (personal ids starting 000 do not exist)

work=$(mktemp -d "${TMPDIR:-/tmp}/onedoor-load.XXXXXX")
server_pid=""
bare_pid=""
schema=""

cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ -n "$bare_pid" ]; then
		kill "$bare_pid" 2>/dev/null || true
		wait "$bare_pid" 2>/dev/null || true
	fi
	if [ -n "$schema" ]; then
		psql -q "$ONEDOOR_LOAD_POSTGRES_DSN" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

die() {
	echo "run.sh: $*" >&2
	exit 1
}

port_open() { (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR#*:}") 2>/dev/null; }
bare_open() { (exec 3<>"/dev/tcp/${BARE_ADDR%:*}/${BARE_ADDR#*:}") 2>/dev/null; }

if port_open; then
	die "something already listens on $ADDR"
fi
if bare_open; then
	die "something already listens on $BARE_ADDR"
fi

echo "== building onedoor and the load generator"
go build -o "$work/onedoor" ./cmd/onedoor
go build -o "$work/load" ./deploy/load

# sign_rate prints the raw ES256 sign rate (golang-jwt, every core) of
# BenchmarkES256Sign.
sign_rate() {
	local r
	r=$(go test -run NONE -bench 'ES256Sign' ./cmd/onedoor |
		awk '{for (i = 2; i <= NF; i++) if ($i == "sign/s") print $(i-1)}' | tail -1)
	[ -n "$r" ] || die "could not read the ES256 sign rate"
	echo "$r"
}

echo "== raw ES256 sign rate (golang-jwt, GOMAXPROCS=$(nproc))"
sign_before=$(sign_rate)
echo "ES256 sign: $sign_before/s"

cat >"$work/citizens.json" <<'EOF'
[{"personal_id": "000000000001", "family_name": "Nguyễn", "given_name": "Văn Demo", "birthdate": "1990-01-15",
  "gender": "male", "address": "1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)", "phone_number": "+84900000001"}]
EOF

# clean_env is the environment prefix of every onedoor command: only this
# run's storage settings (ONEDOOR_* variables of the caller's shell would
# otherwise fill flags).
clean_env() {
	envcmd=(env -u ONEDOOR_POSTGRES_DSN -u ONEDOOR_REDIS_URL -u ONEDOOR_DATA_DIR -u ONEDOOR_MASTER_KEY_FILE -u ONEDOOR_MASTER_KEY)
	if [ -n "$master_key" ]; then
		envcmd+=("ONEDOOR_MASTER_KEY=$master_key")
	fi
}

onedoor() {
	clean_env
	"${envcmd[@]}" "$work/onedoor" "$@"
}

json_field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" | head -1; }

results="$work/results.txt"
: >"$results"

echo "== starting the bare client_credentials baseline on $BARE_ADDR"
bare_secret=$(head -c24 /dev/urandom | base64 | tr -d '/+=')
"$work/load" -serve-bare "$BARE_ADDR" -client-id bare -secret "$bare_secret" >"$work/bare.log" 2>&1 &
bare_pid=$!
for _ in $(seq 50); do
	bare_open && break
	kill -0 "$bare_pid" 2>/dev/null || { cat "$work/bare.log" >&2; die "the bare baseline exited"; }
	sleep 0.1
done
bare_open || die "the bare baseline did not start listening on $BARE_ADDR"

# run_bare NAME: the bare baseline, driven exactly like OneDoor's
# client_credentials mode.
run_bare() {
	local out line
	echo "== $1: bare baseline, client_credentials, c=$CONCURRENCY, $DURATION"
	out=$("$work/load" -issuer "http://$BARE_ADDR" -mode client_credentials -c "$CONCURRENCY" -d "$DURATION" \
		-client-id bare -secret "$bare_secret") || { echo "$out"; die "bare baseline failed"; }
	echo "$out" | grep -v '^RESULT '
	line=$(grep '^RESULT ' <<<"$out")
	echo "backend=$1 ${line#RESULT }" | sed 's/mode=client_credentials/mode=bare_baseline/' >>"$results"
}

# run_backend NAME STORAGE-FLAGS... [-- SERVE-ONLY-FLAGS...]
run_backend() {
	local name=$1
	shift
	local storage=() serve_only=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		storage+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	serve_only=("$@")

	echo "== $name: starting onedoor on $ISSUER"
	port_open && die "something already listens on $ADDR"
	clean_env
	# A simple command, so $! is the server itself (env execs it).
	"${envcmd[@]}" "$work/onedoor" serve --idp-addr "$ADDR" --issuer "$ISSUER" --api-addr 127.0.0.1:18081 --log-level warn \
		"${storage[@]}" ${serve_only[@]+"${serve_only[@]}"} >"$work/server-$name.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		port_open && break
		kill -0 "$server_pid" 2>/dev/null || { cat "$work/server-$name.log" >&2; die "onedoor exited"; }
		sleep 0.2
	done
	port_open || die "onedoor did not start listening on $ADDR"

	echo "== $name: clients and the demo citizen"
	local out cc_id cc_secret pk_id code_id code_secret activation
	out=$(onedoor client create "${storage[@]}" --name "Load test (client_credentials)" \
		--grant-type client_credentials --scope registry.read)
	cc_id=$(json_field client_id <<<"$out")
	cc_secret=$(json_field client_secret <<<"$out")

	rm -f "$work/key.pem"
	"$work/load" -gen-key "$work/key.pem" -kid load-1 >"$work/jwks.json"
	out=$(onedoor client create "${storage[@]}" --name "Load test (private_key_jwt)" --grant-type client_credentials \
		--scope registry.read --auth-method private_key_jwt --jwks "$work/jwks.json")
	pk_id=$(json_field client_id <<<"$out")

	out=$(onedoor client create "${storage[@]}" --name "Load test (code flow)" --redirect-uri "$REDIRECT_URI" \
		--grant-type authorization_code --scope "openid profile")
	code_id=$(json_field client_id <<<"$out")
	code_secret=$(json_field client_secret <<<"$out")

	onedoor citizen import "${storage[@]}" "$work/citizens.json" >/dev/null
	activation=$(onedoor citizen activate "${storage[@]}" --id "$CITIZEN" --level high | json_field activation_code)
	if [ -z "$cc_id" ] || [ -z "$cc_secret" ] || [ -z "$pk_id" ] || [ -z "$code_id" ] || [ -z "$activation" ]; then
		die "could not create the clients or the activation code"
	fi

	local mode args line
	for mode in $MODES; do
		case $mode in
		client_credentials | introspection) args=(-client-id "$cc_id" -secret "$cc_secret") ;;
		private_key_jwt) args=(-client-id "$pk_id" -key "$work/key.pem" -kid load-1) ;;
		code_exchange)
			args=(-client-id "$code_id" -secret "$code_secret" -redirect-uri "$REDIRECT_URI"
				-personal-id "$CITIZEN" -activation-code "$activation" -app-home "$work/eid-$name")
			;;
		*) die "unknown mode $mode" ;;
		esac
		if [ "$mode" = client_credentials ]; then
			run_bare "$name"
		fi
		echo "== $name: $mode, c=$CONCURRENCY, $DURATION"
		out=$("$work/load" -issuer "$ISSUER" -mode "$mode" -c "$CONCURRENCY" -d "$DURATION" "${args[@]}") ||
			{ echo "$out"; die "$mode failed"; }
		echo "$out" | grep -v '^RESULT '
		line=$(grep '^RESULT ' <<<"$out")
		echo "backend=$name ${line#RESULT }" >>"$results"
	done

	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
	if grep -qi 'level=error' "$work/server-$name.log"; then
		echo "-- server errors ($name):"
		grep -i 'level=error' "$work/server-$name.log" | head -5
	fi
}

master_key=""
run_backend sqlite --data-dir "$work/data"

if [ -n "${ONEDOOR_LOAD_POSTGRES_DSN:-}" ] && [ -n "${ONEDOOR_LOAD_REDIS_URL:-}" ]; then
	command -v psql >/dev/null || die "psql is needed to create a fresh schema"
	master_key=${ONEDOOR_MASTER_KEY:-$(head -c32 /dev/urandom | base64)}
	schema="load_$(head -c6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	psql -q "$ONEDOOR_LOAD_POSTGRES_DSN" -c "CREATE SCHEMA $schema" >/dev/null
	sep='?'
	case $ONEDOOR_LOAD_POSTGRES_DSN in *\?*) sep='&' ;; esac
	run_backend postgres+redis --postgres-dsn "${ONEDOOR_LOAD_POSTGRES_DSN}${sep}search_path=$schema" \
		-- --redis-url "$ONEDOOR_LOAD_REDIS_URL"
else
	echo "== postgres+redis skipped: set ONEDOOR_LOAD_POSTGRES_DSN and ONEDOOR_LOAD_REDIS_URL"
fi

echo "== raw ES256 sign rate again"
sign_after=$(sign_rate)
echo "ES256 sign: $sign_after/s"
# The ratios use the mean of both; a large change means other work on the
# machine changed during the run, and the figures are not comparable.
sign=$(awk -v a="$sign_before" -v b="$sign_after" 'BEGIN { printf "%.0f", (a + b) / 2 }')
drift=$(awk -v a="$sign_before" -v b="$sign_after" 'BEGIN { d = (a - b) / (a + b) * 2; if (d < 0) d = -d; printf "%.0f", d * 100 }')

echo
echo "== results: $(nproc) cores, c=$CONCURRENCY, $DURATION per mode, raw ES256 sign rate $sign/s (before $sign_before, after $sign_after)"
if [ "$drift" -gt 20 ]; then
	echo "WARNING: the sign rate changed by $drift% during the run: other load on the machine; repeat on a quiet machine"
fi
awk -v sign="$sign" '
function field(k,   i, kv) {
	for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
	return ""
}
BEGIN {
	printf "%-15s %-19s %9s %9s %9s %7s %11s %8s  %s\n", "backend", "mode", "req/s", "p50 ms", "p99 ms", "errors", "x ES256sign", "x bare", "goal / Hydra v2.3.0 (same machine)"
}
{
	b = field("backend"); m = field("mode"); r = field("ok_per_s")
	ratio = r / sign; note = ""; xbare = "";
	if (m == "bare_baseline") bare[b] = r
	if (m == "client_credentials" && bare[b] > 0) {
		xbare = sprintf("%.3f", r / bare[b])
		note = sprintf("goal >= 0.5 x bare: %s", r / bare[b] >= 0.5 ? "met" : "NOT met")
	}
	if (m == "client_credentials" && b == "postgres+redis") note = note sprintf("; %.1fx Hydra on PostgreSQL (625/s; goal >= 10x)", r / 625)
	if (m == "code_exchange" && b == "postgres+redis") note = sprintf("goal >= 0.03: %s; %.1fx Hydra (100/s; goal >= 5x)", ratio >= 0.03 ? "met" : "NOT met", r / 100)
	printf "%-15s %-19s %9.0f %9.2f %9.2f %7d %11.4f %8s  %s\n", b, m, r, field("p50_ms"), field("p99_ms"), field("errors"), ratio, xbare, note
}' "$results"
