//! The relay hub: the pure relay registry and the handles of the connection tasks it
//! talks to, behind one lock taken on logins, departures and control frames, and the
//! packet path beside it, which takes no lock shared by all connections exclusively:
//! a key -> receiver route map behind a read-mostly `RwLock` (written only when the
//! registry changes a key's active connection) and each receiver's [`Inbox`] behind its
//! own mutex. Senders to different receivers therefore never wait for each other.
//!
//! Lock order: registry, then route map, then an inbox. The packet path takes the route
//! map's read lock and then one inbox; a holder of an inbox lock takes no other lock, so
//! no cycle can form.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use smol::channel::Sender;
use smol::net::TcpStream;

use crate::proto::key::PublicKey;
use crate::relay::{
    deliver_owned, Action, ConnId, ConnIdMap, DataCounters, Delivery, Inbox, InboxTally, Packet,
    PacketBuf, PacketKind, Relay, RelayLimits, RelayStats, Violation,
};

/// The receiving side of one connection, shared by the hub's route map, the senders to
/// it and its own tasks.
pub(crate) struct Endpoint {
    /// The connection's relay id.
    pub id: ConnId,
    /// The client's key (the source of every packet it sends).
    pub key: PublicKey,
    /// Its packet queues and spare buffers, behind its own lock.
    pub inbox: Mutex<Inbox>,
    /// Wakes the writer task; capacity 1, a full channel already means "wake pending".
    pub wake: Sender<()>,
    /// The registry has control frames for this connection (Pong, PeerGone, …): the
    /// writer takes the registry lock only when this is set.
    pub control: AtomicBool,
    /// Its key has other connections too: each packet it sends must tell the registry
    /// (last writer is active), which a lone connection's packets never do.
    pub dup: AtomicBool,
}

impl Endpoint {
    /// A fresh endpoint for connection `id` of `key`, woken through `wake`.
    pub fn new(id: ConnId, key: PublicKey, wake: Sender<()>) -> Endpoint {
        Endpoint {
            id,
            key,
            inbox: Mutex::new(Inbox::new()),
            wake,
            control: AtomicBool::new(false),
            dup: AtomicBool::new(false),
        }
    }

    /// Locks the inbox (a poisoned lock is taken over, as for the hub).
    pub fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the I/O edge keeps per connected client so relay actions can reach its tasks.
pub(crate) struct ConnHandle {
    /// Its receiving side (inbox, wake-up).
    pub endpoint: Arc<Endpoint>,
    /// Set when the relay (or shutdown) wants this connection gone.
    pub closed: Arc<AtomicBool>,
    /// A second handle on the socket, so a close can interrupt a blocked reader.
    pub tcp: TcpStream,
}

/// The active connection of each key, as the packet path looks it up.
type RouteMap = HashMap<PublicKey, Arc<Endpoint>>;

/// The route map, read by every packet and written only on registry changes.
pub(crate) struct Routes(RwLock<RouteMap>);

impl Routes {
    fn read(&self) -> RwLockReadGuard<'_, RouteMap> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, RouteMap> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The relay registry and the connection handles (see the module comment).
pub(crate) struct Hub {
    /// The pure server state.
    pub relay: Relay,
    /// Live connections by relay id.
    pub conns: ConnIdMap<ConnHandle>,
    /// Reused action buffer (no allocation per packet).
    pub actions: Vec<Action>,
    /// Wakes each mesh peer's writer, indexed by `MeshPeerId` (capacity 1, like `wake`).
    pub mesh_wakes: Vec<Sender<()>>,
    /// The packet path's route map, kept in step with the registry here.
    routes: Arc<Routes>,
}

impl Hub {
    /// Carries out the actions the relay just returned, and clears the buffer.
    pub fn apply_actions(&mut self) {
        let actions = std::mem::take(&mut self.actions);
        for action in &actions {
            match *action {
                Action::Wake(id) => {
                    if let Some(handle) = self.conns.get(&id) {
                        handle.endpoint.control.store(true, Ordering::SeqCst);
                        // Full means a wake is already pending; closed means the writer left.
                        let _ = handle.endpoint.wake.try_send(());
                    }
                }
                Action::Close(id) => {
                    if let Some(handle) = self.conns.get(&id) {
                        close_handle(handle);
                        handle.endpoint.inbox().close(self.relay.data());
                    }
                }
                Action::WakeMesh(peer) => {
                    if let Some(wake) = self.mesh_wakes.get(peer.0) {
                        // Full means a wake is already pending.
                        let _ = wake.try_send(());
                    }
                }
                Action::Route(key) => self.update_route(key),
            }
        }
        self.actions = actions;
        self.actions.clear();
    }

