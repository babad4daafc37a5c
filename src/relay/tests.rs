//! Behaviour tests of the relay state: routing, queueing, duplicates, PeerGone, watchers,
//! drain order and metrics. Expected bytes are built with the proto encoders. Section
//! numbers (§) refer to `docs/protocol.md`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::*;
use crate::proto::frame::{
    encode_peer_gone, encode_peer_present, encode_pong, encode_recv_packet, encode_restarting,
    ClientFrame, PeerGoneReason, DISCO_MAGIC, MIN_DISCO_LEN,
};
use crate::proto::key::PublicKey;

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

fn client(n: u8) -> ConnParams {
    ConnParams {
        key: key(n),
        addr: None,
        is_mesh: false,
        is_prober: false,
        not_ideal: false,
    }
}

fn mesh(n: u8) -> ConnParams {
    ConnParams {
        is_mesh: true,
        ..client(n)
    }
}

/// A disco-looking payload of the minimum length, filled with `fill`.
fn disco(fill: u8) -> Vec<u8> {
    let mut data = DISCO_MAGIC.to_vec();
    data.resize(MIN_DISCO_LEN, fill);
    data
}

fn recv(src: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_recv_packet(&mut out, &key(src), data);
    out
}

fn gone(peer: u8, reason: PeerGoneReason) -> Vec<u8> {
    let mut out = Vec::new();
    encode_peer_gone(&mut out, &key(peer), reason);
    out
}

fn present(peer: u8, addr: Option<SocketAddr>, flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_peer_present(&mut out, &key(peer), addr, flags);
    out
}

/// Splits a byte stream into (type, payload) frames.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        out.push((bytes[0], bytes[5..5 + len].to_vec()));
        bytes = &bytes[5 + len..];
    }
    out
}

