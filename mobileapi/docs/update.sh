#!/bin/sh
# update.sh vendors Redoc's standalone bundle, the renderer of /v1/docs, into
# assets/ (go:embed'ded into the binary and served at /v1/docs/assets/, so the
# page needs no CDN). Run it from anywhere with npm on the PATH; to update,
# change VERSION and INTEGRITY (npm view redoc@NEW dist.integrity), run it,
# check the page (go test ./mobileapi/docs/ ./mobileapi/fiberapi/ with
# ONEDOOR_TEST_CHROMIUM=/usr/bin/chromium) and commit assets/ with SHA256SUMS.
#
# Redoc is MIT-licensed (assets/redoc.LICENSE); the bundle's third-party
# notices are in assets/redoc.standalone.js.LICENSE.txt, the name the
# bundle's own header points to. The files are copied byte for byte.
set -eu

VERSION=2.5.4
INTEGRITY=sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack "redoc@$VERSION" --silent >/dev/null)
tgz="$tmp/redoc-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 | tr -d '\n')"
if [ "$got" != "$INTEGRITY" ]; then
	echo "redoc-$VERSION.tgz: integrity $got, want $INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$tmp"

cp "$tmp/package/bundles/redoc.standalone.js" "$here/assets/redoc.standalone.js"
cp "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" "$here/assets/redoc.standalone.js.LICENSE.txt"
cp "$tmp/package/LICENSE" "$here/assets/redoc.LICENSE"
chmod 0644 "$here"/assets/redoc.*

# The test compares the vendored files with these sums, so an accidental edit
# shows up as a failure rather than as a silently different renderer.
(cd "$here/assets" && sha256sum redoc.standalone.js redoc.standalone.js.LICENSE.txt redoc.LICENSE >"$here/SHA256SUMS")
echo "vendored redoc $VERSION into $here/assets"
