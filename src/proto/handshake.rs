//! The DERP login handshake: NaCl boxes, the ClientInfo and ServerInfo JSON documents and
//! the two frames that carry them.
//!
//! Sealed blob layout, identical to Go's `nacl/box.Seal` with the nonce prepended:
//!
//! ```text
//! +-----------+----------+------------------------------+
//! | nonce     | tag      | ciphertext                   |
//! | 24 bytes  | 16 bytes | len(plaintext) bytes         |
//! +-----------+----------+------------------------------+
//! ```
//!
//! ClientInfo payload = client public key (32) + sealed blob; ServerInfo payload = sealed blob.

use std::fmt;

use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::AeadInPlace;
use crypto_box::SalsaBox;

use super::frame::{
    encode_frame, FrameType, MAX_CLIENT_INFO_LEN, MAX_FRAME_TO_CLIENT, MIN_CLIENT_INFO_LEN,
    PROTOCOL_VERSION,
};
use super::json::{quote, Reader, Value};
use super::key::{hex_lower, parse_hex_32, PublicKey, SecretKey, KEY_LEN};

/// Length of the random nonce in front of every sealed blob.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that follows the nonce.
pub const TAG_LEN: usize = 16;
/// Smallest possible sealed blob: nonce + tag around an empty plaintext.
pub const SEALED_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The exact ServerInfo JSON a stock server seals (`{"version":2}`, 13 bytes).
pub const SERVER_INFO_JSON: &[u8] = b"{\"version\":2}";

/// Why a handshake step failed. Every variant ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// ClientInfo payload shorter than key + nonce (56 bytes).
    ClientInfoTooShort,
    /// A payload longer than the side reading it accepts.
    TooLong,
    /// Sealed blob shorter than nonce + tag.
    SealedTooShort,
    /// The box did not authenticate under the given keys.
    BoxOpenFailed,
    /// The client claimed the all-zero public key.
    ZeroKey,
    /// The plaintext is not JSON of the expected shape.
    BadJson,
    /// `meshKey` present but not a string of exactly 64 hex digits.
    BadMeshKey,
    /// A frame of another type arrived where a handshake frame was expected.
    WrongFrameType,
    /// ServerKey frame too short or without the DERP magic.
    BadServerKey,
    /// The operating system's random generator failed, so no nonce could be made.
    NoRandomness,
}

impl HandshakeError {
    /// Short snake_case label for metrics and log lines.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::ClientInfoTooShort => "client_info_too_short",
            HandshakeError::TooLong => "too_long",
            HandshakeError::SealedTooShort => "sealed_too_short",
            HandshakeError::BoxOpenFailed => "box_open_failed",
            HandshakeError::ZeroKey => "zero_key",
            HandshakeError::BadJson => "bad_json",
            HandshakeError::BadMeshKey => "bad_mesh_key",
            HandshakeError::WrongFrameType => "wrong_frame_type",
            HandshakeError::BadServerKey => "bad_server_key",
            HandshakeError::NoRandomness => "no_randomness",
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "derp handshake failed: {}", self.reason())
    }
}

impl std::error::Error for HandshakeError {}

/// A NaCl box for one key pair with the X25519 shared key already derived. A login seals
/// and opens once each under the same pair; deriving the key once saves a scalar
/// multiplication, about a fifth of the server's work per login.
pub struct SharedBox(SalsaBox);

impl SharedBox {
    /// Derives the shared key of `secret` and `peer`.
    pub fn new(secret: &SecretKey, peer: &PublicKey) -> SharedBox {
        let secret = crypto_box::SecretKey::from(*secret.as_bytes());
        let peer = crypto_box::PublicKey::from(*peer.as_bytes());
        SharedBox(SalsaBox::new(&peer, &secret))
    }

    /// Seals `plaintext` with the given nonce: nonce || tag || ciphertext.
    pub fn seal(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
        let mut body = plaintext.to_vec();
        // XSalsa20-Poly1305 only fails for messages beyond 256 GiB, which cannot be in memory.
        let tag = self
            .0
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &[], &mut body)
            .map(<[u8; TAG_LEN]>::from)
            .unwrap_or([0u8; TAG_LEN]);
        let mut out = Vec::with_capacity(SEALED_OVERHEAD.saturating_add(body.len()));
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&body);
        out
    }

    /// Seals with a fresh random nonce (see [`fresh_nonce`]).
    pub fn seal_random(&self, plaintext: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        Ok(self.seal(fresh_nonce()?, plaintext))
    }

    /// Opens a blob sealed under this key pair; returns the plaintext.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let (nonce, rest) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(HandshakeError::SealedTooShort)?;
        let (tag, body) = rest
            .split_at_checked(TAG_LEN)
            .ok_or(HandshakeError::SealedTooShort)?;
        let mut plain = body.to_vec();
        self.0
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                &[],
                &mut plain,
                GenericArray::from_slice(tag),
            )
            .map_err(|_| HandshakeError::BoxOpenFailed)?;
        Ok(plain)
    }
}

