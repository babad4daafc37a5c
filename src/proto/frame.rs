//! DERP frame layout: a 5-byte header (`u8 type`, `u32be payload length`) followed by the
//! payload. Frames are back to back in the stream with no padding.
//!
//! ```text
//! +--------+--------------------------+------------------------+
//! | type   | length (u32be)           | payload (length bytes) |
//! | 1 byte | 4 bytes                  |                        |
//! +--------+--------------------------+------------------------+
//! ```

use std::net::SocketAddr;

use super::key::PublicKey;

/// DERP protocol version this server speaks (v2: RecvPacket carries the source key).
pub const PROTOCOL_VERSION: u32 = 2;

/// Magic at the start of the ServerKey payload: "DERP🔑" = `44 45 52 50 f0 9f 94 91`.
pub const MAGIC: [u8; 8] = [0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91];

/// Length of the frame header: type (1) + big-endian payload length (4).
pub const HEADER_LEN: usize = 5;

/// Largest packet payload carried by SendPacket, RecvPacket and ForwardPacket (64 KiB).
pub const MAX_PACKET_SIZE: usize = 64 << 10;

/// Largest ClientInfo payload the server reads before giving up (256 KiB). Checked before
/// the box is opened so a client cannot make the server buffer or decrypt more.
pub const MAX_CLIENT_INFO_LEN: usize = 256 << 10;

/// Smallest ClientInfo payload: key (32) + nonce (24); the box adds a 16-byte tag on top.
pub const MIN_CLIENT_INFO_LEN: usize = 32 + 24;

/// Ping payloads the server accepts: 8 to 1000 bytes, only the first 8 are echoed.
pub const MIN_PING_LEN: usize = 8;
/// See [`MIN_PING_LEN`].
pub const MAX_PING_LEN: usize = 1000;

/// Largest frame a Go client accepts at all (1 MiB); the server never emits more.
pub const MAX_FRAME_TO_CLIENT: usize = 1 << 20;

/// Frame type byte. Payload layouts are given per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// S→C: magic(8) + server public key(32). Always the first frame.
    ServerKey = 0x01,
    /// C→S: client public key(32) + nonce(24) + tag(16) + sealed JSON.
    ClientInfo = 0x02,
    /// S→C: nonce(24) + tag(16) + sealed JSON. Always the second frame.
    ServerInfo = 0x03,
    /// C→S: destination key(32) + data(0..=65536).
    SendPacket = 0x04,
    /// S→C: source key(32) + data.
    RecvPacket = 0x05,
    /// S→C: empty.
    KeepAlive = 0x06,
    /// C→S: one byte, non-zero = this is the client's home DERP.
    NotePreferred = 0x07,
    /// S→C: peer key(32) + reason(1).
    PeerGone = 0x08,
    /// S→watcher: key(32) + IPv6 or mapped IPv4 address(16) + port u16be(2) + flags(1).
    PeerPresent = 0x09,
    /// mesh→S: source key(32) + destination key(32) + data(0..=65536).
    ForwardPacket = 0x0a,
    /// mesh→S: empty; subscribe to PeerPresent/PeerGone for every local client.
    WatchConns = 0x10,
    /// mesh→S: target key(32); close every connection of that key.
    ClosePeer = 0x11,
    /// either way: 8 opaque bytes.
    Ping = 0x12,
    /// either way: the 8 bytes of the Ping being answered.
    Pong = 0x13,
    /// S→C: UTF-8 problem text; empty clears the warning.
    Health = 0x14,
    /// S→C: reconnect_in_ms u32be + try_for_ms u32be.
    Restarting = 0x15,
}

impl FrameType {
    /// Maps a type byte to a known frame type; `None` for types to be skipped by length.
    pub fn from_byte(byte: u8) -> Option<FrameType> {
        Some(match byte {
            0x01 => FrameType::ServerKey,
            0x02 => FrameType::ClientInfo,
            0x03 => FrameType::ServerInfo,
            0x04 => FrameType::SendPacket,
            0x05 => FrameType::RecvPacket,
            0x06 => FrameType::KeepAlive,
            0x07 => FrameType::NotePreferred,
            0x08 => FrameType::PeerGone,
            0x09 => FrameType::PeerPresent,
            0x0a => FrameType::ForwardPacket,
            0x10 => FrameType::WatchConns,
            0x11 => FrameType::ClosePeer,
            0x12 => FrameType::Ping,
            0x13 => FrameType::Pong,
            0x14 => FrameType::Health,
            0x15 => FrameType::Restarting,
            _ => return None,
        })
    }
}

/// A decoded frame header: the raw type byte (possibly unknown) and the payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Raw type byte; see [`FrameType::from_byte`].
    pub frame_type: u8,
    /// Payload length in bytes (excludes the 5-byte header).
    pub len: u32,
}

impl FrameHeader {
    /// Decodes the 5 header bytes.
    pub fn decode(bytes: [u8; HEADER_LEN]) -> FrameHeader {
        let [frame_type, l0, l1, l2, l3] = bytes;
        FrameHeader {
            frame_type,
            len: u32::from_be_bytes([l0, l1, l2, l3]),
        }
    }

