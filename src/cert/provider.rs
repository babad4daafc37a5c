//! The crypto providers: the server's, shared by the TLS configuration and the certificate
//! resolver (which checks that a loaded key matches its certificate), and the key exchange
//! groups every provider of the crate uses (the client's too).

use rustls::crypto::{CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};

use super::x25519::X25519_GROUP;

/// No signature verification algorithms: see [`provider`].
const NO_SIGNATURE_VERIFICATION: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[],
    mapping: &[],
};

/// ring's key exchange groups in ring's order (X25519, P-256, P-384), with X25519 computed by
/// curve25519-dalek ([`super::x25519`]): the NaCl box links it anyway, ring's copy then goes.
pub fn kx_groups() -> Vec<&'static dyn SupportedKxGroup> {
    rustls::crypto::ring::DEFAULT_KX_GROUPS
        .iter()
        .map(|group| {
            if group.name() == rustls::NamedGroup::X25519 {
                X25519_GROUP
            } else {
                *group
            }
        })
        .collect()
}

/// ring's provider with [`kx_groups`]: the base of every provider in the crate.
pub fn base_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = kx_groups();
    provider
}

/// The server's crypto provider: ring's cipher suites and key loading, [`kx_groups`], but no
/// signature verification algorithms. A server that asks for no client certificate never
/// verifies a signature, and leaving them out keeps RSA/ECDSA/Ed25519 verification code out
/// of the router binary (the client in `client/` builds its own provider).
pub(crate) fn provider() -> CryptoProvider {
    let mut provider = base_provider();
    provider.signature_verification_algorithms = NO_SIGNATURE_VERIFICATION;
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_is_ours_and_the_order_is_rings() {
        let ours: Vec<_> = kx_groups().iter().map(|group| group.name()).collect();
        let rings: Vec<_> = rustls::crypto::ring::DEFAULT_KX_GROUPS
            .iter()
            .map(|group| group.name())
            .collect();
        assert_eq!(ours, rings);
        assert_eq!(ours.first(), Some(&rustls::NamedGroup::X25519));
        let first = kx_groups()[0];
        assert!(std::ptr::addr_eq(first, X25519_GROUP));
    }
}
