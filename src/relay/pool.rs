//! Reusable packet buffers, so relaying a packet allocates nothing in steady state.
//!
//! A SendPacket payload is read straight into a buffer laid out as a RecvPacket frame with
//! the destination key where the source key goes ([`PacketBuf`]); the relay rewrites the
//! 37-byte prefix in place and queues the same buffer, the writer hands it to TLS and
//! gives it back ([`BufPool`]). The pool holds at most [`MAX_POOLED_BUFFERS`] free buffers
//! of at most [`MAX_POOLED_CAPACITY`] bytes each; a take from an empty pool allocates and
//! counts a miss, a buffer given back to a full pool (or too big to keep) is freed and
//! counted as a discard.

use crate::proto::frame::{FrameType, HEADER_LEN};
use crate::proto::key::{PublicKey, KEY_LEN};

/// Most free buffers the pool keeps (at most 128 x 4 KiB = 512 KiB while the relay is
/// quiet after a burst; a busy relay keeps buffers moving rather than parked here).
pub const MAX_POOLED_BUFFERS: usize = 128;

/// Buffers with more capacity than this (a rare jumbo packet) are freed, not kept.
pub const MAX_POOLED_CAPACITY: usize = 4 << 10;

/// Capacity of a newly allocated buffer: a full 1280-byte-MTU WireGuard packet and its
/// prefix fit with room to spare, so a buffer is not grown again by the next packet.
pub const NEW_BUFFER_CAPACITY: usize = 2 << 10;

/// Bytes in front of the packet data in a RecvPacket frame: header and source key.
pub const RECV_PREFIX_LEN: usize = HEADER_LEN + KEY_LEN;

/// A bounded free list of byte buffers (see the module comment).
#[derive(Debug, Default)]
pub struct BufPool {
    free: Vec<Vec<u8>>,
    /// Takes that found the pool empty and allocated.
    pub misses: u64,
    /// Buffers freed because the pool was full or they were too big to keep.
    pub discards: u64,
}

impl BufPool {
    /// An empty pool (allocates nothing until buffers come back).
    pub fn new() -> BufPool {
        BufPool::default()
    }

    /// A buffer, from the pool if it has one; its content is stale, its length anything.
    pub fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => buf,
            None => {
                self.misses = self.misses.saturating_add(1);
                Vec::with_capacity(NEW_BUFFER_CAPACITY)
            }
        }
    }

    /// Gives a buffer back; kept if there is room and it is not oversized. Its bytes are
    /// kept as they are (stale), so the next user can resize it without zero-filling.
    pub fn give(&mut self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        if self.free.len() >= MAX_POOLED_BUFFERS || buf.capacity() > MAX_POOLED_CAPACITY {
            self.discards = self.discards.saturating_add(1);
            return;
        }
        self.free.push(buf);
    }

    /// Free buffers held now.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// No free buffers held.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

/// A SendPacket read in place: `[5 spare bytes | dst key (32) | packet data]`, which
/// becomes `[RecvPacket header | src key | packet data]` by rewriting the first 37 bytes.
#[derive(Debug)]
pub struct PacketBuf {
    buf: Vec<u8>,
}

impl PacketBuf {
    /// Prepares `buf` to receive a SendPacket payload of `payload_len` bytes, reusing its
    /// memory. Stale bytes are not cleared (the payload is read over them): only a buffer
    /// shorter than the frame is extended, with zeros.
    pub fn for_payload(mut buf: Vec<u8>, payload_len: usize) -> PacketBuf {
        buf.resize(HEADER_LEN.saturating_add(payload_len), 0);
        PacketBuf { buf }
    }

    /// Where the SendPacket payload goes.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(HEADER_LEN..).unwrap_or_default()
    }

    /// The destination key, if the payload is long enough to hold one.
    pub fn dst(&self) -> Option<PublicKey> {
        self.buf
            .get(HEADER_LEN..RECV_PREFIX_LEN)
            .and_then(PublicKey::from_slice)
    }

    /// The packet data after the destination key.
    pub fn data(&self) -> &[u8] {
        self.buf.get(RECV_PREFIX_LEN..).unwrap_or_default()
    }

    /// Turns the buffer into the RecvPacket frame from `src`, without copying the data.
    pub fn into_recv_frame(mut self, src: &PublicKey) -> Vec<u8> {
        let body_len = self.buf.len().saturating_sub(HEADER_LEN);
        let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes();
        if let Some(prefix) = self.buf.get_mut(..RECV_PREFIX_LEN) {
            let (header, key) = prefix.split_at_mut(HEADER_LEN);
            header.copy_from_slice(&[FrameType::RecvPacket as u8, len[0], len[1], len[2], len[3]]);
            key.copy_from_slice(src.as_bytes());
        }
        self.buf
    }

    /// The underlying buffer, for giving back to the pool.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode_recv_packet;

    #[test]
    fn packet_buf_becomes_the_same_frame_the_encoder_writes() {
        let src = PublicKey([1; 32]);
        let dst = PublicKey([2; 32]);
        let data = b"hello relay";
        let mut packet = PacketBuf::for_payload(Vec::new(), 32 + data.len());
        let payload = packet.payload_mut();
        payload[..32].copy_from_slice(dst.as_bytes());
        payload[32..].copy_from_slice(data);
        assert_eq!(packet.dst(), Some(dst));
        assert_eq!(packet.data(), data);
        let mut expected = Vec::new();
        encode_recv_packet(&mut expected, &src, data);
        assert_eq!(packet.into_recv_frame(&src), expected);
    }

    #[test]
    fn pool_is_bounded_and_counts() {
        let mut pool = BufPool::new();
        let first = pool.take();
        assert_eq!(pool.misses, 1);
        assert!(first.capacity() >= NEW_BUFFER_CAPACITY);
        pool.give(first);
        assert_eq!(pool.len(), 1);
        let again = pool.take();
        assert_eq!(pool.misses, 1, "a pooled buffer is reused");
        pool.give(again);
        pool.give(Vec::with_capacity(MAX_POOLED_CAPACITY + 1));
        assert_eq!(pool.discards, 1, "oversized buffers are not kept");
        for _ in 0..MAX_POOLED_BUFFERS + 5 {
            pool.give(Vec::with_capacity(64));
        }
        // One buffer was already pooled: the last 6 of these do not fit.
        assert_eq!(pool.len(), MAX_POOLED_BUFFERS);
        assert_eq!(pool.discards, 1 + 6);
        pool.give(Vec::new());
        assert_eq!(pool.discards, 7, "an unallocated Vec is not counted");
    }
}
