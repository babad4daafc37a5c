//! Synchronous DERP server state: the client registry, per-connection send queues,
//! duplicate-key handling, PeerGone subscriptions, watchers and metrics
//! (§3.3–3.9 and §3.13 of docs/protocol.md), and the token buckets of the uplink
//! limits (§3.10).
//!
//! Nothing here touches sockets, clocks, threads or the runtime. The net layer keeps one
//! `std::sync::Mutex<Relay>`; each connection's reader task calls [`Relay::handle_frame`]
//! with the parsed frame and the current `Instant`, and one writer task per connection,
//! woken by [`Action::Wake`], calls [`Relay::drain_frames`] until `more` is false and
//! writes the bytes it got. SendPacket frames, the bulk of the traffic, go through
//! [`Relay::send_packet`] instead: read into a pooled buffer, queued and written without
//! a copy. [`Action::Close`] asks the net layer to close a connection;
//! it then calls [`Relay::unregister`] like for any other close.

// State driven by frames from the network: no panics, no unchecked indexing or arithmetic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

mod conn;
mod limit;
mod mesh;
mod metrics;
mod pool;
mod state;

#[cfg(test)]
mod tests;

pub use conn::{NOT_HERE_BURST, NOT_HERE_INTERVAL};
pub use limit::{TokenBucket, MIN_BYTE_BURST};
pub use mesh::{
    MeshClient, MeshDrained, MeshPeerCounters, MeshPeerId, MeshTable, MAX_MESH_PEERS,
    MAX_MESH_ROUTES, MESH_QUEUE_BYTES, MESH_QUEUE_DEPTH,
};
pub use metrics::RelayStats;
pub use metrics::{Counters, DropReason, PacketKind, PacketTally};
pub use pool::{BufPool, PacketBuf, MAX_POOLED_BUFFERS, MAX_POOLED_CAPACITY};
pub use state::{
    Action, ConnId, ConnIdHasher, ConnIdMap, ConnParams, Drained, Packet, Relay, RelayLimits,
    Violation, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_QUEUE_DEPTH, DEFAULT_WATCHER_QUEUE_DEPTH,
    HOME_MOVE_GRACE, MAX_ENQUEUE_ATTEMPTS, MAX_PEER_GONE_SUBSCRIPTIONS, PEER_GONE_NOTICE_DEPTH,
};
