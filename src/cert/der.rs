//! Just enough DER and PEM writing for the two certificates tinyderp generates (the
//! self-signed serving certificate and the DERP meta certificate). A general X.509 library
//! cost about 76 KB of router flash for two fixed shapes; these helpers are the whole need.
//! Every output is checked in tests against OpenSSL and x509-parser.

/// Universal tags used by the certificates we write.
pub mod tag {
    /// BOOLEAN.
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTF8String.
    pub const UTF8_STRING: u8 = 0x0c;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
}

/// Encoded object identifiers (the content octets of an OBJECT IDENTIFIER).
pub mod oid {
    /// 1.2.840.10045.4.3.2 ecdsa-with-SHA256.
    pub const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// 1.2.840.10045.2.1 id-ecPublicKey.
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// 1.2.840.10045.3.1.7 prime256v1 (P-256).
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// 2.5.4.3 commonName.
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// 2.5.29.14 subjectKeyIdentifier.
    pub const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
    /// 2.5.29.15 keyUsage.
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// 2.5.29.17 subjectAltName.
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// 2.5.29.19 basicConstraints.
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// 2.5.29.37 extKeyUsage.
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// 1.3.6.1.5.5.7.3.1 id-kp-serverAuth.
    pub const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
}

/// Appends a definite-length DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = bytes.get(skip..).unwrap_or_default();
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// One element: `tag`, length, `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len().saturating_add(4));
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A constructed element (`tag` is SEQUENCE, SET or a context tag) holding `parts` in order.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// SEQUENCE of `parts`.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    constructed(tag::SEQUENCE, parts)
}

/// `[n] EXPLICIT` wrapper around one element.
pub fn explicit(n: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, inner)
}

/// OBJECT IDENTIFIER from its encoded content.
pub fn oid(encoded: &[u8]) -> Vec<u8> {
    tlv(tag::OID, encoded)
}

/// A non-negative INTEGER from big-endian magnitude bytes (minimal encoding).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = magnitude.get(skip..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len().saturating_add(1));
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(tag::INTEGER, &content)
}

/// BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len().saturating_add(1));
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(tag::BIT_STRING, &content)
}

/// X.509 Time for midnight UTC of (year, month, day): UTCTime for 1950-2049, GeneralizedTime
/// otherwise (RFC 5280 4.1.2.5).
pub fn time(year: i32, month: u8, day: u8) -> Vec<u8> {
    if (1950..2050).contains(&year) {
        let text = format!("{:02}{month:02}{day:02}000000Z", year.rem_euclid(100));
        tlv(tag::UTC_TIME, text.as_bytes())
    } else {
        let text = format!("{year:04}{month:02}{day:02}000000Z");
        tlv(tag::GENERALIZED_TIME, text.as_bytes())
    }
}

/// A Name with one RDN: `CN=<common_name>` as UTF8String.
pub fn common_name(common_name: &str) -> Vec<u8> {
    let attribute = seq(&[
        &oid(oid::COMMON_NAME),
        &tlv(tag::UTF8_STRING, common_name.as_bytes()),
    ]);
    seq(&[&constructed(tag::SET, &[&attribute])])
}

/// One Extension: `SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }`.
pub fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let value = tlv(tag::OCTET_STRING, value);
    if critical {
        seq(&[&oid(id), &tlv(tag::BOOLEAN, &[0xff]), &value])
    } else {
        seq(&[&oid(id), &value])
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let index = ((n >> shift) & 0x3f) as usize;
                out.push(char::from(BASE64.get(index).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// PEM text: `-----BEGIN <label>-----`, base64 in 64-column lines, `-----END <label>-----`,
/// each line ending in `\n` (the layout OpenSSL and rcgen write).
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let mut out = String::with_capacity(body.len().saturating_add(body.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[]), [0x04, 0x00]);
        assert_eq!(tlv(0x04, &[7; 127])[..2], [0x04, 0x7f]);
        assert_eq!(tlv(0x04, &[7; 128])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[7; 256])[..4], [0x04, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(unsigned_integer(&[2]), [0x02, 0x01, 0x02]);
        assert_eq!(unsigned_integer(&[0, 0, 5]), [0x02, 0x01, 0x05]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[]), [0x02, 0x01, 0x00]);
    }

    #[test]
    fn times_switch_to_generalized_after_2049() {
        assert_eq!(time(2000, 1, 1), tlv(tag::UTC_TIME, b"000101000000Z"));
        assert_eq!(time(2049, 12, 31), tlv(tag::UTC_TIME, b"491231000000Z"));
        assert_eq!(
            time(2099, 12, 31),
            tlv(tag::GENERALIZED_TIME, b"20991231000000Z")
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn pem_wraps_at_64_columns_and_reads_back() {
        let der: Vec<u8> = (0..=255u8).cycle().take(100).collect();
        let text = pem("CERTIFICATE", &der);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert_eq!(lines[1].len(), 64);
        assert!(text.ends_with("-----\n"));
        use rustls::pki_types::pem::PemObject;
        let back = rustls::pki_types::CertificateDer::from_pem_slice(text.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &der[..]);
    }
}
