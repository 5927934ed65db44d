#!/usr/bin/env bash
# Builds Thanos 0.42.5 (Apache-2.0) from its pinned Go module through the Go module proxy and
# caches the binary under $HOME/.cache/thanos-bridge-ci, so later CI runs skip the ~2 minute
# build. Prints the path. Used by tests/support/engines.ts (sidecar + query).
# `go install` is refused (go.mod asks for go 1.26.10 and has `replace` directives). What works
# (../shared/notes/stack.md): `go mod download` the module, copy it into a writable folder, lower
# its `go` directive to the local toolchain (0.42.5 differs from 0.42.4 only in that line), keep
# GOTOOLCHAIN=local and build with `-tags slicelabels` (without it the sidecar panics on its
# first gRPC call).
set -euo pipefail
THANOS_VERSION=v0.42.5
CACHE="${HOME}/.cache/thanos-bridge-ci"
DIR="$CACHE/thanos-$THANOS_VERSION"
BIN="$DIR/thanos"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { echo "go is needed to build Thanos (tested with go 1.26.8)" >&2; exit 1; }
mkdir -p "$DIR"
# One build at a time: a second caller (a parallel test) waits for the first build to finish.
exec 9>"$CACHE/thanos.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
work=$(mktemp -d)
# The module cache is read-only: make it writable so the Go caches can be deleted afterwards.
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
local_go=$(go env GOVERSION)
local_go=${local_go#go}
# `go mod download` fetches the module zip and checks it against the checksum database, then
# refuses to unpack it ("requires go >= 1.26.10"): unpack the verified zip ourselves.
info=$(cd "$work" && { go mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" || true; })
zip=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("Zip", ""))' <<<"$info")
if [ -z "$zip" ] || [ ! -f "$zip" ]; then
  echo "go mod download of thanos $THANOS_VERSION gave no module zip: $info" >&2
  exit 1
fi
python3 - "$zip" "$work/src" "github.com/thanos-io/thanos@$THANOS_VERSION/" <<'EOF'
import os, sys, zipfile
zip_path, dest, prefix = sys.argv[1:4]
with zipfile.ZipFile(zip_path) as z:
    for entry in z.infolist():
        # A module zip holds every file under "<module>@<version>/".
        if entry.is_dir() or not entry.filename.startswith(prefix):
            continue
        target = os.path.join(dest, entry.filename[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(entry) as src, open(target, "wb") as out:
            out.write(src.read())
EOF
sed -i -E -e "s/^go [0-9][0-9.]*\$/go $local_go/" -e '/^toolchain /d' "$work/src/go.mod"
(cd "$work/src" && CGO_ENABLED=0 go build -mod=mod -tags slicelabels -o "$BIN.tmp" ./cmd/thanos) >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