/// The relay as the net layer drives it (`net/hub.rs`), single-threaded: the registry,
/// one inbox per connection and the key -> inbox route map kept from `Action::Route`.
/// `take_actions` returns the registry's actions (without `Route`, which is bookkeeping)
/// and a `Wake` wherever an inbox asked for one.
struct Harness {
    /// The registry, the inboxes and the route map (shared with the fuzz target).
    model: model::Model,
    t0: Instant,
    actions: Vec<Action>,
    log: Vec<Action>,
    dup: ConnIdMap<bool>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(PublicKey([0xee; 32]), RelayLimits::default())
    }

    fn with(server_key: PublicKey, limits: RelayLimits) -> Harness {
        Harness {
            model: model::Model::new(Relay::new(server_key, limits)),
            t0: Instant::now(),
            actions: Vec::new(),
            log: Vec::new(),
            dup: ConnIdMap::default(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Carries out the registry's pending actions as the net layer does.
    fn sync(&mut self) {
        for action in std::mem::take(&mut self.actions) {
            match action {
                Action::Route(key) => {
                    self.model.route(key);
                    let ids = self.model.relay.conns_of(&key).to_vec();
                    for id in &ids {
                        self.dup.insert(*id, ids.len() > 1);
                    }
                }
                Action::Close(id) => {
                    if let Some(inbox) = self.model.inboxes.get_mut(&id) {
                        inbox.close(self.model.relay.data());
                    }
                    self.log.push(action);
                }
                _ => self.log.push(action),
            }
        }
    }

    /// Syncs, then checks the registry's gauges and the inboxes against the shared
    /// queue budget and the route map against the registry.
    fn check(&mut self) {
        self.sync();
        self.model.relay.check_invariants();
        assert_eq!(
            self.model.relay.data().queued(),
            self.model.queued_in_inboxes()
        );
        assert!(self.model.routes_agree());
        for (key, id) in &self.model.routes {
            assert_eq!(self.dup[id], self.model.relay.conns_of(key).len() > 1);
        }
    }

    fn connect(&mut self, p: ConnParams) -> ConnId {
        let id = self.model.connect(p, self.t0, &mut self.actions);
        self.dup.insert(id, false);
        self.check();
        id
    }

    fn disconnect(&mut self, id: ConnId) {
        self.model.disconnect(id, self.t0, &mut self.actions);
        self.sync();
        self.dup.remove(&id);
        self.check();
    }

    fn frame_at(&mut self, id: ConnId, frame: ClientFrame<'_>, ms: u64) -> Result<(), Violation> {
        let now = self.at(ms);
        let result = self
            .model
            .relay
            .handle_frame(id, frame, now, &mut self.actions);
        self.sync();
        let result = result.map(|delivery| {
            if let Some(delivery) = delivery {
                self.deliver(id, delivery, now);
            }
        });
        self.check();
        result
    }

    /// Queues a parsed packet in its receiver's inbox, or hands it back to the registry.
    fn deliver(&mut self, from: ConnId, d: Delivery<'_>, now: Instant) {
        if let Some(woken) = self.model.deliver(from, d, now, &mut self.actions) {
            self.log.push(Action::Wake(woken));
        }
        self.sync();
    }

    /// The packet path of the net layer for a SendPacket read in place.
    fn send_packet(&mut self, from: ConnId, packet: PacketBuf) -> Vec<u8> {
        self.sync();
        if self.dup[&from] {
            self.model
                .relay
                .note_sender(from, &mut self.actions)
                .unwrap();
            self.sync();
        }
        let src = self.model.relay.conn(from).unwrap().key;
        let dst = packet.dst().unwrap();
        let limits = self.model.relay.limits();
        if let Some(&dst_id) = self.model.routes.get(&dst) {
            let inbox = self.model.inboxes.get_mut(&dst_id).unwrap();
            let (wake, spare) =
                deliver_owned(inbox, &src, packet, &limits, self.model.relay.data());
            if wake {
                self.log.push(Action::Wake(dst_id));
            }
            self.check();
            return spare;
        }
        let data = packet.data();
        self.model
            .relay
            .note_received(PacketKind::of(data), data.len());
        let spare = self.model.relay.unrouted(
            from,
            src,
            dst,
            Packet::Owned(packet),
            false,
            self.t0,
            &mut self.actions,
        );
        self.check();
        spare
    }

    fn frame(&mut self, id: ConnId, frame: ClientFrame<'_>) {
        self.frame_at(id, frame, 0).unwrap();
    }

    fn send(&mut self, from: ConnId, dst: u8, data: &[u8]) {
        self.frame(
            from,
            ClientFrame::SendPacket {
                dst: key(dst),
                data,
            },
        );
    }

    /// The writer's drain: control frames from the registry into `out`, then packets from
    /// the inbox into `frames` (previous ones recycled first), both within `max_bytes`
    /// counted from `out`'s length at the call; new sources go to the registry.
    fn drain_frames(
        &mut self,
        id: ConnId,
        out: &mut Vec<u8>,
        frames: &mut Vec<Vec<u8>>,
        max_bytes: usize,
    ) -> Drained {
        self.sync();
        let (drained, control_more) = self.model.drain_frames(id, out, frames, max_bytes);
        self.check();
        Drained {
            more: drained.more || control_more,
            ..drained
        }
    }

    /// Like `drain_frames`, with the packets copied into `out` and their buffers recycled.
    fn drain_outgoing(&mut self, id: ConnId, out: &mut Vec<u8>, max_bytes: usize) -> Drained {
        let mut frames = Vec::new();
        let drained = self.drain_frames(id, out, &mut frames, max_bytes);
        for frame in &frames {
            out.extend_from_slice(frame);
        }
        self.recycle(id, &mut frames);
        drained
    }

    fn recycle(&mut self, id: ConnId, frames: &mut Vec<Vec<u8>>) {
        self.model.recycle(id, frames);
    }

    /// Everything pending for `id`, drained without a size limit.
    fn drain(&mut self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        let drained = self.drain_outgoing(id, &mut out, usize::MAX);
        assert!(!drained.more);
        out
    }

    fn take_actions(&mut self) -> Vec<Action> {
        self.sync();
        std::mem::take(&mut self.log)
    }

    fn tallies(&self) -> Vec<InboxTally> {
        self.model.tallies()
    }

    fn counters(&self) -> Counters {
        self.model.relay.counters_with(&self.tallies())
    }

    fn stats(&self) -> RelayStats {
        self.model.relay.stats_with(&self.tallies())
    }

    fn drops(&self, reason: DropReason, kind: PacketKind) -> (u64, u64) {
        let tally = self.counters().drops(reason, kind);
        (tally.packets, tally.bytes)
    }
}

#[test]
fn send_packet_reaches_only_the_destination_with_the_sender_key() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    let c = h.connect(client(3));
    h.take_actions();
    h.send(a, 2, b"hello");
    assert_eq!(h.take_actions(), vec![Action::Wake(b)]);
    assert_eq!(h.drain(b), recv(1, b"hello"));
    assert_eq!(
        h.drain(b),
        Vec::<u8>::new(),
        "a drained packet is not sent twice"
    );
    assert!(h.drain(a).is_empty());
    assert!(h.drain(c).is_empty());
    let counters = h.counters();
    assert_eq!(counters.received(PacketKind::Other).packets, 1);
    assert_eq!(counters.received(PacketKind::Other).bytes, 5);
    assert_eq!((counters.sent.packets, counters.sent.bytes), (1, 5));
}

#[test]
fn unknown_destination_drops_and_rate_limits_not_here() {
    // (payload is disco, send times in ms, NotHere frames expected)
    let cases: &[(bool, &[u64], usize)] = &[
        (false, &[0], 0),
        (true, &[0], 1),
        (true, &[0, 0, 0, 0, 0, 0], 3),
        (true, &[0, 0, 0, 0, 1000], 4),
        (true, &[0, 0, 0, 500, 1000, 1000], 4),
        (true, &[0, 0, 0, 3000, 3000, 3000, 3000], 6),
    ];
    for (case, &(is_disco, times, expected)) in cases.iter().enumerate() {
        let mut h = Harness::new();
        let a = h.connect(client(1));
        let payload = if is_disco {
            disco(7)
        } else {
            b"not disco".to_vec()
        };
        for &ms in times {
            h.frame_at(
                a,
                ClientFrame::SendPacket {
                    dst: key(9),
                    data: &payload,
                },
                ms,
            )
            .unwrap();
        }
        let expected_bytes = gone(9, PeerGoneReason::NotHere).repeat(expected);
        assert_eq!(h.drain(a), expected_bytes, "case {case}");
        let kind = if is_disco {
            PacketKind::Disco
        } else {
            PacketKind::Other
        };
        assert_eq!(
            h.drops(DropReason::UnknownDest, kind),
            (times.len() as u64, (times.len() * payload.len()) as u64),
            "case {case}"
        );
        assert_eq!(h.counters().peer_gone_not_here, expected as u64);
    }
}

#[test]
fn one_byte_short_of_disco_is_other_and_gets_no_not_here() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let mut short = disco(1);
    short.pop();
    h.send(a, 9, &short);
    assert!(h.drain(a).is_empty());
    assert_eq!(h.drops(DropReason::UnknownDest, PacketKind::Other), (1, 61));
}

#[test]
fn forward_packet_is_mesh_only_and_delivered_locally_only() {
    let mut h = Harness::new();
    let m = h.connect(mesh(50));
    let b = h.connect(client(2));
    let plain = h.connect(client(3));
    h.frame(
        m,
        ClientFrame::ForwardPacket {
            src: key(9),
            dst: key(2),
            data: b"via mesh",
        },
    );
    assert_eq!(
        h.drain(b),
        recv(9, b"via mesh"),
        "source is the original sender"
    );

    let probe = disco(3);
    h.frame(
        m,
        ClientFrame::ForwardPacket {
            src: key(9),
            dst: key(77),
            data: &probe,
        },
    );
    assert_eq!(h.drain(m), gone(77, PeerGoneReason::NotHere));
    assert_eq!(
        h.drops(DropReason::UnknownDestOnFwd, PacketKind::Disco),
        (1, 62)
    );
    assert_eq!(h.drops(DropReason::UnknownDest, PacketKind::Disco), (0, 0));
    assert_eq!(h.counters().forwarded_in, 2);

    let refused = h.frame_at(
        plain,
        ClientFrame::ForwardPacket {
            src: key(9),
            dst: key(2),
            data: b"x",
        },
        0,
    );
    assert_eq!(refused, Err(Violation::NotMesh("ForwardPacket")));
    assert!(h.drain(b).is_empty());
}

