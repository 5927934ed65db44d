#!/usr/bin/env bash
# Builds Prometheus 3.16 (Apache-2.0) from its pinned Go module (v0.316.0) through the Go module
# proxy and caches the binary under $HOME/.cache/thanos-bridge-ci, so later CI runs skip the
# ~4 minute build. Prints the path. Built without the web UI (its assets are not in the module);
# the HTTP API works (../shared/notes/stack.md). Used by tests/support/engines.ts.
set -euo pipefail
PROMETHEUS_VERSION=v0.316.0
CACHE="${HOME}/.cache/thanos-bridge-ci"
DIR="$CACHE/prometheus-$PROMETHEUS_VERSION"
BIN="$DIR/prometheus"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { echo "go is needed to build Prometheus 3 (tested with go 1.26.8)" >&2; exit 1; }
mkdir -p "$DIR"
# One build at a time: a second caller (a parallel test) waits for the first build to finish.
exec 9>"$CACHE/prometheus3.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
work=$(mktemp -d)
# The module cache is read-only: make it writable so the Go caches can be deleted afterwards.
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOBIN="$work/bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local
CGO_ENABLED=0 go install -tags netgo \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" >&2
mv "$work/bin/prometheus" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
