#!/bin/sh
# update.sh vendors axe-core's axe.min.js, the accessibility checker
# a11ytest injects into pages under test, into assets/ (go:embed'ded, so the
# tests need no network). Run it from anywhere with npm on the PATH; to
# update, change VERSION and INTEGRITY (npm view axe-core@NEW dist.integrity),
# run it, run the a11y tests (go test -run A11y ./cmd/onedoor/ with
# ONEDOOR_TEST_CHROMIUM=/usr/bin/chromium) and commit assets/ with SHA256SUMS.
#
# axe-core is MPL-2.0 (assets/axe-core.LICENSE; third-party notices in
# assets/axe-core.LICENSE-3RD-PARTY.txt). The files are copied byte for byte
# and only ever run in test browsers.
set -eu

VERSION=4.14.1
INTEGRITY=sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack "axe-core@$VERSION" --silent >/dev/null)
tgz="$tmp/axe-core-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 | tr -d '\n')"
if [ "$got" != "$INTEGRITY" ]; then
	echo "axe-core-$VERSION.tgz: integrity $got, want $INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$tmp"

cp "$tmp/package/axe.min.js" "$here/assets/axe.min.js"
cp "$tmp/package/LICENSE" "$here/assets/axe-core.LICENSE"
cp "$tmp/package/LICENSE-3RD-PARTY.txt" "$here/assets/axe-core.LICENSE-3RD-PARTY.txt"
chmod 0644 "$here"/assets/*
echo "$VERSION" >"$here/assets/VERSION"

# The test compares the vendored files with these sums, so an accidental edit
# shows up as a failure rather than as a silently different checker.
(cd "$here/assets" && sha256sum VERSION axe.min.js axe-core.LICENSE axe-core.LICENSE-3RD-PARTY.txt >"$here/SHA256SUMS")
echo "vendored axe-core $VERSION into $here/assets"
