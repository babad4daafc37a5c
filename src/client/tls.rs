//! TLS set-up for the DERP client: the three ways of trusting a server (none, a
//! `sha256-raw:` pin, explicit roots) and reading the server key from the meta certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme};

use crate::proto::key::{hex_lower, parse_hex_32, PublicKey};

/// Prefix of a certificate pin, as in a DERP node's `CertName`.
pub const PIN_PREFIX: &str = "sha256-raw:";

/// Marker in the meta certificate's subject CN, followed by the server key in hex.
pub const META_CERT_MARKER: &[u8] = b"derpkey";

/// How the client decides to trust the server's certificate.
#[derive(Clone, Debug)]
pub enum TlsVerify {
    /// Accept any certificate (signatures over the handshake are still checked).
    Insecure,
    /// `sha256-raw:<64 lowercase hex>` of the one non-meta certificate the server presents.
    Pin(String),
    /// Standard chain validation against these roots and the server name.
    Roots(Vec<CertificateDer<'static>>),
    /// No TLS at all (cleartext DERP, for tests of plain mode).
    Plaintext,
}

/// Finds the DERP server key in a presented chain: the first certificate whose bytes hold
/// `derpkey` followed by 64 hex digits (the meta certificate's subject CN).
pub fn meta_cert_key(chain: &[CertificateDer<'_>]) -> Option<PublicKey> {
    chain
        .iter()
        .find_map(|cert| key_after_marker(cert.as_ref()))
}

fn key_after_marker(der: &[u8]) -> Option<PublicKey> {
    let hex_len = 64usize;
    let window = META_CERT_MARKER.len().checked_add(hex_len)?;
    der.windows(window).find_map(|candidate| {
        let (marker, hex) = candidate.split_at_checked(META_CERT_MARKER.len())?;
        if marker != META_CERT_MARKER {
            return None;
        }
        let text = std::str::from_utf8(hex).ok()?;
        parse_hex_32(text).map(PublicKey)
    })
}

/// True if the certificate carries the meta-certificate marker anywhere in its bytes.
fn is_meta_cert(cert: &CertificateDer<'_>) -> bool {
    cert.as_ref()
        .windows(META_CERT_MARKER.len())
        .any(|window| window == META_CERT_MARKER)
}

/// `sha256-raw:<lowercase hex>` of a certificate's DER bytes.
pub fn cert_pin(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    format!("{PIN_PREFIX}{}", hex_lower(digest.as_ref()))
}

/// Accepts the chain as is; only the handshake signatures are verified.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

/// Accepts exactly one non-meta certificate whose SHA-256 equals the pin.
#[derive(Debug)]
struct PinnedCert {
    provider: Arc<CryptoProvider>,
    pin: String,
}

fn check_pin(
    pin: &str,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), TlsError> {
    let mut others = std::iter::once(end_entity)
        .chain(intermediates)
        .filter(|cert| !is_meta_cert(cert));
    let (Some(only), None) = (others.next(), others.next()) else {
        return Err(TlsError::General(
            "pinned server must present exactly one non-meta certificate".into(),
        ));
    };
    if cert_pin(only) == pin {
        Ok(())
    } else {
        Err(TlsError::General(
            "certificate does not match the pin".into(),
        ))
    }
}

macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!();
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        check_pin(&self.pin, end_entity, intermediates).map(|()| ServerCertVerified::assertion())
    }

    signature_checks!();
}

/// Builds the rustls client configuration for `verify` (ring provider, TLS 1.3 and, with
/// the `tls12` feature, 1.2; no ALPN, like Tailscale clients). `None` for plaintext.
pub fn client_tls_config(verify: &TlsVerify) -> Result<Option<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        TlsVerify::Plaintext => return Ok(None),
        TlsVerify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
            .with_no_client_auth(),
        TlsVerify::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                provider,
                pin: pin.clone(),
            }))
            .with_no_client_auth(),
        TlsVerify::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root.clone())?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_key_is_found_in_any_position() {
        let key = PublicKey([0x5a; 32]);
        let mut der = b"\x30\x82junk-before-CN".to_vec();
        der.extend_from_slice(b"derpkey");
        der.extend_from_slice(key.to_hex().to_uppercase().as_bytes());
        der.extend_from_slice(b"after");
        let chain = [
            CertificateDer::from(b"leaf without marker".to_vec()),
            CertificateDer::from(der),
        ];
        assert_eq!(meta_cert_key(&chain), Some(key));
        assert!(is_meta_cert(&chain[1]));
        assert!(!is_meta_cert(&chain[0]));
        // The marker with too few hex digits does not count.
        let short = CertificateDer::from(b"derpkey0123".to_vec());
        assert_eq!(meta_cert_key(&[short]), None);
    }

    #[test]
    fn pin_rules() {
        let leaf = CertificateDer::from(b"leaf".to_vec());
        let meta = CertificateDer::from(format!("derpkey{}", "00".repeat(32)).into_bytes());
        let other = CertificateDer::from(b"intermediate".to_vec());
        let real_pin = cert_pin(&leaf);
        assert!(real_pin.starts_with(PIN_PREFIX));
        assert_eq!(real_pin.len(), PIN_PREFIX.len() + 64);
        assert!(check_pin(&real_pin, &leaf, &[]).is_ok());
        assert!(check_pin(&real_pin, &leaf, std::slice::from_ref(&meta)).is_ok());
        assert!(check_pin(&real_pin, &leaf, std::slice::from_ref(&other)).is_err());
        assert!(
            check_pin(&real_pin, &meta, &[]).is_err(),
            "nothing left after skipping"
        );
        assert!(check_pin(&real_pin.to_uppercase(), &leaf, &[]).is_err());
        assert!(check_pin(&cert_pin(&other), &leaf, &[]).is_err());
    }

    #[test]
    fn sha256_known_answer() {
        let cert = CertificateDer::from(b"abc".to_vec());
        assert_eq!(
            cert_pin(&cert),
            "sha256-raw:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
