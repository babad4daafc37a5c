//! The crypto providers: the server's, shared by the TLS configuration and the certificate
//! resolver (which checks that a loaded key matches its certificate), and the key exchange
//! groups every provider of the crate uses (the client's too).

use std::sync::Arc;

use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SupportedKxGroup,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;

use super::ed25519::Ed25519Key;
use super::x25519::X25519_GROUP;

/// No signature verification algorithms: see [`provider`].
const NO_SIGNATURE_VERIFICATION: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[],
    mapping: &[],
};

/// ring's key exchange groups in ring's order (X25519, P-256, P-384), with X25519 computed by
/// curve25519-dalek ([`super::x25519`]): the NaCl box links it anyway, ring's copy then goes.
/// Listed one by one: going through ring's own list would link ring's X25519 again.
pub fn kx_groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![
        X25519_GROUP,
        rustls::crypto::ring::kx_group::SECP256R1,
        rustls::crypto::ring::kx_group::SECP384R1,
    ]
}

/// Random bytes for rustls from the kernel (`getrandom(2)`, as ring's own source).
#[derive(Debug)]
struct Random;

impl SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        getrandom::getrandom(buf).map_err(|_| GetRandomFailed)
    }
}

/// Loads private keys as ring's provider does (RSA, then ECDSA P-256/P-384, then Ed25519;
/// same error when none fits), with Ed25519 signed by [`super::ed25519`] instead of ring.
#[derive(Debug)]
struct Keys;

impl KeyProvider for Keys {
    fn load_private_key(
        &self,
        der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        if let Ok(rsa) = rustls::crypto::ring::sign::RsaSigningKey::new(&der) {
            return Ok(Arc::new(rsa));
        }
        if let Ok(ecdsa) = rustls::crypto::ring::sign::any_ecdsa_type(&der) {
            return Ok(ecdsa);
        }
        if let PrivateKeyDer::Pkcs8(pkcs8) = &der {
            if let Some(ed25519) = Ed25519Key::from_pkcs8(pkcs8.secret_pkcs8_der()) {
                return Ok(Arc::new(ed25519));
            }
        }
        Err(rustls::Error::General(
            "failed to parse private key as RSA, ECDSA, or EdDSA".into(),
        ))
    }
}

/// ring's cipher suites, [`kx_groups`], Ed25519 keys through curve25519-dalek and no
/// signature verification algorithms: the server's provider and the base of the client's.
/// Built field by field, not from ring's `default_provider()`, whose lists would keep ring's
/// X25519 linked.
fn base_provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
        kx_groups: kx_groups(),
        signature_verification_algorithms: NO_SIGNATURE_VERIFICATION,
        secure_random: &Random,
        key_provider: &Keys,
    }
}

/// The server's crypto provider: [`base_provider`]. A server that asks for no client
/// certificate never verifies a signature, and leaving the verification algorithms out
/// keeps RSA/ECDSA/Ed25519 verification code out of the router binary.
pub(crate) fn provider() -> CryptoProvider {
    base_provider()
}

/// The signature algorithms the client verifies with: the same list and scheme mapping as
/// ring's provider (ECDSA P-256/P-384, Ed25519, RSA PSS and PKCS#1 2048-8192 bits), named
/// here so that the client never calls ring's `default_provider()`, whose key loading and
/// key exchange lists would link ring's Ed25519 signing and X25519 again.
#[cfg(any(test, feature = "tls-client"))]
static CLIENT_VERIFICATION: WebPkiSupportedAlgorithms = {
    use rustls::SignatureScheme as S;
    use webpki::ring as alg;
    WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                S::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                S::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (S::ED25519, &[alg::ED25519]),
            (
                S::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (S::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
            (S::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

/// The client's crypto provider (the DERP client, https:// admission URLs): the server's
/// plus [`CLIENT_VERIFICATION`], which only a build with a TLS client links.
#[cfg(any(test, feature = "tls-client"))]
pub fn client_provider() -> CryptoProvider {
    let mut provider = base_provider();
    provider.signature_verification_algorithms = CLIENT_VERIFICATION;
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_rings_but_for_x25519_keys_and_randomness() {
        let ring = rustls::crypto::ring::default_provider();
        let names = |provider: &CryptoProvider| -> Vec<_> {
            provider
                .kx_groups
                .iter()
                .map(|group| group.name())
                .collect()
        };
        let suites = |provider: &CryptoProvider| -> Vec<_> {
            provider
                .cipher_suites
                .iter()
                .map(|suite| suite.suite())
                .collect()
        };
        for ours in [provider(), client_provider()] {
            assert_eq!(names(&ours), names(&ring));
            assert_eq!(suites(&ours), suites(&ring));
            let mut bytes = [0u8; 32];
            ours.secure_random.fill(&mut bytes).unwrap();
            assert_ne!(bytes, [0u8; 32]);
        }
        assert!(provider().signature_verification_algorithms.all.is_empty());
        let (ours, rings) = (
            client_provider().signature_verification_algorithms,
            ring.signature_verification_algorithms,
        );
        assert_eq!(ours.supported_schemes(), rings.supported_schemes());
        assert_eq!(format!("{:?}", ours.all), format!("{:?}", rings.all));
        assert_eq!(
            format!("{:?}", ours.mapping),
            format!("{:?}", rings.mapping)
        );
    }

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

    /// Every key type ring's provider loads, ours loads with the same algorithm and public
    /// key; what ring refuses, ours refuses with ring's message.
    #[test]
    fn keys_load_like_rings() {
        use crate::cert::testdata::{EC_SEC1_KEY, RSA_PKCS1_KEY};
        use rustls::pki_types::pem::PemObject;
        let rng = ring::rand::SystemRandom::new();
        let ed = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let p384 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        let keys = [
            PrivateKeyDer::from_pem_slice(RSA_PKCS1_KEY.as_bytes()).unwrap(),
            PrivateKeyDer::from_pem_slice(EC_SEC1_KEY.as_bytes()).unwrap(),
            PrivateKeyDer::Pkcs8(p384.as_ref().to_vec().into()),
            PrivateKeyDer::Pkcs8(ed.as_ref().to_vec().into()),
        ];
        let ring_keys = rustls::crypto::ring::default_provider().key_provider;
        for key in keys {
            let ours = Keys.load_private_key(key.clone_key()).unwrap();
            let theirs = ring_keys.load_private_key(key).unwrap();
            assert_eq!(ours.algorithm(), theirs.algorithm());
            assert_eq!(
                ours.public_key().unwrap().as_ref(),
                theirs.public_key().unwrap().as_ref()
            );
        }
        let junk = PrivateKeyDer::Pkcs8(vec![0x30, 0x03, 0x02, 0x01, 0x00].into());
        let ours = Keys.load_private_key(junk.clone_key()).unwrap_err();
        let theirs = ring_keys.load_private_key(junk).unwrap_err();
        assert_eq!(ours, theirs);
        assert!(std::ptr::addr_eq(provider().key_provider, &Keys));
        assert!(std::ptr::addr_eq(client_provider().key_provider, &Keys));
    }
}
