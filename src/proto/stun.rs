//! STUN (RFC 5389) binding requests and responses, the subset a DERP node's STUN port needs.
//!
//! Message layout (all integers big-endian):
//!
//! ```text
//! +----------------+----------------+-----------------------------+
//! | type u16       | length u16     | magic cookie 21 12 a4 42    |
//! +----------------+----------------+-----------------------------+
//! | transaction id (12 bytes)                                     |
//! +---------------------------------------------------------------+
//! | attributes: type u16 | length u16 | value, padded to 4 bytes  |
//! +---------------------------------------------------------------+
//! ```
//!
//! Requests are accepted from Tailscale clients (SOFTWARE `tailnode` + FINGERPRINT) and from
//! plain RFC 5389 clients. Answers carry a single XOR-MAPPED-ADDRESS attribute.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A STUN transaction ID: 12 random bytes chosen by the client, echoed by the server.
pub type TxId = [u8; 12];

/// The RFC 5389 magic cookie at bytes 4..8 of every message.
pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// Length of the fixed message header.
pub const HEADER_LEN: usize = 20;
/// Message type of a Binding Request.
pub const TYPE_BINDING_REQUEST: u16 = 0x0001;
/// Message type of a Binding Success Response.
pub const TYPE_BINDING_SUCCESS: u16 = 0x0101;
/// MAPPED-ADDRESS attribute (old clients and servers).
pub const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
/// XOR-MAPPED-ADDRESS attribute.
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// XOR-MAPPED-ADDRESS under the pre-RFC type some servers still send.
pub const ATTR_XOR_MAPPED_ADDRESS_OLD: u16 = 0x8020;
/// SOFTWARE attribute; Tailscale clients send `tailnode`.
pub const ATTR_SOFTWARE: u16 = 0x8022;
/// FINGERPRINT attribute: CRC-32 of the message before it, XOR [`FINGERPRINT_XOR`].
pub const ATTR_FINGERPRINT: u16 = 0x8028;
/// Constant XORed into the fingerprint CRC ("STUN").
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// SOFTWARE value of Tailscale's requests.
pub const TAILSCALE_SOFTWARE: &[u8; 8] = b"tailnode";
/// Size of a Tailscale binding request: header + SOFTWARE(4+8) + FINGERPRINT(4+4).
pub const TAILSCALE_REQUEST_LEN: usize = 40;
/// Size of a response carrying an IPv4 address.
pub const RESPONSE_LEN_V4: usize = 32;
/// Size of a response carrying an IPv6 address; also the response buffer size.
pub const RESPONSE_LEN_V6: usize = 44;

/// Why a datagram is not answered (or, client side, not accepted as an answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StunError {
    /// Too short, top bits set, or no magic cookie.
    NotStun,
    /// A STUN message of another type (not a binding request / success response).
    NotBinding,
    /// Attribute list overruns the message or FINGERPRINT is not last.
    BadAttributes,
    /// FINGERPRINT present but its CRC does not match.
    BadFingerprint,
    /// Client side: the response holds no usable mapped address.
    NoAddress,
}

impl StunError {
    /// Short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            StunError::NotStun => "not_stun",
            StunError::NotBinding => "not_binding",
            StunError::BadAttributes => "bad_attributes",
            StunError::BadFingerprint => "bad_fingerprint",
            StunError::NoAddress => "no_address",
        }
    }
}

impl fmt::Display for StunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stun: {}", self.reason())
    }
}

impl std::error::Error for StunError {}

/// CRC-32/IEEE lookup table (reflected polynomial 0xEDB88320), built at compile time.
const CRC32_TABLE: [u32; 256] = build_crc32_table();

// Evaluated by the compiler on constants only; no input ever reaches it.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn build_crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
}

/// CRC-32/IEEE (the zlib/Ethernet CRC) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        let slot = usize::from((crc as u8) ^ byte);
        crc = (crc >> 8) ^ CRC32_TABLE.get(slot).copied().unwrap_or(0);
    }
    !crc
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
}

/// One attribute: its type, its value and the offset of its 4-byte header in the message.
struct Attribute<'a> {
    kind: u16,
    value: &'a [u8],
    offset: usize,
}

