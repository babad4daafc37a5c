//! The packet side of the relay, apart from the registry: each connection's packet queues
//! and counters ([`Inbox`]) and the server-wide budgets ([`DataCounters`]), so that the
//! net layer can keep each receiver's queues behind that receiver's own lock and relay a
//! packet without the registry's lock. Senders to different receivers then share no
//! exclusive lock; they share only the atomic budgets here.
//!
//! [`super::Relay`] (the registry) decides which connection of a key receives its packets
//! and tells the net layer with [`super::Action::Route`]; control frames (Pong, PeerGone,
//! watcher updates, Restarting) stay with the registry, which is locked only for them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::metrics::{bump, Counters, DropReason, PacketKind};
use super::pool::{PacketBuf, MAX_POOLED_CAPACITY, NEW_BUFFER_CAPACITY, RECV_PREFIX_LEN};
use crate::proto::frame::{encode_recv_packet, HEADER_LEN};
use crate::proto::key::PublicKey;

/// A packet on its way to an inbox: borrowed from a parsed frame (encoded
/// into a pooled buffer if it is queued), or already read into its own buffer (queued
/// as it is, without a copy).
#[derive(Debug)]
pub enum Packet<'a> {
    /// Packet data borrowed from a parsed frame.
    Borrowed(&'a [u8]),
    /// A SendPacket read in place (see [`PacketBuf`]).
    Owned(PacketBuf),
}

impl Packet<'_> {
    /// The packet data.
    pub fn data(&self) -> &[u8] {
        match self {
            Packet::Borrowed(data) => data,
            Packet::Owned(buf) => buf.data(),
        }
    }
}

/// Default depth of each of a connection's two packet queues (upstream: 32).
pub const DEFAULT_QUEUE_DEPTH: usize = 32;

/// Default number of live updates a watcher may have pending on top of one snapshot.
pub const DEFAULT_WATCHER_QUEUE_DEPTH: usize = 4096;

/// Default server-wide bound on bytes of queued RecvPacket frames (16 MiB). Without it,
/// 64 slow receivers with two full queues of 64 KiB packets would hold 256 MiB, more than
/// most routers have.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 << 20;

/// Tries to make room in a full queue by dropping its oldest packet before the new packet
/// itself is dropped (upstream: 3).
pub const MAX_ENQUEUE_ATTEMPTS: usize = 3;

/// Most sources one connection remembers for PeerGone(Disconnected) notices (§3.7).
/// Upstream's set is unbounded; deliveries from sources beyond this bound are still made
/// but counted in `peer_gone_subscriptions_dropped`, and that receiver will not be told
/// when those sources leave. A full set costs 8 KiB (sorted keys) plus one entry per
/// source in the shared reverse index.
pub const MAX_PEER_GONE_SUBSCRIPTIONS: usize = 256;

/// Bounds of the relay state. Every growing structure is bounded by one of these or by a
/// named constant in this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Depth of each of a connection's two packet queues (disco, other).
    pub queue_depth: usize,
    /// A watcher may have at most (number of connected keys + this) updates pending: room
    /// for one full snapshot plus this many live changes. On overflow the watcher is
    /// closed (counted as `watcher_overflows`) rather than silently losing updates,
    /// which would leave the mesh peer with a wrong routing table; it reconnects and gets
    /// a fresh, correct snapshot.
    pub watcher_queue_depth: usize,
    /// Server-wide bound on bytes of queued RecvPacket frames; a packet that would exceed
    /// it is dropped as `queue_budget`.
    pub max_queued_bytes: usize,
}

impl Default for RelayLimits {
    fn default() -> RelayLimits {
        RelayLimits {
            queue_depth: DEFAULT_QUEUE_DEPTH,
            watcher_queue_depth: DEFAULT_WATCHER_QUEUE_DEPTH,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
        }
    }
}

