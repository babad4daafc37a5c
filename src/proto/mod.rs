//! Sans-IO wire formats of the DERP protocol and its neighbours.
//!
//! Nothing here performs I/O or reads the clock: functions take byte slices and return
//! values or errors, so every decoder can be unit-tested and fuzzed in isolation.

// Everything here parses bytes from the network: no panics, no unchecked indexing or arithmetic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod dns;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod json;
pub mod key;
#[cfg(test)]
mod noise;
pub mod portmap;
pub mod stun;
pub mod upnp;
pub mod websocket;
