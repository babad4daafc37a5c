//! The mesh forwarding table (`--mesh-with`, §8 of docs/protocol.md): which other relay of
//! the region holds a client key, as its WatchConns stream announced, and the bounded
//! queue of ForwardPacket frames waiting for each peer's mesh client.
//!
//! Rules, as upstream's derper applies them: one hop only (the relay consults this table
//! for SendPacket, never for ForwardPacket); a local client wins over any route here; when
//! several peers announce the same key, the one that announced it last gets its packets;
//! a peer's routes all go when its connection breaks, and its fresh WatchConns snapshot
//! rebuilds them when it is back. The net layer feeds in the announcements and connection
//! events, and hands the keys that lost their last route to
//! `Relay::note_left_region`; everything here is plain data.

use std::collections::{HashMap, VecDeque};

use super::metrics::bump;
use crate::proto::frame::{encode_forward_packet, HEADER_LEN};
use crate::proto::key::{PublicKey, KEY_LEN};

/// Most mesh peers one relay dials (upstream has no limit; a region has a handful).
pub const MAX_MESH_PEERS: usize = 16;

/// Most client keys learned from all peers together. Announcements beyond it are dropped
/// and counted in `routes_dropped`; those clients are then unreachable from here until a
/// peer reconnects and the table has room again.
pub const MAX_MESH_ROUTES: usize = 65_536;

/// Most ForwardPacket frames waiting for one peer's mesh client to write them.
pub const MESH_QUEUE_DEPTH: usize = 512;

/// Most bytes of ForwardPacket frames waiting for one peer (1 MiB; a router cannot hold
/// more for a slow peer).
pub const MESH_QUEUE_BYTES: usize = 1 << 20;

/// ForwardPacket frame bytes in front of the packet data: header, source, destination.
const FORWARD_PREFIX_LEN: usize = HEADER_LEN + KEY_LEN + KEY_LEN;

/// One connection logged in with the mesh key: another relay of the region dialling in
/// (its mesh client), as the status socket lists it. Router builds have no dialer of
/// their own, so these are the only mesh peers they know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshClient {
    /// The peer relay's server key (its mesh client logs in with it).
    pub key: PublicKey,
    /// Where it connected from, when known.
    pub addr: Option<std::net::SocketAddr>,
    /// When it logged in.
    pub connected_at: std::time::Instant,
    /// It subscribed to this relay's connections (WatchConns), as a real mesh client does.
    pub watching: bool,
}

/// Index of one configured mesh peer, in `--mesh-with` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeshPeerId(pub usize);

/// Counters of one mesh peer, shown on the status page and in metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshPeerCounters {
    /// Packets sent to the peer as ForwardPacket (written by its mesh client).
    pub forwarded_out_packets: u64,
    /// Packet data bytes of those.
    pub forwarded_out_bytes: u64,
    /// ForwardPacket frames the peer sent to this relay (over its own connection here).
    pub forwarded_in_packets: u64,
    /// Packet data bytes of those.
    pub forwarded_in_bytes: u64,
    /// Packets for this peer dropped: its queue was full, it was not connected, or the
    /// write failed.
    pub dropped_packets: u64,
    /// Announcements dropped because the route table was full.
    pub routes_dropped: u64,
    /// Times its mesh client logged in (the first connect included).
    pub connects: u64,
}

/// What the table keeps per peer.
#[derive(Debug, Default)]
struct PeerEntry {
    /// The peer's DERP server key, once its mesh client logged in (matches the key of the
    /// peer's own mesh connection to this relay, which carries its ForwardPackets).
    server_key: Option<PublicKey>,
    connected: bool,
    /// Keys this peer currently announces (each is also in `routes`).
    learned: usize,
    queue: VecDeque<Box<[u8]>>,
    queued_bytes: usize,
    wake_pending: bool,
    counters: MeshPeerCounters,
}

/// One peer's claim on a key: `stamp` orders announcements (higher is later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    peer: MeshPeerId,
    stamp: u64,
}