    /// The counters of every live connection's inbox, one inbox lock at a time (for the
    /// metrics and status pages, not per packet).
    fn live_tallies(&self) -> Vec<InboxTally> {
        self.conns
            .values()
            .filter_map(|handle| handle.endpoint.inbox().counters().cloned())
            .collect()
    }

    /// All counters: the registry's, and every inbox's.
    #[cfg(test)]
    pub fn counters(&self) -> crate::relay::Counters {
        self.relay.counters_with(&self.live_tallies())
    }

    /// Current gauges.
    pub fn stats(&self) -> RelayStats {
        self.relay.stats_with(&self.live_tallies())
    }

    /// Appends all metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        self.relay.render_metrics_with(&self.live_tallies(), out);
    }

    /// Removes a connection that ended: the registry forgets it, its route moves away
    /// (so no sender reaches its inbox any more), its queued packets are dropped and its
    /// inbox's counters are kept by the registry.
    pub fn remove(&mut self, id: ConnId, now: Instant) {
        self.relay.unregister(id, now, &mut self.actions);
        self.apply_actions();
        if let Some(handle) = self.conns.remove(&id) {
            let _ = handle.tcp.shutdown(std::net::Shutdown::Both);
            let mut inbox = handle.endpoint.inbox();
            inbox.close(self.relay.data());
            if let Some(tally) = inbox.counters() {
                self.relay.absorb(tally);
            }
        }
    }

    /// Points the route of `key` at its active connection (or removes it) and sets the
    /// duplicate flag of each of its connections.
    fn update_route(&mut self, key: PublicKey) {
        let active = self
            .relay
            .active_conn(&key)
            .and_then(|id| self.conns.get(&id))
            .map(|handle| handle.endpoint.clone());
        {
            let mut routes = self.routes.write();
            match active {
                Some(endpoint) => {
                    routes.insert(key, endpoint);
                }
                None => {
                    routes.remove(&key);
                }
            }
        }
        let ids = self.relay.conns_of(&key);
        let dup = ids.len() > 1;
        for id in ids {
            if let Some(handle) = self.conns.get(id) {
                handle.endpoint.dup.store(dup, Ordering::SeqCst);
            }
        }
    }

    /// Queues a packet the registry handed back from [`Relay::handle_frame`] (a
    /// ForwardPacket from a mesh peer, or a SendPacket parsed whole), under the registry
    /// lock, which such frames take anyway.
    pub fn deliver(&mut self, from: ConnId, delivery: Delivery<'_>, now: Instant) {
        let limits = self.relay.limits();
        let routed = {
            let routes = self.routes.read();
            match routes.get(&delivery.dst) {
                Some(endpoint) => {
                    let wake = endpoint.inbox().enqueue(
                        &delivery.src,
                        Packet::Borrowed(delivery.data),
                        &limits,
                        self.relay.data(),
                    );
                    if wake {
                        let _ = endpoint.wake.try_send(());
                    }
                    true
                }
                None => false,
            }
        };
        if !routed {
            let Delivery {
                src,
                dst,
                data,
                forwarded,
            } = delivery;
            let spare = self.relay.unrouted(
                from,
                src,
                dst,
                Packet::Borrowed(data),
                forwarded,
                now,
                &mut self.actions,
            );
            self.relay.give_buffer(spare);
            self.apply_actions();
        }
    }
}

/// The hub as every task holds it (see the module comment).
pub(crate) struct SharedHub {
    registry: Mutex<Hub>,
    routes: Arc<Routes>,
    data: Arc<DataCounters>,
    limits: RelayLimits,
}

impl SharedHub {
    /// A hub around `relay` with no connections yet.
    pub fn new(relay: Relay) -> SharedHub {
        let routes = Arc::new(Routes(RwLock::new(HashMap::new())));
        let data = relay.data().clone();
        let limits = relay.limits();
        SharedHub {
            registry: Mutex::new(Hub {
                relay,
                conns: ConnIdMap::default(),
                actions: Vec::new(),
                mesh_wakes: Vec::new(),
                routes: routes.clone(),
            }),
            routes,
            data,
            limits,
        }
    }

    /// Locks the registry; a poisoned lock (a panic elsewhere) is taken over, since the
    /// release build aborts on panic and a test build should keep reporting.
    pub fn lock(&self) -> MutexGuard<'_, Hub> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The packet counters every inbox shares.
    pub fn data(&self) -> &DataCounters {
        &self.data
    }

