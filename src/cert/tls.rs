//! The crypto provider, cipher order and rustls server configuration for DERP over TLS.

use std::sync::Arc;

use rustls::server::ServerConfig;

use super::provider::{aes_is_faster, cipher_suites, provider};
use super::{
    CertError, CertResolver, ALPN_HTTP_1_1, SESSION_CACHE_ENTRIES, TLS13_TICKETS_PER_HANDSHAKE,
};

/// The TLS versions served: 1.3 only, unless the `tls12` feature adds 1.2 for old clients.
#[cfg(not(feature = "tls12"))]
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
/// The TLS versions served: 1.3 only, unless the `tls12` feature adds 1.2 for old clients.
#[cfg(feature = "tls12")]
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The rustls server configuration for DERP, cipher order chosen by [`aes_is_faster`].
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, CertError> {
    server_config_with_order(resolver, aes_is_faster())
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