/// What one [`MeshTable::drain`] call produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshDrained {
    /// ForwardPacket frames appended.
    pub packets: u64,
    /// Packet data bytes in them.
    pub bytes: u64,
    /// More frames wait: call again.
    pub more: bool,
}

/// Routes to keys on other relays of the region, and the per-peer send queues.
#[derive(Debug, Default)]
pub struct MeshTable {
    peers: Vec<PeerEntry>,
    /// Key -> the peers announcing it (at most one claim per peer, so at most
    /// `MAX_MESH_PEERS` claims). Bounded by [`MAX_MESH_ROUTES`] keys.
    routes: HashMap<PublicKey, Vec<Claim>>,
    next_stamp: u64,
}

impl MeshTable {
    /// Adds a configured peer; `None` once [`MAX_MESH_PEERS`] are configured.
    pub fn add_peer(&mut self) -> Option<MeshPeerId> {
        if self.peers.len() >= MAX_MESH_PEERS {
            return None;
        }
        self.peers.push(PeerEntry::default());
        Some(MeshPeerId(self.peers.len().saturating_sub(1)))
    }

    /// Number of configured peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of keys with at least one route.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// The peer whose client gets packets for `key`: the latest announcer.
    pub fn route(&self, key: &PublicKey) -> Option<MeshPeerId> {
        self.routes
            .get(key)
            .and_then(|claims| claims.iter().max_by_key(|claim| claim.stamp))
            .map(|claim| claim.peer)
    }

    /// True if some peer announces `key`.
    pub fn has_route(&self, key: &PublicKey) -> bool {
        self.routes.contains_key(key)
    }

    /// True while the peer's mesh client is logged in.
    pub fn is_connected(&self, peer: MeshPeerId) -> bool {
        self.peers.get(peer.0).is_some_and(|entry| entry.connected)
    }

    /// Keys the peer currently announces.
    pub fn learned(&self, peer: MeshPeerId) -> usize {
        self.peers.get(peer.0).map_or(0, |entry| entry.learned)
    }

    /// The peer's counters (zero for an unknown id).
    pub fn counters(&self, peer: MeshPeerId) -> MeshPeerCounters {
        self.peers
            .get(peer.0)
            .map(|entry| entry.counters)
            .unwrap_or_default()
    }

    /// The peer whose mesh client logged in with this server key, if any.
    pub fn peer_by_server_key(&self, key: &PublicKey) -> Option<MeshPeerId> {
        self.peers
            .iter()
            .position(|entry| entry.server_key.as_ref() == Some(key))
            .map(MeshPeerId)
    }

    /// The peer's mesh client logged in to a server with `server_key`. Routes left from an
    /// earlier connection are stale and dropped (the fresh WatchConns snapshot rebuilds
    /// them); the keys that thereby lost their last route are returned.
    pub fn peer_connected(&mut self, peer: MeshPeerId, server_key: PublicKey) -> Vec<PublicKey> {
        let lost = self.clear_peer(peer);
        if let Some(entry) = self.peers.get_mut(peer.0) {
            entry.server_key = Some(server_key);
            entry.connected = true;
            bump(&mut entry.counters.connects, 1);
        }
        lost
    }

    /// The peer's connection broke: its routes and queued frames go (the frames counted as
    /// dropped). Returns the keys that lost their last route.
    pub fn peer_lost(&mut self, peer: MeshPeerId) -> Vec<PublicKey> {
        if let Some(entry) = self.peers.get_mut(peer.0) {
            entry.connected = false;
            entry.wake_pending = false;
            let dropped = entry.queue.len() as u64;
            entry.queue.clear();
            entry.queued_bytes = 0;
            bump(&mut entry.counters.dropped_packets, dropped);
        }
        self.clear_peer(peer)
    }

