//! The mesh dialer (`--mesh-with`): one task per configured relay keeps a DERP client
//! (the crate's `client`) logged in there with the mesh key, subscribed with WatchConns,
//! and feeds its PeerPresent / PeerGone stream into the relay's forwarding table
//! (`relay::MeshTable`). The same connection carries this relay's ForwardPacket frames to
//! the peer. A lost connection drops the peer's routes and is redialled with capped,
//! jittered backoff; a peer that turns out to be this server is left alone, as upstream.
//!
//! Trust: a peer with a `--mesh-pin` is checked against that pin; the others against the
//! system CA bundle (`SSL_CERT_FILE` if set, as Go's derper reads it), read once at start.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::channel::Receiver;
use smol::future::FutureExt;

use crate::client::{Client, ClientConfig, ClientReader, ClientWriter, ServerFrame, TlsVerify};
use crate::config::mesh::MeshPeer;
use crate::relay::MeshPeerId;

use super::deadline::with_deadline;
use super::mesh_status::MAX_ERROR_LEN;
use super::server::Server;

/// First wait before redialling a lost or unreachable peer.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two dials of one peer (upstream waits a fixed 5 s).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Deadline of the name lookup of a peer.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of the whole login: TCP, TLS, upgrade, DERP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that sends nothing for this long is dead (servers send a KeepAlive every 60 s
/// plus up to 5 s of jitter).
const READ_TIMEOUT: Duration = Duration::from_secs(150);
/// Deadline of one write to a peer (as for mesh peers connected to us, and upstream).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most ForwardPacket bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 64 << 10;
/// Registers every peer with the relay and starts one task per peer; the returned tasks
/// are owned by the caller (dropping them stops the dialers).
pub(crate) fn start(server: &Arc<Server>, ex: &smol::Executor<'static>) -> Vec<smol::Task<()>> {
    let mut tasks = Vec::new();
    // Without a TLS client the configuration refuses --mesh-with, so there is nothing to
    // dial; returning here also lets the compiler drop the dialer from router builds.
    if !cfg!(feature = "tls-client") {
        return tasks;
    }
    let mut hub = server.hub.lock();
    for (index, (spec, _)) in server.mesh.peers.iter().enumerate() {
        let Some(id) = hub.relay.mesh_mut().add_peer() else {
            break;
        };
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        if hub.mesh_wakes.len() != id.0 || id.0 != index {
            log::error!(
                "mesh: peer table out of step; not dialling {}",
                spec.label()
            );
            break;
        }
        hub.mesh_wakes.push(wake_tx);
        tasks.push(super::task::spawn(
            ex,
            dial_loop(server.clone(), id, wake_rx),
        ));
    }
    tasks
}

/// Random delay in `[d/2, d)`: spreads redials of several relays after an outage.
fn jittered(d: Duration) -> Duration {
    let mut bytes = [0u8; 2];
    let _ = getrandom::getrandom(&mut bytes);
    let fraction = u32::from(u16::from_le_bytes(bytes));
    let half = d / 2;
    half.saturating_add(half.mul_f64(f64::from(fraction) / 65_536.0))
}

/// Keeps one peer connected until the server stops.
async fn dial_loop(server: Arc<Server>, id: MeshPeerId, wake_rx: Receiver<()>) {
    let Some((spec, _)) = server.mesh.peers.get(id.0) else {
        return;
    };
    let label = spec.label();
    let mut backoff = BACKOFF_MIN;
    let mut ever_connected = false;
    let mut failures_logged = false;
    loop {
        if server.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(mut status) = server.mesh.status(id.0) {
            status.dials = status.dials.saturating_add(1);
        }
        match connect(&server, spec).await {
            Ok(client) if client.server_key() == server.identity.public => {
                log::info!("mesh {label}: that is this server; not meshing with it");
                note_error(&server, id, "this server itself".to_string());
                return;
            }
            Ok(client) => {
                let peer_key = client.server_key();
                {
                    let mut hub = server.hub.lock();
                    let hub = &mut *hub;
                    let lost = hub.relay.mesh_mut().peer_connected(id, peer_key);
                    hub.relay.note_left_region(&lost, &mut hub.actions);
                    hub.apply_actions();
                }
                if let Some(mut status) = server.mesh.status(id.0) {
                    status.connected = true;
                    status.since = Some(Instant::now());
                }
                log::info!(
                    "mesh {label}: {} (server key {peer_key})",
                    if ever_connected { "back" } else { "connected" }
                );
                ever_connected = true;
                failures_logged = false;
                backoff = BACKOFF_MIN;
                let err = serve_peer(&server, id, client, &wake_rx).await;
                {
                    let mut hub = server.hub.lock();
                    let hub = &mut *hub;
                    let lost = hub.relay.mesh_mut().peer_lost(id);
                    hub.relay.note_left_region(&lost, &mut hub.actions);
                    hub.apply_actions();
                }
                if server.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                log::warn!("mesh {label}: lost: {err}");
                note_error(&server, id, err.to_string());
            }
            Err(err) => {
                // One line per outage; later failures of the same outage at debug.
                if failures_logged {
                    log::debug!("mesh {label}: {err}");
                } else {
                    log::warn!("mesh {label}: cannot connect: {err}; retrying");
                    failures_logged = true;
                }
                note_error(&server, id, err.to_string());
            }
        }
        smol::Timer::after(jittered(backoff)).await;
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
}

fn note_error(server: &Server, id: MeshPeerId, mut text: String) {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        text.truncate(end);
    }
    if let Some(mut status) = server.mesh.status(id.0) {
        status.connected = false;
        status.since = Some(Instant::now());
        status.last_error = Some(text);
    }
}

