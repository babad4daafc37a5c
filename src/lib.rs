//! tinyderp: a small Tailscale-compatible DERP relay and STUN server.
//!
//! Layout (dependencies point one way, `main -> net -> (admit, keyfile, relay, ...) -> proto`):
//! - [`proto`]: sans-IO wire formats (frames, keys, handshake boxes, STUN, HTTP heads).
//! - [`relay`]: synchronous server state; bytes, events and `now` in, actions out.
//! - [`net`]: the only module that touches sockets, files, clocks and the async runtime.
//! - [`client`]: a DERP client built on `proto`, used by tests, the mesh and the load tool.
//! - [`cli`] (flag definitions), [`config`] (validation), [`command`] (arguments to what
//!   to do, joining the two): command line to validated [`config::Config`]; [`derpmap`]: DERP map snippets.
//! - [`admit`]: who may use the relay, as pure policy (allowlist, whois and admission URL
//!   requests and verdicts); its sockets are in `net`.
//! - [`keyfile`]: the server key file's format (pure); its file I/O is in `net`.
//! - [`text`]: user-visible quoting and durations that do not depend on `Debug` formatting.

pub mod admit;
pub mod cert;
pub mod check;
pub mod cli;
pub mod client;
pub mod command;
pub mod config;
pub mod derpmap;
pub mod keyfile;
pub mod net;
pub mod proto;
pub mod relay;
pub mod text;
