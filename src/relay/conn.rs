//! Per-connection registry state: the control frames waiting to be written to one client
//! (its packets wait in its [`super::Inbox`]), and the small amount of bookkeeping (duplicate-key activity, NotHere limiter, PeerGone subscriptions)
//! that upstream keeps in its `sclient`.
//!
//! Everything that can grow starts empty and unallocated (`VecDeque::new`,
//! `HashSet::new` allocate nothing), so an idle connection costs `size_of::<Conn>()` plus
//! its map entries, well under 1 KiB.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::frame::PeerGoneReason;
use crate::proto::key::PublicKey;

/// Interval of the per-connection NotHere limiter: one token per second…
pub const NOT_HERE_INTERVAL: Duration = Duration::from_secs(1);
/// …with a burst of three (upstream: `rate.NewLimiter(rate.Every(time.Second), 3)`).
pub const NOT_HERE_BURST: u32 = 3;

/// One pending change for a watcher (a mesh peer that sent WatchConns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchUpdate {
    /// A connection for `key` appeared: written as PeerPresent.
    Present {
        /// The client's key.
        key: PublicKey,
        /// The client's remote address, if known.
        addr: Option<SocketAddr>,
        /// PeerPresent flag bits.
        flags: u8,
    },
    /// The last connection for this key went away: written as PeerGone(Disconnected).
    Gone(PublicKey),
}

/// Relay state of one registered connection.
///
/// Fields are owned by the relay (behind the net layer's registry lock); control frames
/// are drained by [`super::Relay::drain_control`] on behalf of the connection's writer.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The client's public key (several connections may share it).
    pub key: PublicKey,
    /// Remote address, announced to watchers.
    pub addr: Option<SocketAddr>,
    /// When it registered: home moves in the first 5 s are not counted.
    pub connected_at: Instant,
    /// Stamp of its latest activity among duplicates; the highest stamp is the active one.
    pub activity: u64,
    /// PeerPresent flag bits, computed once at registration.
    pub present_flags: u8,
    /// Authenticated with the mesh key: may forward, watch and close peers.
    pub is_mesh: bool,
    /// Sent `Ideal-Node` (counted in a gauge).
    pub not_ideal: bool,
    /// Its key has other connections too (fast path: no duplicate bookkeeping otherwise).
    pub is_dup: bool,
    /// Last NotePreferred value.
    pub preferred: bool,
    /// A Close action was issued; packets for it are dropped as `gone_disconnected`.
    pub closing: bool,
    /// Subscribed with WatchConns.
    pub watching: bool,
    /// A Wake was emitted and the writer has not yet drained everything.
    pub wake_pending: bool,
    /// The one pending Pong (upstream's 1-slot channel).
    pub pong: Option<[u8; 8]>,
    /// A pending Restarting frame: (reconnect_in_ms, try_for_ms).
    pub restarting: Option<(u32, u32)>,
    /// NotHere limiter state (GCRA): the theoretical arrival time of the next token.
    pub not_here_tat: Instant,
    /// PeerGone frames to write, bounded by [`super::PEER_GONE_NOTICE_DEPTH`].
    pub peer_gone: VecDeque<(PublicKey, PeerGoneReason)>,
    /// Watcher updates to write, bounded as described on [`super::RelayLimits`].
    pub watch_updates: VecDeque<WatchUpdate>,
    /// Sources whose packets were written to this connection, i.e. whose departure it is
    /// subscribed to; sorted, for binary search. Never shrinks while the connection lives
    /// (the upstream quirk of §3.7), bounded by [`super::MAX_PEER_GONE_SUBSCRIPTIONS`]. A
    /// sorted `Vec` is smaller than a hash set both idle (24 bytes) and full (8 KiB).
    pub saw_src: Vec<PublicKey>,
}

impl Conn {
    /// Fresh state for a connection registered at `now`.
    pub fn new(
        key: PublicKey,
        addr: Option<SocketAddr>,
        present_flags: u8,
        is_mesh: bool,
        not_ideal: bool,
        now: Instant,
        activity: u64,
    ) -> Conn {
        Conn {
            key,
            addr,
            connected_at: now,
            activity,
            present_flags,
            is_mesh,
            not_ideal,
            is_dup: false,
            preferred: false,
            closing: false,
            watching: false,
            wake_pending: false,
            pong: None,
            restarting: None,
            not_here_tat: now,
            peer_gone: VecDeque::new(),
            watch_updates: VecDeque::new(),
            saw_src: Vec::new(),
        }
    }

    /// Takes one NotHere token if available (1 per [`NOT_HERE_INTERVAL`], burst
    /// [`NOT_HERE_BURST`]). A generic cell-rate algorithm: one `Instant` of state.
    pub fn allow_not_here(&mut self, now: Instant) -> bool {
        let tolerance = NOT_HERE_INTERVAL.saturating_mul(NOT_HERE_BURST.saturating_sub(1));
        let tat = self.not_here_tat.max(now);
        if tat.saturating_duration_since(now) > tolerance {
            return false;
        }
        self.not_here_tat = tat.checked_add(NOT_HERE_INTERVAL).unwrap_or(tat);
        true
    }

    /// True if a control frame is waiting to be written (packets wait in the inbox).
    pub fn has_pending(&self) -> bool {
        self.restarting.is_some()
            || self.pong.is_some()
            || !self.peer_gone.is_empty()
            || !self.watch_updates.is_empty()
    }
}
