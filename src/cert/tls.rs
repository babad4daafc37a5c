//! The crypto provider, cipher order and rustls server configuration for DERP over TLS.

use std::sync::Arc;

use rustls::server::ServerConfig;
use rustls::{CipherSuite, SupportedCipherSuite};

use super::provider::provider;
use super::{
    CertError, CertResolver, ALPN_HTTP_1_1, SESSION_CACHE_ENTRIES, TLS13_TICKETS_PER_HANDSHAKE,
};

/// True when the CPU has AES instructions that make AES-GCM faster than ChaCha20-Poly1305
/// (on x86 GCM also needs carry-less multiply, which ring uses alongside AES-NI; Rust's
/// aarch64 `aes` feature already includes PMULL). MIPS and 32-bit ARM routers have neither.
pub fn cpu_has_aes() -> bool {
    cpu_has_aes_impl()
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn cpu_has_aes_impl() -> bool {
    std::is_x86_feature_detected!("aes") && std::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn cpu_has_aes_impl() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn cpu_has_aes_impl() -> bool {
    false
}

fn is_chacha(suite: &SupportedCipherSuite) -> bool {
    matches!(
        suite.suite(),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// The server's cipher suites in preference order: AES-GCM first when `prefer_aes`, else
/// ChaCha20-Poly1305 first (several times faster in software on MIPS/ARM routers). With
/// `ignore_client_order` the server's first suite the client also offers wins.
pub fn cipher_suites(prefer_aes: bool) -> Vec<SupportedCipherSuite> {
    let all = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    let (chacha, mut others): (Vec<_>, Vec<_>) = all.iter().copied().partition(is_chacha);
    // AES-128-GCM before AES-256-GCM, as Go orders them: fewer rounds, about 5 % fewer
    // instructions per relayed byte (measured with bench/), and the same security margin
    // for a relay whose payloads are end-to-end encrypted by WireGuard anyway.
    others.sort_by_key(|suite| format!("{:?}", suite.suite()).contains("AES_256"));
    if prefer_aes {
        others.into_iter().chain(chacha).collect()
    } else {
        chacha.into_iter().chain(others).collect()
    }
}

/// The TLS versions served: 1.3 only, unless the `tls12` feature adds 1.2 for old clients.
#[cfg(not(feature = "tls12"))]
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
/// The TLS versions served: 1.3 only, unless the `tls12` feature adds 1.2 for old clients.
#[cfg(feature = "tls12")]
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The rustls server configuration for DERP, cipher order chosen by [`cpu_has_aes`].
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, CertError> {
    server_config_with_order(resolver, cpu_has_aes())
}

/// [`server_config`] with the cipher order given explicitly (tests, or an operator override).
pub fn server_config_with_order(
    resolver: Arc<CertResolver>,
    prefer_aes: bool,
) -> Result<Arc<ServerConfig>, CertError> {
    let mut provider = provider();
    provider.cipher_suites = cipher_suites(prefer_aes);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|err| CertError::Tls {
            detail: err.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config.ignore_client_order = true;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    Ok(Arc::new(config))
}