/// What one [`Inbox::drain`] call produced, for statistics and
/// [`Inbox::note_write_failure`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// RecvPacket frames appended.
    pub packets: u32,
    /// Packet data bytes in those frames (without headers and keys).
    pub bytes: u64,
    /// How many of `packets` were disco packets.
    pub disco: u32,
    /// How many of `bytes` were in disco packets.
    pub disco_bytes: u64,
    /// Something is still pending: call again.
    pub more: bool,
}

/// Most free buffers one inbox keeps for reuse: a writer gives back up to a batch of two
/// full default queues at once, and senders to this receiver take them for their next
/// read, so a busy pair allocates nothing.
pub const INBOX_POOL_BUFFERS: usize = 64;

/// Server-wide bound on free buffers parked in all inboxes' pools together (at most
/// 1024 x 4 KiB = 4 MiB after a burst; a busy relay keeps them moving).
pub const MAX_INBOX_POOLED_BUFFERS: usize = 1024;

/// The server-wide budgets every inbox draws on: queued packets and bytes (bounded by
/// [`RelayLimits::max_queued_bytes`]) and parked free buffers (bounded by
/// [`MAX_INBOX_POOLED_BUFFERS`]). Atomic word-sized counters, so no lock is shared; the
/// packet counters themselves are per inbox ([`InboxTally`]), since 32-bit router CPUs
/// have no 64-bit atomics.
#[derive(Debug)]
pub struct DataCounters {
    queued_packets: AtomicUsize,
    queued_bytes: AtomicUsize,
    pooled: AtomicUsize,
    max_queued_bytes: usize,
}

impl DataCounters {
    /// Nothing queued; `max_queued_bytes` is the server-wide queued-bytes budget.
    pub fn new(max_queued_bytes: usize) -> DataCounters {
        DataCounters {
            queued_packets: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            pooled: AtomicUsize::new(0),
            max_queued_bytes,
        }
    }

    /// Reserves room for a frame of `len` bytes in the server-wide budget; false (and
    /// nothing reserved) if it would be exceeded.
    fn reserve(&self, len: usize) -> bool {
        let reserved =
            self.queued_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                    queued
                        .checked_add(len)
                        .filter(|total| *total <= self.max_queued_bytes)
                });
        if reserved.is_ok() {
            self.queued_packets.fetch_add(1, Ordering::Relaxed);
        }
        reserved.is_ok()
    }

    /// Gives back the budget of one dequeued frame of `len` bytes.
    fn release(&self, len: usize) {
        self.queued_packets.fetch_sub(1, Ordering::Relaxed);
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    /// Packets and bytes of RecvPacket frames queued now, over all inboxes.
    pub fn queued(&self) -> (usize, usize) {
        (
            self.queued_packets.load(Ordering::Relaxed),
            self.queued_bytes.load(Ordering::Relaxed),
        )
    }

    /// Free buffers parked in inbox pools now.
    pub fn pooled(&self) -> usize {
        self.pooled.load(Ordering::Relaxed)
    }
}

/// One inbox's packet counters: received (by the senders to it), sent, dropped, and its
/// pool's misses and discards. Allocated with the first packet, so an idle connection
/// has none; the registry adds them up for the metrics ([`super::Relay::counters_with`])
/// and keeps them when the connection leaves ([`super::Relay::absorb`]).
#[derive(Clone, Debug, Default)]
pub struct InboxTally {
    /// The packet fields of [`Counters`] (the others stay zero).
    pub counters: Counters,
    /// Takes that found the pool empty and allocated.
    pub pool_misses: u64,
    /// Buffers freed because a pool was full or they were too big to keep.
    pub pool_discards: u64,
}

