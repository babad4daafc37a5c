//! Generating the two certificates tinyderp makes itself, without an X.509 library: the
//! self-signed serving certificate (ECDSA P-256, generated once and kept, so its pin never
//! changes) and the DERP meta certificate. Pure: randomness comes from ring's system RNG,
//! nothing is read or written here (the state directory is handled by `net`).

use std::net::IpAddr;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};

use super::der::{self, oid, tag};
use super::{CertError, VALID_FROM_YMD, VALID_UNTIL_YMD};

/// A freshly generated certificate with its key, in the forms they are stored and served.
pub struct Generated {
    /// The certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The private key, PKCS#8 DER (ring's P-256 encoding, the one rcgen wrote too).
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl Generated {
    /// The certificate as PEM text (`CERTIFICATE`).
    pub fn cert_pem(&self) -> String {
        der::pem("CERTIFICATE", self.cert.as_ref())
    }

    /// The private key as PEM text (`PRIVATE KEY`, PKCS#8).
    pub fn key_pem(&self) -> String {
        der::pem("PRIVATE KEY", self.key.secret_pkcs8_der())
    }
}

fn generate_error(what: &'static str) -> impl Fn(ring::error::Unspecified) -> CertError {
    move |_| CertError::Generate {
        what,
        detail: "the system random number generator or the signer failed".to_string(),
    }
}

/// A new P-256 key as a PKCS#8 document.
fn new_key(rng: &SystemRandom, what: &'static str) -> Result<Vec<u8>, CertError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
        .map(|doc| doc.as_ref().to_vec())
        .map_err(generate_error(what))
}

/// The signer for a PKCS#8 P-256 key.
fn signer(rng: &SystemRandom, pkcs8: &[u8], what: &'static str) -> Result<EcdsaKeyPair, CertError> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, rng).map_err(|err| {
        CertError::Generate {
            what,
            detail: err.to_string(),
        }
    })
}

/// `AlgorithmIdentifier` ecdsa-with-SHA256 (parameters absent, RFC 5758).
fn ecdsa_sha256() -> Vec<u8> {
    der::seq(&[&der::oid(oid::ECDSA_WITH_SHA256)])
}

/// `SubjectPublicKeyInfo` of a P-256 key (uncompressed point).
fn p256_spki(point: &[u8]) -> Vec<u8> {
    let algorithm = der::seq(&[&der::oid(oid::EC_PUBLIC_KEY), &der::oid(oid::P256)]);
    der::seq(&[&algorithm, &der::bit_string(point)])
}

/// The parts of a TBSCertificate that vary between our two certificates.
struct Shape<'a> {
    serial: &'a [u8],
    common_name: &'a str,
    /// Encoded `Extension`s, in order.
    extensions: &'a [Vec<u8>],
}

/// Builds, signs and assembles a self-issued certificate of `shape` for `pair`.
fn sign_certificate(
    rng: &SystemRandom,
    pair: &EcdsaKeyPair,
    shape: &Shape<'_>,
    what: &'static str,
) -> Result<Vec<u8>, CertError> {
    let (from_y, from_m, from_d) = VALID_FROM_YMD;
    let (until_y, until_m, until_d) = VALID_UNTIL_YMD;
    let name = der::common_name(shape.common_name);
    let validity = der::seq(&[
        &der::time(from_y, from_m, from_d),
        &der::time(until_y, until_m, until_d),
    ]);
    let extensions = der::explicit(
        3,
        &der::seq(
            &shape
                .extensions
                .iter()
                .map(Vec::as_slice)
                .collect::<Vec<_>>(),
        ),
    );
    let tbs = der::seq(&[
        &der::explicit(0, &der::unsigned_integer(&[2])), // version v3
        &der::unsigned_integer(shape.serial),
        &ecdsa_sha256(),
        &name,
        &validity,
        &name,
        &p256_spki(pair.public_key().as_ref()),
        &extensions,
    ]);
    let signature = pair.sign(rng, &tbs).map_err(generate_error(what))?;
    Ok(der::seq(&[
        &tbs,
        &ecdsa_sha256(),
        &der::bit_string(signature.as_ref()),
    ]))
}

