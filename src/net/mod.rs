//! The I/O edge of tinyderp: listeners, TLS, the HTTP front, per-client tasks, the STUN
//! socket, socket options and signals. This is the only module that touches sockets, the
//! clock and the async runtime; everything it learns it hands to `relay` as events with
//! `now`, and it carries out the actions `relay` returns.

pub mod check_probe;
mod check_watch;
mod conn;
mod derp;
mod http;
mod limits;
mod listen;
mod logging;
mod metrics;
mod shared;
mod stun;

pub use logging::RateLimitedLog;
pub use shared::{run, RunError};
