//! Counters and gauges of the relay, and their Prometheus text rendering.
//!
//! Counters are plain integers owned by [`super::Relay`] (which the net layer keeps behind
//! one mutex), so counting costs an add, not an atomic. Names follow upstream derper's
//! expvars (§3.13 of docs/protocol.md) with a `tinyderp_` prefix and Prometheus
//! suffixes (`_total` for counters).

use std::fmt::Write;

/// Why a packet was not delivered. The label values match upstream's `derp_packets_dropped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// SendPacket to a key with no local connection (and no mesh route).
    UnknownDest,
    /// ForwardPacket from a mesh peer to a key with no local connection.
    UnknownDestOnFwd,
    /// The destination connection was closing, or closed with the packet still queued.
    GoneDisconnected,
    /// The destination queue was full; its oldest packet was dropped to make room.
    QueueHead,
    /// The destination queue stayed full; the new packet was dropped.
    QueueTail,
    /// The packet was handed to the writer but the socket write failed.
    WriteError,
    /// Queueing the packet would exceed the server-wide queued-bytes budget
    /// ([`super::RelayLimits::max_queued_bytes`]); tinyderp-only, upstream has no such bound.
    QueueBudget,
}

impl DropReason {
    /// Every reason, in the order they are rendered.
    pub const ALL: [DropReason; 7] = [
        DropReason::UnknownDest,
        DropReason::UnknownDestOnFwd,
        DropReason::GoneDisconnected,
        DropReason::QueueHead,
        DropReason::QueueTail,
        DropReason::WriteError,
        DropReason::QueueBudget,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::UnknownDest => "unknown_dest",
            DropReason::UnknownDestOnFwd => "unknown_dest_on_fwd",
            DropReason::GoneDisconnected => "gone_disconnected",
            DropReason::QueueHead => "queue_head",
            DropReason::QueueTail => "queue_tail",
            DropReason::WriteError => "write_error",
            DropReason::QueueBudget => "queue_budget",
        }
    }
}

/// Whether a packet looked like a disco message (it then uses the disco queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Starts with the disco magic and is long enough (`proto::frame::looks_like_disco`).
    Disco,
    /// Anything else (WireGuard data, mostly).
    Other,
}

impl PacketKind {
    /// Both kinds, in the order they are rendered.
    pub const ALL: [PacketKind; 2] = [PacketKind::Disco, PacketKind::Other];

    /// Classifies packet data.
    pub fn of(data: &[u8]) -> PacketKind {
        if crate::proto::frame::looks_like_disco(data) {
            PacketKind::Disco
        } else {
            PacketKind::Other
        }
    }

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            PacketKind::Disco => "disco",
            PacketKind::Other => "other",
        }
    }
}

/// A packet and byte count pair (drops, receive counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketTally {
    /// Number of packets.
    pub packets: u64,
    /// Sum of the packets' data lengths (without frame header or keys).
    pub bytes: u64,
}

impl PacketTally {
    fn add(&mut self, packets: u64, bytes: u64) {
        self.packets = self.packets.wrapping_add(packets);
        self.bytes = self.bytes.wrapping_add(bytes);
    }

    fn sub(&mut self, packets: u64, bytes: u64) {
        self.packets = self.packets.saturating_sub(packets);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// Adds `n` to a monotonic counter (wraps rather than panics; a u64 never gets there).
pub(crate) fn bump(counter: &mut u64, n: u64) {
    *counter = counter.wrapping_add(n);
}

/// All counters of the relay. Gauges that can be read off the state (connections, keys,
/// watchers) are not stored here; see [`RelayStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections registered since start.
    pub accepts: u64,
    /// SendPacket frames received, by kind (disco, other).
    pub received: [PacketTally; 2],
    /// RecvPacket frames handed to writers (minus those reported back as write errors).
    pub sent: PacketTally,
    /// Drops by reason x kind, indexed like [`DropReason::ALL`] x [`PacketKind::ALL`].
    pub dropped: [[PacketTally; 2]; 7],
    /// ForwardPacket frames received from mesh peers.
    pub forwarded_in: u64,
    /// PeerGone frames written, reason Disconnected (to clients and to watchers).
    pub peer_gone_disconnected: u64,
    /// PeerGone frames written, reason NotHere.
    pub peer_gone_not_here: u64,
    /// PeerGone notices not queued because the connection's notice queue was full.
    pub peer_gone_notices_dropped: u64,
    /// Packet deliveries whose source could not be remembered for a later PeerGone because
    /// the receiver's subscription set was full (counted per delivery, not per source).
    pub peer_gone_subscriptions_dropped: u64,
    /// Ping frames received.
    pub pings: u64,
    /// Pong frames written.
    pub pongs: u64,
    /// NotePreferred changes to "home" more than 5 s after connecting.
    pub home_moves_in: u64,
    /// NotePreferred changes away from "home" more than 5 s after connecting.
    pub home_moves_out: u64,
    /// Connections registered while their key already had a connection.
    pub dup_conns_total: u64,
    /// Frames of a type the server skips (unknown types, KeepAlive or Pong from a client…).
    pub unknown_frames: u64,
    /// Watchers closed because their pending update list hit its bound.
    pub watcher_overflows: u64,
    /// Restarting frames written.
    pub restarting_frames: u64,
}

impl Counters {
    /// Adds `packets` received packets of `kind` totalling `bytes` data bytes.
    pub(crate) fn add_received(&mut self, kind: PacketKind, packets: u64, bytes: u64) {
        if let Some(tally) = self.received.get_mut(kind_index(kind)) {
            tally.add(packets, bytes);
        }
    }