    fn clear_peer(&mut self, peer: MeshPeerId) -> Vec<PublicKey> {
        let mut lost = Vec::new();
        if self
            .peers
            .get(peer.0)
            .is_none_or(|entry| entry.learned == 0)
        {
            return lost;
        }
        self.routes.retain(|key, claims| {
            claims.retain(|claim| claim.peer != peer);
            if claims.is_empty() {
                lost.push(*key);
                false
            } else {
                true
            }
        });
        if let Some(entry) = self.peers.get_mut(peer.0) {
            entry.learned = 0;
        }
        lost
    }

    /// PeerPresent from the peer: it holds `key`, and is now its latest announcer. Returns
    /// false if the announcement was dropped (unknown peer, or the table is full).
    pub fn present(&mut self, peer: MeshPeerId, key: PublicKey) -> bool {
        let Some(entry) = self.peers.get_mut(peer.0) else {
            return false;
        };
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        if !self.routes.contains_key(&key) && self.routes.len() >= MAX_MESH_ROUTES {
            bump(&mut entry.counters.routes_dropped, 1);
            return false;
        }
        let claims = self.routes.entry(key).or_default();
        match claims.iter_mut().find(|claim| claim.peer == peer) {
            Some(claim) => claim.stamp = stamp,
            None => {
                claims.push(Claim { peer, stamp });
                entry.learned = entry.learned.saturating_add(1);
            }
        }
        true
    }

    /// PeerGone from the peer: it no longer holds `key`. Returns true if that was the
    /// key's last route (the key has left the other relays).
    pub fn gone(&mut self, peer: MeshPeerId, key: &PublicKey) -> bool {
        let Some(claims) = self.routes.get_mut(key) else {
            return false;
        };
        let before = claims.len();
        claims.retain(|claim| claim.peer != peer);
        if claims.len() != before {
            if let Some(entry) = self.peers.get_mut(peer.0) {
                entry.learned = entry.learned.saturating_sub(1);
            }
        }
        if claims.is_empty() {
            self.routes.remove(key);
            before > 0
        } else {
            false
        }
    }

    /// Queues a ForwardPacket for `peer`. Returns true if its writer must be woken (first
    /// frame since its last drain). A full queue or a disconnected peer drops the packet.
    pub fn enqueue(
        &mut self,
        peer: MeshPeerId,
        src: &PublicKey,
        dst: &PublicKey,
        data: &[u8],
    ) -> bool {
        let Some(entry) = self.peers.get_mut(peer.0) else {
            return false;
        };
        let frame_len = FORWARD_PREFIX_LEN.saturating_add(data.len());
        if !entry.connected
            || entry.queue.len() >= MESH_QUEUE_DEPTH
            || entry.queued_bytes.saturating_add(frame_len) > MESH_QUEUE_BYTES
        {
            bump(&mut entry.counters.dropped_packets, 1);
            return false;
        }
        let mut frame = Vec::with_capacity(frame_len);
        encode_forward_packet(&mut frame, src, dst, data);
        entry.queued_bytes = entry.queued_bytes.saturating_add(frame.len());
        entry.queue.push_back(frame.into_boxed_slice());
        if entry.wake_pending {
            false
        } else {
            entry.wake_pending = true;
            true
        }
    }

    /// Appends queued frames for `peer` to `out`, at least one if any wait, stopping before
    /// one that would take the appended bytes past `max_bytes`. Frames are counted as
    /// forwarded here; report a failed write with [`MeshTable::note_write_failure`].
    pub fn drain(&mut self, peer: MeshPeerId, out: &mut Vec<u8>, max_bytes: usize) -> MeshDrained {
        let mut drained = MeshDrained::default();
        let Some(entry) = self.peers.get_mut(peer.0) else {
            return drained;
        };
        let mut written = 0usize;
        while let Some(len) = entry.queue.front().map(|frame| frame.len()) {
            if written > 0 && written.saturating_add(len) > max_bytes {
                break;
            }
            let Some(frame) = entry.queue.pop_front() else {
                break;
            };
            out.extend_from_slice(&frame);
            written = written.saturating_add(len);
            entry.queued_bytes = entry.queued_bytes.saturating_sub(len);
            drained.packets = drained.packets.saturating_add(1);
            drained.bytes = drained
                .bytes
                .saturating_add(len.saturating_sub(FORWARD_PREFIX_LEN) as u64);
        }
        bump(&mut entry.counters.forwarded_out_packets, drained.packets);
        bump(&mut entry.counters.forwarded_out_bytes, drained.bytes);
        drained.more = !entry.queue.is_empty();
        if !drained.more {
            entry.wake_pending = false;
        }
        drained
    }

