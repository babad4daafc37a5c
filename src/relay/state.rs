//! The relay registry and its event handlers: [`Relay`] takes registrations, parsed client
//! frames and `now`, and answers with [`Action`]s and bytes to write. Section numbers (§)
//! refer to `docs/protocol.md`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::conn::{Conn, WatchUpdate};
use super::mesh::{MeshClient, MeshPeerId, MeshTable};
use super::metrics::{self, bump, Counters, DropReason, PacketKind, RelayStats};
use super::pool::{BufPool, PacketBuf, RECV_PREFIX_LEN};
use crate::proto::frame::{
    encode_peer_gone, encode_peer_present, encode_pong, encode_recv_packet, encode_restarting,
    peer_present_flags, ClientFrame, PeerGoneReason, HEADER_LEN,
};
use crate::proto::key::{PublicKey, KEY_LEN};

/// A packet on its way through [`Relay::route`]: borrowed from a parsed frame (encoded
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

/// Most PeerGone notices pending for one connection: one per remembered source plus room
/// for NotHere replies (which are rate limited to a burst of 3). Overflow drops the notice
/// and counts `peer_gone_notices_dropped`.
pub const PEER_GONE_NOTICE_DEPTH: usize = MAX_PEER_GONE_SUBSCRIPTIONS + 8;

/// NotePreferred changes within this time after connecting are not counted as home moves
/// (clients announce their home right after connecting).
pub const HOME_MOVE_GRACE: Duration = Duration::from_secs(5);

/// PeerGone frame: header + key(32) + reason(1).
const PEER_GONE_FRAME_LEN: usize = HEADER_LEN + KEY_LEN + 1;
/// PeerPresent frame: header + key(32) + ip(16) + port(2) + flags(1).
const PEER_PRESENT_FRAME_LEN: usize = HEADER_LEN + KEY_LEN + 16 + 2 + 1;
/// Pong frame: header + 8 echoed bytes.
const PONG_FRAME_LEN: usize = HEADER_LEN + 8;
/// Restarting frame: header + two u32be.
const RESTARTING_FRAME_LEN: usize = HEADER_LEN + 8;

/// Identifies one registered connection. Never reused within a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A map keyed by [`ConnId`], looked up several times per relayed packet. The ids are
/// handed out by the relay in sequence, never chosen by a peer, so they need no
/// flooding-resistant hash: [`ConnIdHasher`] costs a multiply where SipHash cost ~100
/// instructions per lookup.
pub type ConnIdMap<V> = HashMap<ConnId, V, BuildHasherDefault<ConnIdHasher>>;

/// Hasher for [`ConnIdMap`]: Fibonacci hashing of the 64-bit id, which spreads
/// sequential ids over the table's high bits (hashbrown's control bytes use the top 7).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnIdHasher(u64);

impl Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by ConnId (it hashes one u64); kept correct for any other input.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(FIBONACCI);
    }
}

/// 2^64 / golden ratio, odd: multiplying by it is a bijection that mixes low bits upwards.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// What the net layer knows about a connection once its handshake and admission passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnParams {
    /// The client's public key from its ClientInfo.
    pub key: PublicKey,
    /// Remote address (announced to watchers; all zeros if `None`).
    pub addr: Option<SocketAddr>,
    /// Authenticated with the mesh key: may send ForwardPacket, WatchConns, ClosePeer.
    pub is_mesh: bool,
    /// ClientInfo said `IsProber`.
    pub is_prober: bool,
    /// The upgrade request carried an `Ideal-Node` header.
    pub not_ideal: bool,
}

/// Something the net layer must do after a call into the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Frames are waiting for this connection: its writer should call
    /// [`Relay::drain_outgoing`] until `more` is false. Emitted once per transition from
    /// "nothing pending" to "something pending", so the wake-up must not be lost (use a
    /// flag or a 1-slot channel, not an edge that can be missed while the writer is busy).
    Wake(ConnId),
    /// Close this connection (ClosePeer from a mesh peer, or a watcher that fell too far
    /// behind). The net layer then calls [`Relay::unregister`] as for any close.
    Close(ConnId),
    /// ForwardPacket frames wait for this mesh peer: its mesh client's writer should call
    /// [`MeshTable::drain`] until `more` is false (same wake-up rule as `Wake`).
    WakeMesh(MeshPeerId),
}

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

/// A frame that the connection was not allowed to send; the net layer logs it and closes
/// the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A mesh-only frame (named) from a connection without the mesh key.
    NotMesh(&'static str),
    /// A frame for a connection that is not registered (a net-layer bug).
    UnknownConn(ConnId),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NotMesh(frame) => {
                write!(f, "{frame} from a connection without the mesh key")
            }
            Violation::UnknownConn(id) => write!(f, "frame for unregistered connection {}", id.0),
        }
    }
}