#[test]
fn full_queue_drops_oldest_and_disco_has_its_own_queue() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    for i in 0..=DEFAULT_QUEUE_DEPTH as u8 {
        h.send(a, 2, &[i]);
    }
    h.send(a, 2, &disco(1));
    h.send(a, 2, &disco(2));
    assert_eq!(h.drops(DropReason::QueueHead, PacketKind::Other), (1, 1));
    assert_eq!(h.drops(DropReason::QueueHead, PacketKind::Disco), (0, 0));
    let mut expected = recv(1, &disco(1));
    expected.extend(recv(1, &disco(2)));
    for i in 1..=DEFAULT_QUEUE_DEPTH as u8 {
        expected.extend(recv(1, &[i]));
    }
    assert_eq!(
        h.drain(b),
        expected,
        "disco first, then the newest 32 others"
    );
}

#[test]
fn zero_depth_queue_drops_the_new_packet_at_the_tail() {
    let limits = RelayLimits {
        queue_depth: 0,
        ..RelayLimits::default()
    };
    let mut h = Harness::with(key(0xee), limits);
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.send(a, 2, b"abc");
    assert_eq!(h.drops(DropReason::QueueTail, PacketKind::Other), (1, 3));
    assert!(h.drain(b).is_empty());
}

#[test]
fn queue_budget_bounds_bytes_across_all_queues() {
    let limits = RelayLimits {
        max_queued_bytes: 2 * (37 + 100),
        ..RelayLimits::default()
    };
    let mut h = Harness::with(key(0xee), limits);
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    let c = h.connect(client(3));
    h.send(a, 2, &[0; 100]);
    h.send(a, 3, &[0; 100]);
    h.send(a, 3, &[0; 100]);
    assert_eq!(
        h.drops(DropReason::QueueBudget, PacketKind::Other),
        (1, 100)
    );
    assert_eq!(h.stats().queued_bytes, 2 * 137);
    assert_eq!(h.drain(b).len(), 137);
    h.send(a, 3, &[0; 100]);
    assert_eq!(h.drain(c).len(), 2 * 137, "room again after b drained");
    assert_eq!(h.stats().queued_bytes, 0);
}

#[test]
fn close_peer_closes_every_connection_and_drops_packets_for_them() {
    let mut h = Harness::new();
    let m = h.connect(mesh(50));
    let a = h.connect(client(1));
    let b1 = h.connect(client(2));
    let b2 = h.connect(client(2));
    h.take_actions();
    h.frame(m, ClientFrame::ClosePeer(key(2)));
    let mut closed = h.take_actions();
    closed.sort_by_key(|action| match action {
        Action::Wake(id) | Action::Close(id) => *id,
        Action::WakeMesh(_) | Action::Route(_) => ConnId(u64::MAX),
    });
    assert_eq!(closed, vec![Action::Close(b1), Action::Close(b2)]);
    h.send(a, 2, b"late");
    assert_eq!(
        h.drops(DropReason::GoneDisconnected, PacketKind::Other),
        (1, 4)
    );
    h.frame(m, ClientFrame::ClosePeer(key(99)));
    assert!(h.take_actions().is_empty(), "unknown key closes nothing");
    assert_eq!(
        h.frame_at(a, ClientFrame::ClosePeer(key(50)), 0),
        Err(Violation::NotMesh("ClosePeer"))
    );
}

#[test]
fn unregister_counts_queued_packets_as_gone_disconnected() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.send(a, 2, &[1; 10]);
    h.send(a, 2, &[2; 20]);
    h.send(a, 2, &disco(0));
    h.disconnect(b);
    assert_eq!(
        h.drops(DropReason::GoneDisconnected, PacketKind::Other),
        (2, 30)
    );
    assert_eq!(
        h.drops(DropReason::GoneDisconnected, PacketKind::Disco),
        (1, 62)
    );
    assert_eq!(h.stats().queued_packets, 0);
    assert_eq!(h.stats().queued_bytes, 0);
}

#[test]
fn duplicate_keys_last_writer_is_active() {
    let mut h = Harness::new();
    let w = h.connect(mesh(50));
    h.frame(w, ClientFrame::WatchConns);
    h.drain(w);
    let a = h.connect(client(1));
    let b1 = h.connect(client(2));
    let b2 = h.connect(client(2));
    let stats = h.stats();
    assert_eq!(
        (stats.dup_keys, stats.dup_conns, stats.connections),
        (1, 2, 4)
    );
    assert_eq!(
        h.model.relay.active_conn(&key(2)),
        Some(b2),
        "newest is active"
    );

    h.send(a, 2, b"one");
    assert_eq!(h.drain(b2), recv(1, b"one"));
    assert!(h.drain(b1).is_empty(), "inactive duplicate gets nothing");

    h.frame(b1, ClientFrame::NotePreferred(false));
    h.send(a, 2, b"two");
    assert_eq!(h.drain(b1), recv(1, b"two"), "any frame makes b1 active");

    let b3 = h.connect(client(2));
    assert_eq!(h.model.relay.active_conn(&key(2)), Some(b3));
    assert_eq!(h.stats().dup_conns, 3);
    h.frame(b2, ClientFrame::Ping([0; 8]));
    h.frame(b1, ClientFrame::Ignored);
    assert_eq!(h.model.relay.active_conn(&key(2)), Some(b1));

    // The active one leaves: the most recent sender (b2), not the newest (b3), takes over.
    h.disconnect(b1);
    assert_eq!(h.model.relay.active_conn(&key(2)), Some(b2));
    assert_eq!((h.stats().dup_keys, h.stats().dup_conns), (1, 2));

    h.disconnect(b2);
    assert_eq!(h.model.relay.active_conn(&key(2)), Some(b3));
    assert_eq!((h.stats().dup_keys, h.stats().dup_conns), (0, 0));
    assert_eq!(h.counters().dup_conns_total, 2);
    assert!(!h.model.relay.conn(b3).unwrap().is_dup);

    // Watchers saw a PeerPresent per connection and one PeerGone, for the last one only.
    let mut expected = present(1, None, 1);
    for _ in 0..3 {
        expected.extend(present(2, None, 1));
    }
    assert_eq!(h.drain(w), expected, "no PeerGone while duplicates remain");
    h.disconnect(b3);
    assert_eq!(h.drain(w), gone(2, PeerGoneReason::Disconnected));
}