    /// Queues `packet` from `source` in `endpoint`'s inbox under that inbox's lock alone and
    /// wakes its writer when the inbox asks; returns a buffer for the sender's next read.
    fn queue_in(&self, endpoint: &Endpoint, source: &PublicKey, packet: PacketBuf) -> Vec<u8> {
        let (wake, spare) = {
            let mut inbox = endpoint.inbox();
            deliver_owned(&mut inbox, source, packet, &self.limits, &self.data)
        };
        if wake {
            // Full means a wake is already pending; closed means the writer left.
            let _ = endpoint.wake.try_send(());
        }
        spare
    }

    /// The packet path for a SendPacket from `from`, read in place: queued in the inbox
    /// of the destination's active connection under that inbox's lock only (the route
    /// map is held for reading). A duplicate sender, a destination without a local
    /// connection (mesh route, unknown) or a malformed packet takes the registry lock.
    /// Returns a buffer for the sender's next read.
    pub fn send_packet(
        &self,
        from: &Endpoint,
        packet: PacketBuf,
        now: Instant,
    ) -> Result<Vec<u8>, Violation> {
        if from.dup.load(Ordering::Relaxed) {
            let mut hub = self.lock();
            let hub = &mut *hub;
            let noted = hub.relay.note_sender(from.id, &mut hub.actions);
            hub.apply_actions();
            noted?;
        }
        let Some(dst) = packet.dst() else {
            // The net layer reads at least a key; a shorter payload is not a packet.
            let mut hub = self.lock();
            let hub = &mut *hub;
            let result = hub.relay.handle_frame(
                from.id,
                crate::proto::frame::ClientFrame::Ignored,
                now,
                &mut hub.actions,
            );
            hub.apply_actions();
            return result.map(|_| packet.into_inner());
        };
        let packet = {
            let routes = self.routes.read();
            match routes.get(&dst) {
                Some(endpoint) => return Ok(self.queue_in(endpoint, &from.key, packet)),
                None => packet,
            }
        };
        // No local connection: the registry decides (mesh route, or unknown), holding
        // its lock, under which the route map cannot change; look again first.
        let mut hub = self.lock();
        let hub = &mut *hub;
        let spare = {
            let routes = self.routes.read();
            match routes.get(&dst) {
                Some(endpoint) => self.queue_in(endpoint, &from.key, packet),
                None => {
                    let data = packet.data();
                    hub.relay.note_received(PacketKind::of(data), data.len());
                    hub.relay.unrouted(
                        from.id,
                        from.key,
                        dst,
                        Packet::Owned(packet),
                        false,
                        now,
                        &mut hub.actions,
                    )
                }
            }
        };
        hub.apply_actions();
        Ok(spare)
    }
}

/// Marks a connection closed, wakes its writer and interrupts its reader.
pub(crate) fn close_handle(handle: &ConnHandle) {
    handle.closed.store(true, Ordering::SeqCst);
    let _ = handle.endpoint.wake.try_send(());
    let _ = handle.tcp.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode_recv_packet;
    use crate::relay::{ConnParams, Relay};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Registers a client with key `[n; 32]` as the session does; returns its endpoint,
    /// its writer's wake-up and the peer socket (kept open for the test's length).
    async fn register(hub: &SharedHub, n: u8) -> (Arc<Endpoint>, smol::channel::Receiver<()>) {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let key = PublicKey([n; 32]);
        let params = ConnParams {
            key,
            addr: None,
            is_mesh: false,
            is_prober: false,
            not_ideal: false,
        };
        let (wake, woken) = smol::channel::bounded(1);
        let mut guard = hub.lock();
        let hub = &mut *guard;
        let id = hub.relay.register(params, Instant::now(), &mut hub.actions);
        let endpoint = Arc::new(Endpoint::new(id, key, wake));
        hub.conns.insert(
            id,
            ConnHandle {
                endpoint: endpoint.clone(),
                closed: Arc::new(AtomicBool::new(false)),
                tcp,
            },
        );
        hub.apply_actions();
        (endpoint, woken)
    }

    fn packet(dst: u8, data: &[u8]) -> PacketBuf {
        let mut packet = PacketBuf::for_payload(Vec::new(), 32 + data.len());
        let payload = packet.payload_mut();
        payload[..32].copy_from_slice(&[dst; 32]);
        payload[32..].copy_from_slice(data);
        packet
    }

    /// Sends `packet` from `from` on its own thread; the channel reports when it is done.
    fn send_on_thread(
        hub: &Arc<SharedHub>,
        from: &Arc<Endpoint>,
        p: PacketBuf,
    ) -> mpsc::Receiver<bool> {
        let (done, report) = mpsc::channel();
        let (hub, from) = (hub.clone(), from.clone());
        std::thread::spawn(move || {
            let sent = hub.send_packet(&from, p, Instant::now()).is_ok();
            let _ = done.send(sent);
        });
        report
    }

    /// The property the hub exists for: with the registry locked and one receiver's
    /// inbox locked (a login and that receiver's writer, say), a sender to a different
    /// receiver still gets its packet through, while a sender to the locked receiver
    /// waits for that receiver only.
    #[test]
    fn senders_to_different_receivers_do_not_contend() {
        smol::block_on(async {
            let relay = Relay::new(PublicKey([0xee; 32]), Default::default());
            let hub = Arc::new(SharedHub::new(relay));
            let (a, _) = register(&hub, 1).await;
            let (b, b_woken) = register(&hub, 2).await;
            let (c, _) = register(&hub, 3).await;
            let (d, d_woken) = register(&hub, 4).await;

            let registry = hub.lock();
            let b_inbox = b.inbox();
            let to_d = send_on_thread(&hub, &c, packet(4, b"through"));
            assert_eq!(
                to_d.recv_timeout(Duration::from_secs(20)),
                Ok(true),
                "a send to d waited for b's or the registry's lock"
            );
            let to_b = send_on_thread(&hub, &a, packet(2, b"waits"));
            assert!(
                to_b.recv_timeout(Duration::from_millis(200)).is_err(),
                "a send to b went past b's locked inbox"
            );
            drop(b_inbox);
            drop(registry);
            assert_eq!(to_b.recv_timeout(Duration::from_secs(20)), Ok(true));

            for (endpoint, woken, src, data) in [
                (&d, &d_woken, 3u8, &b"through"[..]),
                (&b, &b_woken, 1u8, &b"waits"[..]),
            ] {
                assert!(woken.try_recv().is_ok(), "the receiver's writer was woken");
                let mut frames = Vec::new();
                let mut sources = Vec::new();
                let drained =
                    endpoint
                        .inbox()
                        .drain(0, &mut frames, usize::MAX, hub.data(), &mut sources);
                let mut expected = Vec::new();
                encode_recv_packet(&mut expected, &PublicKey([src; 32]), data);
                assert_eq!(frames, vec![expected]);
                assert_eq!(sources, vec![PublicKey([src; 32])]);
                assert!(!drained.more);
            }
            let counters = hub.lock().counters();
            assert_eq!(counters.sent.packets, 2);
        });
    }

    /// The route map follows the registry: a duplicate's packets make it the active
    /// connection (through the registry, the only time a sender takes its lock), and a
    /// departure moves the route to the remaining connection.
    #[test]
    fn routes_follow_duplicates_and_departures() {
        smol::block_on(async {
            let relay = Relay::new(PublicKey([0xee; 32]), Default::default());
            let hub = Arc::new(SharedHub::new(relay));
            let (a, _) = register(&hub, 1).await;
            let (b1, _) = register(&hub, 2).await;
            let (b2, _) = register(&hub, 2).await;
            assert!(b1.dup.load(Ordering::SeqCst) && b2.dup.load(Ordering::SeqCst));
            assert!(!a.dup.load(Ordering::SeqCst));
            let route = |key: u8| hub.routes.read().get(&PublicKey([key; 32])).map(|e| e.id);
            assert_eq!(route(2), Some(b2.id), "the newest is active");
            hub.send_packet(&b1, packet(1, b"hi"), Instant::now())
                .unwrap();
            assert_eq!(route(2), Some(b1.id), "last writer is active");
            hub.send_packet(&a, packet(2, b"to b1"), Instant::now())
                .unwrap();
            assert_eq!(b1.inbox().queue_lens(), (0, 1));
            assert_eq!(b2.inbox().queue_lens(), (0, 0));
            hub.lock().remove(b1.id, Instant::now());
            assert_eq!(route(2), Some(b2.id));
            assert!(!b2.dup.load(Ordering::SeqCst));
            // The packet queued for the closed connection counts as gone, and the
            // registry kept the closed inbox's counters.
            let counters = hub.lock().counters();
            let gone = counters.drops(
                crate::relay::DropReason::GoneDisconnected,
                PacketKind::Other,
            );
            assert_eq!(gone.packets, 1);
            assert_eq!(counters.received(PacketKind::Other).packets, 2);
            // A sender finds the remaining connection.
            hub.send_packet(&a, packet(2, b"to b2"), Instant::now())
                .unwrap();
            assert_eq!(b2.inbox().queue_lens(), (0, 1));
            // b1's "hi" (for a) and "to b2" are queued: 5 + 32 + 2 and 5 + 32 + 5 bytes.
            assert_eq!(hub.data().queued(), (2, 39 + 42));
            assert_eq!(a.inbox().queue_lens(), (0, 1));
        });
    }
}