impl std::error::Error for Violation {}

/// What one [`Relay::drain_outgoing`] call produced, for statistics and
/// [`Relay::note_write_failure`].
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

/// The connections of one key. Usually one; more while a client reconnects or when a key
/// was cloned (§3.3). `active` is the one that receives packets.
#[derive(Debug)]
struct KeyConns {
    conns: Vec<ConnId>,
    active: ConnId,
}

/// The whole server state. See the module documentation for how the net layer drives it.
///
/// Sizes: `conns`, `keys` and `watchers` hold one entry per registered connection, so they
/// are bounded by the net layer's connection limit; everything per connection is bounded
/// by [`RelayLimits`] and the constants of this module. One call appends at most one
/// action per connection to `actions` (plus one Close per connection of a ClosePeer key).
///
/// Mesh routes learned from other servers (`--mesh-with`, §8) live in `mesh`, consulted
/// in `route` for SendPacket (never ForwardPacket) when the destination has no local
/// connection, and in `unregister`, where a key still announced by a mesh peer is not
/// "gone from the region" and so triggers no PeerGone.
#[derive(Debug)]
pub struct Relay {
    server_key: PublicKey,
    limits: RelayLimits,
    next_conn_id: u64,
    next_activity: u64,
    conns: ConnIdMap<Conn>,
    keys: HashMap<PublicKey, KeyConns>,
    /// Connections subscribed with WatchConns (a handful of mesh peers).
    watchers: Vec<ConnId>,
    /// Source key -> receivers to tell when it leaves; each receiver's entries are also in
    /// its `saw_src`, so this map is bounded by connections x MAX_PEER_GONE_SUBSCRIPTIONS.
    gone_subscribers: HashMap<PublicKey, Vec<ConnId>>,
    home_connections: usize,
    not_ideal_connections: usize,
    dup_keys: usize,
    dup_conns: usize,
    queued_packets: usize,
    queued_bytes: usize,
    counters: Counters,
    /// Free frame buffers, bounded (see [`BufPool`]).
    pool: BufPool,
    /// Routes to clients of other relays of the region (`--mesh-with`).
    mesh: MeshTable,
}

impl Relay {
    /// An empty relay for a server with this public key (watchers with the same key are
    /// the server itself and are ignored).
    pub fn new(server_key: PublicKey, limits: RelayLimits) -> Relay {
        Relay {
            server_key,
            limits,
            next_conn_id: 1,
            next_activity: 1,
            conns: ConnIdMap::default(),
            keys: HashMap::new(),
            watchers: Vec::new(),
            gone_subscribers: HashMap::new(),
            home_connections: 0,
            not_ideal_connections: 0,
            dup_keys: 0,
            dup_conns: 0,
            queued_packets: 0,
            queued_bytes: 0,
            counters: Counters::default(),
            pool: BufPool::new(),
            mesh: MeshTable::default(),
        }
    }

    /// This server's DERP public key.
    pub fn server_key(&self) -> PublicKey {
        self.server_key
    }

    /// The mesh forwarding table (status page, metrics).
    pub fn mesh(&self) -> &MeshTable {
        &self.mesh
    }

    /// The mesh forwarding table, for configuring peers and draining their queues.
    pub fn mesh_mut(&mut self) -> &mut MeshTable {
        &mut self.mesh
    }

    /// The connections logged in with the mesh key (other relays of the region dialling
    /// in), at most `max` of them, and how many there are; for the status socket. One
    /// pass over the connections, run on a status request, not per packet.
    pub fn mesh_clients(&self, max: usize) -> (Vec<MeshClient>, usize) {
        let mut listed = Vec::new();
        let mut total: usize = 0;
        for conn in self.conns.values().filter(|conn| conn.is_mesh) {
            total = total.saturating_add(1);
            if listed.len() < max {
                listed.push(MeshClient {
                    key: conn.key,
                    addr: conn.addr,
                    connected_at: conn.connected_at,
                    watching: conn.watching,
                });
            }
        }
        (listed, total)
    }

    /// Keys that left the other relays of the region (as [`MeshTable`] reports them):
    /// those without a local connection have left the region, so their local senders
    /// are told PeerGone.
    pub fn note_left_region(&mut self, keys: &[PublicKey], actions: &mut Vec<Action>) {
        for key in keys {
            if !self.keys.contains_key(key) {
                self.note_peer_gone_from_region(*key, actions);
            }
        }
    }

    /// The limits this relay was built with.
    pub fn limits(&self) -> RelayLimits {
        self.limits
    }