#[test]
fn watchers_get_a_snapshot_then_live_updates_with_flags() {
    let mut h = Harness::new();
    let v4: SocketAddr = "127.0.0.1:1234".parse().unwrap();
    let v6: SocketAddr = "[::1]:5".parse().unwrap();
    let w1 = h.connect(ConnParams {
        addr: Some(v4),
        ..mesh(100)
    });
    h.connect(ConnParams {
        addr: Some(v6),
        ..client(1)
    });
    h.connect(ConnParams {
        is_prober: true,
        ..client(2)
    });
    h.connect(ConnParams {
        is_prober: true,
        not_ideal: true,
        ..client(3)
    });
    h.frame(w1, ClientFrame::WatchConns);
    let snapshot = [
        present(1, Some(v6), 0x01),
        present(2, None, 0x04),
        present(3, None, 0x0c),
        present(100, Some(v4), 0x02),
    ]
    .concat();
    assert_eq!(h.drain(w1), snapshot, "sorted by key, includes the watcher");

    let c4 = h.connect(client(4));
    assert_eq!(h.drain(w1), present(4, None, 0x01));
    let w2 = h.connect(mesh(101));
    assert_eq!(h.drain(w1), present(101, None, 0x02));
    h.frame(w2, ClientFrame::WatchConns);
    assert_eq!(frames(&h.drain(w2)).len(), 6);
    assert_eq!(h.stats().watchers, 2);

    h.disconnect(c4);
    assert_eq!(h.drain(w1), gone(4, PeerGoneReason::Disconnected));
    assert_eq!(h.drain(w2), gone(4, PeerGoneReason::Disconnected));
    h.disconnect(w1);
    assert_eq!(h.stats().watchers, 1);
    assert_eq!(h.drain(w2), gone(100, PeerGoneReason::Disconnected));

    // WatchConns again re-sends the full snapshot.
    h.frame(w2, ClientFrame::WatchConns);
    assert_eq!(frames(&h.drain(w2)).len(), 4);
    assert_eq!(h.stats().watchers, 1);
    assert_eq!(h.counters().peer_gone_disconnected, 3);
}

#[test]
fn watcher_with_the_server_key_is_ignored_and_plain_clients_may_not_watch() {
    let server = key(200);
    let mut h = Harness::with(server, RelayLimits::default());
    let own = h.connect(mesh(200));
    let plain = h.connect(client(1));
    h.take_actions();
    h.frame(own, ClientFrame::WatchConns);
    assert!(h.take_actions().is_empty());
    assert!(h.drain(own).is_empty());
    assert_eq!(h.stats().watchers, 0);
    assert_eq!(
        h.frame_at(plain, ClientFrame::WatchConns, 0),
        Err(Violation::NotMesh("WatchConns"))
    );
}

#[test]
fn watcher_that_falls_behind_is_closed() {
    let limits = RelayLimits {
        watcher_queue_depth: 2,
        ..RelayLimits::default()
    };
    let mut h = Harness::with(key(0xee), limits);
    let w = h.connect(mesh(50));
    h.frame(w, ClientFrame::WatchConns);
    // Bound = connected keys + 2. Churn of one key grows the list without growing keys.
    let c = h.connect(client(1));
    h.disconnect(c);
    let c = h.connect(client(1));
    h.take_actions();
    h.disconnect(c);
    assert_eq!(h.take_actions(), vec![Action::Close(w)]);
    assert_eq!(h.counters().watcher_overflows, 1);
    assert_eq!(h.stats().watchers, 0);
    assert!(h.model.relay.conn(w).unwrap().closing);
    assert!(h.drain(w).is_empty(), "its pending updates were discarded");
}

#[test]
fn peer_gone_goes_to_receivers_once_with_the_upstream_quirk() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    let c = h.connect(client(3));
    h.send(a, 2, b"a to b");
    h.drain(b);
    h.send(c, 1, b"c to a");
    h.drain(a);

    h.disconnect(a);
    assert_eq!(h.drain(b), gone(1, PeerGoneReason::Disconnected));
    assert!(h.drain(c).is_empty(), "c only sent to a: not told");

    // a comes back and sends to b again over the same b connection: b already
    // "saw" a, so it is not subscribed again and gets no second PeerGone (§3.7).
    let a2 = h.connect(client(1));
    h.send(a2, 2, b"again");
    h.drain(b);
    h.disconnect(a2);
    assert!(h.drain(b).is_empty());

    // A packet still queued (not written) does not subscribe.
    let d = h.connect(client(4));
    h.send(d, 2, b"queued");
    h.disconnect(d);
    assert_eq!(h.drain(b), recv(4, b"queued"));
    assert_eq!(h.counters().peer_gone_disconnected, 1);
}