/// Seals `plaintext` from `secret` to `peer` with the given nonce: nonce || tag || ciphertext.
pub fn seal(
    secret: &SecretKey,
    peer: &PublicKey,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Vec<u8> {
    SharedBox::new(secret, peer).seal(nonce, plaintext)
}

/// A fresh nonce from the operating system's generator. If the generator fails (it does
/// not on Linux, but nothing here may assume it), the handshake fails: a made-up nonce
/// could repeat across restarts, and a repeated nonce under the same key pair breaks the box.
pub fn fresh_nonce() -> Result<[u8; NONCE_LEN], HandshakeError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|_| HandshakeError::NoRandomness)?;
    Ok(nonce)
}

/// Seals with a fresh random nonce (see [`fresh_nonce`]).
pub fn seal_random(
    secret: &SecretKey,
    peer: &PublicKey,
    plaintext: &[u8],
) -> Result<Vec<u8>, HandshakeError> {
    SharedBox::new(secret, peer).seal_random(plaintext)
}

/// Opens a blob sealed by `peer` to `secret`; returns the plaintext.
pub fn open(
    secret: &SecretKey,
    peer: &PublicKey,
    sealed: &[u8],
) -> Result<Vec<u8>, HandshakeError> {
    SharedBox::new(secret, peer).open(sealed)
}

/// What a client tells the server about itself, sealed inside the ClientInfo frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Mesh pre-shared key; grants mesh privileges when it matches the server's.
    pub mesh_key: Option<[u8; KEY_LEN]>,
    /// Client protocol version (2 today; 0 when omitted).
    pub version: i64,
    /// The client answers server Pings.
    pub can_ack_pings: bool,
    /// The client is a prober (sets the PeerPresent prober flag).
    pub is_prober: bool,
    /// Opaque application name, recorded only.
    pub app_name: Option<String>,
}

/// Parses ClientInfo JSON with Go `encoding/json` semantics: keys matched case-insensitively
/// in document order (so the last duplicate wins), unknown keys skipped (grammar checked
/// only), `null` leaves a field unchanged, a top-level `null` is the empty ClientInfo.
pub fn parse_client_info_json(json: &[u8]) -> Result<ClientInfo, HandshakeError> {
    let mut reader = Reader::new(json).map_err(|_| HandshakeError::BadJson)?;
    let mut info = ClientInfo::default();
    read_object(&mut reader, |reader, key| {
        match key.to_ascii_lowercase().as_str() {
            "meshkey" => {
                let value = reader.value().map_err(|_| HandshakeError::BadJson)?;
                let mesh = value.as_str().and_then(parse_hex_32);
                info.mesh_key = Some(mesh.ok_or(HandshakeError::BadMeshKey)?);
            }
            "version" => {
                if let Some(version) = optional(reader, Value::as_i64)? {
                    info.version = version;
                }
            }
            "canackpings" => {
                if let Some(flag) = optional(reader, Value::as_bool)? {
                    info.can_ack_pings = flag;
                }
            }
            "isprober" => {
                if let Some(flag) = optional(reader, Value::as_bool)? {
                    info.is_prober = flag;
                }
            }
            "appname" => {
                if let Some(name) = optional(reader, |value| value.as_str().map(str::to_owned))? {
                    info.app_name = Some(name).filter(|name| !name.is_empty());
                }
            }
            _ => reader.skip_value().map_err(|_| HandshakeError::BadJson)?,
        }
        Ok(())
    })?;
    Ok(info)
}

