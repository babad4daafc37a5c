#!/bin/sh
# Builds upstream derper at the release pinned in bench/derper/go.mod, from the Go module
# proxy, into a cache directory once; prints the binary's path. Reruns reuse the binary.
#
#   build-derper.sh            for this machine (x86_64)
#   build-derper.sh ARCH       cross-compiled for a router CPU, ARCH one of the OpenWrt
#                              names mips_24kc, mipsel_24kc, arm_cortex-a7 (GOARM=7),
#                              aarch64_cortex-a53 (the soft-float MIPS builds match OpenWrt)
set -eu
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DERPER_VERSION="$(sed -n 's/^[[:space:]]*tailscale.com \(v[^ ]*\).*/\1/p' "$HERE/derper/go.mod" | head -n 1)"
CACHE="${TINYDERP_BENCH_CACHE:-$HOME/.cache/tinyderp/bench}"
ARCH="${1:-}"
case "$ARCH" in
"") OUT="$CACHE/derper-$DERPER_VERSION" ;;
mips_24kc) OUT="$CACHE/derper-$DERPER_VERSION-$ARCH" GOENV="GOARCH=mips GOMIPS=softfloat" ;;
mipsel_24kc) OUT="$CACHE/derper-$DERPER_VERSION-$ARCH" GOENV="GOARCH=mipsle GOMIPS=softfloat" ;;
arm_cortex-a7*) OUT="$CACHE/derper-$DERPER_VERSION-arm_cortex-a7" GOENV="GOARCH=arm GOARM=7" ;;
aarch64*) OUT="$CACHE/derper-$DERPER_VERSION-aarch64" GOENV="GOARCH=arm64" ;;
*) echo "build-derper.sh: unknown arch $ARCH" >&2; exit 2 ;;
esac
if [ ! -x "$OUT/derper" ]; then
    mkdir -p "$OUT"
    # The release needs a newer Go than may be installed: GOTOOLCHAIN=auto fetches the
    # toolchain, itself a module on the same proxy. Trimmed and stripped like release builds.
    # shellcheck disable=SC2086 # GOENV is a list of assignments
    (cd "$HERE/derper" && env GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod ${GOENV:-} \
        go build -trimpath -ldflags='-s -w' -o "$OUT/derper.tmp" tailscale.com/cmd/derper)
    mv "$OUT/derper.tmp" "$OUT/derper"
fi
echo "$OUT/derper"