#[test]
fn subscription_set_is_bounded_and_counts_what_it_forgets() {
    let mut h = Harness::new();
    let b = h.connect(client(0));
    let mut senders = Vec::new();
    for i in 0..=MAX_PEER_GONE_SUBSCRIPTIONS {
        let mut bytes = [0u8; 32];
        bytes[..2].copy_from_slice(&(i as u16 + 1).to_be_bytes());
        let id = h.connect(ConnParams {
            key: PublicKey(bytes),
            ..client(0)
        });
        h.frame(
            id,
            ClientFrame::SendPacket {
                dst: key(0),
                data: b"x",
            },
        );
        h.drain(b);
        senders.push(id);
    }
    assert_eq!(
        h.model.relay.conn(b).unwrap().saw_src.len(),
        MAX_PEER_GONE_SUBSCRIPTIONS
    );
    assert_eq!(h.counters().peer_gone_subscriptions_dropped, 1);
    for id in senders {
        h.disconnect(id);
    }
    assert_eq!(
        frames(&h.drain(b)).len(),
        MAX_PEER_GONE_SUBSCRIPTIONS,
        "the forgotten source gets no PeerGone"
    );
}

#[test]
fn peer_gone_notice_queue_is_bounded() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let probe = disco(0);
    // One NotHere per second is allowed indefinitely; nobody drains `a`.
    let sends = PEER_GONE_NOTICE_DEPTH + 6;
    for second in 0..sends as u64 {
        h.frame_at(
            a,
            ClientFrame::SendPacket {
                dst: key(9),
                data: &probe,
            },
            second * 1000,
        )
        .unwrap();
    }
    assert_eq!(h.counters().peer_gone_notices_dropped, 6);
    assert_eq!(frames(&h.drain(a)).len(), PEER_GONE_NOTICE_DEPTH);
}

#[test]
fn relay_can_live_behind_a_mutex_shared_by_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Relay>();
    assert_send::<Action>();
}

#[test]
fn ping_gets_one_pending_pong() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    h.take_actions();
    h.frame(a, ClientFrame::Ping([1, 2, 3, 4, 5, 6, 7, 0x2a]));
    h.frame(a, ClientFrame::Ping([9; 8]));
    assert_eq!(h.take_actions(), vec![Action::Wake(a)]);
    assert_eq!(
        h.drain(a),
        [0x13, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 0x2a].to_vec()
    );
    h.frame(a, ClientFrame::Ping([9; 8]));
    let mut expected = Vec::new();
    encode_pong(&mut expected, &[9; 8]);
    assert_eq!(h.drain(a), expected);
    let counters = h.counters();
    assert_eq!((counters.pings, counters.pongs), (3, 2));
}

#[test]
fn note_preferred_tracks_home_gauge_and_moves_after_grace() {
    // (ms after connect, preferred, home gauge, moves in, moves out)
    let steps: &[(u64, bool, usize, u64, u64)] = &[
        (0, true, 1, 0, 0),
        (100, true, 1, 0, 0),
        (4_000, false, 0, 0, 0),
        (5_000, true, 1, 0, 0),
        (5_001, false, 0, 0, 1),
        (6_000, false, 0, 0, 1),
        (7_000, true, 1, 1, 1),
        (8_000, true, 1, 1, 1),
    ];
    let mut h = Harness::new();
    let a = h.connect(client(1));
    for (step, &(ms, preferred, gauge, moves_in, moves_out)) in steps.iter().enumerate() {
        h.frame_at(a, ClientFrame::NotePreferred(preferred), ms)
            .unwrap();
        let counters = h.counters();
        assert_eq!(
            (
                h.stats().home_connections,
                counters.home_moves_in,
                counters.home_moves_out
            ),
            (gauge, moves_in, moves_out),
            "step {step}"
        );
    }
    h.disconnect(a);
    assert_eq!(h.stats().home_connections, 0);
}

#[test]
fn frames_from_unregistered_connections_are_refused() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    h.disconnect(a);
    let result = h.frame_at(a, ClientFrame::Ignored, 0);
    assert_eq!(result, Err(Violation::UnknownConn(a)));
    assert_eq!(
        Violation::NotMesh("WatchConns").to_string(),
        "WatchConns from a connection without the mesh key"
    );
    let mut out = Vec::new();
    assert_eq!(h.drain_outgoing(a, &mut out, 100), Drained::default());
}

#[test]
fn drain_order_and_size_limit() {
    let mut h = Harness::new();
    let w = h.connect(mesh(50));
    let a = h.connect(client(1));
    h.frame(w, ClientFrame::WatchConns);
    h.send(a, 50, b"other");
    h.send(a, 50, &disco(5));
    h.frame(w, ClientFrame::Ping([7; 8]));
    h.frame(
        w,
        ClientFrame::SendPacket {
            dst: key(9),
            data: &disco(1),
        },
    );
    h.model
        .relay
        .broadcast_restarting(1000, 30_000, &mut h.actions);

    let mut restarting = Vec::new();
    encode_restarting(&mut restarting, 1000, 30_000);
    let mut pong = Vec::new();
    encode_pong(&mut pong, &[7; 8]);
    let expected = [
        restarting,
        pong,
        gone(9, PeerGoneReason::NotHere),
        present(1, None, 0x01),
        present(50, None, 0x02),
        recv(1, &disco(5)),
        recv(1, b"other"),
    ];

    // A 1-byte budget still yields exactly one whole frame per call, in order.
    let mut out = Vec::new();
    for (i, frame) in expected.iter().enumerate() {
        let before = out.len();
        let drained = h.drain_outgoing(w, &mut out, 1);
        assert_eq!(&out[before..], &frame[..], "frame {i}");
        assert_eq!(drained.more, i + 1 < expected.len(), "frame {i}");
    }
    assert_eq!(out, expected.concat());
    h.check();

    // A budget that fits two small frames but not the third.
    h.frame(w, ClientFrame::Ping([1; 8]));
    h.send(a, 50, &[0; 40]);
    let mut out = Vec::new();
    let drained = h.drain_outgoing(w, &mut out, 13 + 40);
    assert_eq!(out.len(), 13);
    assert!(drained.more);
    let drained = h.drain_outgoing(w, &mut out, 77);
    assert_eq!(out.len(), 13 + 77);
    assert_eq!(
        (drained.packets, drained.bytes, drained.more),
        (1, 40, false)
    );
}

