//! Synchronous DERP server state: the client registry, per-connection send queues,
//! duplicate-key handling, PeerGone subscriptions, watchers and metrics
//! (§3.3–3.9 and §3.13 of docs/protocol.md), and the token buckets of the uplink
//! limits (§3.10).
//!
//! Nothing here touches sockets, clocks, threads or locks. The state is in two parts so
//! that relaying a packet needs no lock shared by all connections:
//!
//! - the registry, [`Relay`] (keys, duplicates, watchers, PeerGone subscriptions, mesh
//!   routes, control frames), which the net layer keeps behind one mutex taken on
//!   logins, departures and control frames; each connection's reader task calls
//!   [`Relay::handle_frame`] with a parsed frame and the current `Instant`;
//! - one [`Inbox`] per connection (its packet queues and spare buffers), which the net
//!   layer keeps behind that connection's own mutex, found through a key -> inbox route
//!   map it maintains from [`Action::Route`]. A SendPacket, the bulk of the traffic, is
//!   read into a pooled buffer and queued in the receiver's inbox ([`deliver_owned`])
//!   without a copy and without the registry; counters and the queued-bytes budget are
//!   per inbox, the queued-bytes budget atomic ([`DataCounters`]).
//!
//! One writer task per connection, woken by [`Action::Wake`] (control frames) or by its
//! inbox, calls [`Relay::drain_control`] and [`Inbox::drain`] until nothing is left and
//! writes the bytes it got. [`Action::Close`] asks the net layer to close a connection;
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
mod inbox;
mod limit;
mod mesh;
mod metrics;
mod pool;
mod state;

#[cfg(any(test, fuzzing))]
pub mod model;
#[cfg(test)]
mod tests;

pub use conn::{NOT_HERE_BURST, NOT_HERE_INTERVAL};
pub use inbox::{
    deliver_owned, DataCounters, Drained, Inbox, InboxTally, Packet, RelayLimits,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_QUEUE_DEPTH, DEFAULT_WATCHER_QUEUE_DEPTH, INBOX_POOL_BUFFERS,
    MAX_ENQUEUE_ATTEMPTS, MAX_INBOX_POOLED_BUFFERS, MAX_PEER_GONE_SUBSCRIPTIONS,
};
pub use limit::{TokenBucket, MIN_BYTE_BURST};
pub use mesh::{
    MeshClient, MeshDrained, MeshPeerCounters, MeshPeerId, MeshTable, MAX_MESH_PEERS,
    MAX_MESH_ROUTES, MESH_QUEUE_BYTES, MESH_QUEUE_DEPTH,
};
pub use metrics::RelayStats;
pub use metrics::{Counters, DropReason, PacketKind, PacketTally};
pub use pool::{BufPool, PacketBuf, MAX_POOLED_BUFFERS, MAX_POOLED_CAPACITY};
pub use state::{
    Action, ConnId, ConnIdHasher, ConnIdMap, ConnParams, Delivery, Relay, Violation,
    HOME_MOVE_GRACE, PEER_GONE_NOTICE_DEPTH,
};
