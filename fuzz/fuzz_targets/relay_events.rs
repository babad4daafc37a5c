//! Drives the relay core through `relay::model`, the net layer of `net/hub.rs` single-threaded
//! (shared with the relay unit tests): the registry (`relay::Relay`), one `Inbox` per
//! connection and the key -> connection route map kept from `Action::Route`, with a
//! fuzzer-chosen sequence of events (register, unregister, every client frame, drains with
//! and without write failures, Restarting broadcasts, time passing), and checks after every
//! step:
//! - the gauges match the connections the harness knows about, and the route map the
//!   registry's active connections;
//! - no queue holds more than its depth and the queued bytes stay within the budget;
//! - every Wake/Close names a registered connection;
//! - drained bytes are a sequence of well-formed server frames within the byte limit, and
//!   the RecvPacket count matches what `Drained` reports;
//! - packets are conserved: received + forwarded = sent + dropped + queued;
//! - frames from unknown connections are refused; after everyone leaves, all gauges are 0.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::frame::{
    self, ClientFrame, FrameHeader, FrameType, ServerFrame, DISCO_MAGIC, HEADER_LEN,
};
use tinyderp::proto::key::PublicKey;
use tinyderp::relay::model::Model;
use tinyderp::relay::{
    Action, ConnId, ConnParams, Delivery, DropReason, InboxTally, PacketKind, Relay, RelayLimits,
    Violation,
};

/// Distinct client keys the events pick from (small, so keys collide and duplicates happen).
const KEYS: u8 = 6;
/// Connections the harness keeps at most.
const MAX_LIVE: usize = 12;
/// Events taken from one input at most.
const MAX_EVENTS: usize = 512;

/// Reads bytes from the input, 0 once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn key(index: u8) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes[0] = index % KEYS + 1;
    PublicKey(bytes)
}

/// A packet of `len` bytes, disco-shaped when `disco`.
fn packet(len: usize, disco: bool) -> Vec<u8> {
    let mut data = vec![0xabu8; len];
    if disco && len >= frame::MIN_DISCO_LEN {
        data[..DISCO_MAGIC.len()].copy_from_slice(&DISCO_MAGIC);
    }
    data
}

struct Harness {
    /// The registry, the inboxes and the route map, driven as the net layer drives them.
    model: Model,
    live: Vec<ConnId>,
    dead: Vec<ConnId>,
    now: Instant,
    limits: RelayLimits,
}

impl Harness {
    fn pick(&self, byte: u8) -> Option<ConnId> {
        if self.live.is_empty() {
            return None;
        }
        self.live.get(usize::from(byte) % self.live.len()).copied()
    }

    /// Checks the registry's actions and carries out the route changes among them.
    fn check_actions(&mut self, actions: &[Action]) {
        for action in actions {
            let id = match *action {
                Action::Wake(id) | Action::Close(id) => id,
                Action::Route(key) => {
                    if let Some(id) = self.model.route(key) {
                        assert!(self.live.contains(&id), "route to an unknown connection");
                    }
                    continue;
                }
                // No mesh peer is configured here, so nothing may be routed to one.
                Action::WakeMesh(peer) => panic!("{peer:?} woken without mesh peers"),
            };
            assert!(
                self.live.contains(&id),
                "{action:?} for an unknown connection"
            );
        }
    }

    fn frame(&mut self, id: ConnId, frame: ClientFrame<'_>) {
        let mut actions = Vec::new();
        let is_mesh_only = matches!(
            frame,
            ClientFrame::ForwardPacket { .. } | ClientFrame::WatchConns | ClientFrame::ClosePeer(_)
        );
        let delivery = match self
            .model
            .relay
            .handle_frame(id, frame, self.now, &mut actions)
        {
            Ok(delivery) => delivery,
            Err(Violation::NotMesh(_)) => {
                assert!(is_mesh_only);
                None
            }
            Err(other) => panic!("unexpected violation {other:?} for a live connection"),
        };
        self.check_actions(&actions);
        if let Some(delivery) = delivery {
            self.deliver(id, delivery);
        }
        // Close actions are carried out at once, as the net layer does.
        for action in actions {
            if let Action::Close(target) = action {
                if self.live.contains(&target) {
                    self.unregister(target);
                }
            }
        }
    }