#[test]
fn write_failure_moves_packets_from_sent_to_write_error() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.send(a, 2, &disco(1));
    h.send(a, 2, &[0; 100]);
    let mut out = Vec::new();
    let drained = h.drain_outgoing(b, &mut out, usize::MAX);
    assert_eq!(
        drained,
        Drained {
            packets: 2,
            bytes: 162,
            disco: 1,
            disco_bytes: 62,
            more: false
        }
    );
    assert_eq!(h.counters().sent.packets, 2);
    h.model
        .inboxes
        .get_mut(&b)
        .unwrap()
        .note_write_failure(&drained);
    assert_eq!(h.drops(DropReason::WriteError, PacketKind::Disco), (1, 62));
    assert_eq!(h.drops(DropReason::WriteError, PacketKind::Other), (1, 100));
    assert_eq!(h.counters().sent, PacketTally::default());
}

#[test]
fn wake_is_emitted_once_until_everything_is_drained() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.take_actions();
    h.send(a, 2, b"1");
    h.send(a, 2, b"2");
    assert_eq!(h.take_actions(), vec![Action::Wake(b)]);
    let mut out = Vec::new();
    assert!(h.drain_outgoing(b, &mut out, 1).more);
    h.send(a, 2, b"3");
    assert!(
        h.take_actions().is_empty(),
        "writer is still draining: no new wake"
    );
    h.drain(b);
    h.send(a, 2, b"4");
    assert_eq!(h.take_actions(), vec![Action::Wake(b)]);
}

#[test]
fn restarting_is_broadcast_to_every_connection() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.take_actions();
    h.model.relay.broadcast_restarting(5, 6, &mut h.actions);
    let mut woken = h.take_actions();
    woken.sort_by_key(|action| match action {
        Action::Wake(id) | Action::Close(id) => *id,
        Action::WakeMesh(_) | Action::Route(_) => ConnId(u64::MAX),
    });
    assert_eq!(woken, vec![Action::Wake(a), Action::Wake(b)]);
    let golden = vec![0x15, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 6];
    assert_eq!(h.drain(a), golden);
    assert_eq!(h.drain(b), golden);
    assert_eq!(h.counters().restarting_frames, 2);
}

#[test]
fn idle_connection_state_is_small_and_unallocated() {
    let size = std::mem::size_of::<Conn>();
    assert!(size <= 320, "Conn is {size} bytes");
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let conn = h.model.relay.conn(a).unwrap();
    assert_eq!(conn.peer_gone.capacity(), 0);
    assert_eq!(conn.watch_updates.capacity(), 0);
    assert_eq!(conn.saw_src.capacity(), 0);
    let inbox = std::mem::size_of::<Inbox>();
    assert!(inbox <= 128, "Inbox is {inbox} bytes");
    assert_eq!(h.model.inboxes[&a].queue_lens(), (0, 0));
}

#[test]
fn metrics_render_as_prometheus_text() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.send(a, 2, b"data");
    h.send(a, 9, &disco(0));
    h.drain(b);
    h.drain(a);
    let mut text = String::new();
    h.model.relay.render_metrics_with(&h.tallies(), &mut text);
    for line in [
        "tinyderp_connections 2",
        "tinyderp_accepts_total 2",
        "tinyderp_packets_sent_total 1",
        "tinyderp_bytes_sent_total 4",
        "tinyderp_packets_received_total{kind=\"other\"} 1",
        "tinyderp_packets_received_total{kind=\"disco\"} 1",
        "tinyderp_packets_dropped_total{reason=\"unknown_dest\",kind=\"disco\"} 1",
        "tinyderp_bytes_dropped_total{reason=\"unknown_dest\",kind=\"disco\"} 62",
        "tinyderp_packets_dropped_total{reason=\"queue_head\",kind=\"other\"} 0",
        "tinyderp_peer_gone_frames_total{reason=\"not_here\"} 1",
        "# TYPE tinyderp_connections gauge",
        "# TYPE tinyderp_packets_dropped_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample belongs to a family declared just before with HELP and TYPE.
    let mut declared = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            value.parse::<u64>().unwrap();
        }
    }
    let unique: std::collections::HashSet<_> = declared.iter().collect();
    assert_eq!(unique.len(), declared.len(), "no family declared twice");
}

