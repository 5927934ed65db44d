#!/usr/bin/env bash
# Builds helm (Apache-2.0) from its pinned Go module (helm.sh/helm/v3) through the Go module proxy
# and caches the binary under $HOME/.cache/thanos-bridge-ci, so later CI runs skip the ~2 minute
# build. Prints the path. Used by tests/chart_test.ts (`helm lint`, `helm template`).
set -euo pipefail
HELM_VERSION=v3.22.0
CACHE="${HOME}/.cache/thanos-bridge-ci"
DIR="$CACHE/helm-$HELM_VERSION"
BIN="$DIR/helm"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { echo "go is needed to build helm (tested with go 1.26.8)" >&2; exit 1; }
mkdir -p "$DIR"
# One build at a time: a second caller (a parallel test) waits for the first build to finish.
exec 9>"$CACHE/helm.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOBIN="$work/bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local
CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
mv "$work/bin/helm" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
