//! TLS certificates and the rustls server configuration.
//!
//! Two certificate sources: a self-signed certificate generated once and kept (the default on a
//! router, pinned by clients through `CertName = "sha256-raw:<hex>"`), or operator-supplied PEM
//! files (`manual`, as derper names them). Every handshake serves the certificate chain plus the
//! DERP "meta certificate" that tells clients the server's DERP key (docs/protocol.md §1.8), and
//! the chain can be swapped at run time (SIGHUP) without touching established connections.
//!
//! Everything here is pure (bytes in, values out); reading and writing the files is
//! `net::cert_files`. By concern:
//! - [`generate`] (with [`der`]): writing the self-signed and meta certificates;
//! - [`selfsigned`]: whether a kept self-signed certificate can still be served;
//! - [`manual`]: operator-supplied PEM files, parsing and key/certificate checks;
//! - [`meta`]: the DERP meta certificate;
//! - [`resolver`]: the certificate served to each handshake, swapped on reload;
//! - [`tls`]: the crypto provider, cipher order and rustls server configuration.

use std::net::IpAddr;
use std::path::PathBuf;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::proto::key::hex_lower;

pub mod der;
pub mod ed25519;
mod error;
pub mod generate;
pub mod manual;
pub mod meta;
pub(crate) mod provider;
pub mod resolver;
pub mod selfsigned;
pub mod tls;
pub mod x25519;

pub use error::CertError;
pub use manual::{check_valid_for, manual_paths};
pub use meta::meta_cert;
pub use provider::{aes_is_faster, cipher_suites};
pub use resolver::CertResolver;
pub use tls::{server_config, server_config_with_order};

/// File name of the generated certificate inside the self-signed directory.
pub const SELF_SIGNED_CERT_FILE: &str = "tinyderp.crt";
/// File name of the generated certificate's private key (PKCS#8 PEM, mode 0600).
pub const SELF_SIGNED_KEY_FILE: &str = "tinyderp.key";
/// Suffix given to a replaced certificate and key, kept so an operator can go back.
pub const OLD_SUFFIX: &str = ".old";
/// Mode of the generated certificate file: public data, readable by anyone (as derper does).
pub const CERT_FILE_MODE: u32 = 0o644;

/// Prefix of a DERP map `CertName` that pins the leaf certificate (docs/protocol.md §6.4).
pub const PIN_PREFIX: &str = "sha256-raw:";
/// Common Name prefix of the meta certificate; the rest is the DERP key in lowercase hex.
pub const META_CERT_CN_PREFIX: &str = "derpkey";

/// Largest PEM file we read. Certificate chains are a few KiB; the bound keeps a wrong path
/// (a log file, a disk image) from being read into a router's small memory.
pub const MAX_PEM_FILE_LEN: u64 = 1 << 20;

/// Entries in the TLS session-resumption cache. Each is a few hundred bytes; DERP clients hold
/// one long connection, so resumption is rare and a small cache is enough. When it is full,
/// rustls evicts the oldest entry (the drop policy; evictions only cost a full handshake).
pub const SESSION_CACHE_ENTRIES: usize = 64;
/// TLS 1.3 session tickets sent after each handshake (rustls default is 2; one is enough and
/// keeps the cache from filling twice as fast).
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 1;

/// The only ALPN protocol offered: `/derp` is an HTTP/1.1 upgrade and cannot run over HTTP/2
/// (docs/protocol.md §1.9). Tailscale clients send no ALPN at all, which is also accepted.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Validity window of every certificate we generate, as (year, month, day) UTC.
///
/// NotBefore is far in the past because a router boots with its clock at the firmware build
/// date (or 1970) until NTP answers, and a client must accept the certificate at any moment.
/// NotAfter is far in the future because the certificate must never be renewed: renewal would
/// change the pin in every client's DERP map. Clients that pin with `sha256-raw:` check only
/// that "now" lies in the window (their own check, not the platform verifier, so the ~1-year
/// limit Apple applies to publicly trusted certificates does not apply). 2099 needs
/// GeneralizedTime encoding, which every X.509 parser in use reads.
pub const VALID_FROM_YMD: (i32, u8, u8) = (2000, 1, 1);
/// See [`VALID_FROM_YMD`].
pub const VALID_UNTIL_YMD: (i32, u8, u8) = (2099, 12, 31);

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Generate once into `dir` and keep reusing it while it covers `names` and `ips`.
    SelfSigned {
        /// Directory holding `tinyderp.crt` and `tinyderp.key` (created with mode 0700).
        dir: PathBuf,
        /// DNS names (or IP literals) to put in the SANs; the first is also the CN.
        names: Vec<String>,
        /// IP addresses to put in the SANs.
        ips: Vec<IpAddr>,
    },
    /// Operator-supplied PEM files (see [`manual_paths`]).
    Manual {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key: PKCS#1 RSA, SEC1 EC or PKCS#8.
        key: PathBuf,
    },
}

/// A certificate chain with its key, ready to serve.
#[derive(Debug)]
pub struct LoadedCert {
    /// Certificate chain, leaf first (without the meta certificate).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// `sha256-raw:` + lowercase hex SHA-256 of the leaf's DER: the DERP map `CertName`.
    pub pin: String,
    /// True when the certificate was generated by this call.
    pub generated: bool,
    /// Set when an existing self-signed certificate was set aside (kept with `.old`) and a new
    /// one generated: the reason, for a log line saying the pin changed and the DERP map needs
    /// the new `CertName`.
    pub pin_changed: Option<String>,
}

impl Clone for LoadedCert {
    fn clone(&self) -> LoadedCert {
        LoadedCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            pin: self.pin.clone(),
            generated: self.generated,
            pin_changed: self.pin_changed.clone(),
        }
    }
}

/// `sha256-raw:` + lowercase hex SHA-256 of `leaf`'s DER encoding (the whole certificate).
pub fn pin_of(leaf: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    format!("{PIN_PREFIX}{}", hex_lower(digest.as_ref()))
}

#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
pub(crate) mod tests;
