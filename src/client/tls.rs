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
#[cfg(any(test, feature = "tls-client"))]
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

/// Accepts any certificate chain as is; only the handshake signatures are verified. The
/// one accept-any verifier of the crate: the client's `TlsVerify::Insecure` and tests that
/// look at what a server presents use it.
#[derive(Debug)]
pub struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyCert {
    /// A verifier checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: impl Into<Arc<CryptoProvider>>) -> AcceptAnyCert {
        AcceptAnyCert {
            provider: provider.into(),
        }
    }
}

#[cfg(feature = "tls-client")]
/// Accepts exactly one non-meta certificate whose SHA-256 equals the pin, which must be
/// within its validity period and, when a DNS name was dialed, valid for that name
/// (the checks of Go's `tlsdial.SetConfigExpectedCertHash`).
#[derive(Debug)]
struct PinnedCert {
    provider: Arc<CryptoProvider>,
    pin: String,
}

#[cfg(feature = "tls-client")]
fn check_pin(
    pin: &str,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), TlsError> {
    let mut others = std::iter::once(end_entity)
        .chain(intermediates)
        .filter(|cert| !is_meta_cert(cert));
    let (Some(only), None) = (others.next(), others.next()) else {
        return Err(TlsError::General(
            "pinned server must present exactly one non-meta certificate".into(),
        ));
    };
    if cert_pin(only) != pin {
        return Err(TlsError::General(
            "certificate does not match the pin".into(),
        ));
    }
    // Like Go: the name is checked only when one was dialed (an IP dial has none).
    if let ServerName::DnsName(_) = server_name {
        webpki::EndEntityCert::try_from(only)
            .and_then(|cert| cert.verify_is_valid_for_subject_name(server_name))
            .map_err(|err| {
                TlsError::General(format!("pinned certificate not valid for the name: {err}"))
            })?;
    }
    let (not_before, not_after) = cert_validity(only.as_ref()).ok_or_else(|| {
        TlsError::General("pinned certificate has an unreadable validity period".into())
    })?;
    let now = now.as_secs();
    if now < not_before {
        return Err(TlsError::General(
            "pinned certificate is not valid yet (is the clock right?)".into(),
        ));
    }
    if now > not_after {
        return Err(TlsError::General("pinned certificate has expired".into()));
    }
    Ok(())
}

#[cfg(feature = "tls-client")]
/// Splits one DER element off `input`: (tag, contents, rest). Definite lengths up to
/// 4 length bytes only, which covers every certificate.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte))
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

#[cfg(feature = "tls-client")]
/// Reads (notBefore, notAfter) in Unix seconds from a certificate's TBSCertificate:
/// `SEQ { SEQ { [0] version?, serial, signature alg, issuer, SEQ { time, time } ... } ... }`.
fn cert_validity(der: &[u8]) -> Option<(u64, u64)> {
    const SEQUENCE: u8 = 0x30;
    const VERSION_TAG: u8 = 0xa0;
    let (SEQUENCE, cert, _) = der_element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_element(cert)? else {
        return None;
    };
    let (tag, _, mut rest) = der_element(tbs)?;
    if tag == VERSION_TAG {
        (_, _, rest) = der_element(rest)?; // serial
    }
    let (_, _, rest) = der_element(rest)?; // signature algorithm
    let (_, _, rest) = der_element(rest)?; // issuer
    let (SEQUENCE, validity, _) = der_element(rest)? else {
        return None;
    };
    let (before_tag, before, rest) = der_element(validity)?;
    let (after_tag, after, _) = der_element(rest)?;
    Some((der_time(before_tag, before)?, der_time(after_tag, after)?))
}

#[cfg(feature = "tls-client")]
/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18)
/// to Unix seconds; times before 1970 read as 0.
fn der_time(tag: u8, text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let (yy, rest) = text.split_at_checked(2)?;
            let yy: i64 = yy.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
        }
        0x18 => {
            let (yyyy, rest) = text.split_at_checked(4)?;
            (yyyy.parse().ok()?, rest)
        }
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |at: usize| -> Option<i64> { rest.get(at..at + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    // Days from 1970-01-01 to the civil date (proleptic Gregorian), Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(u64::try_from(seconds).unwrap_or(0))
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

#[cfg(feature = "tls-client")]
impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        check_pin(&self.pin, end_entity, intermediates, server_name, now)
            .map(|()| ServerCertVerified::assertion())
    }

    signature_checks!();
}

