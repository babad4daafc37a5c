//! The relay registry and its event handlers: [`Relay`] takes registrations, parsed client
//! frames and `now`, and answers with [`Action`]s and bytes to write. Section numbers (§)
//! refer to `docs/protocol.md`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Conn, WatchUpdate};
use super::inbox::{DataCounters, InboxTally, Packet, RelayLimits, MAX_PEER_GONE_SUBSCRIPTIONS};
use super::mesh::{MeshClient, MeshPeerId, MeshTable};
use super::metrics::{self, bump, Counters, DropReason, PacketKind, RelayStats};
use super::pool::BufPool;
use crate::proto::frame::{
    encode_peer_gone, encode_peer_present, encode_pong, encode_restarting, peer_present_flags,
    ClientFrame, PeerGoneReason, HEADER_LEN,
};
use crate::proto::key::{PublicKey, KEY_LEN};

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
    /// Control frames are waiting for this connection: its writer should call
    /// [`Relay::drain_control`] until it returns false. Emitted once per transition from
    /// "nothing pending" to "something pending", so the wake-up must not be lost (use a
    /// flag or a 1-slot channel, not an edge that can be missed while the writer is busy).
    Wake(ConnId),
    /// Close this connection (ClosePeer from a mesh peer, or a watcher that fell too far
    /// behind). The net layer then calls [`Relay::unregister`] as for any close.
    Close(ConnId),
    /// ForwardPacket frames wait for this mesh peer: its mesh client's writer should call
    /// [`MeshTable::drain`] until `more` is false (same wake-up rule as `Wake`).
    WakeMesh(MeshPeerId),
    /// The connections of this key changed (one registered or left, or another duplicate
    /// became active): the net layer updates its route to the key's inbox from
    /// [`Relay::active_conn`] and the duplicate flags from [`Relay::conns_of`].
    Route(PublicKey),
}