    /// Counts `packets` dropped packets of `kind` totalling `bytes` data bytes.
    pub(crate) fn note_drop(
        &mut self,
        reason: DropReason,
        kind: PacketKind,
        packets: u64,
        bytes: u64,
    ) {
        let slot = self
            .dropped
            .get_mut(reason_index(reason))
            .and_then(|row| row.get_mut(kind_index(kind)));
        if let Some(tally) = slot {
            tally.add(packets, bytes);
        }
    }

    /// Counts delivered packets; `undo` takes back ones that failed to be written.
    pub(crate) fn note_sent(&mut self, packets: u64, bytes: u64, undo: bool) {
        if undo {
            self.sent.sub(packets, bytes);
        } else {
            self.sent.add(packets, bytes);
        }
    }

    /// Adds the packet counters of `other` (received, sent, dropped, forgotten
    /// subscriptions): an inbox's tally into the registry's.
    pub(crate) fn absorb_packets(&mut self, other: &Counters) {
        for (mine, theirs) in self.received.iter_mut().zip(&other.received) {
            mine.add(theirs.packets, theirs.bytes);
        }
        self.sent.add(other.sent.packets, other.sent.bytes);
        for (mine, theirs) in self.dropped.iter_mut().zip(&other.dropped) {
            for (mine, theirs) in mine.iter_mut().zip(theirs) {
                mine.add(theirs.packets, theirs.bytes);
            }
        }
        bump(
            &mut self.peer_gone_subscriptions_dropped,
            other.peer_gone_subscriptions_dropped,
        );
    }

    /// Drop tally for one reason and kind.
    pub fn drops(&self, reason: DropReason, kind: PacketKind) -> PacketTally {
        self.dropped
            .get(reason_index(reason))
            .and_then(|row| row.get(kind_index(kind)))
            .copied()
            .unwrap_or_default()
    }

    /// Receive tally for one kind.
    pub fn received(&self, kind: PacketKind) -> PacketTally {
        self.received
            .get(kind_index(kind))
            .copied()
            .unwrap_or_default()
    }
}

fn kind_index(kind: PacketKind) -> usize {
    match kind {
        PacketKind::Disco => 0,
        PacketKind::Other => 1,
    }
}

fn reason_index(reason: DropReason) -> usize {
    match reason {
        DropReason::UnknownDest => 0,
        DropReason::UnknownDestOnFwd => 1,
        DropReason::GoneDisconnected => 2,
        DropReason::QueueHead => 3,
        DropReason::QueueTail => 4,
        DropReason::WriteError => 5,
        DropReason::QueueBudget => 6,
    }
}

/// Writes one metric family header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP tinyderp_{name} {help}");
    let _ = writeln!(out, "# TYPE tinyderp_{name} {kind}");
}

/// Writes a metric family with a single unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "tinyderp_{name} {value}");
}