    /// Queues a parsed packet in its receiver's inbox, or hands it back to the registry.
    fn deliver(&mut self, from: ConnId, d: Delivery<'_>) {
        let mut actions = Vec::new();
        self.model.deliver(from, d, self.now, &mut actions);
        self.check_actions(&actions);
    }

    fn unregister(&mut self, id: ConnId) {
        let mut actions = Vec::new();
        self.model.disconnect(id, self.now, &mut actions);
        self.live.retain(|live| *live != id);
        self.dead.push(id);
        self.check_actions(&actions);
    }

    fn drain(&mut self, id: ConnId, max_bytes: usize, fail: bool) {
        // The writer's drain: control frames from the registry, then packets from the
        // inbox; sources new to the inbox go to the registry.
        assert!(
            self.model.inboxes.contains_key(&id),
            "a live connection has an inbox"
        );
        let mut out = Vec::new();
        let mut frames = Vec::new();
        let (drained, _) = self
            .model
            .drain_frames(id, &mut out, &mut frames, max_bytes);
        for frame in &frames {
            out.extend_from_slice(frame);
        }
        if fail {
            if let Some(inbox) = self.model.inboxes.get_mut(&id) {
                inbox.note_write_failure(&drained);
            }
        }
        self.model.recycle(id, &mut frames);
        let mut rest = out.as_slice();
        let mut frames = 0usize;
        let mut packets = 0u32;
        while !rest.is_empty() {
            let (header, tail) = rest
                .split_first_chunk::<HEADER_LEN>()
                .expect("whole header");
            let header = FrameHeader::decode(*header);
            let (payload, tail) = tail.split_at(header.len as usize);
            let parsed = frame::parse_server_frame(header.frame_type, payload)
                .unwrap_or_else(|err| panic!("relay wrote a bad frame: {err}"));
            if matches!(parsed, ServerFrame::RecvPacket { .. }) {
                assert_eq!(header.frame_type, FrameType::RecvPacket as u8);
                packets += 1;
            }
            frames += 1;
            rest = tail;
        }
        assert!(
            frames <= 1 || out.len() <= max_bytes,
            "drain overshot its limit"
        );
        assert_eq!(packets, drained.packets);
    }

    fn tallies(&self) -> Vec<InboxTally> {
        self.model.tallies()
    }

