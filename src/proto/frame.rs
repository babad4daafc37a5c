//! DERP frame layout: a 5-byte header (`u8 type`, `u32be payload length`) followed by the
//! payload. Frames are back to back in the stream with no padding.
//!
//! ```text
//! +--------+--------------------------+------------------------+
//! | type   | length (u32be)           | payload (length bytes) |
//! | 1 byte | 4 bytes                  |                        |
//! +--------+--------------------------+------------------------+
//! ```

use std::borrow::Cow;
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

/// SendPacket (client): `04 len | dst key(32) | data`.
pub fn encode_send_packet(out: &mut Vec<u8>, dst: &PublicKey, data: &[u8]) {
    encode_frame(out, FrameType::SendPacket, &[dst.as_bytes(), data]);
}

/// ForwardPacket (mesh client): `0a len | src key(32) | dst key(32) | data`.
pub fn encode_forward_packet(out: &mut Vec<u8>, src: &PublicKey, dst: &PublicKey, data: &[u8]) {
    encode_frame(
        out,
        FrameType::ForwardPacket,
        &[src.as_bytes(), dst.as_bytes(), data],
    );
}

/// NotePreferred (client): `07 00000001 | 01 or 00`.
pub fn encode_note_preferred(out: &mut Vec<u8>, preferred: bool) {
    encode_frame(out, FrameType::NotePreferred, &[&[u8::from(preferred)]]);
}

/// WatchConns (mesh client): `10 00000000`.
pub fn encode_watch_conns(out: &mut Vec<u8>) {
    encode_frame(out, FrameType::WatchConns, &[]);
}

/// ClosePeer (mesh client): `11 00000020 | target key(32)`.
pub fn encode_close_peer(out: &mut Vec<u8>, peer: &PublicKey) {
    encode_frame(out, FrameType::ClosePeer, &[peer.as_bytes()]);
}

/// Ping (either side): `12 00000008 | 8 opaque bytes`.
pub fn encode_ping(out: &mut Vec<u8>, data: &[u8; 8]) {
    encode_frame(out, FrameType::Ping, &[data]);
}

/// A frame received by a client from the server: borrowed from the read buffer as
/// [`parse_server_frame`] returns it, or owned (`ServerFrame<'static>`, see
/// [`ServerFrame::into_owned`]) as the client hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// The server's public key (first frame; skipped by fast-start clients).
    ServerKey {
        /// The server's DERP public key.
        key: PublicKey,
    },
    /// Sealed ServerInfo blob (nonce + tag + ciphertext); open with
    /// [`super::handshake::open_server_info`].
    ServerInfo(Cow<'a, [u8]>),
    /// A packet relayed from `src`.
    RecvPacket {
        /// Sender's public key.
        src: PublicKey,
        /// Packet data.
        data: Cow<'a, [u8]>,
    },
    /// Liveness only.
    KeepAlive,
    /// A peer left (or, with reason NotHere, was never here).
    PeerGone {
        /// The peer's key.
        key: PublicKey,
        /// Raw reason byte; see [`PeerGoneReason`]. The old 32-byte form reads as 0.
        reason: u8,
    },
    /// Watchers only: a client connected to the server.
    PeerPresent {
        /// The client's key.
        key: PublicKey,
        /// Its address (IPv4 unmapped); `None` in the 32-byte form or when all zero.
        addr: Option<SocketAddr>,
        /// [`peer_present_flags`] bits; 0 in the 32- and 50-byte forms.
        flags: u8,
    },
    /// The server asks for a Pong with these 8 bytes.
    Ping([u8; 8]),
    /// Answer to our Ping.
    Pong([u8; 8]),
    /// Problem text for this server; empty clears it (invalid UTF-8 is replaced).
    Health(Cow<'a, str>),
    /// The server is restarting: reconnect after `reconnect_in_ms`, keep trying for `try_for_ms`.
    Restarting {
        /// Delay before the first reconnect attempt.
        reconnect_in_ms: u32,
        /// How long to keep trying.
        try_for_ms: u32,
    },
    /// A type clients do not act on; skipped.
    Unknown {
        /// Raw type byte.
        frame_type: u8,
        /// Payload length.
        len: usize,
    },
}

impl ServerFrame<'_> {
    /// The same frame owning its bytes, so it outlives the read buffer.
    pub fn into_owned(self) -> ServerFrame<'static> {
        match self {
            ServerFrame::ServerKey { key } => ServerFrame::ServerKey { key },
            ServerFrame::ServerInfo(sealed) => {
                ServerFrame::ServerInfo(Cow::Owned(sealed.into_owned()))
            }
            ServerFrame::RecvPacket { src, data } => ServerFrame::RecvPacket {
                src,
                data: Cow::Owned(data.into_owned()),
            },
            ServerFrame::KeepAlive => ServerFrame::KeepAlive,
            ServerFrame::PeerGone { key, reason } => ServerFrame::PeerGone { key, reason },
            ServerFrame::PeerPresent { key, addr, flags } => {
                ServerFrame::PeerPresent { key, addr, flags }
            }
            ServerFrame::Ping(data) => ServerFrame::Ping(data),
            ServerFrame::Pong(data) => ServerFrame::Pong(data),
            ServerFrame::Health(text) => ServerFrame::Health(Cow::Owned(text.into_owned())),
            ServerFrame::Restarting {
                reconnect_in_ms,
                try_for_ms,
            } => ServerFrame::Restarting {
                reconnect_in_ms,
                try_for_ms,
            },
            ServerFrame::Unknown { frame_type, len } => ServerFrame::Unknown { frame_type, len },
        }
    }
}

