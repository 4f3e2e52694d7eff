# shellcheck shell=bash
# Helpers for .ci/run (sourced, not executed). Every ensure_* function is a
# no-op when the thing is already there, so a warm machine pays nothing.

# section NAME: print a header and the time the previous section took.
_ci_section_name=""
_ci_section_start=$SECONDS
section() {
	section_end
	_ci_section_name=$1
	_ci_section_start=$SECONDS
	printf '\n==== %s ====\n' "$1"
}
section_end() {
	if [ -n "$_ci_section_name" ]; then
		printf -- '---- %s: %ds\n' "$_ci_section_name" "$((SECONDS - _ci_section_start))"
		CI_TIMINGS+=("$(printf '%-40s %5ds' "$_ci_section_name" "$((SECONDS - _ci_section_start))")")
	fi
	_ci_section_name=""
}
CI_TIMINGS=()

die() {
	echo "ci: $*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# apt_install PKG...: install Debian packages, running apt-get update once.
_ci_apt_updated=0
apt_install() {
	if [ "$_ci_apt_updated" -eq 0 ]; then
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
		_ci_apt_updated=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# wait_for TIMEOUT_S DESCRIPTION CMD...: poll CMD once a second.
wait_for() {
	local timeout=$1 what=$2 i
	shift 2
	for ((i = 0; i < timeout; i++)); do
		if "$@" >/dev/null 2>&1; then
			echo "$what is up"
			return 0
		fi
		sleep 1
	done
	die "$what did not come up within ${timeout}s"
}

# ensure_postgres: install (Debian's postgresql), create a cluster if none,
# start it if down, wait until it answers and make sure the "test" database
# exists. A cluster installed here gets trust auth on the socket and loopback,
# as on a new go-svc machine.
ensure_postgres() {
	local fresh=0 ver hba
	if ! command -v pg_ctlcluster >/dev/null 2>&1; then
		echo "PostgreSQL is not installed; installing Debian's postgresql"
		apt_install postgresql
		fresh=1
	fi
	if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
		ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
		echo "no PostgreSQL cluster; creating $ver/main"
		as_root pg_createcluster "$ver" main
		fresh=1
	fi
	ver=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
	if [ "$fresh" -eq 1 ]; then
		hba=/etc/postgresql/$ver/main/pg_hba.conf
		as_root sed -i -e '/^[^#]/d' "$hba"
		printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust' |
			as_root tee -a "$hba" >/dev/null
	fi
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		echo "starting PostgreSQL $ver/main"
		as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
	fi
	wait_for 60 "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
	if [ "$fresh" -eq 1 ]; then
		as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
	fi
	if [ "$(as_root runuser -u postgres -- psql -XtAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
		echo "creating database test"
		as_root runuser -u postgres -- createdb test
	fi
}

# ensure_redis: install (Debian's redis-server), start it if down (nothing
# kept on disk), wait until it answers.
ensure_redis() {
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		echo "Redis is not installed; installing Debian's redis-server"
		apt_install redis-server
	fi
	if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
		echo "starting Redis"
		as_root mkdir -p /var/lib/redis /var/log/redis
		as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log
	fi
	wait_for 30 "Redis" redis-cli -h 127.0.0.1 -p 6379 ping
}

# ensure_redis_cluster: a 3-master Redis Cluster (no replicas, nothing kept
# on disk but each node's cluster config) on 127.0.0.1:7001-7003, for the
# cluster tests. Starts the nodes that are down, creates the cluster when no
# slot is assigned yet and waits until every node reports cluster_state:ok.
# Needs Redis 7 (sharded Pub/Sub); ensure_redis installs it.
REDIS_CLUSTER_PORTS=(7001 7002 7003)
ensure_redis_cluster() {
	local dir=${TMPDIR:-/tmp}/onedoor-redis-cluster port addrs=()
	if _redis_cluster_ok; then
		echo "Redis Cluster is up"
		return 0
	fi
	mkdir -p "$dir"
	for port in "${REDIS_CLUSTER_PORTS[@]}"; do
		addrs+=("127.0.0.1:$port")
		if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
			echo "starting Redis Cluster node $port"
			redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
				--cluster-config-file "$dir/nodes-$port.conf" --save "" --appendonly no --dir "$dir" \
				--logfile "$dir/$port.log" --pidfile "$dir/$port.pid"
		fi
	done
	for port in "${REDIS_CLUSTER_PORTS[@]}"; do
		wait_for 30 "Redis Cluster node $port" redis-cli -h 127.0.0.1 -p "$port" ping
	done
	if redis-cli -h 127.0.0.1 -p "${REDIS_CLUSTER_PORTS[0]}" cluster info | grep -q '^cluster_slots_assigned:0'; then
		echo "creating the Redis Cluster"
		redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null ||
			die "redis-cli --cluster create failed"
	fi
	wait_for 30 "Redis Cluster" _redis_cluster_ok
}

# _redis_cluster_ok: every node answers, sees all its peers and all slots.
_redis_cluster_ok() {
	local port info
	for port in "${REDIS_CLUSTER_PORTS[@]}"; do
		info=$(redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | tr -d '\r') || return 1
		grep -q '^cluster_state:ok$' <<<"$info" || return 1
		grep -q "^cluster_known_nodes:${#REDIS_CLUSTER_PORTS[@]}$" <<<"$info" || return 1
	done
}

# ensure_chromium: Debian's chromium for the browser tests (no browser
# download is possible here).
ensure_chromium() {
	if [ ! -x /usr/bin/chromium ]; then
		echo "Chromium is not installed; installing Debian's chromium"
		apt_install chromium
	fi
	/usr/bin/chromium --version 2>/dev/null # the Debian wrapper warns about /dev/shm on stderr
}

# ensure_go_tool NAME PACKAGE VERSION: make sure $GOBIN_DIR/NAME is PACKAGE's
# module at VERSION, installing it through the module proxy otherwise.
ensure_go_tool() {
	local name=$1 pkg=$2 want=$3 have=""
	if [ -x "$GOBIN_DIR/$name" ]; then
		have=$(go version -m "$GOBIN_DIR/$name" | awk '$1 == "mod" {print $3; exit}')
	fi
	if [ "$have" != "$want" ]; then
		echo "installing $pkg@$want into $GOBIN_DIR (had: ${have:-none})"
		GOBIN=$GOBIN_DIR go install "$pkg@$want"
	fi
	echo "$name $want: $GOBIN_DIR/$name"
}