/// A packet a frame asks to relay, for the net layer to queue in the inbox of the active
/// connection of `dst` (see [`Relay::handle_frame`]); if `dst` has none, it hands the
/// packet back with [`Relay::unrouted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The original sender (the connection's key, or a forwarded packet's source).
    pub src: PublicKey,
    /// The destination key.
    pub dst: PublicKey,
    /// The packet data.
    pub data: &'a [u8],
    /// Came as a ForwardPacket from a mesh peer (never forwarded again).
    pub forwarded: bool,
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
    counters: Counters,
    /// The packet counters and queue budget, shared with every connection's inbox.
    data: Arc<DataCounters>,
    /// Free frame buffers for packets the registry handles (mesh routes, unknown
    /// destinations), bounded (see [`BufPool`]).
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
            counters: Counters::default(),
            data: Arc::new(DataCounters::new(limits.max_queued_bytes)),
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

    /// All counters: the registry's own, those of the inboxes that left
    /// ([`Relay::absorb`]) and those of the live inboxes, `live` (the net layer collects
    /// them, one inbox lock at a time), for the status page and tests.
    pub fn counters_with<'a>(&self, live: impl IntoIterator<Item = &'a InboxTally>) -> Counters {
        let mut counters = self.counters.clone();
        for tally in live {
            counters.absorb_packets(&tally.counters);
        }
        counters
    }

    /// Keeps the counters of a connection's inbox when the connection leaves (called
    /// once its route is gone, so no sender reaches the inbox any more).
    pub fn absorb(&mut self, tally: &InboxTally) {
        self.counters.absorb_packets(&tally.counters);
        self.pool.misses = self.pool.misses.saturating_add(tally.pool_misses);
        self.pool.discards = self.pool.discards.saturating_add(tally.pool_discards);
    }

    /// Counts a received SendPacket that the registry handles (no local route).
    pub fn note_received(&mut self, kind: PacketKind, len: usize) {
        self.counters.add_received(kind, 1, len as u64);
    }

    /// The packet counters and queue budget that every inbox shares.
    pub fn data(&self) -> &Arc<DataCounters> {
        &self.data
    }

    /// The connections of `key` (several while it is a duplicate), for the net layer's
    /// duplicate flags (see [`Action::Route`]).
    pub fn conns_of(&self, key: &PublicKey) -> &[ConnId] {
        self.keys
            .get(key)
            .map_or(&[][..], |entry| entry.conns.as_slice())
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
        actions.push(Action::Route(p.key));
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

    /// Removes a closed connection (the net layer closes its inbox, whose queued packets
    /// count as `gone_disconnected`). Its PeerGone subscriptions are dropped, and if it was the key's last connection, the
    /// receivers that got packets from the key are told PeerGone(Disconnected) and so are
    /// watchers (§3.3, §3.7). Unknown ids are ignored.
    pub fn unregister(&mut self, id: ConnId, _now: Instant, actions: &mut Vec<Action>) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        actions.push(Action::Route(conn.key));
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
    /// duplicate makes it the active connection of its key. A SendPacket or
    /// ForwardPacket comes back as a [`Delivery`] for the net layer to queue. An `Err`
    /// means the net layer must log it and close the connection.
    pub fn handle_frame<'a>(
        &mut self,
        id: ConnId,
        frame: ClientFrame<'a>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> Result<Option<Delivery<'a>>, Violation> {
        let (key, is_mesh) = self.sender(id, actions)?;
        match frame {
            ClientFrame::SendPacket { dst, data } => {
                self.note_received(PacketKind::of(data), data.len());
                return Ok(Some(Delivery {
                    src: key,
                    dst,
                    data,
                    forwarded: false,
                }));
            }
            ClientFrame::ForwardPacket { src, dst, data } => {
                if !is_mesh {
                    return Err(Violation::NotMesh("ForwardPacket"));
                }
                bump(&mut self.counters.forwarded_in, 1);
                self.mesh.note_forwarded_in(&key, data.len());
                return Ok(Some(Delivery {
                    src,
                    dst,
                    data,
                    forwarded: true,
                }));
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
        Ok(None)
    }

    /// A packet whose destination `dst` has no inbox route (checked by the net layer under
    /// this registry's lock): sent to the mesh peer that announced `dst` (never for a
    /// forwarded packet), or dropped as an unknown destination, with a rate-limited
    /// PeerGone(NotHere) to the sender for a disco packet (§3.5). The packet was counted
    /// as received already. Returns a buffer for the sender's next read (content stale).
    #[allow(clippy::too_many_arguments)]
    pub fn unrouted(
        &mut self,
        from: ConnId,
        src: PublicKey,
        dst: PublicKey,
        packet: Packet<'_>,
        forwarded: bool,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> Vec<u8> {
        let data = packet.data();
        let kind = PacketKind::of(data);
        'routed: {
            // One hop only: a SendPacket (never a ForwardPacket) to a key another relay
            // of the region announced goes to that relay's mesh client.
            if !forwarded {
                if let Some(peer) = self.mesh.route(&dst) {
                    if self.mesh.enqueue(peer, &src, &dst, data) {
                        actions.push(Action::WakeMesh(peer));
                    }
                    break 'routed;
                }
            }
            let reason = if forwarded {
                DropReason::UnknownDestOnFwd
            } else {
                DropReason::UnknownDest
            };
            self.counters.note_drop(reason, kind, 1, data.len() as u64);
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
        match packet {
            Packet::Owned(buf) => buf.into_inner(),
            Packet::Borrowed(_) => self.pool.take(),
        }
    }

    /// A buffer from the registry's pool, content stale (allocated if it is empty).
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.take()
    }

    /// Gives a buffer back to the registry's pool (kept if there is room).
    pub fn give_buffer(&mut self, buf: Vec<u8>) {
        self.pool.give(buf);
    }

    /// Notes that connection `id` sent a packet on the net layer's fast path: a duplicate
    /// becomes the active connection of its key (last writer wins). The net layer calls it
    /// only for connections flagged as duplicates (see [`Action::Route`]).
    pub fn note_sender(&mut self, id: ConnId, actions: &mut Vec<Action>) -> Result<(), Violation> {
        self.sender(id, actions).map(|_| ())
    }

    /// The sending connection's key and mesh flag; any frame from a duplicate makes it
    /// the active connection of its key.
    fn sender(
        &mut self,
        id: ConnId,
        actions: &mut Vec<Action>,
    ) -> Result<(PublicKey, bool), Violation> {
        let Some(conn) = self.conns.get(&id) else {
            return Err(Violation::UnknownConn(id));
        };
        let (key, is_mesh, is_dup) = (conn.key, conn.is_mesh, conn.is_dup);
        if is_dup {
            self.note_dup_activity(id, key, actions);
        }
        Ok((key, is_mesh))
    }

    /// Last-writer-is-active: the duplicate that sent most recently gets the packets.
    fn note_dup_activity(&mut self, id: ConnId, key: PublicKey, actions: &mut Vec<Action>) {
        let stamp = self.next_activity_stamp();
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.activity = stamp;
        }
        if let Some(entry) = self.keys.get_mut(&key) {
            if entry.active != id {
                entry.active = id;
                actions.push(Action::Route(key));
            }
        }
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

    /// Appends the control frames pending for connection `id` to `out`, in this order:
    /// Restarting, Pong, PeerGone notices, watcher updates. Stops before a frame that
    /// would take the appended bytes past `max_bytes`, but always appends at least one
    /// frame if any is pending. Returns whether some are still pending (call again).
    /// Packets are not here: the writer takes them from its [`super::Inbox`] after these.
    pub fn drain_control(&mut self, id: ConnId, out: &mut Vec<u8>, max_bytes: usize) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let start = out.len();
        let fits = |out: &Vec<u8>, len: usize| {
            let written = out.len().saturating_sub(start);
            written == 0 || written.saturating_add(len) <= max_bytes
        };
        'fill: {
            if let Some((reconnect_in_ms, try_for_ms)) = conn.restarting {
                if !fits(out, RESTARTING_FRAME_LEN) {
                    break 'fill;
                }
                encode_restarting(out, reconnect_in_ms, try_for_ms);
                conn.restarting = None;
                bump(&mut self.counters.restarting_frames, 1);
            }
            if let Some(echo) = conn.pong {
                if !fits(out, PONG_FRAME_LEN) {
                    break 'fill;
                }
                encode_pong(out, &echo);
                conn.pong = None;
                bump(&mut self.counters.pongs, 1);
            }
            while let Some(&(peer, reason)) = conn.peer_gone.front() {
                if !fits(out, PEER_GONE_FRAME_LEN) {
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
                if !fits(out, len) {
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
        }
        let more = conn.has_pending();
        if !more {
            conn.wake_pending = false;
        }
        more
    }

    /// Subscribes connection `id` to the departure of each of `sources`, whose packets
    /// its writer just took from its inbox for the first time (see
    /// [`super::Inbox::drain`]). Like upstream, the memory of having subscribed is kept
    /// for the life of the receiver's connection, so if a source leaves, comes back and
    /// sends again, the receiver is not told a second time (§3.7 quirk).
    pub fn subscribe_sources(&mut self, id: ConnId, sources: &[PublicKey]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        for &src in sources {
            subscribe(
                &mut conn.saw_src,
                id,
                src,
                &mut self.gone_subscribers,
                &mut self.counters,
            );
        }
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

    /// Current gauges, with the pool counters of the live inboxes `live` (see
    /// [`Relay::counters_with`]).
    pub fn stats_with<'a>(&self, live: impl IntoIterator<Item = &'a InboxTally>) -> RelayStats {
        let (queued_packets, queued_bytes) = self.data.queued();
        let pooled = self.data.pooled();
        let (misses, discards) = live.into_iter().fold((0u64, 0u64), |(m, d), tally| {
            (
                m.saturating_add(tally.pool_misses),
                d.saturating_add(tally.pool_discards),
            )
        });
        RelayStats {
            connections: self.conns.len(),
            keys: self.keys.len(),
            home_connections: self.home_connections,
            not_ideal_connections: self.not_ideal_connections,
            dup_keys: self.dup_keys,
            dup_conns: self.dup_conns,
            watchers: self.watchers.len(),
            queued_packets,
            queued_bytes,
            pooled_buffers: self.pool.len().saturating_add(pooled),
            pool_misses: self.pool.misses.saturating_add(misses),
            pool_discards: self.pool.discards.saturating_add(discards),
        }
    }

    /// Appends all metrics in Prometheus text format (names prefixed `tinyderp_`), with
    /// the live inboxes' counters `live` (see [`Relay::counters_with`]).
    pub fn render_metrics_with(&self, live: &[InboxTally], out: &mut String) {
        metrics::render(&self.counters_with(live), &self.stats_with(live), out);
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

/// Subscribes `receiver` to the departure of `src` (see [`Relay::subscribe_sources`]).
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
