#!/bin/sh
# Builds upstream derper at the release pinned in bench/derper/go.mod, from the Go module
# proxy, into a cache directory once; prints the binary's path. Reruns reuse the binary.
set -eu
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DERPER_VERSION="$(sed -n 's/^[[:space:]]*tailscale.com \(v[^ ]*\).*/\1/p' "$HERE/derper/go.mod" | head -n 1)"
CACHE="${TINYDERP_BENCH_CACHE:-$HOME/.cache/tinyderp/bench}"
OUT="$CACHE/derper-$DERPER_VERSION"
if [ ! -x "$OUT/derper" ]; then
    mkdir -p "$OUT"
    # The release needs a newer Go than may be installed: GOTOOLCHAIN=auto fetches the
    # toolchain, itself a module on the same proxy. Trimmed and stripped like release builds.
    (cd "$HERE/derper" && GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod \
        go build -trimpath -ldflags='-s -w' -o "$OUT/derper.tmp" tailscale.com/cmd/derper)
    mv "$OUT/derper.tmp" "$OUT/derper"
fi
echo "$OUT/derper"
