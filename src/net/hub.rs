//! The relay hub: the pure relay state and the handles of the connection tasks it talks
//! to, behind one lock, so an action is always carried out against the same view that
//! produced it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use smol::channel::Sender;
use smol::net::TcpStream;

use crate::relay::{Action, ConnIdMap, Relay};

/// What the I/O edge keeps per connected client so relay actions can reach its tasks.
pub(crate) struct ConnHandle {
    /// Wakes the writer task; capacity 1, a full channel already means "wake pending".
    pub wake: Sender<()>,
    /// Set when the relay (or shutdown) wants this connection gone.
    pub closed: Arc<AtomicBool>,
    /// A second handle on the socket, so a close can interrupt a blocked reader.
    pub tcp: TcpStream,
}

/// The relay state and the connection handles (see the module comment).
pub(crate) struct Hub {
    /// The pure server state.
    pub relay: Relay,
    /// Live connections by relay id.
    pub conns: ConnIdMap<ConnHandle>,
    /// Reused action buffer (no allocation per packet).
    pub actions: Vec<Action>,
    /// Wakes each mesh peer's writer, indexed by `MeshPeerId` (capacity 1, like `wake`).
    pub mesh_wakes: Vec<Sender<()>>,
}

impl Hub {
    /// Carries out the actions the relay just returned, and clears the buffer.
    pub fn apply_actions(&mut self) {
        let actions = std::mem::take(&mut self.actions);
        for action in &actions {
            match *action {
                Action::Wake(id) => {
                    if let Some(handle) = self.conns.get(&id) {
                        // Full means a wake is already pending; closed means the writer left.
                        let _ = handle.wake.try_send(());
                    }
                }
                Action::Close(id) => {
                    if let Some(handle) = self.conns.get(&id) {
                        close_handle(handle);
                    }
                }
                Action::WakeMesh(peer) => {
                    if let Some(wake) = self.mesh_wakes.get(peer.0) {
                        // Full means a wake is already pending.
                        let _ = wake.try_send(());
                    }
                }
            }
        }
        self.actions = actions;
        self.actions.clear();
    }
}

/// The hub as every task holds it: one mutex around [`Hub`].
pub(crate) struct SharedHub(Mutex<Hub>);

impl SharedHub {
    /// A hub around `relay` with no connections yet.
    pub fn new(relay: Relay) -> SharedHub {
        SharedHub(Mutex::new(Hub {
            relay,
            conns: ConnIdMap::default(),
            actions: Vec::new(),
            mesh_wakes: Vec::new(),
        }))
    }

    /// Locks the hub; a poisoned lock (a panic elsewhere) is taken over, since the release
    /// build aborts on panic and a test build should keep reporting.
    pub fn lock(&self) -> MutexGuard<'_, Hub> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Marks a connection closed, wakes its writer and interrupts its reader.
pub(crate) fn close_handle(handle: &ConnHandle) {
    handle.closed.store(true, Ordering::SeqCst);
    let _ = handle.wake.try_send(());
    let _ = handle.tcp.shutdown(std::net::Shutdown::Both);
}
