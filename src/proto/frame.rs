//! DERP frame layout: a 5-byte header (`u8 type`, `u32be payload length`) followed by the
//! payload. Frames are back to back in the stream with no padding.
//!
//! ```text
//! +--------+--------------------------+------------------------+
//! | type   | length (u32be)           | payload (length bytes) |
//! | 1 byte | 4 bytes                  |                        |
//! +--------+--------------------------+------------------------+
//! ```

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
