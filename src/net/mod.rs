//! The I/O edge of tinyderp: listeners, TLS, the HTTP front, per-client tasks, the STUN
//! socket, socket options, signals, and the admission checks' sockets. This is the only
//! module that touches sockets, the clock and the async runtime; everything it learns it
//! hands to `relay` as events with `now`, and it carries out the actions `relay` returns.
//!
//! Inside, imports point one way (no cycles): `run` -> `accept` -> `session`/`http` ->
//! the shared parts (`server`, `hub`, `pacing`, `admission`, `metrics`) -> `deadline`,
//! `logging`, `error`.

mod accept;
mod admission;
pub mod cert_files;
pub mod check_probe;
mod check_watch;
mod child;
mod deadline;
mod dns;
mod error;
mod http;
mod hub;
mod listen;
pub mod log_backend;
mod logging;
mod mesh;
mod mesh_status;
mod metrics;
mod pacing;
pub mod portmap;
mod run;
mod server;
mod session;
pub(crate) mod statefile;
pub mod status_fetch;
mod status_socket;
mod stun;
mod task;
mod websocket;

pub use admission::AdmissionSetupError;
pub use error::RunError;
pub use logging::RateLimitedLog;
pub use pacing::RateConfigError;
pub use run::run;