/// Walks the attribute list after the header. Fails if any attribute (with padding)
/// overruns the message or fewer than 4 bytes are left for a header.
fn attributes(message: &[u8]) -> Result<Vec<Attribute<'_>>, StunError> {
    /// At most this many attributes are looked at; a 64 KiB datagram could hold 16 Ki.
    const MAX_ATTRIBUTES: usize = 64;
    let mut found = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < message.len() {
        if found.len() >= MAX_ATTRIBUTES {
            return Err(StunError::BadAttributes);
        }
        let kind = read_u16(message, offset).ok_or(StunError::BadAttributes)?;
        let len = usize::from(
            read_u16(message, offset.saturating_add(2)).ok_or(StunError::BadAttributes)?,
        );
        let start = offset.saturating_add(4);
        let padded = len.saturating_add(3) & !3;
        let value = message
            .get(start..start.saturating_add(len))
            .ok_or(StunError::BadAttributes)?;
        let next = start.saturating_add(padded);
        if next > message.len() {
            return Err(StunError::BadAttributes);
        }
        found.push(Attribute {
            kind,
            value,
            offset,
        });
        offset = next;
    }
    Ok(found)
}

/// Checks the header and returns (message type, transaction ID).
fn parse_header(message: &[u8]) -> Result<(u16, TxId), StunError> {
    let first = *message.first().ok_or(StunError::NotStun)?;
    if message.len() < HEADER_LEN
        || first & 0xc0 != 0
        || message.get(4..8) != Some(&MAGIC_COOKIE[..])
    {
        return Err(StunError::NotStun);
    }
    let kind = read_u16(message, 0).ok_or(StunError::NotStun)?;
    let txid = message
        .get(8..HEADER_LEN)
        .and_then(|bytes| TxId::try_from(bytes).ok())
        .ok_or(StunError::NotStun)?;
    Ok((kind, txid))
}

/// Server side: accepts a binding request and returns its transaction ID.
///
/// FINGERPRINT is optional, but if present it must be the last attribute and match.
/// Other attributes (SOFTWARE included) are ignored. The header length field is not
/// checked, as in Tailscale's server.
pub fn parse_binding_request(message: &[u8]) -> Result<TxId, StunError> {
    let (kind, txid) = parse_header(message)?;
    if kind != TYPE_BINDING_REQUEST {
        return Err(StunError::NotBinding);
    }
    let attrs = attributes(message)?;
    let count = attrs.len();
    for (index, attr) in attrs.iter().enumerate() {
        if attr.kind != ATTR_FINGERPRINT {
            continue;
        }
        if index.saturating_add(1) != count || attr.value.len() != 4 {
            return Err(StunError::BadAttributes);
        }
        let covered = message.get(..attr.offset).ok_or(StunError::BadAttributes)?;
        let sent = u32::from_be_bytes(
            attr.value
                .try_into()
                .map_err(|_| StunError::BadAttributes)?,
        );
        if sent != crc32(covered) ^ FINGERPRINT_XOR {
            return Err(StunError::BadFingerprint);
        }
    }
    Ok(txid)
}

/// The address a reply should report: IPv4-mapped IPv6 sources are unmapped to IPv4.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Server side: writes a binding success response for `from` into `out` and returns its
/// length (32 for IPv4, 44 for IPv6). The only attribute is XOR-MAPPED-ADDRESS:
/// `00 20 | len | 00 | family | port ^ 0x2112 | address ^ (cookie || txid)`.
pub fn binding_response(txid: &TxId, from: SocketAddr, out: &mut [u8; RESPONSE_LEN_V6]) -> usize {
    let from = unmapped(from);
    // (family, attribute section length, address bytes): 12 = 4 + 4 + 4, 24 = 4 + 4 + 16.
    let (family, attrs_len, mut address): (u8, u16, Vec<u8>) = match from.ip() {
        IpAddr::V4(v4) => (1, 12, v4.octets().to_vec()),
        IpAddr::V6(v6) => (2, 24, v6.octets().to_vec()),
    };
    let key = MAGIC_COOKIE.iter().chain(txid.iter());
    for (byte, mask) in address.iter_mut().zip(key) {
        *byte ^= mask;
    }
    let port = from.port() ^ 0x2112;
    out.fill(0);
    out[0..2].copy_from_slice(&TYPE_BINDING_SUCCESS.to_be_bytes());
    out[2..4].copy_from_slice(&attrs_len.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC_COOKIE);
    out[8..20].copy_from_slice(txid);
    out[20..22].copy_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
    out[22..24].copy_from_slice(&attrs_len.saturating_sub(4).to_be_bytes());
    out[25] = family;
    out[26..28].copy_from_slice(&port.to_be_bytes());
    for (slot, byte) in out.iter_mut().skip(28).zip(&address) {
        *slot = *byte;
    }
    HEADER_LEN.saturating_add(usize::from(attrs_len))
}