/// Why a frame from the server could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFrameError {
    /// Payload too short (or too long) for its type.
    BadLength {
        /// Raw type byte of the offending frame.
        frame_type: u8,
        /// Payload length received.
        len: usize,
    },
    /// A ServerKey frame without the DERP magic.
    BadMagic,
}

impl std::fmt::Display for ServerFrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerFrameError::BadLength { frame_type, len } => {
                write!(
                    f,
                    "server frame type {frame_type:#04x} with invalid length {len}"
                )
            }
            ServerFrameError::BadMagic => write!(f, "server key frame without DERP magic"),
        }
    }
}

impl std::error::Error for ServerFrameError {}

/// Largest ServerKey payload a Go client accepts (extra bytes after the key are ignored).
pub const MAX_SERVER_KEY_LEN: usize = 1024;

/// Parses a frame a client received, with the length rules of Go's client: ServerKey
/// 40..=1024 bytes, RecvPacket ≥ 32, PeerGone ≥ 32, PeerPresent ≥ 32 (50 adds the
/// address, 51 the flags), Ping/Pong ≥ 8, Restarting ≥ 8; extra bytes are ignored.
pub fn parse_server_frame(
    frame_type: u8,
    payload: &[u8],
) -> Result<ServerFrame<'_>, ServerFrameError> {
    let bad = || ServerFrameError::BadLength {
        frame_type,
        len: payload.len(),
    };
    let key_at = |offset: usize| {
        payload
            .get(offset..offset.saturating_add(32))
            .and_then(PublicKey::from_slice)
            .ok_or_else(bad)
    };
    let eight_at = |offset: usize| -> Result<[u8; 8], ServerFrameError> {
        payload
            .get(offset..offset.saturating_add(8))
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .ok_or_else(bad)
    };
    Ok(match FrameType::from_byte(frame_type) {
        Some(FrameType::ServerKey) => {
            if payload.len() > MAX_SERVER_KEY_LEN {
                return Err(bad());
            }
            if payload.get(..MAGIC.len()).ok_or_else(bad)? != MAGIC {
                return Err(ServerFrameError::BadMagic);
            }
            ServerFrame::ServerKey {
                key: key_at(MAGIC.len())?,
            }
        }
        Some(FrameType::ServerInfo) => ServerFrame::ServerInfo(Cow::Borrowed(payload)),
        Some(FrameType::RecvPacket) => ServerFrame::RecvPacket {
            src: key_at(0)?,
            data: Cow::Borrowed(payload.get(32..).ok_or_else(bad)?),
        },
        Some(FrameType::KeepAlive) => ServerFrame::KeepAlive,
        Some(FrameType::PeerGone) => ServerFrame::PeerGone {
            key: key_at(0)?,
            reason: payload
                .get(32)
                .copied()
                .unwrap_or(PeerGoneReason::Disconnected as u8),
        },
        Some(FrameType::PeerPresent) => {
            let key = key_at(0)?;
            let addr = match (payload.get(32..48), payload.get(48..50)) {
                (Some(ip), Some(port)) => {
                    let ip = <[u8; 16]>::try_from(ip).map_err(|_| bad())?;
                    let port = u16::from_be_bytes(<[u8; 2]>::try_from(port).map_err(|_| bad())?);
                    let ip = std::net::Ipv6Addr::from(ip);
                    if ip.is_unspecified() && port == 0 {
                        None
                    } else {
                        let ip = match ip.to_ipv4_mapped() {
                            Some(v4) => std::net::IpAddr::V4(v4),
                            None => std::net::IpAddr::V6(ip),
                        };
                        Some(SocketAddr::new(ip, port))
                    }
                }
                _ => None,
            };
            ServerFrame::PeerPresent {
                key,
                addr,
                flags: payload.get(50).copied().unwrap_or(0),
            }
        }
        Some(FrameType::Ping) => ServerFrame::Ping(eight_at(0)?),
        Some(FrameType::Pong) => ServerFrame::Pong(eight_at(0)?),
        Some(FrameType::Health) => ServerFrame::Health(String::from_utf8_lossy(payload)),
        Some(FrameType::Restarting) => {
            let both = eight_at(0)?;
            let [a, b, c, d, e, f, g, h] = both;
            ServerFrame::Restarting {
                reconnect_in_ms: u32::from_be_bytes([a, b, c, d]),
                try_for_ms: u32::from_be_bytes([e, f, g, h]),
            }
        }
        _ => ServerFrame::Unknown {
            frame_type,
            len: payload.len(),
        },
    })
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
    use crate::proto::noise::noise;

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

    fn key(byte: u8) -> PublicKey {
        PublicKey([byte; 32])
    }

    fn frame(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = vec![kind];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        for part in parts {
            out.extend_from_slice(part);
        }
        out
    }

    fn encoded(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    fn split(bytes: &[u8]) -> (u8, &[u8]) {
        let header = FrameHeader::decode(bytes[..HEADER_LEN].try_into().unwrap());
        let payload = &bytes[HEADER_LEN..];
        assert_eq!(header.len as usize, payload.len());
        (header.frame_type, payload)
    }

    #[test]
    fn server_encoders_golden_bytes_and_round_trip() {
        let server_key = encoded(|o| encode_server_key(o, &key(0x11)));
        assert_eq!(
            server_key,
            frame(
                0x01,
                &[
                    &[0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91],
                    &[0x11; 32]
                ]
            )
        );
        assert_eq!(&server_key[..5], &[0x01, 0, 0, 0, 0x28]);
        let (t, p) = split(&server_key);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::ServerKey { key: key(0x11) })
        );

        let recv = encoded(|o| encode_recv_packet(o, &key(0x22), b"hi"));
        assert_eq!(recv, frame(0x05, &[&[0x22; 32], b"hi"]));
        assert_eq!(&recv[..5], &[0x05, 0, 0, 0, 34]);
        let (t, p) = split(&recv);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::RecvPacket {
                src: key(0x22),
                data: Cow::Borrowed(b"hi")
            })
        );

        let keep = encoded(encode_keep_alive);
        assert_eq!(keep, [0x06, 0, 0, 0, 0]);
        assert_eq!(parse_server_frame(0x06, &[]), Ok(ServerFrame::KeepAlive));

        let gone = encoded(|o| encode_peer_gone(o, &key(0x33), PeerGoneReason::NotHere));
        assert_eq!(gone, frame(0x08, &[&[0x33; 32], &[0x01]]));
        assert_eq!(&gone[..5], &[0x08, 0, 0, 0, 0x21]);
        let (t, p) = split(&gone);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::PeerGone {
                key: key(0x33),
                reason: 1
            })
        );

        let addr: SocketAddr = "192.0.2.1:54321".parse().unwrap();
        let present = encoded(|o| {
            encode_peer_present(o, &key(0x44), Some(addr), peer_present_flags::MESH_PEER)
        });
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1];
        assert_eq!(
            present,
            frame(0x09, &[&[0x44; 32], &mapped, &[0xd4, 0x31], &[0x02]])
        );
        assert_eq!(&present[..5], &[0x09, 0, 0, 0, 0x33]);
        let (t, p) = split(&present);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::PeerPresent {
                key: key(0x44),
                addr: Some(addr),
                flags: 2
            })
        );
        let v6: SocketAddr = "[2001:db8::7]:443".parse().unwrap();
        let present6 = encoded(|o| encode_peer_present(o, &key(0x45), Some(v6), 0x0c));
        let (t, p) = split(&present6);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::PeerPresent {
                key: key(0x45),
                addr: Some(v6),
                flags: 0x0c
            })
        );
        let unknown_addr = encoded(|o| encode_peer_present(o, &key(0x46), None, 1));
        assert_eq!(unknown_addr, frame(0x09, &[&[0x46; 32], &[0; 18], &[1]]));
        let (t, p) = split(&unknown_addr);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::PeerPresent {
                key: key(0x46),
                addr: None,
                flags: 1
            })
        );

        let pong = encoded(|o| encode_pong(o, &[1, 2, 3, 4, 5, 6, 7, 0x2a]));
        assert_eq!(pong, [0x13, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 0x2a]);
        let (t, p) = split(&pong);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::Pong([1, 2, 3, 4, 5, 6, 7, 0x2a]))
        );

        let health = encoded(|o| encode_health(o, "duplicate key"));
        assert_eq!(health, frame(0x14, &[b"duplicate key"]));
        let (t, p) = split(&health);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::Health("duplicate key".into()))
        );
        assert_eq!(encoded(|o| encode_health(o, "")), [0x14, 0, 0, 0, 0]);

        let restarting = encoded(|o| encode_restarting(o, 1000, 0x0102_0304));
        assert_eq!(restarting, [0x15, 0, 0, 0, 8, 0, 0, 0x03, 0xe8, 1, 2, 3, 4]);
        let (t, p) = split(&restarting);
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::Restarting {
                reconnect_in_ms: 1000,
                try_for_ms: 0x0102_0304
            })
        );
    }

    #[test]
    fn client_encoders_golden_bytes_and_round_trip() {
        let send = encoded(|o| encode_send_packet(o, &key(0xaa), &[9, 8, 7]));
        assert_eq!(send, frame(0x04, &[&[0xaa; 32], &[9, 8, 7]]));
        assert_eq!(&send[..5], &[0x04, 0, 0, 0, 35]);
        let (t, p) = split(&send);
        assert_eq!(
            parse_client_frame(t, p),
            Ok(ClientFrame::SendPacket {
                dst: key(0xaa),
                data: &[9, 8, 7]
            })
        );
        let empty = encoded(|o| encode_send_packet(o, &key(0xab), &[]));
        let (t, p) = split(&empty);
        assert_eq!(
            parse_client_frame(t, p),
            Ok(ClientFrame::SendPacket {
                dst: key(0xab),
                data: &[]
            })
        );

        let forward = encoded(|o| encode_forward_packet(o, &key(1), &key(2), b"x"));
        assert_eq!(forward, frame(0x0a, &[&[1; 32], &[2; 32], b"x"]));
        assert_eq!(&forward[..5], &[0x0a, 0, 0, 0, 65]);
        let (t, p) = split(&forward);
        assert_eq!(
            parse_client_frame(t, p),
            Ok(ClientFrame::ForwardPacket {
                src: key(1),
                dst: key(2),
                data: b"x"
            })
        );

        let preferred = encoded(|o| encode_note_preferred(o, true));
        assert_eq!(preferred, [0x07, 0, 0, 0, 1, 1]);
        assert_eq!(
            encoded(|o| encode_note_preferred(o, false)),
            [0x07, 0, 0, 0, 1, 0]
        );
        let (t, p) = split(&preferred);
        assert_eq!(
            parse_client_frame(t, p),
            Ok(ClientFrame::NotePreferred(true))
        );
        assert_eq!(
            parse_client_frame(0x07, &[0x80]),
            Ok(ClientFrame::NotePreferred(true))
        );
        assert_eq!(
            parse_client_frame(0x07, &[0]),
            Ok(ClientFrame::NotePreferred(false))
        );

        let watch = encoded(encode_watch_conns);
        assert_eq!(watch, [0x10, 0, 0, 0, 0]);
        assert_eq!(parse_client_frame(0x10, &[]), Ok(ClientFrame::WatchConns));

        let close = encoded(|o| encode_close_peer(o, &key(0x5c)));
        assert_eq!(close, frame(0x11, &[&[0x5c; 32]]));
        assert_eq!(&close[..5], &[0x11, 0, 0, 0, 0x20]);
        let (t, p) = split(&close);
        assert_eq!(
            parse_client_frame(t, p),
            Ok(ClientFrame::ClosePeer(key(0x5c)))
        );

        let ping = encoded(|o| encode_ping(o, &[1, 2, 3, 4, 5, 6, 7, 0x2a]));
        assert_eq!(ping, [0x12, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 0x2a]);
        let (t, p) = split(&ping);
        assert_eq!(
            parse_client_frame(t, p),
            Ok(ClientFrame::Ping([1, 2, 3, 4, 5, 6, 7, 0x2a]))
        );
        // A server may ping the client too.
        assert_eq!(
            parse_server_frame(t, p),
            Ok(ServerFrame::Ping([1, 2, 3, 4, 5, 6, 7, 0x2a]))
        );
    }

    #[test]
    fn client_frame_length_rules() {
        let bad = |frame_type: u8, len: u32| Err(FrameError::BadLength { frame_type, len });
        assert_eq!(parse_client_frame(0x04, &[0; 31]), bad(0x04, 31));
        assert_eq!(
            parse_client_frame(0x04, &vec![0; 32 + MAX_PACKET_SIZE + 1]),
            bad(0x04, 65569)
        );
        assert_eq!(parse_client_frame(0x0a, &[0; 63]), bad(0x0a, 63));
        assert_eq!(parse_client_frame(0x07, &[1, 1]), bad(0x07, 2));
        assert_eq!(parse_client_frame(0x10, &[0]), bad(0x10, 1));
        assert_eq!(parse_client_frame(0x11, &[0; 33]), bad(0x11, 33));
        assert_eq!(parse_client_frame(0x12, &[0; 7]), bad(0x12, 7));
        assert_eq!(parse_client_frame(0x12, &[0; 1001]), bad(0x12, 1001));
        let mut long_ping = vec![5u8; 1000];
        long_ping[0] = 1;
        assert_eq!(
            parse_client_frame(0x12, &long_ping),
            Ok(ClientFrame::Ping([1, 5, 5, 5, 5, 5, 5, 5]))
        );
        // Unknown and server-only types are ignored, whatever their length.
        assert_eq!(parse_client_frame(0x42, &[0; 3]), Ok(ClientFrame::Ignored));
        assert_eq!(parse_client_frame(0x06, &[0; 3]), Ok(ClientFrame::Ignored));
        assert_eq!(
            plan_client_payload(FrameHeader {
                frame_type: 0x13,
                len: u32::MAX
            }),
            Ok(PayloadPlan::Skip(u64::from(u32::MAX)))
        );
        assert_eq!(
            plan_client_payload(FrameHeader {
                frame_type: 0x04,
                len: 32 + 65536
            }),
            Ok(PayloadPlan::Read(32 + 65536))
        );
    }

    #[test]
    fn server_frame_compat_forms_and_errors() {
        // Old 32-byte PeerGone means Disconnected.
        assert_eq!(
            parse_server_frame(0x08, &[7; 32]),
            Ok(ServerFrame::PeerGone {
                key: key(7),
                reason: 0
            })
        );
        // PeerPresent: 32 bytes (key only), 50 bytes (no flags), longer (extra ignored).
        assert_eq!(
            parse_server_frame(0x09, &[7; 32]),
            Ok(ServerFrame::PeerPresent {
                key: key(7),
                addr: None,
                flags: 0
            })
        );
        let mut fifty = vec![7u8; 32];
        fifty.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1, 0, 80]);
        assert_eq!(
            parse_server_frame(0x09, &fifty),
            Ok(ServerFrame::PeerPresent {
                key: key(7),
                addr: Some("10.0.0.1:80".parse().unwrap()),
                flags: 0
            })
        );
        let mut longer = fifty.clone();
        longer.extend_from_slice(&[4, 0xee, 0xee]);
        assert_eq!(
            parse_server_frame(0x09, &longer),
            Ok(ServerFrame::PeerPresent {
                key: key(7),
                addr: Some("10.0.0.1:80".parse().unwrap()),
                flags: 4
            })
        );
        let bad = |frame_type: u8, len: usize| Err(ServerFrameError::BadLength { frame_type, len });
        assert_eq!(parse_server_frame(0x09, &[7; 31]), bad(0x09, 31));
        assert_eq!(parse_server_frame(0x08, &[7; 31]), bad(0x08, 31));
        assert_eq!(parse_server_frame(0x05, &[7; 31]), bad(0x05, 31));
        assert_eq!(parse_server_frame(0x12, &[7; 7]), bad(0x12, 7));
        assert_eq!(parse_server_frame(0x13, &[7; 7]), bad(0x13, 7));
        assert_eq!(parse_server_frame(0x15, &[7; 7]), bad(0x15, 7));
        assert_eq!(parse_server_frame(0x01, &MAGIC), bad(0x01, 8));
        assert_eq!(
            parse_server_frame(0x01, &[0; 40]),
            Err(ServerFrameError::BadMagic)
        );
        let mut big_key = MAGIC.to_vec();
        big_key.resize(1025, 0);
        assert_eq!(parse_server_frame(0x01, &big_key), bad(0x01, 1025));
        // ServerKey with trailing future bytes, RecvPacket with no data, ServerInfo raw.
        let mut future = MAGIC.to_vec();
        future.extend_from_slice(&[3; 32]);
        future.extend_from_slice(&[9; 10]);
        assert_eq!(
            parse_server_frame(0x01, &future),
            Ok(ServerFrame::ServerKey { key: key(3) })
        );
        assert_eq!(
            parse_server_frame(0x05, &[3; 32]),
            Ok(ServerFrame::RecvPacket {
                src: key(3),
                data: Cow::Borrowed(&[])
            })
        );
        assert_eq!(
            parse_server_frame(0x03, &[1, 2]),
            Ok(ServerFrame::ServerInfo(Cow::Borrowed(&[1, 2])))
        );
        assert_eq!(
            parse_server_frame(0x14, &[0x66, 0xff]),
            Ok(ServerFrame::Health("f\u{fffd}".into()))
        );
        for unknown in [0x00u8, 0x02, 0x04, 0x0b, 0x10, 0x16, 0xff] {
            assert_eq!(
                parse_server_frame(unknown, &[1, 2, 3]),
                Ok(ServerFrame::Unknown {
                    frame_type: unknown,
                    len: 3
                })
            );
        }
    }

    #[test]
    fn disco_detection() {
        let mut disco = DISCO_MAGIC.to_vec();
        disco.resize(MIN_DISCO_LEN, 0);
        assert!(looks_like_disco(&disco));
        assert!(!looks_like_disco(&disco[..MIN_DISCO_LEN - 1]));
        disco[0] = b'X';
        assert!(!looks_like_disco(&disco));
    }

    #[test]
    fn parsers_never_panic_on_noise() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000usize {
            let len = round % 90;
            let bytes = noise(&mut seed, len + 1);
            let (kind, payload) = (bytes[0] % 0x18, &bytes[1..]);
            let _ = parse_server_frame(kind, payload);
            let _ = parse_client_frame(kind, payload);
        }
    }
}