    /// All counters, for the status page and tests.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn next_activity_stamp(&mut self) -> u64 {
        let stamp = self.next_activity;
        self.next_activity = self.next_activity.wrapping_add(1);
        stamp
    }

    /// Registers an admitted connection (§3.3). A key that is already connected becomes a
    /// duplicate set: nobody is closed, the newest connection is active. Watchers get a
    /// PeerPresent for every new connection.
    pub fn register(&mut self, p: ConnParams, now: Instant, actions: &mut Vec<Action>) -> ConnId {
        let id = ConnId(self.next_conn_id);
        self.next_conn_id = self.next_conn_id.wrapping_add(1);
        let activity = self.next_activity_stamp();
        let flags = present_flags(&p);
        let mut conn = Conn::new(p.key, p.addr, flags, p.is_mesh, p.not_ideal, now, activity);
        bump(&mut self.counters.accepts, 1);
        if p.not_ideal {
            self.not_ideal_connections = self.not_ideal_connections.saturating_add(1);
        }
        match self.keys.entry(p.key) {
            Entry::Occupied(entry) => {
                let entry = entry.into_mut();
                if let [only] = entry.conns.as_slice() {
                    self.dup_keys = self.dup_keys.saturating_add(1);
                    self.dup_conns = self.dup_conns.saturating_add(2);
                    if let Some(first) = self.conns.get_mut(only) {
                        first.is_dup = true;
                    }
                } else {
                    self.dup_conns = self.dup_conns.saturating_add(1);
                }
                bump(&mut self.counters.dup_conns_total, 1);
                conn.is_dup = true;
                entry.conns.push(id);
                entry.active = id;
            }
            Entry::Vacant(entry) => {
                entry.insert(KeyConns {
                    conns: vec![id],
                    active: id,
                });
            }
        }
        self.conns.insert(id, conn);
        self.broadcast_to_watchers(
            WatchUpdate::Present {
                key: p.key,
                addr: p.addr,
                flags,
            },
            actions,
        );
        id
    }

    /// Removes a closed connection. Its queued packets count as `gone_disconnected`, its
    /// PeerGone subscriptions are dropped, and if it was the key's last connection, the
    /// receivers that got packets from the key are told PeerGone(Disconnected) and so are
    /// watchers (§3.3, §3.7). Unknown ids are ignored.
    pub fn unregister(&mut self, id: ConnId, _now: Instant, actions: &mut Vec<Action>) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        for (kind, queue) in [
            (PacketKind::Disco, &mut conn.disco_queue),
            (PacketKind::Other, &mut conn.other_queue),
        ] {
            for frame in queue.drain(..) {
                self.queued_packets = self.queued_packets.saturating_sub(1);
                self.queued_bytes = self.queued_bytes.saturating_sub(frame.len());
                self.counters
                    .note_drop(DropReason::GoneDisconnected, kind, 1, data_len(&frame));
                self.pool.give(frame);
            }
        }
        for src in &conn.saw_src {
            if let Some(receivers) = self.gone_subscribers.get_mut(src) {
                receivers.retain(|&receiver| receiver != id);
                if receivers.is_empty() {
                    self.gone_subscribers.remove(src);
                }
            }
        }
        if conn.watching {
            self.watchers.retain(|&watcher| watcher != id);
        }
        if conn.preferred {
            self.home_connections = self.home_connections.saturating_sub(1);
        }
        if conn.not_ideal {
            self.not_ideal_connections = self.not_ideal_connections.saturating_sub(1);
        }

        let mut key_gone = false;
        if let Some(entry) = self.keys.get_mut(&conn.key) {
            let before = entry.conns.len();
            entry.conns.retain(|&other| other != id);
            match entry.conns.as_slice() {
                [] => key_gone = true,
                [only] if before == 2 => {
                    // Back to a single, ordinary connection.
                    self.dup_keys = self.dup_keys.saturating_sub(1);
                    self.dup_conns = self.dup_conns.saturating_sub(2);
                    entry.active = *only;
                    if let Some(remaining) = self.conns.get_mut(only) {
                        remaining.is_dup = false;
                    }
                }
                rest => {
                    if before != rest.len() {
                        self.dup_conns = self.dup_conns.saturating_sub(1);
                    }
                    if entry.active == id {
                        if let Some(next) = most_recently_active(&self.conns, rest) {
                            entry.active = next;
                        }
                    }
                }
            }
        }
        if key_gone {
            self.keys.remove(&conn.key);
            // A key still announced by a mesh peer stays in the region: no PeerGone yet.
            if !self.mesh.has_route(&conn.key) {
                self.note_peer_gone_from_region(conn.key, actions);
            }
            self.broadcast_to_watchers(WatchUpdate::Gone(conn.key), actions);
        }
    }

    /// Handles one parsed frame from a registered connection (§3.4). Any frame from a
    /// duplicate makes it the active connection of its key. An `Err` means the net layer
    /// must log it and close the connection.
    pub fn handle_frame(
        &mut self,
        id: ConnId,
        frame: ClientFrame<'_>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> Result<(), Violation> {
        let (key, is_mesh) = self.sender(id)?;
        match frame {
            ClientFrame::SendPacket { dst, data } => {
                self.counters
                    .note_received(PacketKind::of(data), data.len());
                self.route(id, key, dst, Packet::Borrowed(data), false, now, actions);
            }
            ClientFrame::ForwardPacket { src, dst, data } => {
                if !is_mesh {
                    return Err(Violation::NotMesh("ForwardPacket"));
                }
                bump(&mut self.counters.forwarded_in, 1);
                self.mesh.note_forwarded_in(&key, data.len());
                self.route(id, src, dst, Packet::Borrowed(data), true, now, actions);
            }
            ClientFrame::NotePreferred(preferred) => self.set_preferred(id, preferred, now),
            ClientFrame::WatchConns => {
                if !is_mesh {
                    return Err(Violation::NotMesh("WatchConns"));
                }
                self.add_watcher(id, actions);
            }
            ClientFrame::ClosePeer(target) => {
                if !is_mesh {
                    return Err(Violation::NotMesh("ClosePeer"));
                }
                self.close_peer(target, actions);
            }
            ClientFrame::Ping(echo) => {
                bump(&mut self.counters.pings, 1);
                if let Some(conn) = self.conns.get_mut(&id) {
                    // One pending pong at most; pings while one is pending are ignored.
                    if conn.pong.is_none() {
                        conn.pong = Some(echo);
                        wake(conn, id, actions);
                    }
                }
            }
            ClientFrame::Ignored => bump(&mut self.counters.unknown_frames, 1),
        }
        Ok(())
    }

    /// The fast path for SendPacket (§3.5): like [`Relay::handle_frame`] with a parsed
    /// SendPacket, but the packet was read into its own buffer, which is queued for the
    /// receiver without a copy. Returns a buffer for the caller's next read (from the pool,
    /// or the same one if the packet was dropped; its content is stale), so a busy sender
    /// allocates nothing.
    pub fn send_packet(
        &mut self,
        id: ConnId,
        packet: PacketBuf,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> (Result<(), Violation>, Vec<u8>) {
        let key = match self.sender(id) {
            Ok((key, _)) => key,
            Err(violation) => return (Err(violation), packet.into_inner()),
        };
        let Some(dst) = packet.dst() else {
            // The net layer reads at least a key; a shorter payload is not a packet.
            bump(&mut self.counters.unknown_frames, 1);
            return (Ok(()), packet.into_inner());
        };
        let data = packet.data();
        self.counters
            .note_received(PacketKind::of(data), data.len());
        self.route(id, key, dst, Packet::Owned(packet), false, now, actions);
        (Ok(()), self.pool.take())
    }

    /// A buffer from the pool, content stale (allocated if the pool is empty: counted).
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.take()
    }

    /// The sending connection's key and mesh flag; any frame from a duplicate makes it
    /// the active connection of its key.
    fn sender(&mut self, id: ConnId) -> Result<(PublicKey, bool), Violation> {
        let Some(conn) = self.conns.get(&id) else {
            return Err(Violation::UnknownConn(id));
        };
        let (key, is_mesh, is_dup) = (conn.key, conn.is_mesh, conn.is_dup);
        if is_dup {
            self.note_dup_activity(id, key);
        }
        Ok((key, is_mesh))
    }

    /// Last-writer-is-active: the duplicate that sent most recently gets the packets.
    fn note_dup_activity(&mut self, id: ConnId, key: PublicKey) {
        let stamp = self.next_activity_stamp();
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.activity = stamp;
        }
        if let Some(entry) = self.keys.get_mut(&key) {
            entry.active = id;
        }
    }

    /// Routes a packet from `src` (the sender's key, or the original sender of a forwarded
    /// packet) to the active local connection of `dst` (§3.5).
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        from: ConnId,
        src: PublicKey,
        dst: PublicKey,
        packet: Packet<'_>,
        forwarded: bool,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let kind = PacketKind::of(packet.data());
        if let Some(dst_id) = self.keys.get(&dst).map(|entry| entry.active) {
            self.enqueue(dst_id, &src, packet, kind, actions);
            return;
        }
        // One hop only: a SendPacket (never a ForwardPacket) to a key another relay of
        // the region announced goes to that relay's mesh client.
        if !forwarded {
            if let Some(peer) = self.mesh.route(&dst) {
                if self.mesh.enqueue(peer, &src, &dst, packet.data()) {
                    actions.push(Action::WakeMesh(peer));
                }
                return;
            }
        }
        let reason = if forwarded {
            DropReason::UnknownDestOnFwd
        } else {
            DropReason::UnknownDest
        };
        self.drop_packet(reason, kind, packet);
        if kind == PacketKind::Disco {
            if let Some(sender) = self.conns.get_mut(&from) {
                if sender.allow_not_here(now) {
                    push_peer_gone(
                        sender,
                        from,
                        dst,
                        PeerGoneReason::NotHere,
                        &mut self.counters,
                        actions,
                    );
                }
            }
        }
    }

    /// Queues an encoded RecvPacket for `dst_id`: full queue -> drop its oldest packet and
    /// retry, up to [`MAX_ENQUEUE_ATTEMPTS`], then drop the new one. Never blocks.
    fn enqueue(
        &mut self,
        dst_id: ConnId,
        src: &PublicKey,
        packet: Packet<'_>,
        kind: PacketKind,
        actions: &mut Vec<Action>,
    ) {
        let Some(dst) = self.conns.get_mut(&dst_id) else {
            self.drop_packet(DropReason::GoneDisconnected, kind, packet);
            return;
        };
        if dst.closing {
            self.drop_packet(DropReason::GoneDisconnected, kind, packet);
            return;
        }
        let queue = match kind {
            PacketKind::Disco => &mut dst.disco_queue,
            PacketKind::Other => &mut dst.other_queue,
        };
        let mut has_room = false;
        for _ in 0..MAX_ENQUEUE_ATTEMPTS {
            if queue.len() < self.limits.queue_depth {
                has_room = true;
                break;
            }
            if let Some(oldest) = queue.pop_front() {
                self.queued_packets = self.queued_packets.saturating_sub(1);
                self.queued_bytes = self.queued_bytes.saturating_sub(oldest.len());
                self.counters
                    .note_drop(DropReason::QueueHead, kind, 1, data_len(&oldest));
                self.pool.give(oldest);
            }
        }
        if !has_room {
            drop_packet(
                &mut self.counters,
                &mut self.pool,
                DropReason::QueueTail,
                kind,
                packet,
            );
            return;
        }
        let frame_len = RECV_PREFIX_LEN.saturating_add(packet.data().len());
        if self.queued_bytes.saturating_add(frame_len) > self.limits.max_queued_bytes {
            drop_packet(
                &mut self.counters,
                &mut self.pool,
                DropReason::QueueBudget,
                kind,
                packet,
            );
            return;
        }
        let frame = match packet {
            Packet::Owned(buf) => buf.into_recv_frame(src),
            Packet::Borrowed(data) => {
                let mut frame = self.pool.take();
                frame.clear();
                encode_recv_packet(&mut frame, src, data);
                frame
            }
        };
        self.queued_packets = self.queued_packets.saturating_add(1);
        self.queued_bytes = self.queued_bytes.saturating_add(frame.len());
        queue.push_back(frame);
        wake(dst, dst_id, actions);
    }

    /// Counts a dropped packet and keeps its buffer, if it had one, for reuse.
    fn drop_packet(&mut self, reason: DropReason, kind: PacketKind, packet: Packet<'_>) {
        drop_packet(&mut self.counters, &mut self.pool, reason, kind, packet);
    }

    /// NotePreferred bookkeeping (§3.8): home gauge and home-move counters.
    fn set_preferred(&mut self, id: ConnId, preferred: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.preferred == preferred {
            return;
        }
        conn.preferred = preferred;
        let counted = now.saturating_duration_since(conn.connected_at) > HOME_MOVE_GRACE;
        if preferred {
            self.home_connections = self.home_connections.saturating_add(1);
            if counted {
                bump(&mut self.counters.home_moves_in, 1);
            }
        } else {
            self.home_connections = self.home_connections.saturating_sub(1);
            if counted {
                bump(&mut self.counters.home_moves_out, 1);
            }
        }
    }

    /// WatchConns (§3.9): queue a PeerPresent for every key with an active connection, then
    /// enroll for live updates. A watcher with the server's own key is ignored.
    fn add_watcher(&mut self, id: ConnId, actions: &mut Vec<Action>) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.key == self.server_key {
            return;
        }
        let mut snapshot: Vec<WatchUpdate> = self
            .keys
            .iter()
            .filter_map(|(key, entry)| {
                self.conns
                    .get(&entry.active)
                    .map(|active| WatchUpdate::Present {
                        key: *key,
                        addr: active.addr,
                        flags: active.present_flags,
                    })
            })
            .collect();
        snapshot.sort_unstable_by_key(|update| match update {
            WatchUpdate::Present { key, .. } | WatchUpdate::Gone(key) => *key,
        });
        let limit = self.watcher_limit();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.watch_updates.len().saturating_add(snapshot.len()) > limit {
            self.overflow_watcher(id, actions);
            return;
        }
        conn.watch_updates.extend(snapshot);
        if !conn.watching {
            conn.watching = true;
            self.watchers.push(id);
        }
        wake(conn, id, actions);
    }

    /// Pending-update bound of every watcher: one snapshot plus the configured depth.
    fn watcher_limit(&self) -> usize {
        self.keys
            .len()
            .saturating_add(self.limits.watcher_queue_depth)
    }

    fn broadcast_to_watchers(&mut self, update: WatchUpdate, actions: &mut Vec<Action>) {
        let limit = self.watcher_limit();
        let mut overflowed = Vec::new();
        for &watcher in &self.watchers {
            let Some(conn) = self.conns.get_mut(&watcher) else {
                continue;
            };
            if conn.watch_updates.len() >= limit {
                overflowed.push(watcher);
            } else {
                conn.watch_updates.push_back(update);
                wake(conn, watcher, actions);
            }
        }
        for watcher in overflowed {
            self.overflow_watcher(watcher, actions);
        }
    }

    /// Closes a watcher whose update list hit its bound (see [`RelayLimits`]).
    fn overflow_watcher(&mut self, id: ConnId, actions: &mut Vec<Action>) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.watch_updates = Default::default();
            conn.watching = false;
            conn.closing = true;
        }
        self.watchers.retain(|&watcher| watcher != id);
        bump(&mut self.counters.watcher_overflows, 1);
        actions.push(Action::Close(id));
    }

    /// ClosePeer: close every connection of `target`.
    fn close_peer(&mut self, target: PublicKey, actions: &mut Vec<Action>) {
        let Some(entry) = self.keys.get(&target) else {
            return;
        };
        for &id in &entry.conns {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.closing = true;
            }
            actions.push(Action::Close(id));
        }
    }

    /// The last connection of `key` left: tell every receiver that got packets from it.
    fn note_peer_gone_from_region(&mut self, key: PublicKey, actions: &mut Vec<Action>) {
        let Some(receivers) = self.gone_subscribers.remove(&key) else {
            return;
        };
        for receiver in receivers {
            if let Some(conn) = self.conns.get_mut(&receiver) {
                push_peer_gone(
                    conn,
                    receiver,
                    key,
                    PeerGoneReason::Disconnected,
                    &mut self.counters,
                    actions,
                );
            }
        }
    }

    /// Appends frames for connection `id` to `out`, in this order: Restarting, Pong,
    /// PeerGone notices, watcher updates, then packets (disco queue first). Stops before
    /// a frame that would take the appended bytes past `max_bytes`, but always appends at
    /// least one frame if any is pending. Packets are counted as sent here; report a
    /// failed write with [`Relay::note_write_failure`].
    ///
    /// This copies every packet; the writer uses [`Relay::drain_frames`], which does not.
    pub fn drain_outgoing(&mut self, id: ConnId, out: &mut Vec<u8>, max_bytes: usize) -> Drained {
        let mut frames = Vec::new();
        let drained = self.drain_frames(id, out, &mut frames, max_bytes);
        for frame in frames {
            out.extend_from_slice(&frame);
            self.pool.give(frame);
        }
        drained
    }

    /// Like [`Relay::drain_outgoing`], but packets are not copied: the control frames
    /// (Restarting, Pong, PeerGone, watcher updates) are encoded into `out` and the queued
    /// RecvPacket frames are moved into `frames`, to be written after `out`, in order.
    /// Buffers still in `frames` when it is called (the previous batch, written by now)
    /// are first taken back into the pool, so a writer locks the relay once per batch.
    pub fn drain_frames(
        &mut self,
        id: ConnId,
        out: &mut Vec<u8>,
        frames: &mut Vec<Vec<u8>>,
        max_bytes: usize,
    ) -> Drained {
        self.recycle(frames);
        let mut drained = Drained::default();
        let Some(conn) = self.conns.get_mut(&id) else {
            return drained;
        };
        let start = out.len();
        let mut packet_bytes: usize = 0;
        let fits = |out: &Vec<u8>, packet_bytes: usize, len: usize| {
            let written = out.len().saturating_sub(start).saturating_add(packet_bytes);
            written == 0 || written.saturating_add(len) <= max_bytes
        };
        'fill: {
            if let Some((reconnect_in_ms, try_for_ms)) = conn.restarting {
                if !fits(out, packet_bytes, RESTARTING_FRAME_LEN) {
                    break 'fill;
                }
                encode_restarting(out, reconnect_in_ms, try_for_ms);
                conn.restarting = None;
                bump(&mut self.counters.restarting_frames, 1);
            }
            if let Some(echo) = conn.pong {
                if !fits(out, packet_bytes, PONG_FRAME_LEN) {
                    break 'fill;
                }
                encode_pong(out, &echo);
                conn.pong = None;
                bump(&mut self.counters.pongs, 1);
            }
            while let Some(&(peer, reason)) = conn.peer_gone.front() {
                if !fits(out, packet_bytes, PEER_GONE_FRAME_LEN) {
                    break 'fill;
                }
                conn.peer_gone.pop_front();
                encode_peer_gone(out, &peer, reason);
                count_peer_gone(&mut self.counters, reason);
            }
            while let Some(&update) = conn.watch_updates.front() {
                let len = match update {
                    WatchUpdate::Present { .. } => PEER_PRESENT_FRAME_LEN,
                    WatchUpdate::Gone(_) => PEER_GONE_FRAME_LEN,
                };
                if !fits(out, packet_bytes, len) {
                    break 'fill;
                }
                conn.watch_updates.pop_front();
                match update {
                    WatchUpdate::Present { key, addr, flags } => {
                        encode_peer_present(out, &key, addr, flags)
                    }
                    WatchUpdate::Gone(key) => {
                        encode_peer_gone(out, &key, PeerGoneReason::Disconnected);
                        count_peer_gone(&mut self.counters, PeerGoneReason::Disconnected);
                    }
                }
            }
            for kind in PacketKind::ALL {
                let queue = match kind {
                    PacketKind::Disco => &mut conn.disco_queue,
                    PacketKind::Other => &mut conn.other_queue,
                };
                while let Some(next_len) = queue.front().map(|frame| frame.len()) {
                    if !fits(out, packet_bytes, next_len) {
                        break 'fill;
                    }
                    let Some(frame) = queue.pop_front() else {
                        break;
                    };
                    packet_bytes = packet_bytes.saturating_add(frame.len());
                    self.queued_packets = self.queued_packets.saturating_sub(1);
                    self.queued_bytes = self.queued_bytes.saturating_sub(frame.len());
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
                        subscribe(
                            &mut conn.saw_src,
                            id,
                            src,
                            &mut self.gone_subscribers,
                            &mut self.counters,
                        );
                    }
                    frames.push(frame);
                }
            }
        }
        self.counters
            .note_sent(u64::from(drained.packets), drained.bytes, false);
        drained.more = conn.has_pending();
        if !drained.more {
            conn.wake_pending = false;
        }
        drained
    }

    /// Takes written packet buffers (from [`Relay::drain_frames`]) back into the pool.
    pub fn recycle(&mut self, frames: &mut Vec<Vec<u8>>) {
        for spent in frames.drain(..) {
            self.pool.give(spent);
        }
    }

    /// Reports that the bytes of a drain were not written (write error or timeout): its
    /// packets move from "sent" to dropped `write_error`.
    pub fn note_write_failure(&mut self, drained: &Drained) {
        let disco = u64::from(drained.disco);
        let other = u64::from(drained.packets).saturating_sub(disco);
        let other_bytes = drained.bytes.saturating_sub(drained.disco_bytes);
        let counters = &mut self.counters;
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

    /// Queues a Restarting frame (written first) to every connection, e.g. on a graceful
    /// shutdown. A second call before it is written replaces the values.
    pub fn broadcast_restarting(
        &mut self,
        reconnect_in_ms: u32,
        try_for_ms: u32,
        actions: &mut Vec<Action>,
    ) {
        for (&id, conn) in self.conns.iter_mut() {
            conn.restarting = Some((reconnect_in_ms, try_for_ms));
            wake(conn, id, actions);
        }
    }

    /// Current gauges.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            connections: self.conns.len(),
            keys: self.keys.len(),
            home_connections: self.home_connections,
            not_ideal_connections: self.not_ideal_connections,
            dup_keys: self.dup_keys,
            dup_conns: self.dup_conns,
            watchers: self.watchers.len(),
            queued_packets: self.queued_packets,
            queued_bytes: self.queued_bytes,
            pooled_buffers: self.pool.len(),
            pool_misses: self.pool.misses,
            pool_discards: self.pool.discards,
        }
    }

    /// Appends all metrics in Prometheus text format (names prefixed `tinyderp_`).
    pub fn render_metrics(&self, out: &mut String) {
        metrics::render(&self.counters, &self.stats(), out);
    }

    /// The connection of `key` that currently receives its packets.
    pub fn active_conn(&self, key: &PublicKey) -> Option<ConnId> {
        self.keys.get(key).map(|entry| entry.active)
    }

    /// Test-only view of a connection's state.
    #[cfg(test)]
    pub(crate) fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(&id)
    }

    /// Test-only: recomputes every maintained gauge from scratch and compares.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut dup_keys = 0;
        let mut dup_conns = 0;
        for (key, entry) in &self.keys {
            assert!(!entry.conns.is_empty());
            assert!(entry.conns.contains(&entry.active));
            for id in &entry.conns {
                let conn = &self.conns[id];
                assert_eq!(&conn.key, key);
                assert_eq!(conn.is_dup, entry.conns.len() > 1);
            }
            if entry.conns.len() > 1 {
                dup_keys += 1;
                dup_conns += entry.conns.len();
            }
        }
        let in_keys: usize = self.keys.values().map(|entry| entry.conns.len()).sum();
        assert_eq!(in_keys, self.conns.len());
        assert_eq!(self.dup_keys, dup_keys);
        assert_eq!(self.dup_conns, dup_conns);
        let home = self.conns.values().filter(|conn| conn.preferred).count();
        assert_eq!(self.home_connections, home);
        let not_ideal = self.conns.values().filter(|conn| conn.not_ideal).count();
        assert_eq!(self.not_ideal_connections, not_ideal);
        let queued: usize = self
            .conns
            .values()
            .map(|conn| conn.disco_queue.len() + conn.other_queue.len())
            .sum();
        assert_eq!(self.queued_packets, queued);
        let bytes: usize = self
            .conns
            .values()
            .flat_map(|conn| conn.disco_queue.iter().chain(conn.other_queue.iter()))
            .map(|frame| frame.len())
            .sum();
        assert_eq!(self.queued_bytes, bytes);
        for watcher in &self.watchers {
            assert!(self.conns[watcher].watching);
        }
        for (src, receivers) in &self.gone_subscribers {
            assert!(!receivers.is_empty());
            for receiver in receivers {
                assert!(self.conns[receiver].saw_src.binary_search(src).is_ok());
            }
        }
    }
}

