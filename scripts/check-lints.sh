#!/bin/sh
# Checks that the modules that parse network input keep their no-panic lint wall:
# src/proto/mod.rs and src/relay/mod.rs must deny unwrap, expect, panic, indexing,
# unchecked arithmetic (and unreachable/todo/unimplemented) outside tests.
#
#   scripts/check-lints.sh          grep check only (fast, for CI)
#   scripts/check-lints.sh --prove  also plants a violation in a scratch copy of each
#                                   module and checks that clippy rejects it
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
[ "${1:-}" = "--prove" ] || exit "$status"

# Prove the wall bites: each planted line breaks exactly one denied lint.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r Cargo.toml Cargo.lock src "$scratch/"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/lint-proof"
for module in proto relay; do
    for plant in \
        'pub fn planted(input: &[u8]) -> u8 { input[0] }' \
        'pub fn planted(input: &[u8]) -> u8 { *input.first().unwrap() }' \
        'pub fn planted(input: &[u8]) -> u8 { input.len() as u8 + 1 }' \
        'pub fn planted(input: &[u8]) -> u8 { if input.is_empty() { panic!("empty") } 0 }'; do
        cp "src/$module/mod.rs" "$scratch/src/$module/mod.rs"
        printf '\n/// Planted lint violation.\n%s\n' "$plant" >>"$scratch/src/$module/mod.rs"
        if (cd "$scratch" && cargo clippy --lib --quiet -- -D warnings >/dev/null 2>&1); then
            echo "src/$module: clippy accepted: $plant" >&2
            status=1
        else
            echo "src/$module: rejected as it should: $plant"
        fi
    done
    cp "src/$module/mod.rs" "$scratch/src/$module/mod.rs"
done
exit "$status"
