//! Sans-IO wire formats of the DERP protocol and its neighbours.
//!
//! Nothing here performs I/O or reads the clock: functions take byte slices and return
//! values or errors, so every decoder can be unit-tested and fuzzed in isolation.

pub mod frame;
pub mod key;