    /// Encodes the 5 header bytes.
    pub fn encode(self) -> [u8; HEADER_LEN] {
        let [l0, l1, l2, l3] = self.len.to_be_bytes();
        [self.frame_type, l0, l1, l2, l3]
    }
}

/// Reason byte of a PeerGone frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PeerGoneReason {
    /// A peer that sent you packets through this server has left the region.
    Disconnected = 0x00,
    /// You sent a disco packet to a key this server does not know (since v1.40.0).
    NotHere = 0x01,
}

/// PeerPresent flag bits (since v1.70.0). `REGULAR` is used only when no other bit applies.
pub mod peer_present_flags {
    /// An ordinary client.
    pub const REGULAR: u8 = 0x01;
    /// A connection authenticated with the mesh key.
    pub const MESH_PEER: u8 = 0x02;
    /// A client that said `IsProber` in its ClientInfo.
    pub const PROBER: u8 = 0x04;
    /// A client that sent an `Ideal-Node` header (it is not on its region's first node).
    pub const NOT_IDEAL: u8 = 0x08;
}

/// Why a frame from a client was refused. Every variant closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Payload length outside what this frame type allows.
    BadLength {
        /// Raw type byte of the offending frame.
        frame_type: u8,
        /// Length the client announced.
        len: u32,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength { frame_type, len } => {
                write!(f, "frame type {frame_type:#04x} with invalid length {len}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// What the server does with a frame's payload once it has read the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadPlan {
    /// Read exactly this many bytes into memory and parse them with [`parse_client_frame`].
    Read(usize),
    /// Unknown or ignored type: read and discard this many bytes without buffering them whole.
    Skip(u64),
}

/// Checks a client frame header against the per-type limits before any payload is read,
/// so no client can make the server buffer more than one packet's worth of bytes.
pub fn plan_client_payload(header: FrameHeader) -> Result<PayloadPlan, FrameError> {
    let len = header.len as usize;
    let bad = FrameError::BadLength {
        frame_type: header.frame_type,
        len: header.len,
    };
    let within = |min: usize, max: usize| {
        if (min..=max).contains(&len) {
            Ok(PayloadPlan::Read(len))
        } else {
            Err(bad)
        }
    };
    match FrameType::from_byte(header.frame_type) {
        Some(FrameType::SendPacket) => within(32, 32 + MAX_PACKET_SIZE),
        Some(FrameType::ForwardPacket) => within(64, 64 + MAX_PACKET_SIZE),
        Some(FrameType::NotePreferred) => within(1, 1),
        Some(FrameType::WatchConns) => within(0, 0),
        Some(FrameType::ClosePeer) => within(32, 32),
        Some(FrameType::Ping) => within(MIN_PING_LEN, MAX_PING_LEN),
        _ => Ok(PayloadPlan::Skip(u64::from(header.len))),
    }
}

/// A frame received by the server from a logged-in client, borrowed from the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Relay `data` to `dst`.
    SendPacket {
        /// Destination public key.
        dst: PublicKey,
        /// Packet data (0 to 64 KiB).
        data: &'a [u8],
    },
    /// Mesh only: deliver `data` from `src` to the local client `dst`.
    ForwardPacket {
        /// Original sender's key.
        src: PublicKey,
        /// Destination public key.
        dst: PublicKey,
        /// Packet data (0 to 64 KiB).
        data: &'a [u8],
    },
    /// The client's home-DERP flag.
    NotePreferred(bool),
    /// Mesh only: subscribe to connection changes.
    WatchConns,
    /// Mesh only: close every connection of this key.
    ClosePeer(PublicKey),
    /// Answer with a Pong carrying these 8 bytes.
    Ping([u8; 8]),
    /// Any other type: already skipped, only activity is noted.
    Ignored,
}

/// Parses a client frame whose payload was read according to [`plan_client_payload`].
/// Lengths are checked again here so the parser is safe on any input.
pub fn parse_client_frame(frame_type: u8, payload: &[u8]) -> Result<ClientFrame<'_>, FrameError> {
    let bad = || FrameError::BadLength {
        frame_type,
        len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
    };
    let header = FrameHeader {
        frame_type,
        len: u32::try_from(payload.len()).map_err(|_| bad())?,
    };
    if let PayloadPlan::Skip(_) = plan_client_payload(header)? {
        return Ok(ClientFrame::Ignored);
    }
    let key_at = |offset: usize| {
        payload
            .get(offset..offset.saturating_add(32))
            .and_then(PublicKey::from_slice)
            .ok_or_else(bad)
    };
    Ok(match FrameType::from_byte(frame_type) {
        Some(FrameType::SendPacket) => ClientFrame::SendPacket {
            dst: key_at(0)?,
            data: payload.get(32..).ok_or_else(bad)?,
        },
        Some(FrameType::ForwardPacket) => ClientFrame::ForwardPacket {
            src: key_at(0)?,
            dst: key_at(32)?,
            data: payload.get(64..).ok_or_else(bad)?,
        },
        Some(FrameType::NotePreferred) => {
            ClientFrame::NotePreferred(payload.first().copied().unwrap_or(0) != 0)
        }
        Some(FrameType::WatchConns) => ClientFrame::WatchConns,
        Some(FrameType::ClosePeer) => ClientFrame::ClosePeer(key_at(0)?),
        Some(FrameType::Ping) => {
            let head = payload.get(..8).ok_or_else(bad)?;
            let mut echo = [0u8; 8];
            echo.copy_from_slice(head);
            ClientFrame::Ping(echo)
        }
        _ => ClientFrame::Ignored,
    })
}