/// The packets waiting for one connection, and free buffers for the senders to it.
///
/// Starts empty and unallocated, so an idle connection's inbox costs its struct only.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Encoded RecvPacket frames of disco packets, at most `queue_depth`.
    disco_queue: VecDeque<Vec<u8>>,
    /// Encoded RecvPacket frames of other packets, at most `queue_depth`.
    other_queue: VecDeque<Vec<u8>>,
    /// A wake-up was asked for and the writer has not yet drained everything.
    wake_pending: bool,
    /// The connection is closing or gone: packets for it are dropped.
    closing: bool,
    /// Sources already reported to the registry for PeerGone (sorted, bounded by
    /// [`MAX_PEER_GONE_SUBSCRIPTIONS`]), so the registry is told once per source.
    seen: Vec<PublicKey>,
    /// Free buffers, at most [`INBOX_POOL_BUFFERS`] (and the server-wide bound).
    pool: Vec<Vec<u8>>,
    /// Its packet counters, from its first packet on.
    tally: Option<Box<InboxTally>>,
}

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// Queues a packet from `src`: full queue -> drop its oldest packet and retry, up to
    /// [`MAX_ENQUEUE_ATTEMPTS`], then drop the new one; over the server-wide byte budget
    /// -> drop it. Never blocks. True if the writer must be woken (the first frame
    /// pending since its last drain).
    pub fn enqueue(
        &mut self,
        src: &PublicKey,
        packet: Packet<'_>,
        limits: &RelayLimits,
        data: &DataCounters,
    ) -> bool {
        let kind = PacketKind::of(packet.data());
        if self.closing {
            self.drop_packet(data, DropReason::GoneDisconnected, kind, packet);
            return false;
        }
        let queue = match kind {
            PacketKind::Disco => &mut self.disco_queue,
            PacketKind::Other => &mut self.other_queue,
        };
        let mut has_room = false;
        let mut freed = Vec::new();
        for _ in 0..MAX_ENQUEUE_ATTEMPTS {
            if queue.len() < limits.queue_depth {
                has_room = true;
                break;
            }
            if let Some(oldest) = queue.pop_front() {
                data.release(oldest.len());
                freed.push(oldest);
            }
        }
        for buf in freed {
            self.tally()
                .counters
                .note_drop(DropReason::QueueHead, kind, 1, data_len(&buf));
            self.give(buf, data);
        }
        if !has_room {
            self.drop_packet(data, DropReason::QueueTail, kind, packet);
            return false;
        }
        let frame_len = RECV_PREFIX_LEN.saturating_add(packet.data().len());
        if !data.reserve(frame_len) {
            self.drop_packet(data, DropReason::QueueBudget, kind, packet);
            return false;
        }
        let frame = match packet {
            Packet::Owned(buf) => buf.into_recv_frame(src),
            Packet::Borrowed(bytes) => {
                let mut frame = self.take_buffer(data);
                frame.clear();
                encode_recv_packet(&mut frame, src, bytes);
                frame
            }
        };
        // The reservation was for `frame_len`; the encoded frame has exactly that length.
        let queue = match kind {
            PacketKind::Disco => &mut self.disco_queue,
            PacketKind::Other => &mut self.other_queue,
        };
        queue.push_back(frame);
        if self.wake_pending {
            false
        } else {
            self.wake_pending = true;
            true
        }
    }

    /// Moves queued RecvPacket frames (disco queue first) into `frames`, stopping before
    /// a frame that would take `already` (bytes the caller has written into this batch)
    /// plus the packets past `max_bytes`, but taking at least one if the batch is empty.
    /// Buffers left in `frames` (the previous batch, written by now) are first taken
    /// back into the pool. Packets are counted as sent here. Sources not seen before are
    /// appended to `new_sources`, for the registry's PeerGone subscriptions; a source
    /// beyond [`MAX_PEER_GONE_SUBSCRIPTIONS`] is counted as a dropped subscription.
    pub fn drain(
        &mut self,
        already: usize,
        frames: &mut Vec<Vec<u8>>,
        max_bytes: usize,
        data: &DataCounters,
        new_sources: &mut Vec<PublicKey>,
    ) -> Drained {
        self.recycle(frames, data);
        let mut drained = Drained::default();
        let mut written = already;
        'fill: for kind in PacketKind::ALL {
            loop {
                let queue = match kind {
                    PacketKind::Disco => &mut self.disco_queue,
                    PacketKind::Other => &mut self.other_queue,
                };
                let Some(next_len) = queue.front().map(Vec::len) else {
                    break;
                };
                if written != 0 && written.saturating_add(next_len) > max_bytes {
                    break 'fill;
                }
                let Some(frame) = queue.pop_front() else {
                    break;
                };
                written = written.saturating_add(frame.len());
                data.release(frame.len());
                let len = data_len(&frame);
                drained.packets = drained.packets.saturating_add(1);
                drained.bytes = drained.bytes.saturating_add(len);
                if kind == PacketKind::Disco {
                    drained.disco = drained.disco.saturating_add(1);
                    drained.disco_bytes = drained.disco_bytes.saturating_add(len);
                }
                if let Some(src) = frame
                    .get(HEADER_LEN..RECV_PREFIX_LEN)
                    .and_then(PublicKey::from_slice)
                {
                    self.note_source(src, new_sources);
                }
                frames.push(frame);
            }
        }
        if drained.packets > 0 {
            self.tally()
                .counters
                .note_sent(u64::from(drained.packets), drained.bytes, false);
        }
        drained.more = self.has_pending();
        if !drained.more {
            self.wake_pending = false;
        }
        drained
    }

    /// Remembers that a packet from `src` was written here (see [`Inbox::drain`]).
    fn note_source(&mut self, src: PublicKey, new: &mut Vec<PublicKey>) {
        if src.is_zero() {
            return;
        }
        let Err(position) = self.seen.binary_search(&src) else {
            return;
        };
        if self.seen.len() >= MAX_PEER_GONE_SUBSCRIPTIONS {
            bump(
                &mut self.tally().counters.peer_gone_subscriptions_dropped,
                1,
            );
            return;
        }
        self.seen.insert(position, src);
        new.push(src);
    }

    /// Takes written packet buffers (from [`Inbox::drain`]) back into the pool.
    pub fn recycle(&mut self, frames: &mut Vec<Vec<u8>>, data: &DataCounters) {
        for spent in frames.drain(..) {
            self.give(spent, data);
        }
    }

    /// Marks the connection closing (packets for it are dropped from now on) and drops
    /// what is queued as `gone_disconnected`.
    pub fn close(&mut self, data: &DataCounters) {
        self.closing = true;
        let mut spent = Vec::new();
        for (kind, queue) in [
            (PacketKind::Disco, &mut self.disco_queue),
            (PacketKind::Other, &mut self.other_queue),
        ] {
            for frame in queue.drain(..) {
                data.release(frame.len());
                spent.push((kind, frame));
            }
        }
        for (kind, buf) in spent {
            self.tally()
                .counters
                .note_drop(DropReason::GoneDisconnected, kind, 1, data_len(&buf));
            self.give(buf, data);
        }
        // A closed inbox parks no buffers.
        let parked = self.pool.len();
        self.pool = Vec::new();
        data.pooled.fetch_sub(parked, Ordering::Relaxed);
    }

    /// True once [`Inbox::close`] ran.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// True if packets are waiting.
    pub fn has_pending(&self) -> bool {
        !self.disco_queue.is_empty() || !self.other_queue.is_empty()
    }

    /// Packets queued, per kind (disco, other).
    pub fn queue_lens(&self) -> (usize, usize) {
        (self.disco_queue.len(), self.other_queue.len())
    }

    /// Bytes of the frames queued here.
    pub fn queued_bytes(&self) -> usize {
        self.disco_queue
            .iter()
            .chain(self.other_queue.iter())
            .fold(0, |sum, frame| sum.saturating_add(frame.len()))
    }

    /// Sources remembered for PeerGone.
    pub fn seen_sources(&self) -> usize {
        self.seen.len()
    }

    /// Its packet counters, allocated on first use.
    fn tally(&mut self) -> &mut InboxTally {
        self.tally.get_or_insert_with(Box::default)
    }

    /// Its packet counters so far (`None` if it never saw a packet).
    pub fn counters(&self) -> Option<&InboxTally> {
        self.tally.as_deref()
    }

    /// Counts a SendPacket received for this inbox.
    pub fn note_received(&mut self, kind: PacketKind, len: usize) {
        self.tally().counters.add_received(kind, 1, len as u64);
    }

    /// Reports that the bytes of a drain were not written (write error or timeout): its
    /// packets move from "sent" to dropped `write_error`.
    pub fn note_write_failure(&mut self, drained: &Drained) {
        let disco = u64::from(drained.disco);
        let other = u64::from(drained.packets).saturating_sub(disco);
        let other_bytes = drained.bytes.saturating_sub(drained.disco_bytes);
        let counters = &mut self.tally().counters;
        if disco > 0 {
            counters.note_drop(
                DropReason::WriteError,
                PacketKind::Disco,
                disco,
                drained.disco_bytes,
            );
        }
        if other > 0 {
            counters.note_drop(
                DropReason::WriteError,
                PacketKind::Other,
                other,
                other_bytes,
            );
        }
        counters.note_sent(u64::from(drained.packets), drained.bytes, true);
    }

    /// A buffer from this inbox's pool, content stale (allocated and counted as a miss
    /// if the pool is empty).
    pub fn take_buffer(&mut self, data: &DataCounters) -> Vec<u8> {
        match self.pool.pop() {
            Some(buf) => {
                data.pooled.fetch_sub(1, Ordering::Relaxed);
                buf
            }
            None => {
                bump(&mut self.tally().pool_misses, 1);
                Vec::with_capacity(NEW_BUFFER_CAPACITY)
            }
        }
    }

    /// Gives a buffer back; kept if this pool and the server-wide bound have room and it
    /// is not oversized, else freed and counted as a discard.
    pub fn give(&mut self, buf: Vec<u8>, data: &DataCounters) {
        if buf.capacity() == 0 {
            return;
        }
        let room = self.pool.len() < INBOX_POOL_BUFFERS
            && !self.closing
            && buf.capacity() <= MAX_POOLED_CAPACITY
            && data
                .pooled
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pooled| {
                    (pooled < MAX_INBOX_POOLED_BUFFERS).then_some(pooled.saturating_add(1))
                })
                .is_ok();
        if room {
            self.pool.push(buf);
        } else {
            bump(&mut self.tally().pool_discards, 1);
        }
    }

    /// Counts a dropped packet and keeps its buffer, if it had one, for reuse.
    fn drop_packet(
        &mut self,
        data: &DataCounters,
        reason: DropReason,
        kind: PacketKind,
        packet: Packet<'_>,
    ) {
        self.tally()
            .counters
            .note_drop(reason, kind, 1, packet.data().len() as u64);
        if let Packet::Owned(buf) = packet {
            self.give(buf.into_inner(), data);
        }
    }
}

/// Packet data length of an encoded RecvPacket frame.
fn data_len(frame: &[u8]) -> u64 {
    frame.len().saturating_sub(RECV_PREFIX_LEN) as u64
}

/// Routes a SendPacket read in place to `inbox` (the active connection of its
/// destination, found by the caller): counted as received, queued or dropped. Returns
/// whether the receiver's writer must be woken and a buffer for the sender's next read.
pub fn deliver_owned(
    inbox: &mut Inbox,
    src: &PublicKey,
    packet: PacketBuf,
    limits: &RelayLimits,
    data: &DataCounters,
) -> (bool, Vec<u8>) {
    let payload = packet.data();
    inbox.note_received(PacketKind::of(payload), payload.len());
    let wake = inbox.enqueue(src, Packet::Owned(packet), limits, data);
    (wake, inbox.take_buffer(data))
}