/// A random positive 16-byte serial number (first byte 0x40..=0x7f, so exactly 16 bytes).
fn random_serial() -> Result<[u8; 16], CertError> {
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).map_err(|err| CertError::Generate {
        what: "certificate serial number",
        detail: err.to_string(),
    })?;
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    Ok(serial)
}

/// `GeneralNames` for the SAN extension: DNS names (an IP literal among `names` becomes an IP
/// SAN), then `ips`. Fails on a name that is neither a DNS name nor an IP address.
fn subject_alt_names(names: &[String], ips: &[IpAddr]) -> Result<Vec<u8>, CertError> {
    let mut general_names = Vec::new();
    let push_ip = |ip: &IpAddr, out: &mut Vec<u8>| match ip {
        IpAddr::V4(v4) => out.extend(der::tlv(0x87, &v4.octets())),
        IpAddr::V6(v6) => out.extend(der::tlv(0x87, &v6.octets())),
    };
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) => push_ip(&ip, &mut general_names),
            Err(_) => {
                ServerName::try_from(name.as_str())
                    .map_err(|_| CertError::InvalidName { name: name.clone() })?;
                general_names.extend(der::tlv(0x82, name.as_bytes()));
            }
        }
    }
    for ip in ips {
        push_ip(ip, &mut general_names);
    }
    Ok(der::tlv(tag::SEQUENCE, &general_names))
}

/// The self-signed serving certificate for `names` and `ips`: ECDSA P-256 key, random 16-byte
/// serial, subject and issuer `CN=<first name or IP>`, the fixed validity window, SANs for
/// every name and IP, key usage digitalSignature (critical), extended key usage serverAuth,
/// basic constraints CA=false (critical) and a subject key identifier: the shape rcgen wrote
/// before this module replaced it (`tests` compare the two).
pub fn self_signed(names: &[String], ips: &[IpAddr]) -> Result<Generated, CertError> {
    let common_name = names
        .first()
        .cloned()
        .or_else(|| ips.first().map(IpAddr::to_string))
        .ok_or(CertError::NoNames)?;
    let serial = random_serial()?;
    let rng = SystemRandom::new();
    let pkcs8 = new_key(&rng, "ECDSA P-256 key")?;
    self_signed_with(&rng, &common_name, names, ips, &serial, pkcs8)
}

/// [`self_signed`] with the serial and key given (tests compare it with rcgen this way).
fn self_signed_with(
    rng: &SystemRandom,
    common_name: &str,
    names: &[String],
    ips: &[IpAddr],
    serial: &[u8],
    pkcs8: Vec<u8>,
) -> Result<Generated, CertError> {
    let sans = subject_alt_names(names, ips)?;
    let pair = signer(rng, &pkcs8, "ECDSA P-256 key")?;
    // The leftmost 160 bits of SHA-256 of the whole SubjectPublicKeyInfo (rcgen's method).
    let spki = p256_spki(pair.public_key().as_ref());
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let key_id = digest.as_ref().get(..20).unwrap_or_default();
    let extensions = [
        der::extension(oid::SUBJECT_ALT_NAME, false, &sans),
        // digitalSignature only: BIT STRING, 7 unused bits, bit 0 set.
        der::extension(
            oid::KEY_USAGE,
            true,
            &der::tlv(tag::BIT_STRING, &[0x07, 0x80]),
        ),
        der::extension(
            oid::EXT_KEY_USAGE,
            false,
            &der::seq(&[&der::oid(oid::SERVER_AUTH)]),
        ),
        der::extension(
            oid::SUBJECT_KEY_ID,
            false,
            &der::tlv(tag::OCTET_STRING, key_id),
        ),
        // CA=false: `SEQUENCE {}` (cA's DEFAULT FALSE is omitted in DER).
        der::extension(oid::BASIC_CONSTRAINTS, true, &der::seq(&[])),
    ];
    let shape = Shape {
        serial,
        common_name,
        extensions: &extensions,
    };
    let cert = sign_certificate(rng, &pair, &shape, "self-signed certificate")?;
    Ok(Generated {
        cert: CertificateDer::from(cert),
        key: PrivatePkcs8KeyDer::from(pkcs8),
    })
}

