#!/usr/bin/env bash
# Build (or reuse) an offline vulnerability database for govulncheck and print
# its absolute directory on stdout; progress goes to stderr. Usage:
#
#   db=$(bash .ci/vulndb.sh) && govulncheck -db "file://$db" ./...
#
# The database comes from the golang.org/x/vulndb module (no tags, so
# @latest is a pseudo-version), fetched through the Go module proxy, and is
# indexed with that module's own cmd/indexdb at the same version. Built
# databases are cached per vulndb version under
# ${ONEDOOR_VULNDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/onedoor-vulndb}/<version>/db;
# the two newest are kept. If the proxy cannot be reached, the newest cached
# database is used with a warning.
set -euo pipefail

cache=${ONEDOOR_VULNDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/onedoor-vulndb}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "vulndb: $*" >&2; }

work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

newest_cached() {
	find "$cache" -mindepth 2 -maxdepth 2 -name complete -printf '%h\n' 2>/dev/null |
		sort | tail -n 1
}

# Resolve and download the newest vulndb (a no-op when the module cache has it).
# Run outside any module so the repository's go.mod is never consulted.
if ! info=$(cd "$work" && go mod download -json golang.org/x/vulndb@latest); then
	log "could not download golang.org/x/vulndb@latest: $info"
	dir=$(newest_cached)
	[ -n "$dir" ] || {
		log "no cached database either"
		exit 1
	}
	log "WARNING: using cached database $(basename "$dir")"
	echo "$dir/db"
	exit 0
fi
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$info" | head -n 1; }
version=$(field Version)
src=$(field Dir)
if [ -z "$version" ] || [ ! -d "$src/data/osv" ]; then
	log "unexpected go mod download output: $info"
	exit 1
fi

out=$cache/$version
if [ -f "$out/complete" ]; then
	log "reusing $out/db"
	echo "$out/db"
	exit 0
fi

log "building database for golang.org/x/vulndb@$version"
start=$SECONDS
(cd "$work" && GOBIN="$work/bin" go install "golang.org/x/vulndb/cmd/indexdb@$version")
log "indexdb installed in $((SECONDS - start))s"
"$work/bin/indexdb" -vulns "$src/data/osv" -out "$work/build/db" >&2
touch "$work/build/complete"
# Publish atomically; a concurrent run that got there first wins.
mv -T "$work/build" "$out" 2>/dev/null || log "$out appeared meanwhile; using it"
[ -f "$out/complete" ] || {
	log "publishing $out failed"
	exit 1
}
log "built $out/db in $((SECONDS - start))s ($(find "$out/db" -name '*.json' | wc -l) files)"

# Keep the two newest versions.
find "$cache" -mindepth 2 -maxdepth 2 -name complete -printf '%h\n' | sort | head -n -2 |
	while read -r old; do
		log "pruning $old"
		rm -rf "$old"
	done

echo "$out/db"