/// PeerPresent flags of a new connection: mesh/prober/not-ideal bits, or REGULAR if none.
fn present_flags(p: &ConnParams) -> u8 {
    let mut flags = 0;
    if p.is_mesh {
        flags |= peer_present_flags::MESH_PEER;
    }
    if p.is_prober {
        flags |= peer_present_flags::PROBER;
    }
    if p.not_ideal {
        flags |= peer_present_flags::NOT_IDEAL;
    }
    if flags == 0 {
        peer_present_flags::REGULAR
    } else {
        flags
    }
}

/// Packet data length of an encoded RecvPacket frame.
fn data_len(frame: &[u8]) -> u64 {
    frame.len().saturating_sub(RECV_PREFIX_LEN) as u64
}

/// Emits a Wake for `conn` unless one is already outstanding.
fn wake(conn: &mut Conn, id: ConnId, actions: &mut Vec<Action>) {
    if !conn.wake_pending {
        conn.wake_pending = true;
        actions.push(Action::Wake(id));
    }
}

/// Queues a PeerGone notice, or counts it as dropped if the notice queue is full.
fn push_peer_gone(
    conn: &mut Conn,
    id: ConnId,
    peer: PublicKey,
    reason: PeerGoneReason,
    counters: &mut Counters,
    actions: &mut Vec<Action>,
) {
    if conn.peer_gone.len() >= PEER_GONE_NOTICE_DEPTH {
        bump(&mut counters.peer_gone_notices_dropped, 1);
        return;
    }
    conn.peer_gone.push_back((peer, reason));
    wake(conn, id, actions);
}