/// Renders the counters and the given gauges as Prometheus text exposition format.
pub(crate) fn render(counters: &Counters, stats: &RelayStats, out: &mut String) {
    let c = counters;
    let gauges: [(&str, &str, usize); 10] = [
        (
            "connections",
            "Current client connections.",
            stats.connections,
        ),
        ("clients", "Distinct client keys connected.", stats.keys),
        (
            "home_connections",
            "Connections that say this server is their home DERP.",
            stats.home_connections,
        ),
        (
            "not_ideal_connections",
            "Connections from clients that are not on their ideal node.",
            stats.not_ideal_connections,
        ),
        (
            "dup_client_keys",
            "Keys connected more than once.",
            stats.dup_keys,
        ),
        (
            "dup_client_conns",
            "Connections sharing a key with another connection.",
            stats.dup_conns,
        ),
        (
            "watchers",
            "Mesh connections subscribed to connection changes.",
            stats.watchers,
        ),
        (
            "queued_packets",
            "Packets waiting in send queues.",
            stats.queued_packets,
        ),
        (
            "queued_bytes",
            "Bytes of frames waiting in send queues.",
            stats.queued_bytes,
        ),
        (
            "pooled_buffers",
            "Free packet buffers kept for reuse.",
            stats.pooled_buffers,
        ),
    ];
    for (name, help, value) in gauges {
        single(out, name, "gauge", help, value as u64);
    }
    let counters: [(&str, &str, u64); 14] = [
        ("accepts_total", "Connections registered.", c.accepts),
        (
            "dup_client_conns_total",
            "Connections registered while their key was already connected.",
            c.dup_conns_total,
        ),
        (
            "packets_sent_total",
            "Packets written to receivers.",
            c.sent.packets,
        ),
        (
            "bytes_sent_total",
            "Packet data bytes written to receivers.",
            c.sent.bytes,
        ),
        (
            "packets_forwarded_in_total",
            "ForwardPacket frames received from mesh peers.",
            c.forwarded_in,
        ),
        ("pings_received_total", "Ping frames received.", c.pings),
        ("pongs_sent_total", "Pong frames written.", c.pongs),
        (
            "unknown_frames_total",
            "Frames of a type the server skips.",
            c.unknown_frames,
        ),
        (
            "watcher_overflows_total",
            "Watchers closed because their pending update list was full.",
            c.watcher_overflows,
        ),
        (
            "restarting_frames_total",
            "Restarting frames written.",
            c.restarting_frames,
        ),
        (
            "peer_gone_notices_dropped_total",
            "PeerGone notices not queued because the queue was full.",
            c.peer_gone_notices_dropped,
        ),
        (
            "peer_gone_subscriptions_dropped_total",
            "Deliveries whose source was not remembered for PeerGone (set full).",
            c.peer_gone_subscriptions_dropped,
        ),
        (
            "buffer_pool_misses_total",
            "Packet buffers allocated because the pool was empty.",
            stats.pool_misses,
        ),
        (
            "buffer_pool_discards_total",
            "Packet buffers freed because the pool was full or they were oversized.",
            stats.pool_discards,
        ),
    ];
    for (name, help, value) in counters {
        single(out, name, "counter", help, value);
    }

    family(
        out,
        "packets_received_total",
        "counter",
        "SendPacket frames received, by kind.",
    );
    for kind in PacketKind::ALL {
        let value = c.received(kind).packets;
        let _ = writeln!(
            out,
            "tinyderp_packets_received_total{{kind=\"{}\"}} {value}",
            kind.label()
        );
    }
    family(
        out,
        "bytes_received_total",
        "counter",
        "SendPacket data bytes received, by kind.",
    );
    for kind in PacketKind::ALL {
        let value = c.received(kind).bytes;
        let _ = writeln!(
            out,
            "tinyderp_bytes_received_total{{kind=\"{}\"}} {value}",
            kind.label()
        );
    }

    family(
        out,
        "packets_dropped_total",
        "counter",
        "Packets dropped, by reason and kind.",
    );
    for reason in DropReason::ALL {
        for kind in PacketKind::ALL {
            let value = c.drops(reason, kind).packets;
            let _ = writeln!(
                out,
                "tinyderp_packets_dropped_total{{reason=\"{}\",kind=\"{}\"}} {value}",
                reason.label(),
                kind.label()
            );
        }
    }
    family(
        out,
        "bytes_dropped_total",
        "counter",
        "Packet data bytes dropped, by reason and kind.",
    );
    for reason in DropReason::ALL {
        for kind in PacketKind::ALL {
            let value = c.drops(reason, kind).bytes;
            let _ = writeln!(
                out,
                "tinyderp_bytes_dropped_total{{reason=\"{}\",kind=\"{}\"}} {value}",
                reason.label(),
                kind.label()
            );
        }
    }

    family(
        out,
        "peer_gone_frames_total",
        "counter",
        "PeerGone frames written, by reason.",
    );
    let _ = writeln!(
        out,
        "tinyderp_peer_gone_frames_total{{reason=\"disconnected\"}} {}",
        c.peer_gone_disconnected
    );
    let _ = writeln!(
        out,
        "tinyderp_peer_gone_frames_total{{reason=\"not_here\"}} {}",
        c.peer_gone_not_here
    );

    family(
        out,
        "home_moves_total",
        "counter",
        "Home DERP changes reported more than 5 s after connecting.",
    );
    let _ = writeln!(
        out,
        "tinyderp_home_moves_total{{direction=\"in\"}} {}",
        c.home_moves_in
    );
    let _ = writeln!(
        out,
        "tinyderp_home_moves_total{{direction=\"out\"}} {}",
        c.home_moves_out
    );
}

/// Point-in-time gauges for the status page and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Registered connections.
    pub connections: usize,
    /// Distinct keys among them.
    pub keys: usize,
    /// Connections whose last NotePreferred was true.
    pub home_connections: usize,
    /// Connections that sent `Ideal-Node`.
    pub not_ideal_connections: usize,
    /// Keys with two or more connections.
    pub dup_keys: usize,
    /// Connections belonging to such keys.
    pub dup_conns: usize,
    /// Connections subscribed with WatchConns.
    pub watchers: usize,
    /// Packets waiting in send queues.
    pub queued_packets: usize,
    /// Bytes of RecvPacket frames waiting in send queues.
    pub queued_bytes: usize,
    /// Free packet buffers held for reuse (bounded by `MAX_POOLED_BUFFERS`).
    pub pooled_buffers: usize,
    /// Packet buffers allocated because the pool was empty.
    pub pool_misses: u64,
    /// Packet buffers freed because the pool was full or they were too big to keep.
    pub pool_discards: u64,
}
