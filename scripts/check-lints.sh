#!/bin/sh
# Checks that the modules that parse network input keep their no-panic lint wall:
# src/proto/mod.rs and src/relay/mod.rs must deny unwrap, expect, panic, indexing,
# unchecked arithmetic (and unreachable/todo/unimplemented) outside tests. Then the
# layer check (scripts/check-layers.py): proto/ and relay/ import nothing outside
# themselves (no net/, no runtime, sockets, clock or files), and no import cycle appears
# beyond those listed in scripts/layer-cycles.allow.
#
#   scripts/check-lints.sh          grep and layer checks only (fast, for CI)
#   scripts/check-lints.sh --prove  also plants a violation in a scratch copy of each
#                                   module and checks that clippy rejects it, and plants
#                                   layer violations that the layer check must catch
set -eu
cd "$(dirname "$0")/.."
lints="clippy::unwrap_used clippy::expect_used clippy::panic clippy::indexing_slicing
clippy::arithmetic_side_effects clippy::unreachable clippy::todo clippy::unimplemented"
status=0
for module in src/proto/mod.rs src/relay/mod.rs; do
    # The deny list must sit inside a cfg_attr(not(test), deny(...)) inner attribute.
    block=$(awk '/^#!\[cfg_attr\(/{on=1} on{print} on&&/^\)\]/{exit}' "$module")
    if ! printf '%s\n' "$block" | grep -q 'not(test)'; then
        echo "$module: no #![cfg_attr(not(test), deny(...))] block" >&2
        status=1
        continue
    fi
    for lint in $lints; do
        if ! printf '%s\n' "$block" | grep -q "$lint\b"; then
            echo "$module: $lint is not denied" >&2
            status=1
        fi
    done
done
[ "$status" -eq 0 ] && echo "lint wall present in src/proto and src/relay"
command -v python3 >/dev/null || { echo "python3 not found: the layer check needs it" >&2; exit 1; }
python3 scripts/check-layers.py || status=1
[ "${1:-}" = "--prove" ] || exit "$status"
python3 scripts/check-layers.py --prove || status=1

# Prove the wall bites: each planted line breaks exactly one denied lint.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r Cargo.toml Cargo.lock src "$scratch/"
# Same target dir: the dependencies are reused, only the scratch crate is checked.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# Each planted line (after the "|") must be rejected by the lint named before the "|".
for module in proto relay; do
    for case in \
        'indexing_slicing|pub fn planted(input: &[u8]) -> u8 { input[0] }' \
        'unwrap_used|pub fn planted(input: &[u8]) -> u8 { *input.first().unwrap() }' \
        'expect_used|pub fn planted(input: &[u8]) -> u8 { *input.first().expect("one") }' \
        'arithmetic_side_effects|pub fn planted(input: &[u8]) -> u8 { input.len() as u8 + 1 }' \
        'panic|pub fn planted(input: &[u8]) -> u8 { if input.is_empty() { panic!("empty") } 0 }'; do
        lint="${case%%|*}"
        plant="${case#*|}"
        cp "src/$module/mod.rs" "$scratch/src/$module/mod.rs"
        printf '\n/// Planted lint violation.\n%s\n' "$plant" >>"$scratch/src/$module/mod.rs"
        output=$(cd "$scratch" && cargo clippy --lib --quiet -- -D warnings 2>&1 || true)
        if printf '%s\n' "$output" | grep -q "clippy::$lint"; then
            echo "src/$module: clippy::$lint rejects: $plant"
        else
            echo "src/$module: clippy::$lint did not fire on: $plant" >&2
            status=1
        fi
    done
    cp "src/$module/mod.rs" "$scratch/src/$module/mod.rs"
done
exit "$status"