/// Resolves the peer and logs in with the mesh key.
async fn connect(server: &Server, spec: &MeshPeer) -> io::Result<Client> {
    let verify = match (&spec.pin, &server.mesh.roots) {
        (Some(pin), _) => TlsVerify::Pin(pin.clone()),
        (None, Some(Ok(roots))) => TlsVerify::Roots(roots.clone()),
        (None, Some(Err(problem))) => return Err(io::Error::other(problem.clone())),
        (None, None) => return Err(io::Error::other("no CA roots loaded")),
    };
    let host = spec.dial_host.clone();
    let port = spec.port;
    let addrs: Vec<SocketAddr> =
        with_deadline(RESOLVE_TIMEOUT, super::dns::resolve(&host, port)).await?;
    let addr = addrs
        .first()
        .copied()
        .ok_or_else(|| io::Error::other(format!("{host} has no address")))?;
    let cfg = ClientConfig {
        addr,
        server_name: spec.name.clone(),
        verify,
        secret: server.identity.secret.clone(),
        mesh_key: server.identity.mesh_key,
        fast_start: false,
        is_prober: false,
        timeout: CONNECT_TIMEOUT,
        tls_suites: Vec::new(),
    };
    Client::connect(&cfg).await
}

/// Runs one logged-in connection until it fails: WatchConns, then the reader feeding the
/// table and the writer draining the peer's ForwardPacket queue.
async fn serve_peer(
    server: &Server,
    id: MeshPeerId,
    client: Client,
    wake_rx: &Receiver<()>,
) -> io::Error {
    let (mut reader, mut writer) = client.split();
    if let Err(err) = with_deadline(WRITE_TIMEOUT, writer.watch_conns()).await {
        return err;
    }
    let pong: Mutex<Option<[u8; 8]>> = Mutex::new(None);
    let result = read_loop(server, id, &mut reader, &pong)
        .or(write_loop(server, id, &mut writer, wake_rx, &pong))
        .await;
    // Best effort: tell the peer we are going (bounded like every write).
    let _ = with_deadline(Duration::from_secs(1), writer.close()).await;
    match result {
        Ok(()) => io::Error::other("connection closed"),
        Err(err) => err,
    }
}

async fn read_loop(
    server: &Server,
    id: MeshPeerId,
    reader: &mut ClientReader,
    pong: &Mutex<Option<[u8; 8]>>,
) -> io::Result<()> {
    loop {
        let frame = with_deadline(READ_TIMEOUT, reader.recv()).await?;
        match frame {
            ServerFrame::PeerPresent { key, .. } => {
                let mut hub = server.hub.lock();
                // This relay's own key, announced back by the peer, is not a route.
                if key != hub.relay.server_key() {
                    hub.relay.mesh_mut().present(id, key);
                }
            }
            ServerFrame::PeerGone { key, .. } => {
                let mut hub = server.hub.lock();
                let hub = &mut *hub;
                if hub.relay.mesh_mut().gone(id, &key) {
                    hub.relay.note_left_region(&[key], &mut hub.actions);
                }
                hub.apply_actions();
            }
            ServerFrame::Ping(data) => {
                *pong.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(data);
                if let Some(wake) = server.hub.lock().mesh_wakes.get(id.0) {
                    let _ = wake.try_send(());
                }
            }
            ServerFrame::Restarting { .. } => {
                return Err(io::Error::other("peer is restarting"));
            }
            _ => {}
        }
    }
}

async fn write_loop(
    server: &Server,
    id: MeshPeerId,
    writer: &mut ClientWriter,
    wake_rx: &Receiver<()>,
    pong: &Mutex<Option<[u8; 8]>>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(WRITE_BATCH_BYTES);
    loop {
        // The hub keeps the sender for the life of the server, so this ends only then.
        if wake_rx.recv().await.is_err() {
            return Ok(());
        }
        let echo = pong
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(data) = echo {
            with_deadline(WRITE_TIMEOUT, writer.pong(data)).await?;
        }
        loop {
            out.clear();
            let drained = server
                .hub
                .lock()
                .relay
                .mesh_mut()
                .drain(id, &mut out, WRITE_BATCH_BYTES);
            if drained.packets == 0 {
                break;
            }
            if let Err(err) = with_deadline(WRITE_TIMEOUT, writer.send_raw(&out)).await {
                server
                    .hub
                    .lock()
                    .relay
                    .mesh_mut()
                    .note_write_failure(id, &drained);
                return Err(err);
            }
            if !drained.more {
                break;
            }
        }
    }
}