    /// The bytes of a drain were not written: its packets move from forwarded to dropped.
    pub fn note_write_failure(&mut self, peer: MeshPeerId, drained: &MeshDrained) {
        if let Some(entry) = self.peers.get_mut(peer.0) {
            let counters = &mut entry.counters;
            counters.forwarded_out_packets = counters
                .forwarded_out_packets
                .saturating_sub(drained.packets);
            counters.forwarded_out_bytes =
                counters.forwarded_out_bytes.saturating_sub(drained.bytes);
            bump(&mut counters.dropped_packets, drained.packets);
        }
    }

    /// A ForwardPacket arrived from the connection of a server with key `from`; counted
    /// for the configured peer with that key, if any.
    pub fn note_forwarded_in(&mut self, from: &PublicKey, len: usize) {
        if let Some(MeshPeerId(index)) = self.peer_by_server_key(from) {
            if let Some(entry) = self.peers.get_mut(index) {
                bump(&mut entry.counters.forwarded_in_packets, 1);
                bump(&mut entry.counters.forwarded_in_bytes, len as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey([n; 32])
    }

    fn table(peers: usize) -> (MeshTable, Vec<MeshPeerId>) {
        let mut table = MeshTable::default();
        let ids = (0..peers).map(|_| table.add_peer().unwrap()).collect();
        (table, ids)
    }

    #[test]
    fn last_announcer_wins_and_falls_back() {
        let (mut t, p) = table(3);
        for &peer in &p {
            t.peer_connected(peer, key(100 + peer.0 as u8));
        }
        assert!(t.present(p[0], key(1)));
        assert!(t.present(p[1], key(1)));
        assert_eq!(t.route(&key(1)), Some(p[1]));
        // Re-announcing makes p[0] the latest again.
        assert!(t.present(p[0], key(1)));
        assert_eq!(t.route(&key(1)), Some(p[0]));
        assert_eq!(t.learned(p[0]), 1);
        assert!(!t.gone(p[0], &key(1)));
        assert_eq!(t.route(&key(1)), Some(p[1]));
        assert!(t.gone(p[1], &key(1)));
        assert_eq!(t.route(&key(1)), None);
        // A second PeerGone for a key already gone changes nothing.
        assert!(!t.gone(p[1], &key(1)));
        assert_eq!(t.learned(p[1]), 0);
    }

    #[test]
    fn reconnect_drops_stale_routes() {
        let (mut t, p) = table(2);
        t.peer_connected(p[0], key(100));
        t.peer_connected(p[1], key(101));
        t.present(p[0], key(1));
        t.present(p[0], key(2));
        t.present(p[1], key(2));
        let mut lost = t.peer_connected(p[0], key(100));
        lost.sort();
        assert_eq!(lost, vec![key(1)]);
        assert_eq!(t.route(&key(2)), Some(p[1]));
        assert_eq!(t.learned(p[0]), 0);
        assert_eq!(t.counters(p[0]).connects, 2);
        t.present(p[0], key(3));
        assert_eq!(t.peer_lost(p[0]), vec![key(3)]);
        assert!(!t.is_connected(p[0]));
        assert_eq!(t.route_count(), 1);
    }

    #[test]
    fn route_table_is_bounded() {
        let (mut t, p) = table(1);
        t.peer_connected(p[0], key(0));
        for n in 0..MAX_MESH_ROUTES as u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&n.to_be_bytes());
            k[31] = 1;
            assert!(t.present(p[0], PublicKey(k)));
        }
        assert!(!t.present(p[0], key(7)));
        assert_eq!(t.counters(p[0]).routes_dropped, 1);
        assert_eq!(t.route_count(), MAX_MESH_ROUTES);
        // A key already routed may still be re-announced.
        let mut k = [0u8; 32];
        k[31] = 1;
        assert!(t.present(p[0], PublicKey(k)));
    }

    #[test]
    fn peers_are_bounded() {
        let mut t = MeshTable::default();
        for _ in 0..MAX_MESH_PEERS {
            assert!(t.add_peer().is_some());
        }
        assert_eq!(t.add_peer(), None);
        assert_eq!(t.peer_count(), MAX_MESH_PEERS);
    }

    #[test]
    fn queue_wakes_once_bounds_and_counts() {
        let (mut t, p) = table(1);
        // Not connected: dropped.
        assert!(!t.enqueue(p[0], &key(1), &key(2), b"x"));
        assert_eq!(t.counters(p[0]).dropped_packets, 1);
        t.peer_connected(p[0], key(9));
        assert!(t.enqueue(p[0], &key(1), &key(2), b"abc"));
        assert!(!t.enqueue(p[0], &key(1), &key(2), b"de"));
        let mut out = Vec::new();
        let d = t.drain(p[0], &mut out, 1);
        assert_eq!((d.packets, d.bytes, d.more), (1, 3, true));
        let mut expected = Vec::new();
        encode_forward_packet(&mut expected, &key(1), &key(2), b"abc");
        assert_eq!(out, expected);
        let d = t.drain(p[0], &mut out, 1 << 20);
        assert_eq!((d.packets, d.bytes, d.more), (1, 2, false));
        // Drained empty: the next frame wakes again.
        assert!(t.enqueue(p[0], &key(1), &key(2), b"f"));
        t.note_write_failure(p[0], &d);
        let c = t.counters(p[0]);
        assert_eq!((c.forwarded_out_packets, c.forwarded_out_bytes), (1, 3));
        assert_eq!(c.dropped_packets, 2);
        for _ in 1..MESH_QUEUE_DEPTH {
            t.enqueue(p[0], &key(1), &key(2), b"g");
        }
        assert!(!t.enqueue(p[0], &key(1), &key(2), b"h"));
        assert_eq!(t.counters(p[0]).dropped_packets, 3);
        // Losing the peer drops what it had queued.
        t.peer_lost(p[0]);
        assert_eq!(
            t.counters(p[0]).dropped_packets,
            3 + MESH_QUEUE_DEPTH as u64
        );
        assert_eq!(t.drain(p[0], &mut out, 1 << 20), MeshDrained::default());
    }

    #[test]
    fn queue_byte_bound() {
        let (mut t, p) = table(1);
        t.peer_connected(p[0], key(9));
        let big = vec![0u8; 65_536];
        let fit = MESH_QUEUE_BYTES / (FORWARD_PREFIX_LEN + big.len());
        for _ in 0..fit {
            t.enqueue(p[0], &key(1), &key(2), &big);
        }
        assert_eq!(t.counters(p[0]).dropped_packets, 0);
        t.enqueue(p[0], &key(1), &key(2), &big);
        assert_eq!(t.counters(p[0]).dropped_packets, 1);
    }

    #[test]
    fn forwarded_in_counted_by_server_key() {
        let (mut t, p) = table(2);
        t.peer_connected(p[1], key(50));
        t.note_forwarded_in(&key(50), 10);
        t.note_forwarded_in(&key(51), 10);
        assert_eq!(t.peer_by_server_key(&key(50)), Some(p[1]));
        let c = t.counters(p[1]);
        assert_eq!((c.forwarded_in_packets, c.forwarded_in_bytes), (1, 10));
        assert_eq!(t.counters(p[0]).forwarded_in_packets, 0);
    }
}
