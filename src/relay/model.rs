//! The relay driven as the net layer drives it (`net/hub.rs`), single-threaded and without
//! locks: the registry, one [`Inbox`] per connection and the key -> connection route map kept
//! from [`Action::Route`]. The relay's unit tests and the `relay_events` fuzz target both
//! drive the core through this one copy, so they cannot drift apart from each other.
//! Built for tests and fuzzing only (`--cfg fuzzing`, which cargo-fuzz sets).

use std::collections::HashMap;
use std::time::Instant;

use super::{
    Action, ConnId, ConnIdMap, ConnParams, Delivery, Drained, Inbox, InboxTally, Packet, Relay,
};
use crate::proto::key::PublicKey;

/// The registry with the inboxes and the route map the net layer keeps beside it.
pub struct Model {
    /// The registry (behind the net layer's one shared mutex).
    pub relay: Relay,
    /// Each live connection's packet queues (behind its own mutex in the net layer).
    pub inboxes: ConnIdMap<Inbox>,
    /// The connection each key's packets go to, as `Action::Route` keeps it.
    pub routes: HashMap<PublicKey, ConnId>,
}

impl Model {
    /// A model around `relay`, with no connection yet.
    pub fn new(relay: Relay) -> Model {
        Model {
            relay,
            inboxes: ConnIdMap::default(),
            routes: HashMap::new(),
        }
    }

    /// Registers a connection and gives it an inbox.
    pub fn connect(
        &mut self,
        params: ConnParams,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> ConnId {
        let id = self.relay.register(params, now, actions);
        self.inboxes.insert(id, Inbox::new());
        id
    }

    /// Unregisters a connection; its inbox is closed and its counts move to the registry.
    pub fn disconnect(&mut self, id: ConnId, now: Instant, actions: &mut Vec<Action>) {
        self.relay.unregister(id, now, actions);
        if let Some(mut inbox) = self.inboxes.remove(&id) {
            inbox.close(self.relay.data());
            if let Some(tally) = inbox.counters() {
                self.relay.absorb(tally);
            }
        }
    }

    /// Carries out `Action::Route(key)`: the key's packets now go to the connection the
    /// registry names, or nowhere. Returns that connection.
    pub fn route(&mut self, key: PublicKey) -> Option<ConnId> {
        let active = self.relay.active_conn(&key);
        match active {
            Some(id) => self.routes.insert(key, id),
            None => self.routes.remove(&key),
        };
        active
    }

    /// Queues a parsed packet in its receiver's inbox, or hands it back to the registry
    /// (whose actions go to `actions`). Returns the receiver when its inbox asks for a wake.
    pub fn deliver(
        &mut self,
        from: ConnId,
        d: Delivery<'_>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> Option<ConnId> {
        let limits = self.relay.limits();
        if let Some(&dst) = self.routes.get(&d.dst) {
            let inbox = self
                .inboxes
                .get_mut(&dst)
                .expect("a routed connection has an inbox");
            let wake = inbox.enqueue(&d.src, Packet::Borrowed(d.data), &limits, self.relay.data());
            return wake.then_some(dst);
        }
        let spare = self.relay.unrouted(
            from,
            d.src,
            d.dst,
            Packet::Borrowed(d.data),
            d.forwarded,
            now,
            actions,
        );
        self.relay.give_buffer(spare);
        None
    }

    /// The writer's drain: control frames from the registry into `out`, then packets from
    /// the inbox into `frames`, both within `max_bytes` counted from `out`'s length at the
    /// call; sources new to the inbox go to the registry. Returns what the inbox drained
    /// and whether control frames are left.
    pub fn drain_frames(
        &mut self,
        id: ConnId,
        out: &mut Vec<u8>,
        frames: &mut Vec<Vec<u8>>,
        max_bytes: usize,
    ) -> (Drained, bool) {
        let start = out.len();
        let control_more = self.relay.drain_control(id, out, max_bytes);
        let mut sources = Vec::new();
        let drained = match self.inboxes.get_mut(&id) {
            Some(inbox) => inbox.drain(
                out.len().saturating_sub(start),
                frames,
                max_bytes,
                self.relay.data(),
                &mut sources,
            ),
            None => Drained::default(),
        };
        self.relay.subscribe_sources(id, &sources);
        (drained, control_more)
    }

    /// Hands written frames' buffers back to the connection's inbox.
    pub fn recycle(&mut self, id: ConnId, frames: &mut Vec<Vec<u8>>) {
        match self.inboxes.get_mut(&id) {
            Some(inbox) => inbox.recycle(frames, self.relay.data()),
            None => frames.clear(),
        }
    }

    /// Every inbox's counters, for the registry's totals.
    pub fn tallies(&self) -> Vec<InboxTally> {
        self.inboxes
            .values()
            .filter_map(|inbox| inbox.counters().cloned())
            .collect()
    }

    /// The packets and bytes the inboxes hold, which the shared budget must equal.
    pub fn queued_in_inboxes(&self) -> (usize, usize) {
        self.inboxes
            .values()
            .fold((0, 0), |(packets, bytes), inbox| {
                let (data, disco) = inbox.queue_lens();
                (
                    packets.saturating_add(data).saturating_add(disco),
                    bytes.saturating_add(inbox.queued_bytes()),
                )
            })
    }

    /// True when the route map names exactly the registry's active connections.
    pub fn routes_agree(&self) -> bool {
        self.routes
            .iter()
            .all(|(key, id)| self.relay.active_conn(key) == Some(*id))
            && self.routes.len() == self.relay.stats_with(&self.tallies()).keys
    }
}