/// One peer's numbers as the metrics see them: label, connected, learned, counters.
type PeerRow = (String, bool, usize, crate::relay::MeshPeerCounters);
/// Name, type, help and value of one per-peer metric.
type MetricRow = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PeerRow) -> u64,
);

/// Prometheus lines for every peer (appended to /debug/varz).
pub(crate) fn render_metrics(server: &Server, out: &mut String) {
    if server.mesh.peers.is_empty() {
        return;
    }
    let hub = server.hub.lock();
    let table = hub.relay.mesh();
    let mut rows = Vec::new();
    for (index, (spec, _)) in server.mesh.peers.iter().enumerate() {
        let id = MeshPeerId(index);
        let connected = server.mesh.status(index).is_some_and(|s| s.connected);
        rows.push((
            spec.label(),
            connected,
            table.learned(id),
            table.counters(id),
        ));
    }
    drop(hub);
    let metrics: [MetricRow; 9] = [
        (
            "mesh_peer_connected",
            "gauge",
            "1 while the mesh client to this peer is logged in.",
            |r| u64::from(r.1),
        ),
        (
            "mesh_peer_clients",
            "gauge",
            "Client keys this peer announces (routes learned).",
            |r| r.2 as u64,
        ),
        (
            "mesh_forwarded_out_packets_total",
            "counter",
            "Packets forwarded to this peer.",
            |r| r.3.forwarded_out_packets,
        ),
        (
            "mesh_forwarded_out_bytes_total",
            "counter",
            "Packet bytes forwarded to this peer.",
            |r| r.3.forwarded_out_bytes,
        ),
        (
            "mesh_forwarded_in_packets_total",
            "counter",
            "Packets this peer forwarded here.",
            |r| r.3.forwarded_in_packets,
        ),
        (
            "mesh_forwarded_in_bytes_total",
            "counter",
            "Packet bytes this peer forwarded here.",
            |r| r.3.forwarded_in_bytes,
        ),
        (
            "mesh_dropped_packets_total",
            "counter",
            "Packets for this peer dropped (queue full, peer away, write failed).",
            |r| r.3.dropped_packets,
        ),
        (
            "mesh_routes_dropped_total",
            "counter",
            "Announcements of this peer dropped because the route table was full.",
            |r| r.3.routes_dropped,
        ),
        (
            "mesh_reconnects_total",
            "counter",
            "Logins to this peer after the first.",
            |r| r.3.connects.saturating_sub(1),
        ),
    ];
    for (name, kind, help, value) in metrics {
        let _ = writeln!(
            out,
            "# HELP tinyderp_{name} {help}\n# TYPE tinyderp_{name} {kind}"
        );
        for row in &rows {
            let _ = writeln!(out, "tinyderp_{name}{{peer=\"{}\"}} {}", row.0, value(row));
        }
    }
}

/// The status page section: how many peers are connected, and with `detailed` (a
/// metrics-allowed viewer) one line per peer, since names and errors are internal.
pub(crate) fn status_html(server: &Server, detailed: bool) -> String {
    let mut html = String::new();
    if server.mesh.peers.is_empty() {
        return html;
    }
    if !detailed {
        let up = (0..server.mesh.peers.len())
            .filter(|&index| server.mesh.status(index).is_some_and(|s| s.connected))
            .count();
        let _ = writeln!(
            html,
            "<p>Mesh: {up} of {} peers connected.</p>",
            server.mesh.peers.len()
        );
        return html;
    }
    let hub = server.hub.lock();
    let table = hub.relay.mesh();
    let mut rows = Vec::new();
    for (index, (spec, _)) in server.mesh.peers.iter().enumerate() {
        let id = MeshPeerId(index);
        rows.push((spec.label(), table.learned(id), table.counters(id)));
    }
    drop(hub);
    html.push_str("<h2>Mesh peers</h2>\n<ul>\n");
    for (index, (label, learned, counters)) in rows.into_iter().enumerate() {
        let status = server
            .mesh
            .status(index)
            .map(|s| s.clone())
            .unwrap_or_default();
        let age = status.since.map_or(0, |since| since.elapsed().as_secs());
        let state = if status.connected {
            format!("connected for {age}s")
        } else {
            format!(
                "not connected ({age}s): {}",
                status.last_error.as_deref().unwrap_or("not dialled yet")
            )
        };
        let _ = writeln!(
            html,
            "<li>{}: {}; {learned} clients learned; forwarded out {} packets / {} bytes, in {} packets / {} bytes; {} dropped; {} reconnects</li>",
            crate::proto::http::escape_html(&label),
            crate::proto::http::escape_html(&state),
            counters.forwarded_out_packets,
            counters.forwarded_out_bytes,
            counters.forwarded_in_packets,
            counters.forwarded_in_bytes,
            counters.dropped_packets,
            counters.connects.saturating_sub(1),
        );
    }
    html.push_str("</ul>\n");
    html
}