/// Builds the rustls client configuration for `verify` (ring provider with the crate's
/// X25519, TLS 1.3 and, with the `tls12` feature, 1.2; no ALPN, like Tailscale clients).
/// `None` for plaintext.
#[cfg(feature = "tls-client")]
pub fn client_tls_config(verify: &TlsVerify) -> Result<Option<rustls::ClientConfig>, TlsError> {
    client_tls_config_offering(verify, &[])
}

/// [`client_tls_config`] offering only `suites`, in that order (empty: all of them).
#[cfg(feature = "tls-client")]
pub fn client_tls_config_offering(
    verify: &TlsVerify,
    suites: &[rustls::CipherSuite],
) -> Result<Option<rustls::ClientConfig>, TlsError> {
    let mut provider = crate::cert::provider::client_provider();
    if !suites.is_empty() {
        let all = std::mem::take(&mut provider.cipher_suites);
        provider.cipher_suites = suites
            .iter()
            .filter_map(|wanted| all.iter().copied().find(|have| have.suite() == *wanted))
            .collect();
        if provider.cipher_suites.is_empty() {
            return Err(TlsError::General(
                "no offered cipher suite is supported".into(),
            ));
        }
    }
    let provider = Arc::new(provider);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        TlsVerify::Plaintext => return Ok(None),
        TlsVerify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert::new(provider)))
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

/// Why TLS is refused in a build without the `tls-client` feature.
#[cfg(not(feature = "tls-client"))]
const NO_TLS_CLIENT: &str = "this tinyderp was built without the tls-client feature";

/// Without the `tls-client` feature (the router builds) only plaintext works: every other
/// [`TlsVerify`] is refused, so the rustls client, its certificate verification and the
/// signature algorithms are not linked (see docs/building.md for what that saves).
#[cfg(not(feature = "tls-client"))]
pub fn client_tls_config(verify: &TlsVerify) -> Result<Option<rustls::ClientConfig>, TlsError> {
    match verify {
        TlsVerify::Plaintext => Ok(None),
        _ => Err(TlsError::General(NO_TLS_CLIENT.into())),
    }
}

/// Without the `tls-client` feature: as [`client_tls_config`], whatever the suites.
#[cfg(not(feature = "tls-client"))]
pub fn client_tls_config_offering(
    verify: &TlsVerify,
    _suites: &[rustls::CipherSuite],
) -> Result<Option<rustls::ClientConfig>, TlsError> {
    client_tls_config(verify)
}

/// What TLS negotiated: the cipher suite, and whether it is TLS 1.3 (fast start needs it).
#[derive(Clone, Copy, Debug)]
pub(super) struct Negotiated {
    /// The suite the server chose.
    pub suite: rustls::CipherSuite,
    /// True for TLS 1.3.
    pub tls13: bool,
}

/// What [`wrap`] hands back: the stream, the server's certificates, and what TLS
/// negotiated (`None` over plaintext).
type Wrapped = (
    super::BoxedStream,
    Vec<CertificateDer<'static>>,
    Option<Negotiated>,
);

/// Runs the TLS handshake over `tcp` as `cfg.verify` says, or passes `tcp` through for
/// plaintext. The only place the client touches rustls's connection types, so a build
/// without the `tls-client` feature links none of them.
#[cfg(feature = "tls-client")]
pub(super) async fn wrap(
    cfg: &super::ClientConfig,
    tcp: smol::net::TcpStream,
) -> std::io::Result<Wrapped> {
    use std::io;
    let Some(config) =
        client_tls_config_offering(&cfg.verify, &cfg.tls_suites).map_err(io::Error::other)?
    else {
        return Ok((Box::new(tcp), Vec::new(), None));
    };
    let name_text = if cfg.server_name.is_empty() {
        cfg.addr.ip().to_string()
    } else {
        cfg.server_name.clone()
    };
    let name = ServerName::try_from(name_text)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
    let tls = futures_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let session = tls.get_ref().1;
    let certs = session
        .peer_certificates()
        .map(|certs| certs.iter().map(|cert| cert.clone().into_owned()).collect())
        .unwrap_or_default();
    let negotiated = session.negotiated_cipher_suite().map(|suite| Negotiated {
        suite: suite.suite(),
        tls13: session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
    });
    Ok((Box::new(tls), certs, negotiated))
}