/// A deterministic random walk over register/unregister/frames/drains; the maintained
/// gauges must match a from-scratch recount after every step, and return to zero.
#[test]
fn random_walk_keeps_gauges_consistent() {
    let mut h = Harness::with(
        key(0xee),
        RelayLimits {
            queue_depth: 3,
            watcher_queue_depth: 4,
            max_queued_bytes: 4096,
        },
    );
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut live: Vec<ConnId> = Vec::new();
    for step in 0..3000u64 {
        let ms = step * 10;
        match next(8) {
            0 | 1 => {
                let n = next(6) as u8;
                let p = if n == 5 { mesh(n) } else { client(n) };
                live.push(h.connect(p));
            }
            2 if !live.is_empty() => {
                let id = live.swap_remove(next(live.len() as u64) as usize);
                h.disconnect(id);
            }
            3 | 4 if !live.is_empty() => {
                let id = live[next(live.len() as u64) as usize];
                let data = if next(2) == 0 {
                    disco(1)
                } else {
                    vec![0; next(200) as usize]
                };
                let dst = key(next(7) as u8);
                let frame = match next(6) {
                    0 => ClientFrame::WatchConns,
                    1 => ClientFrame::NotePreferred(next(2) == 0),
                    2 => ClientFrame::Ping([0; 8]),
                    3 => ClientFrame::ForwardPacket {
                        src: key(9),
                        dst,
                        data: &data,
                    },
                    _ => ClientFrame::SendPacket { dst, data: &data },
                };
                let _ = h.frame_at(id, frame, ms);
            }
            5 if !live.is_empty() => {
                let id = live[next(live.len() as u64) as usize];
                let mut out = Vec::new();
                let drained = h.drain_outgoing(id, &mut out, next(300) as usize);
                if next(10) == 0 {
                    h.model
                        .inboxes
                        .get_mut(&id)
                        .unwrap()
                        .note_write_failure(&drained);
                }
            }
            6 => {
                let actions = h.take_actions();
                for action in actions {
                    if let Action::Close(id) = action {
                        if let Some(pos) = live.iter().position(|&l| l == id) {
                            live.swap_remove(pos);
                            h.disconnect(id);
                        }
                    }
                }
            }
            _ => {}
        }
        h.check();
    }
    for id in live {
        h.disconnect(id);
    }
    h.check();
    let stats = h.stats();
    assert!(stats.pooled_buffers <= MAX_POOLED_BUFFERS + MAX_INBOX_POOLED_BUFFERS);
    // The pool keeps free buffers after everyone left; every other gauge is back to zero.
    let pool_only = RelayStats {
        pooled_buffers: stats.pooled_buffers,
        pool_misses: stats.pool_misses,
        pool_discards: stats.pool_discards,
        ..RelayStats::default()
    };
    assert_eq!(stats, pool_only);
}

/// A SendPacket read in place, as the net layer reads it (`PacketBuf`), into `buf`.
fn owned_packet(buf: Vec<u8>, dst: u8, data: &[u8]) -> PacketBuf {
    let mut packet = PacketBuf::for_payload(buf, 32 + data.len());
    let payload = packet.payload_mut();
    payload[..32].copy_from_slice(key(dst).as_bytes());
    payload[32..].copy_from_slice(data);
    packet
}

#[test]
fn owned_send_packet_is_delivered_like_a_parsed_one() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    h.take_actions();
    let packet = owned_packet(Vec::new(), 2, b"in place");
    let spare = h.send_packet(a, packet);
    assert!(spare.capacity() > 0, "a pooled buffer for the next read");
    assert_eq!(h.take_actions(), vec![Action::Wake(b)]);
    // The zero-copy drain hands over the very frame the encoder would have written.
    let mut out = Vec::new();
    let mut frames = Vec::new();
    let drained = h.drain_frames(b, &mut out, &mut frames, usize::MAX);
    assert!(out.is_empty());
    assert_eq!(frames, vec![recv(1, b"in place")]);
    assert_eq!((drained.packets, drained.bytes), (1, 8));
    let counters = h.counters();
    assert_eq!(counters.received(PacketKind::Other).packets, 1);
    assert_eq!((counters.sent.packets, counters.sent.bytes), (1, 8));
    h.recycle(b, &mut frames);
    assert!(frames.is_empty());
    assert_eq!(h.stats().pooled_buffers, 1, "the delivered frame's buffer");
    h.check();
    // An unknown sender is refused by the registry.
    assert_eq!(
        h.model.relay.note_sender(ConnId(999), &mut h.actions),
        Err(Violation::UnknownConn(ConnId(999)))
    );
}

#[test]
fn relaying_in_steady_state_allocates_no_buffers() {
    let mut h = Harness::new();
    let a = h.connect(client(1));
    let b = h.connect(client(2));
    let mut spare = Vec::new();
    let mut frames = Vec::new();
    let mut out = Vec::new();
    for round in 0..50 {
        for _ in 0..8 {
            let packet = owned_packet(spare, 2, &[round as u8; 1200]);
            spare = h.send_packet(a, packet);
        }
        out.clear();
        h.drain_frames(b, &mut out, &mut frames, usize::MAX);
        assert_eq!(frames.len(), 8);
        assert!(frames
            .iter()
            .all(|frame| *frame == recv(1, &[round as u8; 1200])));
    }
    h.recycle(b, &mut frames);
    h.check();
    let stats = h.stats();
    // A drain takes back the batch before it: the first two rounds fill the pipeline (8
    // queued, 8 being written); after that every buffer is a reused one.
    assert_eq!(stats.pool_misses, 16, "{stats:?}");
    assert_eq!(stats.pool_discards, 0);
    assert_eq!(h.counters().sent.packets, 400);
}

#[test]
fn dropped_owned_packets_give_their_buffers_back() {
    let limits = RelayLimits {
        queue_depth: 1,
        ..RelayLimits::default()
    };
    let mut h = Harness::with(PublicKey([0xee; 32]), limits);
    let a = h.connect(client(1));
    let _b = h.connect(client(2));
    // Unknown destination: the same buffer comes straight back (pool take after give).
    let spare = h.send_packet(a, owned_packet(Vec::new(), 9, b"nobody"));
    assert!(spare.capacity() >= 5 + 32 + 6);
    assert_eq!(h.drops(DropReason::UnknownDest, PacketKind::Other), (1, 6));
    assert_eq!(h.stats().pool_misses, 0);
    // Queue of depth 1: the second packet pushes out the first (queue_head), whose buffer
    // goes to the pool.
    for data in [b"one", b"two"] {
        h.send_packet(a, owned_packet(Vec::new(), 2, data));
    }
    assert_eq!(h.drops(DropReason::QueueHead, PacketKind::Other), (1, 3));
    h.check();
}

#[test]
fn conn_id_hasher_spreads_sequential_ids() {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let build = BuildHasherDefault::<ConnIdHasher>::default();
    let hashes: std::collections::HashSet<u64> = (1..=10_000u64)
        .map(|id| build.hash_one(ConnId(id)))
        .collect();
    assert_eq!(hashes.len(), 10_000, "a bijection on ids");
    // hashbrown picks control bytes from the top 7 bits: sequential ids must not share them.
    let top: std::collections::HashSet<u64> = (1..=128u64)
        .map(|id| build.hash_one(ConnId(id)) >> 57)
        .collect();
    assert!(top.len() > 64, "only {} distinct top-7-bit tags", top.len());
    let mut map = ConnIdMap::default();
    for id in 0..1000 {
        map.insert(ConnId(id), id);
    }
    assert!((0..1000).all(|id| map.get(&ConnId(id)) == Some(&id)));
}