/// Appends a frame header for `frame_type` with a `len`-byte payload to `out`.
/// Payloads the server emits are far below 4 GiB, so the length always fits.
fn push_header(out: &mut Vec<u8>, frame_type: FrameType, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(
        &FrameHeader {
            frame_type: frame_type as u8,
            len,
        }
        .encode(),
    );
}

/// Appends a whole frame (header + payload parts) to `out`.
pub fn encode_frame(out: &mut Vec<u8>, frame_type: FrameType, parts: &[&[u8]]) {
    let len = parts
        .iter()
        .map(|part| part.len())
        .fold(0usize, usize::saturating_add);
    push_header(out, frame_type, len);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// ServerKey: `01 00000028 | MAGIC | server key`.
pub fn encode_server_key(out: &mut Vec<u8>, server_key: &PublicKey) {
    encode_frame(out, FrameType::ServerKey, &[&MAGIC, server_key.as_bytes()]);
}

/// RecvPacket: `05 len | src key(32) | data`.
pub fn encode_recv_packet(out: &mut Vec<u8>, src: &PublicKey, data: &[u8]) {
    encode_frame(out, FrameType::RecvPacket, &[src.as_bytes(), data]);
}

/// KeepAlive: `06 00000000`.
pub fn encode_keep_alive(out: &mut Vec<u8>) {
    encode_frame(out, FrameType::KeepAlive, &[]);
}

/// PeerGone: `08 00000021 | key(32) | reason(1)`.
pub fn encode_peer_gone(out: &mut Vec<u8>, peer: &PublicKey, reason: PeerGoneReason) {
    encode_frame(
        out,
        FrameType::PeerGone,
        &[peer.as_bytes(), &[reason as u8]],
    );
}

/// PeerPresent: `09 00000033 | key(32) | ip(16) | port u16be | flags(1)`.
/// IPv4 addresses are written IPv4-mapped; an unknown address is all zeros.
pub fn encode_peer_present(
    out: &mut Vec<u8>,
    peer: &PublicKey,
    addr: Option<SocketAddr>,
    flags: u8,
) {
    let (ip, port) = match addr {
        Some(SocketAddr::V4(v4)) => (v4.ip().to_ipv6_mapped().octets(), v4.port()),
        Some(SocketAddr::V6(v6)) => (v6.ip().octets(), v6.port()),
        None => ([0u8; 16], 0),
    };
    encode_frame(
        out,
        FrameType::PeerPresent,
        &[peer.as_bytes(), &ip, &port.to_be_bytes(), &[flags]],
    );
}

/// Pong: `13 00000008 | echoed 8 bytes`.
pub fn encode_pong(out: &mut Vec<u8>, echo: &[u8; 8]) {
    encode_frame(out, FrameType::Pong, &[echo]);
}

/// Health: `14 len | UTF-8 text` (empty text clears the client's warning).
pub fn encode_health(out: &mut Vec<u8>, text: &str) {
    encode_frame(out, FrameType::Health, &[text.as_bytes()]);
}

/// Restarting: `15 00000008 | reconnect_in_ms u32be | try_for_ms u32be`.
pub fn encode_restarting(out: &mut Vec<u8>, reconnect_in_ms: u32, try_for_ms: u32) {
    encode_frame(
        out,
        FrameType::Restarting,
        &[&reconnect_in_ms.to_be_bytes(), &try_for_ms.to_be_bytes()],
    );
}

/// Disco magic "TS💬" that starts every disco message.
pub const DISCO_MAGIC: [u8; 6] = [0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac];

/// Shortest disco message: magic(6) + sender disco key(32) + nonce(24).
pub const MIN_DISCO_LEN: usize = 6 + 32 + 24;

/// True if `data` looks like a disco message (gets the disco queue and NotHere replies).
pub fn looks_like_disco(data: &[u8]) -> bool {
    data.len() >= MIN_DISCO_LEN && data.starts_with(&DISCO_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_golden_bytes() {
        let send = FrameHeader {
            frame_type: FrameType::SendPacket as u8,
            len: 1024,
        };
        assert_eq!(send.encode(), [0x04, 0x00, 0x00, 0x04, 0x00]);
        assert_eq!(FrameHeader::decode([0x06, 0, 0, 0, 0]).len, 0);
        let huge = FrameHeader::decode([0x42, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(huge.len, u32::MAX);
        assert_eq!(FrameType::from_byte(huge.frame_type), None);
    }

    #[test]
    fn every_known_type_round_trips() {
        for byte in 0u8..=0xff {
            if let Some(kind) = FrameType::from_byte(byte) {
                assert_eq!(kind as u8, byte);
            }
        }
    }
}
