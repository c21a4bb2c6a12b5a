#!/usr/bin/env bash
# Builds static meshdns and meshctl binaries into ${OUT:-bin}/.
# The Dockerfile runs exactly this script, and scripts/test.sh runs it too,
# so CI proves the image's build command.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bin}
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/" ./cmd/meshdns ./cmd/meshctl
echo "built $out/meshdns $out/meshctl"