/// Reads a whole document that is an object or `null` (nothing to read), calling `member`
/// with each key once the reader stands before its value.
fn read_object(
    reader: &mut Reader<'_>,
    mut member: impl FnMut(&mut Reader<'_>, String) -> Result<(), HandshakeError>,
) -> Result<(), HandshakeError> {
    if reader.peek_token() == Some(b'n') {
        reader.value().map_err(|_| HandshakeError::BadJson)?;
    } else {
        reader.begin_object().map_err(|_| HandshakeError::BadJson)?;
        let mut first = true;
        while let Some(key) = reader
            .member_key(&mut first)
            .map_err(|_| HandshakeError::BadJson)?
        {
            member(reader, key)?;
        }
    }
    reader.end().map_err(|_| HandshakeError::BadJson)
}

/// A field's value: `None` for `null`, else what `read` makes of it (a wrong type is
/// [`HandshakeError::BadJson`]).
fn optional<T>(
    reader: &mut Reader<'_>,
    read: impl FnOnce(&Value) -> Option<T>,
) -> Result<Option<T>, HandshakeError> {
    match reader.value().map_err(|_| HandshakeError::BadJson)? {
        Value::Null => Ok(None),
        value => read(&value).map(Some).ok_or(HandshakeError::BadJson),
    }
}

/// Server side: checks and opens a ClientInfo payload, returning the client key and info.
/// The length is checked before anything is decrypted; the zero key is refused.
pub fn open_client_info(
    server_secret: &SecretKey,
    payload: &[u8],
) -> Result<(PublicKey, ClientInfo), HandshakeError> {
    open_client_info_box(server_secret, payload).map(|(client, info, _)| (client, info))
}

/// As [`open_client_info`], also returning the box for the pair, so the ServerInfo reply
/// ([`encode_server_info_with`]) reuses the derived key.
pub fn open_client_info_box(
    server_secret: &SecretKey,
    payload: &[u8],
) -> Result<(PublicKey, ClientInfo, SharedBox), HandshakeError> {
    if payload.len() < MIN_CLIENT_INFO_LEN {
        return Err(HandshakeError::ClientInfoTooShort);
    }
    if payload.len() > MAX_CLIENT_INFO_LEN {
        return Err(HandshakeError::TooLong);
    }
    let (key, sealed) = payload
        .split_at_checked(KEY_LEN)
        .ok_or(HandshakeError::ClientInfoTooShort)?;
    let client = PublicKey::from_slice(key).ok_or(HandshakeError::ClientInfoTooShort)?;
    if client.is_zero() {
        return Err(HandshakeError::ZeroKey);
    }
    let shared = SharedBox::new(server_secret, &client);
    let json = shared.open(sealed)?;
    Ok((client, parse_client_info_json(&json)?, shared))
}

/// Server side: appends a whole ServerInfo frame sealing exactly `{"version":2}` with the
/// box [`open_client_info_box`] returned.
pub fn encode_server_info_with(
    out: &mut Vec<u8>,
    shared: &SharedBox,
) -> Result<(), HandshakeError> {
    let sealed = shared.seal_random(SERVER_INFO_JSON)?;
    encode_frame(out, FrameType::ServerInfo, &[&sealed]);
    Ok(())
}

/// Server side: appends a whole ServerInfo frame sealing exactly `{"version":2}`.
pub fn encode_server_info(
    out: &mut Vec<u8>,
    server_secret: &SecretKey,
    client: &PublicKey,
) -> Result<(), HandshakeError> {
    let sealed = seal_random(server_secret, client, SERVER_INFO_JSON)?;
    encode_frame(out, FrameType::ServerInfo, &[&sealed]);
    Ok(())
}

/// The JSON a Go client sends for `info`: field order and omitempty rules of Go's struct
/// (`meshKey` and `version` omitted when unset/zero, `CanAckPings` always present,
/// `IsProber` only when true, `AppName` only when non-empty).
pub fn client_info_json(info: &ClientInfo) -> Vec<u8> {
    let mut fields: Vec<String> = Vec::with_capacity(5);
    if let Some(mesh) = &info.mesh_key {
        fields.push(format!("\"meshKey\":\"{}\"", hex_lower(mesh)));
    }
    if info.version != 0 {
        fields.push(format!("\"version\":{}", info.version));
    }
    fields.push(format!("\"CanAckPings\":{}", info.can_ack_pings));
    if info.is_prober {
        fields.push("\"IsProber\":true".to_owned());
    }
    if let Some(name) = info.app_name.as_deref().filter(|name| !name.is_empty()) {
        fields.push(format!("\"AppName\":{}", quote(name)));
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// Client side: appends a whole ClientInfo frame (client key + box sealed to the server).
pub fn encode_client_info(
    out: &mut Vec<u8>,
    client_secret: &SecretKey,
    server: &PublicKey,
    info: &ClientInfo,
) -> Result<(), HandshakeError> {
    let sealed = seal_random(client_secret, server, &client_info_json(info))?;
    let client = client_secret.public_key();
    encode_frame(out, FrameType::ClientInfo, &[client.as_bytes(), &sealed]);
    Ok(())
}

/// The ServerInfo document as a client sees it. Zero means "not sent".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerInfoJson {
    /// Server protocol version (2 for every current server).
    pub version: i64,
    /// Client-side send rate limit in bytes per second; 0 = none.
    pub token_bucket_bytes_per_second: i64,
    /// Burst for the rate limit above.
    pub token_bucket_bytes_burst: i64,
}

/// Client side: opens a ServerInfo payload sealed by the server to this client.
pub fn open_server_info(
    client_secret: &SecretKey,
    server: &PublicKey,
    payload: &[u8],
) -> Result<ServerInfoJson, HandshakeError> {
    if payload.len() > MAX_FRAME_TO_CLIENT {
        return Err(HandshakeError::TooLong);
    }
    let json = open(client_secret, server, payload)?;
    parse_server_info_json(&json)
}

/// Reads ServerInfo JSON the Go way (as [`parse_client_info_json`] reads ClientInfo).
pub fn parse_server_info_json(json: &[u8]) -> Result<ServerInfoJson, HandshakeError> {
    let mut reader = Reader::new(json).map_err(|_| HandshakeError::BadJson)?;
    let mut info = ServerInfoJson::default();
    read_object(&mut reader, |reader, key| {
        let slot = match key.to_ascii_lowercase().as_str() {
            "version" => &mut info.version,
            "tokenbucketbytespersecond" => &mut info.token_bucket_bytes_per_second,
            "tokenbucketbytesburst" => &mut info.token_bucket_bytes_burst,
            _ => return reader.skip_value().map_err(|_| HandshakeError::BadJson),
        };
        if let Some(value) = optional(reader, Value::as_i64)? {
            *slot = value;
        }
        Ok(())
    })?;
    Ok(info)
}

/// Client side: checks a ServerKey payload (≥ 40 bytes, magic first) and returns the key.
/// Up to 1024 bytes are tolerated, extra bytes ignored, like a Go client.
pub fn parse_server_key_payload(payload: &[u8]) -> Result<PublicKey, HandshakeError> {
    /// Largest ServerKey payload a Go client accepts.
    const MAX_SERVER_KEY_LEN: usize = 1024;
    if payload.len() > MAX_SERVER_KEY_LEN {
        return Err(HandshakeError::TooLong);
    }
    let (magic, rest) = payload
        .split_at_checked(super::frame::MAGIC.len())
        .ok_or(HandshakeError::BadServerKey)?;
    if magic != super::frame::MAGIC {
        return Err(HandshakeError::BadServerKey);
    }
    rest.get(..KEY_LEN)
        .and_then(PublicKey::from_slice)
        .ok_or(HandshakeError::BadServerKey)
}

/// The protocol version clients announce, as the JSON integer type.
pub const CLIENT_VERSION: i64 = PROTOCOL_VERSION as i64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::noise::noise;

    #[test]
    fn shared_box_matches_the_one_shot_functions_and_serves_the_login() {
        let server = SecretKey::from_bytes([0x11; 32]);
        let client = SecretKey::from_bytes([0x22; 32]);
        let (server_pub, client_pub) = (server.public_key(), client.public_key());
        let nonce = [9u8; NONCE_LEN];
        let shared = SharedBox::new(&server, &client_pub);
        assert_eq!(
            shared.seal(nonce, b"abc"),
            seal(&server, &client_pub, nonce, b"abc")
        );
        // A whole login: the box from the ClientInfo seals the ServerInfo the client opens.
        let mut frame = Vec::new();
        encode_client_info(&mut frame, &client, &server_pub, &ClientInfo::default()).unwrap();
        let (key, _, login_box) = open_client_info_box(&server, &frame[5..]).unwrap();
        assert_eq!(key, client_pub);
        let mut reply = Vec::new();
        encode_server_info_with(&mut reply, &login_box).unwrap();
        let info = open_server_info(&client, &server_pub, &reply[5..]).unwrap();
        assert_eq!(info.version, 2);
    }
    use crate::proto::frame::{FrameHeader, HEADER_LEN};

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    // Generated once with Go's golang.org/x/crypto/nacl/box.Seal (v0.58.0):
    // sender = clamp(01 02 .. 20), receiver = clamp(a0 a1 .. bf), nonce = 30 31 .. 47,
    // message = {"version":2,"CanAckPings":true}.
    const GO_A_SECRET: &str = "0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60";
    const GO_A_PUBLIC: &str = "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c";
    const GO_B_SECRET: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbe7f";
    const GO_B_PUBLIC: &str = "605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c";
    const GO_SEALED: &str = "303132333435363738393a3b3c3d3e3f4041424344454647\
d0b5afa1d0aa13e6b12c5fd0b332b2c7f66ce37bd3833b453a5578fc99da20ede2cb54dd31743fa426312af0a16f67db";
    const GO_MESSAGE: &[u8] = b"{\"version\":2,\"CanAckPings\":true}";

    fn go_keys() -> (SecretKey, PublicKey, SecretKey, PublicKey) {
        let a = SecretKey::from_bytes(parse_hex_32(GO_A_SECRET).unwrap());
        let b = SecretKey::from_bytes(parse_hex_32(GO_B_SECRET).unwrap());
        let a_pub = PublicKey(parse_hex_32(GO_A_PUBLIC).unwrap());
        let b_pub = PublicKey(parse_hex_32(GO_B_PUBLIC).unwrap());
        (a, a_pub, b, b_pub)
    }

    #[test]
    fn seal_matches_go_nacl_box() {
        let (a, a_pub, b, b_pub) = go_keys();
        assert_eq!(a.public_key(), a_pub);
        assert_eq!(b.public_key(), b_pub);
        let mut nonce = [0u8; 24];
        for (i, byte) in nonce.iter_mut().enumerate() {
            *byte = 0x30 + i as u8;
        }
        let sealed = seal(&a, &b_pub, nonce, GO_MESSAGE);
        assert_eq!(sealed, hex(GO_SEALED));
        assert_eq!(sealed.len(), 24 + 16 + GO_MESSAGE.len());
        assert_eq!(open(&b, &a_pub, &sealed).unwrap(), GO_MESSAGE);
    }

    #[test]
    fn go_sealed_client_info_frame_opens() {
        // Frame a Go client would send with the vector above: client = A, server = B.
        let (_, a_pub, b, _) = go_keys();
        let mut frame = vec![0x02, 0x00, 0x00, 0x00, 0x68];
        frame.extend_from_slice(a_pub.as_bytes());
        frame.extend(hex(GO_SEALED));
        assert_eq!(frame.len(), HEADER_LEN + 104);
        let expected = ClientInfo {
            version: 2,
            can_ack_pings: true,
            ..ClientInfo::default()
        };
        assert_eq!(
            open_client_info(&b, &frame[HEADER_LEN..]),
            Ok((a_pub, expected))
        );
    }

    #[test]
    fn open_rejects_tampering_and_short_input() {
        let (_, a_pub, b, _) = go_keys();
        let mut sealed = hex(GO_SEALED);
        for index in [0usize, 24, 40, sealed.len() - 1] {
            sealed[index] ^= 1;
            assert_eq!(
                open(&b, &a_pub, &sealed),
                Err(HandshakeError::BoxOpenFailed)
            );
            sealed[index] ^= 1;
        }
        assert_eq!(
            open(&b, &a_pub, &sealed[..39]),
            Err(HandshakeError::SealedTooShort)
        );
        // Wrong sender key.
        assert_eq!(
            open(&b, &b.public_key(), &sealed),
            Err(HandshakeError::BoxOpenFailed)
        );
        // Empty plaintext is still a valid 40-byte box.
        let empty = seal_random(&b, &a_pub, b"").unwrap();
        assert_eq!(empty.len(), 40);
    }

    #[test]
    fn client_info_json_go_semantics() {
        let ok = |json: &str| parse_client_info_json(json.as_bytes());
        assert_eq!(ok("{}"), Ok(ClientInfo::default()));
        assert_eq!(ok("null"), Ok(ClientInfo::default()));
        let typical = ok(r#"{"version":2,"CanAckPings":true}"#).unwrap();
        assert_eq!(typical.version, 2);
        assert!(typical.can_ack_pings);
        assert!(!typical.is_prober);
        let mesh = "AB".repeat(32);
        let caps = ok(&format!(
            r#"{{"MeshKey":"{mesh}","Version":7,"canackpings":true,"ISPROBER":true,"appname":"x","other":[1,{{"a":null}}]}}"#
        ))
        .unwrap();
        assert_eq!(caps.mesh_key, Some([0xab; 32]));
        assert_eq!(caps.version, 7);
        assert!(caps.can_ack_pings && caps.is_prober);
        assert_eq!(caps.app_name.as_deref(), Some("x"));
        // Duplicate keys, differently cased: the last one wins.
        assert_eq!(ok(r#"{"version":1,"VERSION":3}"#).unwrap().version, 3);
        assert_eq!(ok(r#"{"Version":3,"version":1}"#).unwrap().version, 1);
        // null leaves the field alone.
        assert_eq!(ok(r#"{"version":2,"version":null}"#).unwrap().version, 2);
    }

    /// The serde Visitors tinyderp read these documents with before proto/json.rs, kept
    /// as the reference the new readers are compared against.
    mod serde_reference {
        use super::super::{ClientInfo, HandshakeError, ServerInfoJson};
        use crate::proto::key::parse_hex_32;
        use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
        use std::fmt;

        /// Mirrors Go's `encoding/json` on a struct: keys matched case-insensitively in document
        /// order (so the last duplicate wins), unknown keys skipped, `null` leaves a field unchanged.
        struct ClientInfoVisitor;

        /// Error text used inside the visitor; the caller maps every serde error to a variant.
        const BAD_MESH_KEY_MSG: &str = "bad meshKey";

        impl<'de> Visitor<'de> for ClientInfoVisitor {
            type Value = ClientInfo;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ClientInfo JSON object")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<ClientInfo, E> {
                Ok(ClientInfo::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClientInfo, A::Error> {
                let mut info = ClientInfo::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.to_ascii_lowercase().as_str() {
                        "meshkey" => {
                            let value: serde_json::Value = map.next_value()?;
                            let parsed = value.as_str().and_then(parse_hex_32);
                            match parsed {
                                Some(mesh) => info.mesh_key = Some(mesh),
                                None => return Err(serde::de::Error::custom(BAD_MESH_KEY_MSG)),
                            }
                        }
                        "version" => {
                            if let Some(version) = map.next_value::<Option<i64>>()? {
                                info.version = version;
                            }
                        }
                        "canackpings" => {
                            if let Some(flag) = map.next_value::<Option<bool>>()? {
                                info.can_ack_pings = flag;
                            }
                        }
                        "isprober" => {
                            if let Some(flag) = map.next_value::<Option<bool>>()? {
                                info.is_prober = flag;
                            }
                        }
                        "appname" => {
                            if let Some(name) = map.next_value::<Option<String>>()? {
                                info.app_name = Some(name).filter(|name| !name.is_empty());
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(info)
            }
        }

        /// Go-style case-insensitive reader for [`ServerInfoJson`].
        struct ServerInfoVisitor;

        impl<'de> Visitor<'de> for ServerInfoVisitor {
            type Value = ServerInfoJson;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ServerInfo JSON object")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<ServerInfoJson, E> {
                Ok(ServerInfoJson::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerInfoJson, A::Error> {
                let mut info = ServerInfoJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.to_ascii_lowercase().as_str() {
                        "version" => &mut info.version,
                        "tokenbucketbytespersecond" => &mut info.token_bucket_bytes_per_second,
                        "tokenbucketbytesburst" => &mut info.token_bucket_bytes_burst,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if let Some(value) = map.next_value::<Option<i64>>()? {
                        *slot = value;
                    }
                }
                Ok(info)
            }
        }

        pub fn client_info(json: &[u8]) -> Result<ClientInfo, HandshakeError> {
            let mut de = serde_json::Deserializer::from_slice(json);
            let info = de.deserialize_any(ClientInfoVisitor).map_err(|err| {
                if err.to_string().starts_with(BAD_MESH_KEY_MSG) {
                    HandshakeError::BadMeshKey
                } else {
                    HandshakeError::BadJson
                }
            })?;
            de.end().map_err(|_| HandshakeError::BadJson)?;
            Ok(info)
        }

        pub fn server_info(json: &[u8]) -> Result<ServerInfoJson, HandshakeError> {
            let mut de = serde_json::Deserializer::from_slice(json);
            let info = de
                .deserialize_any(ServerInfoVisitor)
                .map_err(|_| HandshakeError::BadJson)?;
            de.end().map_err(|_| HandshakeError::BadJson)?;
            Ok(info)
        }
    }

    /// Random ClientInfo/ServerInfo-like documents (every field name in several cases,
    /// values of every type, `null`, duplicates, damage) read by both readers alike.
    #[test]
    fn json_readers_match_the_serde_visitors() {
        const KEYS: &[&str] = &[
            "meshKey",
            "MESHKEY",
            "version",
            "Version",
            "CanAckPings",
            "canackpings",
            "IsProber",
            "AppName",
            "appname",
            "TokenBucketBytesPerSecond",
            "tokenbucketbytesburst",
            "other",
            "x\\u0041",
        ];
        const VALUES: &[&str] = &[
            "null",
            "true",
            "false",
            "0",
            "2",
            "-0",
            "-1",
            "2.5",
            "2.0",
            "1e2",
            "1e400",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551616",
            "\"\"",
            "\"tailscale\"",
            "\"\\ud800\"",
            "\"caf\u{e9}\"",
            "[]",
            "[1,{\"a\":[null]}]",
            "{}",
            "{\"x\":1e400}",
            "\"0000000000000000000000000000000000000000000000000000000000000001\"",
            "\"00000000000000000000000000000000000000000000000000000000000000zz\"",
            "\"00\"",
            "01",
            "[1,]",
            "\"\\x\"",
            "tru",
        ];
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut below = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut accepted = 0;
        for round in 0..30_000 {
            let mut text = String::from(if round % 97 == 0 { "null" } else { "{" });
            if round % 97 != 0 {
                for i in 0..below(4) {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(&format!(
                        "\"{}\":{}",
                        KEYS[below(KEYS.len())],
                        VALUES[below(VALUES.len())]
                    ));
                }
                text.push('}');
            }
            let mut text = text.into_bytes();
            if below(8) == 0 {
                let at = below(text.len() + 1);
                text.insert(at, b",] \"}\xff"[below(6)]);
            }
            let shown = String::from_utf8_lossy(&text);
            let ours = parse_client_info_json(&text);
            assert_eq!(ours, serde_reference::client_info(&text), "{shown}");
            accepted += usize::from(ours.is_ok());
            assert_eq!(
                parse_server_info_json(&text),
                serde_reference::server_info(&text),
                "{shown}"
            );
        }
        assert!((3_000..27_000).contains(&accepted), "{accepted} accepted");
    }

    #[test]
    fn client_info_json_rejections() {
        let err = |json: &str| parse_client_info_json(json.as_bytes()).unwrap_err();
        assert_eq!(err(r#"{"meshKey":"abcdefg"}"#), HandshakeError::BadMeshKey);
        assert_eq!(
            err(&format!(r#"{{"meshKey":"{}"}}"#, "ab".repeat(34))),
            HandshakeError::BadMeshKey
        );
        assert_eq!(err(r#"{"meshKey":""}"#), HandshakeError::BadMeshKey);
        assert_eq!(err(r#"{"meshKey":null}"#), HandshakeError::BadMeshKey);
        assert_eq!(err(r#"{"meshkey":12}"#), HandshakeError::BadMeshKey);
        assert_eq!(err("{"), HandshakeError::BadJson);
        assert_eq!(err("[]"), HandshakeError::BadJson);
        assert_eq!(err("{} x"), HandshakeError::BadJson);
        assert_eq!(err(r#"{"version":"2"}"#), HandshakeError::BadJson);
        assert_eq!(err(r#"{"version":2.5}"#), HandshakeError::BadJson);
        assert_eq!(err(r#"{"CanAckPings":1}"#), HandshakeError::BadJson);
        assert_eq!(err(""), HandshakeError::BadJson);
    }

    #[test]
    fn client_info_json_matches_go_encoder() {
        let typical = ClientInfo {
            version: 2,
            can_ack_pings: true,
            ..ClientInfo::default()
        };
        assert_eq!(
            client_info_json(&typical),
            b"{\"version\":2,\"CanAckPings\":true}"
        );
        let mesh = ClientInfo {
            mesh_key: Some([0x0f; 32]),
            version: 2,
            ..ClientInfo::default()
        };
        assert_eq!(
            String::from_utf8(client_info_json(&mesh)).unwrap(),
            format!(
                "{{\"meshKey\":\"{}\",\"version\":2,\"CanAckPings\":false}}",
                "0f".repeat(32)
            )
        );
        let prober = ClientInfo {
            is_prober: true,
            app_name: Some("a\"b".into()),
            ..ClientInfo::default()
        };
        assert_eq!(
            client_info_json(&prober),
            b"{\"CanAckPings\":false,\"IsProber\":true,\"AppName\":\"a\\\"b\"}"
        );
        for info in [typical, mesh, prober] {
            assert_eq!(
                parse_client_info_json(&client_info_json(&info)).unwrap(),
                info
            );
        }
    }

    #[test]
    fn client_info_frame_round_trip_and_checks() {
        let (client, client_pub, server, server_pub) = go_keys();
        let info = ClientInfo {
            version: 2,
            can_ack_pings: true,
            ..ClientInfo::default()
        };
        let mut frame = Vec::new();
        encode_client_info(&mut frame, &client, &server_pub, &info).unwrap();
        let header = FrameHeader::decode(frame[..HEADER_LEN].try_into().unwrap());
        assert_eq!(header.frame_type, 0x02);
        let payload = &frame[HEADER_LEN..];
        assert_eq!(header.len as usize, payload.len());
        assert_eq!(payload.len(), 32 + 24 + 16 + 32);
        assert_eq!(&payload[..32], client_pub.as_bytes());
        assert_eq!(open_client_info(&server, payload), Ok((client_pub, info)));

        assert_eq!(
            open_client_info(&server, &payload[..55]),
            Err(HandshakeError::ClientInfoTooShort)
        );
        // 56 bytes passes the length gate and fails in the box (no tag).
        assert_eq!(
            open_client_info(&server, &payload[..56]),
            Err(HandshakeError::SealedTooShort)
        );
        let huge = vec![1u8; MAX_CLIENT_INFO_LEN + 1];
        assert_eq!(
            open_client_info(&server, &huge),
            Err(HandshakeError::TooLong)
        );
        let mut zero = payload.to_vec();
        zero[..32].fill(0);
        assert_eq!(
            open_client_info(&server, &zero),
            Err(HandshakeError::ZeroKey)
        );
        let mut forged = payload.to_vec();
        forged[0] ^= 0x40;
        assert_eq!(
            open_client_info(&server, &forged),
            Err(HandshakeError::BoxOpenFailed)
        );
        // Sealed garbage JSON.
        let mut bad = client_pub.as_bytes().to_vec();
        bad.extend(seal_random(&client, &server_pub, b"{nope").unwrap());
        assert_eq!(
            open_client_info(&server, &bad),
            Err(HandshakeError::BadJson)
        );
    }

    #[test]
    fn server_info_frame_round_trip() {
        let (client, client_pub, server, server_pub) = go_keys();
        let mut frame = Vec::new();
        encode_server_info(&mut frame, &server, &client_pub).unwrap();
        assert_eq!(&frame[..HEADER_LEN], &[0x03, 0, 0, 0, 53]);
        let payload = &frame[HEADER_LEN..];
        assert_eq!(
            open(&client, &server_pub, payload).unwrap(),
            SERVER_INFO_JSON
        );
        assert_eq!(
            open_server_info(&client, &server_pub, payload),
            Ok(ServerInfoJson {
                version: 2,
                ..ServerInfoJson::default()
            })
        );
        let limited = seal_random(
            &server,
            &client_pub,
            br#"{"version":2,"TokenBucketBytesPerSecond":1000,"tokenbucketbytesburst":50,"x":"y"}"#,
        )
        .unwrap();
        assert_eq!(
            open_server_info(&client, &server_pub, &limited),
            Ok(ServerInfoJson {
                version: 2,
                token_bucket_bytes_per_second: 1000,
                token_bucket_bytes_burst: 50,
            })
        );
        // A box is bound to the key pair: a third party's key cannot open it.
        let stranger = SecretKey::from_bytes([0x55; 32]);
        assert_eq!(
            open_server_info(&stranger, &server_pub, payload),
            Err(HandshakeError::BoxOpenFailed)
        );
    }

    #[test]
    fn server_key_payload_checks() {
        let key = PublicKey([7; 32]);
        let mut payload = crate::proto::frame::MAGIC.to_vec();
        payload.extend_from_slice(key.as_bytes());
        assert_eq!(parse_server_key_payload(&payload), Ok(key));
        payload.extend_from_slice(&[9; 100]);
        assert_eq!(parse_server_key_payload(&payload), Ok(key));
        assert_eq!(
            parse_server_key_payload(&payload[..39]),
            Err(HandshakeError::BadServerKey)
        );
        payload[0] = b'X';
        assert_eq!(
            parse_server_key_payload(&payload),
            Err(HandshakeError::BadServerKey)
        );
        assert_eq!(
            parse_server_key_payload(&[0u8; 1025]),
            Err(HandshakeError::TooLong)
        );
    }

    #[test]
    fn reasons_are_snake_case_labels() {
        let all = [
            HandshakeError::ClientInfoTooShort,
            HandshakeError::TooLong,
            HandshakeError::SealedTooShort,
            HandshakeError::BoxOpenFailed,
            HandshakeError::ZeroKey,
            HandshakeError::BadJson,
            HandshakeError::BadMeshKey,
            HandshakeError::WrongFrameType,
            HandshakeError::BadServerKey,
        ];
        for err in all {
            let reason = err.reason();
            assert!(reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(err.to_string().ends_with(reason));
        }
        assert_eq!(HandshakeError::BoxOpenFailed.reason(), "box_open_failed");
    }

    #[test]
    fn parsers_never_panic_on_noise() {
        let server = SecretKey::from_bytes([3; 32]);
        let mut seed = 0x5555_aaaa_1234_4321;
        for round in 0..3_000usize {
            let bytes = noise(&mut seed, round % 120);
            let _ = parse_client_info_json(&bytes);
            let _ = open_client_info(&server, &bytes);
            let _ = parse_server_key_payload(&bytes);
        }
        for json in [
            "{\"meshKey\":",
            "{\"version\":1e400}",
            "[[[[[[",
            "{\"a\":\"\\u12\"}",
        ] {
            assert_eq!(
                parse_client_info_json(json.as_bytes()),
                Err(HandshakeError::BadJson)
            );
        }
    }
}