fn count_peer_gone(counters: &mut Counters, reason: PeerGoneReason) {
    match reason {
        PeerGoneReason::Disconnected => bump(&mut counters.peer_gone_disconnected, 1),
        PeerGoneReason::NotHere => bump(&mut counters.peer_gone_not_here, 1),
    }
}

/// Subscribes `receiver` to the departure of `src` the first time a packet from `src` is
/// written to it. Like upstream, the memory of having subscribed is kept for the life of
/// the receiver's connection, so if `src` leaves, comes back and sends again, the receiver
/// is not told a second time (§3.7 quirk).
fn subscribe(
    saw_src: &mut Vec<PublicKey>,
    receiver: ConnId,
    src: PublicKey,
    gone_subscribers: &mut HashMap<PublicKey, Vec<ConnId>>,
    counters: &mut Counters,
) {
    if src.is_zero() {
        return;
    }
    let Err(position) = saw_src.binary_search(&src) else {
        return;
    };
    if saw_src.len() >= MAX_PEER_GONE_SUBSCRIPTIONS {
        bump(&mut counters.peer_gone_subscriptions_dropped, 1);
        return;
    }
    saw_src.insert(position, src);
    gone_subscribers.entry(src).or_default().push(receiver);
}

/// Among the remaining duplicates, the one that registered or sent most recently.
fn most_recently_active(conns: &ConnIdMap<Conn>, ids: &[ConnId]) -> Option<ConnId> {
    ids.iter()
        .copied()
        .max_by_key(|id| conns.get(id).map_or(0, |conn| conn.activity))
}

/// Counts a dropped packet and gives its buffer, if it had one, back to the pool.
fn drop_packet(
    counters: &mut Counters,
    pool: &mut BufPool,
    reason: DropReason,
    kind: PacketKind,
    packet: Packet<'_>,
) {
    let len = packet.data().len() as u64;
    counters.note_drop(reason, kind, 1, len);
    if let Packet::Owned(buf) = packet {
        pool.give(buf.into_inner());
    }
}
