//! Test-only pseudo-random bytes for the "never panics on noise" sweeps of every decoder.
//!
//! A fixed xorshift64 generator keeps the sweeps deterministic: a failure seen once can be
//! reproduced from the seed printed by the test.

/// Returns `len` bytes from the xorshift64 stream at `seed`, advancing `seed`.
pub(crate) fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 24) as u8
        })
        .collect()
}