/// The DERP meta certificate (docs/protocol.md §1.8): a fresh key, self-signed, serial = the
/// protocol version, subject only `CN=derpkey<64 hex>`, and exactly one extension, critical
/// basic constraints with CA=false (`SEQUENCE {}`, as Go writes it). Clients read only the CN
/// and the serial (Go's `parseMetaCert`); the key is P-256 rather than upstream's Ed25519 so
/// that one signer serves both certificates.
pub fn meta(common_name: &str, protocol_version: u8) -> Result<CertificateDer<'static>, CertError> {
    let rng = SystemRandom::new();
    let pkcs8 = new_key(&rng, "meta certificate key")?;
    meta_with(&rng, common_name, protocol_version, &pkcs8)
}

/// [`meta`] with the key given (tests compare it with rcgen this way).
fn meta_with(
    rng: &SystemRandom,
    common_name: &str,
    protocol_version: u8,
    pkcs8: &[u8],
) -> Result<CertificateDer<'static>, CertError> {
    let pair = signer(rng, pkcs8, "meta certificate key")?;
    let extensions = [der::extension(oid::BASIC_CONSTRAINTS, true, &der::seq(&[]))];
    let shape = Shape {
        serial: &[protocol_version],
        common_name,
        extensions: &extensions,
    };
    sign_certificate(rng, &pair, &shape, "meta certificate").map(CertificateDer::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    fn tbs_of(der: &[u8]) -> Vec<u8> {
        let (rest, cert) = X509Certificate::from_der(der).unwrap();
        assert!(rest.is_empty());
        cert.tbs_certificate.as_ref().to_vec()
    }

    /// The certificate rcgen 0.14 made before this module existed, from the same parameters
    /// the old code set, with the given key and serial.
    fn rcgen_self_signed(names: &[String], ips: &[IpAddr], serial: &[u8], pkcs8: &[u8]) -> Vec<u8> {
        use rcgen::{
            date_time_ymd, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
        };
        let key = KeyPair::try_from(pkcs8).unwrap();
        let mut params = CertificateParams::default();
        let (y, m, d) = VALID_FROM_YMD;
        params.not_before = date_time_ymd(y, m, d);
        let (y, m, d) = VALID_UNTIL_YMD;
        params.not_after = date_time_ymd(y, m, d);
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let mut sans: Vec<SanType> = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into().unwrap()),
            })
            .collect();
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        let cn = names.first().cloned().unwrap_or_else(|| ips[0].to_string());
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, cn);
        params.distinguished_name = subject;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn self_signed_tbs_is_byte_for_byte_what_rcgen_wrote() {
        let cases: [(Vec<String>, Vec<IpAddr>); 4] = [
            (names(&["derp.example.net"]), vec![]),
            (
                names(&["derp.example.net", "203.0.113.9", "b.example"]),
                vec![ip("127.0.0.1"), ip("2001:db8::7")],
            ),
            (vec![], vec![ip("127.0.0.1")]),
            // Long enough for multi-byte DER lengths in the SAN extension.
            (
                (0..12)
                    .map(|i| format!("node{i}.some-long-router-name.example.org"))
                    .collect(),
                vec![ip("::1")],
            ),
        ];
        let rng = SystemRandom::new();
        for (names, ips) in cases {
            let serial = random_serial().unwrap();
            let pkcs8 = new_key(&rng, "test key").unwrap();
            let cn = names.first().cloned().unwrap_or_else(|| ips[0].to_string());
            let ours = self_signed_with(&rng, &cn, &names, &ips, &serial, pkcs8.clone()).unwrap();
            let theirs = rcgen_self_signed(&names, &ips, &serial, &pkcs8);
            assert_eq!(
                tbs_of(ours.cert.as_ref()),
                tbs_of(&theirs),
                "{names:?} {ips:?}"
            );
        }
    }

    #[test]
    fn meta_tbs_is_byte_for_byte_what_rcgen_writes_for_that_shape() {
        use rcgen::{
            date_time_ymd, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa,
            KeyPair, SerialNumber,
        };
        let cn = format!("derpkey{}", "ab".repeat(32));
        let rng = SystemRandom::new();
        let pkcs8 = new_key(&rng, "test key").unwrap();
        let ours = meta_with(&rng, &cn, 2, &pkcs8).unwrap();

        let key = KeyPair::try_from(pkcs8.as_slice()).unwrap();
        let mut params = CertificateParams::default();
        let (y, m, d) = VALID_FROM_YMD;
        params.not_before = date_time_ymd(y, m, d);
        let (y, m, d) = VALID_UNTIL_YMD;
        params.not_after = date_time_ymd(y, m, d);
        params.serial_number = Some(SerialNumber::from_slice(&[2]));
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, cn.clone());
        params.distinguished_name = subject;
        params.is_ca = IsCa::NoCa;
        let mut constraints = CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
        constraints.set_criticality(true);
        params.custom_extensions = vec![constraints];
        let theirs = params.self_signed(&key).unwrap();
        assert_eq!(tbs_of(ours.as_ref()), tbs_of(theirs.der()));
    }

    #[test]
    fn signatures_verify_with_the_certificate_key() {
        let generated = self_signed(&names(&["derp.example.net"]), &[]).unwrap();
        let meta = meta("derpkey00", 2).unwrap();
        for der in [generated.cert.as_ref(), meta.as_ref()] {
            let (_, cert) = X509Certificate::from_der(der).unwrap();
            let key = ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                cert.public_key().subject_public_key.data.as_ref(),
            );
            key.verify(
                cert.tbs_certificate.as_ref(),
                cert.signature_value.data.as_ref(),
            )
            .unwrap();
        }
    }

    /// Runs the openssl CLI on `pem` written to a temporary file; fails (never skips) when
    /// openssl is missing, since the point is to check against it.
    fn openssl(pem: &str, args: &[&str]) -> String {
        let tmp = crate::keyfile::tests::TempDir::new("openssl");
        let path = tmp.0.join("cert.pem");
        std::fs::write(&path, pem).unwrap();
        let path = path.to_str().unwrap();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "CERT" { path } else { a })
            .collect();
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("the openssl CLI is needed for this test (apt-get install openssl)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "openssl {args:?}: {text}");
        text
    }

    #[test]
    fn openssl_reads_and_verifies_the_self_signed_certificate() {
        let generated = self_signed(
            &names(&["derp.example.net", "203.0.113.9"]),
            &[ip("127.0.0.1"), ip("2001:db8::7")],
        )
        .unwrap();
        let text = openssl(
            &generated.cert_pem(),
            &["x509", "-text", "-noout", "-in", "CERT"],
        );
        for want in [
            "Version: 3 (0x2)",
            "Signature Algorithm: ecdsa-with-SHA256",
            "Issuer: CN = derp.example.net",
            "Subject: CN = derp.example.net",
            "Not Before: Jan  1 00:00:00 2000 GMT",
            "Not After : Dec 31 00:00:00 2099 GMT",
            "ASN1 OID: prime256v1",
            "X509v3 Subject Alternative Name:",
            "DNS:derp.example.net, IP Address:203.0.113.9, IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:7",
            "X509v3 Key Usage: critical",
            "Digital Signature",
            "X509v3 Extended Key Usage:",
            "TLS Web Server Authentication",
            "X509v3 Basic Constraints: critical",
            "CA:FALSE",
            "X509v3 Subject Key Identifier:",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let verified = openssl(
            &generated.cert_pem(),
            &["verify", "-CAfile", "CERT", "-purpose", "sslserver", "CERT"],
        );
        assert!(verified.contains(": OK"), "{verified}");
        // The key file reads back as the certificate's key.
        let tmp = crate::keyfile::tests::TempDir::new("openssl-key");
        let key_path = tmp.0.join("key.pem");
        std::fs::write(&key_path, generated.key_pem()).unwrap();
        let pubkey_of_key = Command::new("openssl")
            .args(["pkey", "-pubout", "-in", key_path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(pubkey_of_key.status.success());
        let pubkey_of_cert = openssl(
            &generated.cert_pem(),
            &["x509", "-pubkey", "-noout", "-in", "CERT"],
        );
        assert_eq!(
            String::from_utf8_lossy(&pubkey_of_key.stdout),
            pubkey_of_cert
        );
    }

    #[test]
    fn openssl_reads_the_meta_certificate() {
        let cn = format!("derpkey{}", "0f".repeat(32));
        let meta = meta(&cn, 2).unwrap();
        let text = openssl(
            &der::pem("CERTIFICATE", meta.as_ref()),
            &["x509", "-text", "-noout", "-in", "CERT"],
        );
        for want in [
            "Serial Number: 2 (0x2)",
            &format!("Subject: CN = {cn}"),
            "X509v3 Basic Constraints: critical",
            "CA:FALSE",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
