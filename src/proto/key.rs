//! Curve25519 keys as DERP uses them: raw 32-byte public keys, clamped private keys,
//! and their text forms (`nodekey:<hex>`, `privkey:<hex>`).

use std::fmt;

/// Length in bytes of a raw Curve25519 key.
pub const KEY_LEN: usize = 32;

/// Text prefix of a node public key (logs, LocalAPI, admission requests).
pub const NODE_KEY_PREFIX: &str = "nodekey:";
/// Text prefix of a private key in derper's key file.
pub const PRIVATE_KEY_PREFIX: &str = "privkey:";

/// A raw 32-byte Curve25519 public key: identifies a client or a server on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The all-zero key, which no real client has (upstream panics on it; we refuse it).
    pub const ZERO: PublicKey = PublicKey([0; KEY_LEN]);

    /// Builds a key from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<PublicKey> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(PublicKey(array))
    }

    /// True for the all-zero key.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; KEY_LEN]
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// 64 lowercase hex digits, no prefix (as in `Derp-Public-Key` and the meta certificate).
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }

    /// Parses `nodekey:<64 hex>` (either hex case).
    pub fn parse_node_key(text: &str) -> Option<PublicKey> {
        let hex = text.strip_prefix(NODE_KEY_PREFIX)?;
        parse_hex_32(hex).map(PublicKey)
    }

    /// Short log form: `[` + first five characters of the standard base64 of the key + `]`,
    /// matching upstream's log prefix so operators can correlate both servers' logs.
    pub fn short(&self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let [b0, b1, b2, b3, ..] = self.0;
        let bits =
            (u32::from(b0) << 24) | (u32::from(b1) << 16) | (u32::from(b2) << 8) | u32::from(b3);
        let mut out = String::with_capacity(7);
        out.push('[');
        for shift in [26u32, 20, 14, 8, 2] {
            let index = ((bits >> shift) & 0x3f) as usize;
            out.extend(ALPHABET.get(index).map(|&c| char::from(c)));
        }
        out.push(']');
        out
    }
}

impl fmt::Display for PublicKey {
    /// `nodekey:<64 lowercase hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{NODE_KEY_PREFIX}{}", self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

/// A clamped Curve25519 private key. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Generates a fresh random key from the operating system's generator.
    pub fn generate() -> Result<SecretKey, getrandom::Error> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::getrandom(&mut bytes)?;
        Ok(SecretKey::from_bytes(bytes))
    }

    /// Builds a key from raw bytes, clamping them as Curve25519 requires.
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> SecretKey {
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        SecretKey(bytes)
    }

    /// The raw clamped bytes (for sealing boxes and writing the key file).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key, X25519(private, basepoint).
    pub fn public_key(&self) -> PublicKey {
        let secret = crypto_box::SecretKey::from(self.0);
        PublicKey(*secret.public_key().as_bytes())
    }

    /// `privkey:<64 lowercase hex>`, the key file's text form.
    pub fn to_text(&self) -> String {
        format!("{PRIVATE_KEY_PREFIX}{}", hex_lower(&self.0))
    }

    /// Parses `privkey:<64 hex>` (either hex case). The prefix is mandatory.
    pub fn parse_text(text: &str) -> Option<SecretKey> {
        let hex = text.strip_prefix(PRIVATE_KEY_PREFIX)?;
        parse_hex_32(hex).map(SecretKey::from_bytes)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<hidden>)")
    }
}

/// Lowercase hex of arbitrary bytes.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        out.extend(DIGITS.get(usize::from(byte >> 4)).map(|&c| char::from(c)));
        out.extend(DIGITS.get(usize::from(byte & 0x0f)).map(|&c| char::from(c)));
    }
    out
}

/// Parses exactly 64 hex digits (either case) into 32 bytes.
pub fn parse_hex_32(text: &str) -> Option<[u8; KEY_LEN]> {
    let digits = text.as_bytes();
    if digits.len() != KEY_LEN * 2 {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *slot = (hex_value(*high)? << 4) | hex_value(*low)?;
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => digit.checked_sub(b'0'),
        b'a'..=b'f' => digit.checked_sub(b'a' - 10),
        b'A'..=b'F' => digit.checked_sub(b'A' - 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_round_trips_text() {
        let key = SecretKey::from_bytes([0xff; 32]);
        assert_eq!(key.as_bytes()[0], 248);
        assert_eq!(key.as_bytes()[31], 127);
        let text = key.to_text();
        assert!(text.starts_with("privkey:f8ff"));
        let parsed = SecretKey::parse_text(&text.to_uppercase().replace("PRIVKEY:", "privkey:"));
        assert_eq!(parsed.map(|k| *k.as_bytes()), Some(*key.as_bytes()));
        assert!(
            SecretKey::parse_text(&text[8..]).is_none(),
            "prefix is mandatory"
        );
    }

    #[test]
    fn public_key_of_rfc7748_vector() {
        // RFC 7748 section 6.1, Alice's private key and public key.
        let private =
            parse_hex_32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public =
            parse_hex_32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let (Some(private), Some(public)) = (private, public) else {
            panic!("bad vector")
        };
        assert_eq!(
            SecretKey::from_bytes(private).public_key(),
            PublicKey(public)
        );
    }

    #[test]
    fn node_key_text_and_short_form() {
        let key = PublicKey([0u8; 32]);
        assert_eq!(key.to_string(), format!("nodekey:{}", "0".repeat(64)));
        assert_eq!(key.short(), "[AAAAA]");
        let key = PublicKey([0xff; 32]);
        assert_eq!(key.short(), "[/////]");
        assert_eq!(PublicKey::parse_node_key(&key.to_string()), Some(key));
        assert_eq!(PublicKey::parse_node_key("nodekey:abc"), None);
        assert_eq!(PublicKey::parse_node_key(&"f".repeat(64)), None);
    }
}
