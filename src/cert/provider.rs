//! The server's crypto provider, shared by the TLS configuration and the certificate
//! resolver (which checks that a loaded key matches its certificate).

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};

/// No signature verification algorithms: see [`provider`].
const NO_SIGNATURE_VERIFICATION: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[],
    mapping: &[],
};

/// The server's crypto provider: ring's cipher suites, key exchange groups and key loading,
/// but no signature verification algorithms. A server that asks for no client certificate
/// never verifies a signature, and leaving them out keeps RSA/ECDSA/Ed25519 verification code
/// out of the router binary (the client in `client/` builds its own provider).
pub(crate) fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.signature_verification_algorithms = NO_SIGNATURE_VERIFICATION;
    provider
}