/// The mesh hooks of the relay (§8): a SendPacket to a key announced by a mesh peer is
/// queued for that peer as ForwardPacket, a local client wins, a ForwardPacket is never
/// forwarded again, and senders hear PeerGone only when the key left the whole region.
#[test]
fn mesh_routes_forward_one_hop_and_local_wins() {
    use crate::proto::frame::encode_forward_packet;
    let mut h = Harness::new();
    let peer = h.model.relay.mesh_mut().add_peer().unwrap();
    let a = h.connect(client(1));
    let lost = h.model.relay.mesh_mut().peer_connected(peer, key(0x50));
    h.model.relay.note_left_region(&lost, &mut h.actions);
    h.model.relay.mesh_mut().present(peer, key(2));
    assert_eq!(h.model.relay.mesh().learned(peer), 1);
    h.take_actions();
    h.send(a, 2, b"far");
    assert_eq!(h.take_actions(), vec![Action::WakeMesh(peer)]);
    let mut out = Vec::new();
    let drained = h.model.relay.mesh_mut().drain(peer, &mut out, usize::MAX);
    let mut expected = Vec::new();
    encode_forward_packet(&mut expected, &key(1), &key(2), b"far");
    assert_eq!(out, expected);
    assert_eq!((drained.packets, drained.bytes), (1, 3));

    // A ForwardPacket for a key that is only remote is dropped, not forwarded again.
    let m = h.connect(mesh(0x50));
    h.take_actions();
    h.frame(
        m,
        ClientFrame::ForwardPacket {
            src: key(3),
            dst: key(2),
            data: b"loop",
        },
    );
    assert!(h.take_actions().is_empty());
    assert_eq!(
        h.drops(DropReason::UnknownDestOnFwd, PacketKind::Other),
        (1, 4)
    );
    // ... and counts as forwarded in from that peer (matched by its server key).
    assert_eq!(h.model.relay.mesh().counters(peer).forwarded_in_packets, 1);

    // A local client with the same key wins.
    let b = h.connect(client(2));
    h.take_actions();
    h.send(a, 2, b"near");
    assert_eq!(h.take_actions(), vec![Action::Wake(b)]);
    assert_eq!(h.drain(b), recv(1, b"near"));
    // It leaves: the key is still on the peer, so nobody is told PeerGone, and packets
    // go to the peer again.
    h.send(b, 1, b"hi");
    assert_eq!(h.drain(a), recv(2, b"hi"));
    h.disconnect(b);
    assert!(h.drain(a).is_empty());
    h.take_actions();
    h.send(a, 2, b"again");
    assert_eq!(h.take_actions(), vec![Action::WakeMesh(peer)]);
    // The peer says it left: now `a`, which got packets from it, hears PeerGone.
    assert!(h.model.relay.mesh_mut().gone(peer, &key(2)));
    h.model.relay.note_left_region(&[key(2)], &mut h.actions);
    assert_eq!(h.drain(a), gone(2, PeerGoneReason::Disconnected));
}

#[test]
fn mesh_peer_lost_drops_routes_and_tells_senders() {
    let mut h = Harness::new();
    let peer = h.model.relay.mesh_mut().add_peer().unwrap();
    let a = h.connect(client(1));
    let m = h.connect(mesh(0x50));
    let lost = h.model.relay.mesh_mut().peer_connected(peer, key(0x50));
    h.model.relay.note_left_region(&lost, &mut h.actions);
    h.model.relay.mesh_mut().present(peer, key(2));
    h.frame(
        m,
        ClientFrame::ForwardPacket {
            src: key(2),
            dst: key(1),
            data: b"from far",
        },
    );
    assert_eq!(h.drain(a), recv(2, b"from far"));
    h.send(a, 2, b"queued");
    let lost = h.model.relay.mesh_mut().peer_lost(peer);
    h.model.relay.note_left_region(&lost, &mut h.actions);
    assert_eq!(h.drain(a), gone(2, PeerGoneReason::Disconnected));
    assert_eq!(h.model.relay.mesh().route(&key(2)), None);
    assert_eq!(h.model.relay.mesh().counters(peer).dropped_packets, 1);
    // While the peer is away a disco packet to the key gets NotHere, as for any
    // unknown key.
    h.take_actions();
    h.send(a, 2, &disco(1));
    assert_eq!(h.drain(a), gone(2, PeerGoneReason::NotHere));
}

#[test]
fn mesh_clients_are_listed_up_to_the_bound() {
    let mut h = Harness::new();
    assert_eq!(h.model.relay.mesh_clients(4), (Vec::new(), 0));
    let w = h.connect(ConnParams {
        addr: Some("192.0.2.7:40000".parse().unwrap()),
        ..mesh(50)
    });
    h.frame(w, ClientFrame::WatchConns);
    h.connect(client(1));
    h.connect(mesh(51));
    let (listed, total) = h.model.relay.mesh_clients(4);
    assert_eq!(total, 2);
    let mut keys: Vec<_> = listed.iter().map(|m| (m.key, m.addr, m.watching)).collect();
    keys.sort_by_key(|(k, _, _)| k.0);
    assert_eq!(
        keys,
        vec![
            (key(50), Some("192.0.2.7:40000".parse().unwrap()), true),
            (key(51), None, false)
        ]
    );
    let (listed, total) = h.model.relay.mesh_clients(1);
    assert_eq!((listed.len(), total), (1, 2));
    h.disconnect(w);
    assert_eq!(h.model.relay.mesh_clients(4).1, 1);
}