    fn check(&self) {
        let tallies = self.tallies();
        let stats = self.model.relay.stats_with(&tallies);
        assert!(self.model.routes_agree());
        assert_eq!(
            self.model.relay.data().queued(),
            self.model.queued_in_inboxes()
        );
        assert_eq!(stats.connections, self.live.len());
        assert!(stats.keys <= stats.connections);
        assert!(stats.watchers <= stats.connections);
        assert!(stats.home_connections <= stats.connections);
        assert!(stats.not_ideal_connections <= stats.connections);
        assert!(stats.dup_conns <= stats.connections);
        assert!(stats.queued_bytes <= self.limits.max_queued_bytes);
        assert!(stats.queued_packets <= stats.connections * 2 * self.limits.queue_depth);
        let counters = &self.model.relay.counters_with(&tallies);
        let received: u64 = PacketKind::ALL
            .iter()
            .map(|kind| counters.received(*kind).packets)
            .sum();
        let dropped: u64 = DropReason::ALL
            .iter()
            .flat_map(|reason| {
                PacketKind::ALL
                    .iter()
                    .map(move |kind| counters.drops(*reason, *kind).packets)
            })
            .sum();
        assert_eq!(
            received + counters.forwarded_in,
            counters.sent.packets + dropped + stats.queued_packets as u64,
            "packets not conserved"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let mut bytes = Bytes(input);
    let limits = RelayLimits {
        queue_depth: usize::from(bytes.byte() % 6),
        watcher_queue_depth: usize::from(bytes.byte() % 8),
        max_queued_bytes: usize::from(bytes.byte()) * 64,
    };
    let mut h = Harness {
        model: Model::new(Relay::new(key(250), limits)),
        live: Vec::new(),
        dead: Vec::new(),
        now: Instant::now(),
        limits,
    };
    for _ in 0..MAX_EVENTS {
        if bytes.is_empty() {
            break;
        }
        let op = bytes.byte();
        let arg = bytes.byte();
        match op % 13 {
            0 | 1 if h.live.len() < MAX_LIVE => {
                let flags = bytes.byte();
                let params = ConnParams {
                    key: key(arg),
                    addr: (flags & 8 != 0)
                        .then(|| SocketAddr::from((Ipv4Addr::new(10, 0, 0, arg), 41641))),
                    is_mesh: flags & 1 != 0,
                    is_prober: flags & 2 != 0,
                    not_ideal: flags & 4 != 0,
                };
                let mut actions = Vec::new();
                let id = h.model.connect(params, h.now, &mut actions);
                assert!(!h.live.contains(&id) && !h.dead.contains(&id), "id reused");
                h.live.push(id);
                h.check_actions(&actions);
            }
            2 => {
                if let Some(id) = h.pick(arg) {
                    h.unregister(id);
                }
            }
            3 | 4 => {
                if let Some(id) = h.pick(arg) {
                    let dst = key(bytes.byte());
                    let shape = bytes.byte();
                    let data = packet(usize::from(shape >> 1) * 3, shape & 1 == 1);
                    h.frame(id, ClientFrame::SendPacket { dst, data: &data });
                }
            }
            5 => {
                if let Some(id) = h.pick(arg) {
                    let (src, dst) = (key(bytes.byte()), key(bytes.byte()));
                    let shape = bytes.byte();
                    let data = packet(usize::from(shape >> 1) * 3, shape & 1 == 1);
                    h.frame(
                        id,
                        ClientFrame::ForwardPacket {
                            src,
                            dst,
                            data: &data,
                        },
                    );
                }
            }
            6 => {
                if let Some(id) = h.pick(arg) {
                    let preferred = bytes.byte() & 1 == 1;
                    h.frame(id, ClientFrame::NotePreferred(preferred));
                }
            }
            7 => {
                if let Some(id) = h.pick(arg) {
                    h.frame(id, ClientFrame::WatchConns);
                }
            }
            8 => {
                if let Some(id) = h.pick(arg) {
                    let target = key(bytes.byte());
                    h.frame(id, ClientFrame::ClosePeer(target));
                }
            }
            9 => {
                if let Some(id) = h.pick(arg) {
                    let echo = [bytes.byte(); 8];
                    h.frame(id, ClientFrame::Ping(echo));
                }
            }
            10 => {
                if let Some(id) = h.pick(arg) {
                    let limit = bytes.byte();
                    h.drain(id, usize::from(limit) * 8, limit & 1 == 1);
                }
            }
            11 => {
                let mut actions = Vec::new();
                h.model
                    .relay
                    .broadcast_restarting(u32::from(arg), 1000, &mut actions);
                h.check_actions(&actions);
            }
            12 => {
                h.now += Duration::from_millis(u64::from(arg) * 40);
                if let Some(id) = h.dead.last().copied() {
                    let mut actions = Vec::new();
                    let refused =
                        h.model
                            .relay
                            .handle_frame(id, ClientFrame::Ignored, h.now, &mut actions);
                    assert_eq!(refused, Err(Violation::UnknownConn(id)));
                    assert!(actions.is_empty());
                }
            }
            _ => {
                if let Some(id) = h.pick(arg) {
                    h.frame(id, ClientFrame::Ignored);
                }
            }
        }
        h.check();
    }
    // Drain everyone, then everyone leaves: nothing may be left behind.
    for id in h.live.clone() {
        h.drain(id, 1 << 20, false);
    }
    h.check();
    for id in h.live.clone() {
        h.unregister(id);
    }
    h.check();
    let stats = h.model.relay.stats_with(&h.tallies());
    assert_eq!(
        (
            stats.keys,
            stats.watchers,
            stats.queued_packets,
            stats.queued_bytes
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        (
            stats.home_connections,
            stats.not_ideal_connections,
            stats.dup_keys,
            stats.dup_conns
        ),
        (0, 0, 0, 0)
    );
});