/// Without the `tls-client` feature: plaintext passes through, anything else is refused.
#[cfg(not(feature = "tls-client"))]
pub(super) async fn wrap(
    cfg: &super::ClientConfig,
    tcp: smol::net::TcpStream,
) -> std::io::Result<Wrapped> {
    match cfg.verify {
        TlsVerify::Plaintext => Ok((Box::new(tcp), Vec::new(), None)),
        _ => Err(std::io::Error::other(NO_TLS_CLIENT)),
    }
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

    #[cfg(feature = "tls-client")]
    fn cert(
        name: &str,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    /// 2026-11-22T00:00:00Z.
    #[cfg(feature = "tls-client")]
    const NOW: u64 = 1_795_305_600;

    #[cfg(feature = "tls-client")]
    #[test]
    fn pin_rules() {
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW));
        let ip: ServerName<'static> = ServerName::try_from("127.0.0.1").unwrap();
        let dns: ServerName<'static> = ServerName::try_from("derp.example.com").unwrap();
        let other_dns: ServerName<'static> = ServerName::try_from("other.example.com").unwrap();
        let leaf = cert("derp.example.com", (2000, 1, 1), (2100, 1, 1));
        let meta = CertificateDer::from(format!("derpkey{}", "00".repeat(32)).into_bytes());
        let other = cert("derp.example.com", (2000, 1, 1), (2100, 1, 1));
        let pin = cert_pin(&leaf);
        assert!(pin.starts_with(PIN_PREFIX));
        assert_eq!(pin.len(), PIN_PREFIX.len() + 64);

        assert!(check_pin(&pin, &leaf, &[], &ip, now).is_ok());
        assert!(check_pin(&pin, &leaf, &[], &dns, now).is_ok());
        assert!(check_pin(&pin, &leaf, std::slice::from_ref(&meta), &ip, now).is_ok());
        assert!(check_pin(&pin, &leaf, std::slice::from_ref(&other), &ip, now).is_err());
        assert!(
            check_pin(&pin, &meta, &[], &ip, now).is_err(),
            "nothing left after skipping"
        );
        assert!(check_pin(&pin.to_uppercase(), &leaf, &[], &ip, now).is_err());
        assert!(check_pin(&cert_pin(&other), &leaf, &[], &ip, now).is_err());
        // Name checked only for DNS names, like Go (an IP dial has no server name).
        assert!(check_pin(&pin, &leaf, &[], &other_dns, now).is_err());

        let expired = cert("derp.example.com", (2000, 1, 1), (2001, 1, 1));
        let err = check_pin(&cert_pin(&expired), &expired, &[], &ip, now).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        let future = cert("derp.example.com", (2099, 1, 1), (2100, 1, 1));
        let err = check_pin(&cert_pin(&future), &future, &[], &ip, now).unwrap_err();
        assert!(err.to_string().contains("not valid yet"), "{err}");
    }

    #[cfg(feature = "tls-client")]
    #[test]
    fn validity_is_read_from_der() {
        // UTCTime until 2049, GeneralizedTime from 2050 on (RFC 5280).
        let leaf = cert("a.example", (1975, 1, 1), (2050, 3, 1));
        assert_eq!(cert_validity(&leaf), Some((157_766_400, 2_529_705_600)));
        let leaf = cert("a.example", (2026, 11, 22), (4096, 1, 1));
        assert_eq!(cert_validity(&leaf).map(|(b, _)| b), Some(NOW));
        assert_eq!(der_time(0x17, b"991231235959Z"), Some(946_684_799));
        assert_eq!(der_time(0x18, b"20000229000000Z"), Some(951_782_400));
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x17, b"991231235959"), None);
        assert_eq!(der_time(0x13, b"991231235959Z"), None);
        assert_eq!(cert_validity(b"\x30\x03\x30\x01"), None);
        assert_eq!(cert_validity(&[]), None);
    }

    #[cfg(not(feature = "tls-client"))]
    #[test]
    fn without_tls_client_only_plaintext_connects() {
        assert!(matches!(client_tls_config(&TlsVerify::Plaintext), Ok(None)));
        for verify in [TlsVerify::Insecure, TlsVerify::Pin(String::new())] {
            let err = client_tls_config(&verify).unwrap_err();
            assert!(err.to_string().contains("tls-client"), "{err}");
        }
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