/// Client side: a 40-byte Tailscale-style binding request (SOFTWARE `tailnode`, FINGERPRINT).
pub fn binding_request(txid: &TxId) -> [u8; TAILSCALE_REQUEST_LEN] {
    let mut out = [0u8; TAILSCALE_REQUEST_LEN];
    out[0..2].copy_from_slice(&TYPE_BINDING_REQUEST.to_be_bytes());
    out[2..4].copy_from_slice(&20u16.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC_COOKIE);
    out[8..20].copy_from_slice(txid);
    out[20..22].copy_from_slice(&ATTR_SOFTWARE.to_be_bytes());
    out[22..24].copy_from_slice(&8u16.to_be_bytes());
    out[24..32].copy_from_slice(TAILSCALE_SOFTWARE);
    out[32..34].copy_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
    out[34..36].copy_from_slice(&4u16.to_be_bytes());
    let fingerprint = crc32(&out[..32]) ^ FINGERPRINT_XOR;
    out[36..40].copy_from_slice(&fingerprint.to_be_bytes());
    out
}

/// Decodes a (XOR-)MAPPED-ADDRESS value; `xor_key` is cookie || txid for the XOR form.
fn decode_address(value: &[u8], xor_key: Option<&[u8; 16]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let mut port = read_u16(value, 2)?;
    let addr_len = match family {
        1 => 4,
        2 => 16,
        _ => return None,
    };
    let mut address = [0u8; 16];
    address
        .get_mut(..addr_len)?
        .copy_from_slice(value.get(4..4usize.checked_add(addr_len)?)?);
    if let Some(key) = xor_key {
        port ^= 0x2112;
        for (byte, mask) in address.iter_mut().zip(key) {
            *byte ^= mask;
        }
    }
    let ip = if addr_len == 4 {
        let [a, b, c, d, ..] = address;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(address))
    };
    Some(unmapped(SocketAddr::new(ip, port)))
}

