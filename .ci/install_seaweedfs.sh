#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (Apache-2.0) from its pinned Go module and caches the binary under
# $HOME/.cache/thanos-bridge-ci, so later CI runs skip the ~8 minute build. Prints the path.
# `go install` is refused (the module has a `replace` directive); `go mod download` + `go build`
# inside the module works (../shared/notes/stack.md).
set -euo pipefail
SEAWEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
CACHE="${HOME}/.cache/thanos-bridge-ci"
BIN="$CACHE/weed-$SEAWEED_VERSION"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$CACHE"
# One build at a time: a second caller (a parallel test) waits for the first build to finish.
exec 9>"$CACHE/weed.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
dir=$(cd "$work" && go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEED_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
(cd "$work/src" && CGO_ENABLED=0 go build -o "$BIN.tmp" ./weed) >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