/// Client side: parses a binding success response into (transaction ID, mapped address).
/// Accepts XOR-MAPPED-ADDRESS (0x0020 or 0x8020), else falls back to MAPPED-ADDRESS.
/// The caller compares the transaction ID with the one it sent.
pub fn parse_binding_response(message: &[u8]) -> Result<(TxId, SocketAddr), StunError> {
    let (kind, txid) = parse_header(message)?;
    if kind != TYPE_BINDING_SUCCESS {
        return Err(StunError::NotBinding);
    }
    let mut key = [0u8; 16];
    let (cookie, rest) = key.split_at_mut(4);
    cookie.copy_from_slice(&MAGIC_COOKIE);
    rest.copy_from_slice(&txid);
    let mut fallback = None;
    for attr in attributes(message)? {
        match attr.kind {
            ATTR_XOR_MAPPED_ADDRESS | ATTR_XOR_MAPPED_ADDRESS_OLD => {
                if let Some(addr) = decode_address(attr.value, Some(&key)) {
                    return Ok((txid, addr));
                }
            }
            ATTR_MAPPED_ADDRESS => {
                fallback = fallback.or_else(|| decode_address(attr.value, None));
            }
            _ => {}
        }
    }
    fallback
        .map(|addr| (txid, addr))
        .ok_or(StunError::NoAddress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::noise::noise;

    const TXID: TxId = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    /// The request of docs/protocol.md §5.2 (what a Tailscale client sends).
    const REQUEST_VECTOR: [u8; 40] = [
        0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        0x07, 0x08, 0x09, 0x0a, 0x0b, 0x80, 0x22, 0x00, 0x08, 0x74, 0x61, 0x69, 0x6c, 0x6e, 0x6f,
        0x64, 0x65, 0x80, 0x28, 0x00, 0x04, 0x8a, 0xab, 0xad, 0x90,
    ];

    #[test]
    fn crc32_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
    }

    #[test]
    fn tailscale_request_vector() {
        assert_eq!(binding_request(&TXID), REQUEST_VECTOR);
        assert_eq!(parse_binding_request(&REQUEST_VECTOR), Ok(TXID));
    }

    #[test]
    fn ipv4_response_vector() {
        let mut out = [0u8; RESPONSE_LEN_V6];
        let from: SocketAddr = "192.0.2.1:54321".parse().unwrap();
        let len = binding_response(&TXID, from, &mut out);
        assert_eq!(len, RESPONSE_LEN_V4);
        assert_eq!(
            out[..len],
            [
                0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
                0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xf5, 0x23,
                0xe1, 0x12, 0xa6, 0x43
            ]
        );
        assert_eq!(parse_binding_response(&out[..len]), Ok((TXID, from)));
    }

    #[test]
    fn mapped_ipv4_source_is_answered_as_ipv4() {
        let mut out = [0u8; RESPONSE_LEN_V6];
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:54321".parse().unwrap();
        let len = binding_response(&TXID, mapped, &mut out);
        assert_eq!(len, 32);
        assert_eq!(out[25], 0x01);
        let plain: SocketAddr = "192.0.2.1:54321".parse().unwrap();
        assert_eq!(parse_binding_response(&out[..len]), Ok((TXID, plain)));
    }

    #[test]
    fn ipv6_response() {
        let mut out = [0u8; RESPONSE_LEN_V6];
        let from: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let len = binding_response(&TXID, from, &mut out);
        assert_eq!(len, RESPONSE_LEN_V6);
        let mut expected = vec![0x01, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42];
        expected.extend_from_slice(&TXID);
        expected.extend_from_slice(&[0x00, 0x20, 0x00, 0x14, 0x00, 0x02]);
        expected.extend_from_slice(&(3478u16 ^ 0x2112).to_be_bytes());
        let ip: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let key: Vec<u8> = MAGIC_COOKIE.iter().chain(TXID.iter()).copied().collect();
        expected.extend(ip.iter().zip(&key).map(|(a, b)| a ^ b));
        assert_eq!(out.to_vec(), expected);
        assert_eq!(parse_binding_response(&out), Ok((TXID, from)));
    }

    fn with_fingerprint(mut message: Vec<u8>) -> Vec<u8> {
        let total = message.len() + 8 - HEADER_LEN;
        message[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        let crc = crc32(&message) ^ FINGERPRINT_XOR;
        message.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
        message.extend_from_slice(&crc.to_be_bytes());
        message
    }

    #[test]
    fn plain_rfc5389_requests_are_answered() {
        // Bare header, no attributes at all (what `stunclient` style tools send).
        let mut bare = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        bare.extend_from_slice(&[0xee; 12]);
        assert_eq!(parse_binding_request(&bare), Ok([0xee; 12]));
        // Different SOFTWARE (5 bytes, padded to 8) plus a correct FINGERPRINT.
        let mut other = bare.clone();
        other.extend_from_slice(&[
            0x80, 0x22, 0x00, 0x05, b'p', b'y', b's', b't', b'n', 0, 0, 0,
        ]);
        let other = with_fingerprint(other);
        assert_eq!(parse_binding_request(&other), Ok([0xee; 12]));
    }

    #[test]
    fn rejections() {
        let mut bad_crc = REQUEST_VECTOR;
        bad_crc[39] ^= 1;
        assert_eq!(
            parse_binding_request(&bad_crc),
            Err(StunError::BadFingerprint)
        );
        // Payload changed under a valid-looking fingerprint.
        let mut changed = REQUEST_VECTOR;
        changed[24] = b'T';
        assert_eq!(
            parse_binding_request(&changed),
            Err(StunError::BadFingerprint)
        );

        let mut indication = REQUEST_VECTOR;
        indication[1] = 0x11; // binding indication
        assert_eq!(
            parse_binding_request(&indication),
            Err(StunError::NotBinding)
        );
        let mut response = [0u8; RESPONSE_LEN_V6];
        let len = binding_response(&TXID, "192.0.2.1:1".parse().unwrap(), &mut response);
        assert_eq!(
            parse_binding_request(&response[..len]),
            Err(StunError::NotBinding)
        );
        assert_eq!(
            parse_binding_response(&REQUEST_VECTOR),
            Err(StunError::NotBinding)
        );

        assert_eq!(
            parse_binding_request(&REQUEST_VECTOR[..19]),
            Err(StunError::NotStun)
        );
        assert_eq!(parse_binding_request(&[]), Err(StunError::NotStun));
        let mut no_cookie = REQUEST_VECTOR;
        no_cookie[4] = 0;
        assert_eq!(parse_binding_request(&no_cookie), Err(StunError::NotStun));
        let mut top_bits = REQUEST_VECTOR;
        top_bits[0] = 0x40;
        assert_eq!(parse_binding_request(&top_bits), Err(StunError::NotStun));

        // Truncated attribute lists.
        for cut in [21usize, 23, 25, 31, 33, 38] {
            assert_eq!(
                parse_binding_request(&REQUEST_VECTOR[..cut]),
                Err(StunError::BadAttributes),
                "cut at {cut}"
            );
        }
        // FINGERPRINT followed by another attribute.
        let mut not_last = REQUEST_VECTOR.to_vec();
        not_last.extend_from_slice(&[0x80, 0x22, 0x00, 0x00]);
        assert_eq!(
            parse_binding_request(&not_last),
            Err(StunError::BadAttributes)
        );
        // FINGERPRINT with the wrong length.
        let mut long_fp = REQUEST_VECTOR[..32].to_vec();
        long_fp.extend_from_slice(&[0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_binding_request(&long_fp),
            Err(StunError::BadAttributes)
        );
    }

    #[test]
    fn response_parsing_fallbacks() {
        let mut header = vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        header.extend_from_slice(&TXID);
        // Plain MAPPED-ADDRESS.
        let mut mapped = header.clone();
        mapped.extend_from_slice(&[0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x04, 0xd2, 10, 0, 0, 1]);
        assert_eq!(
            parse_binding_response(&mapped),
            Ok((TXID, "10.0.0.1:1234".parse().unwrap()))
        );
        // Old XOR type 0x8020 wins over MAPPED-ADDRESS.
        let mut response = [0u8; RESPONSE_LEN_V6];
        let len = binding_response(&TXID, "192.0.2.1:54321".parse().unwrap(), &mut response);
        let mut old = mapped.clone();
        let mut xor_attr = response[20..len].to_vec();
        xor_attr[0] = 0x80;
        old.extend_from_slice(&xor_attr);
        assert_eq!(
            parse_binding_response(&old),
            Ok((TXID, "192.0.2.1:54321".parse().unwrap()))
        );
        assert_eq!(parse_binding_response(&header), Err(StunError::NoAddress));
    }

    #[test]
    fn reasons() {
        assert_eq!(StunError::NotStun.reason(), "not_stun");
        assert_eq!(StunError::NotBinding.reason(), "not_binding");
        assert_eq!(StunError::BadAttributes.reason(), "bad_attributes");
        assert_eq!(StunError::BadFingerprint.reason(), "bad_fingerprint");
    }

    #[test]
    fn parsers_never_panic_on_noise() {
        let mut seed = 0x1234_5678_9abc_def1;
        for round in 0..20_000usize {
            let mut bytes = noise(&mut seed, round % 80);
            // Make most inputs get past the header checks.
            if bytes.len() >= HEADER_LEN && round % 4 != 0 {
                bytes[0] &= 0x01;
                bytes[4..8].copy_from_slice(&MAGIC_COOKIE);
            }
            let _ = parse_binding_request(&bytes);
            let _ = parse_binding_response(&bytes);
        }
    }
}
