//! Server-wide state shared by every task, and `run`, which owns the executor, the
//! listeners and the signal loop from start to graceful stop.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use smol::channel::Sender;
use smol::net::TcpStream;
use smol::stream::StreamExt;

use crate::admit::{AdmitContext, RefusedKeys};
use crate::cert::{self, CertResolver};
use crate::config::Config;
use crate::proto::key::{PublicKey, SecretKey};
use crate::relay::{Action, ConnId, Relay, RelayLimits, TokenBucket};

use super::limits::{self, ClientRate};
use super::logging::RateLimitedLog;
use super::metrics::NetMetrics;
use super::{conn, listen, stun};

/// How long a graceful stop waits for writers to flush the Restarting frame.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// What the Restarting frame tells clients: try again after this long ...
const RESTART_RECONNECT_IN_MS: u32 = 2_000;
/// ... and keep trying for this long.
const RESTART_TRY_FOR_MS: u32 = 60_000;
/// Most executor threads we start, whatever the CPU count (routers have 1 to 4 cores).
const MAX_EXECUTOR_THREADS: usize = 4;

/// A start-up failure, already phrased for the operator; `main` prints it and exits 1.
#[derive(Debug)]
pub struct RunError(pub String);

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// What the I/O edge keeps per connected client so relay actions can reach its tasks.
pub(crate) struct ConnHandle {
    /// Wakes the writer task; capacity 1, a full channel already means "wake pending".
    pub wake: Sender<()>,
    /// Set when the relay (or shutdown) wants this connection gone.
    pub closed: Arc<AtomicBool>,
    /// A second handle on the socket, so a close can interrupt a blocked reader.
    pub tcp: TcpStream,
}

/// The relay state and the handles of the tasks it talks to, behind one lock so an
/// action is always carried out against the same view that produced it.
pub(crate) struct Hub {
    /// The pure server state.
    pub relay: Relay,
    /// Live connections by relay id.
    pub conns: HashMap<ConnId, ConnHandle>,
    /// Reused action buffer (no allocation per packet).
    pub actions: Vec<Action>,
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
            }
        }
        self.actions = actions;
        self.actions.clear();
    }
}

/// Marks a connection closed, wakes its writer and interrupts its reader.
pub(crate) fn close_handle(handle: &ConnHandle) {
    handle.closed.store(true, Ordering::SeqCst);
    let _ = handle.wake.try_send(());
    let _ = handle.tcp.shutdown(std::net::Shutdown::Both);
}

/// Everything the tasks share. Built once at start; the certificate inside the resolver
/// is the only part that changes (SIGHUP).
pub(crate) struct Server {
    /// The validated configuration.
    pub config: Config,
    /// This server's DERP private key (never logged).
    pub secret: SecretKey,
    /// This server's DERP public key.
    pub public: PublicKey,
    /// The mesh pre-shared key, if one is configured.
    pub mesh_key: Option<[u8; 32]>,
    /// rustls configuration; certificates come from `resolver`.
    pub tls: Arc<rustls::ServerConfig>,
    /// Current certificate, swappable on SIGHUP.
    pub resolver: Arc<CertResolver>,
    /// The relay and connection handles.
    pub hub: Mutex<Hub>,
    /// Counters owned by the I/O edge.
    pub metrics: Mutex<NetMetrics>,
    /// Rate-limited log for per-connection failures.
    pub conn_log: RateLimitedLog,
    /// Start time, for uptime.
    pub started: Instant,
    /// Set once a stop was requested: listeners stop accepting.
    pub stopping: AtomicBool,
    /// The per-client receive rate in force (from the flags or `--rate-config`).
    pub client_rate: ClientRate,
    /// The server-wide cap on bytes read from DERP connections, if configured.
    pub total_bucket: Option<Mutex<TokenBucket>>,
    /// Learn mode's memory of refused keys already logged.
    pub refused_keys: Mutex<RefusedKeys>,
    /// Check slots and the TLS client of the admission checks.
    pub admit: AdmitContext,
}

impl Server {
    /// Locks the hub; a poisoned lock (a panic elsewhere) is taken over, since the release
    /// build aborts on panic and a test build should keep reporting.
    pub fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the I/O counters.
    pub fn metrics(&self) -> MutexGuard<'_, NetMetrics> {
        self.metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The DERP map snippets for this server, as text (log, home page, `derpmap`).
    pub fn derp_map_text(&self) -> String {
        crate::derpmap::render_all(&self.config.derp_map, &self.resolver.pin())
    }
}

/// Reads the mesh key file: 64 hex digits, surrounding white space ignored.
fn read_mesh_key(path: &std::path::Path) -> Result<[u8; 32], RunError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        RunError(format!(
            "cannot read mesh key file {}: {err}",
            path.display()
        ))
    })?;
    crate::proto::key::parse_hex_32(text.trim()).ok_or_else(|| {
        RunError(format!(
            "mesh key file {} must hold exactly 64 hex digits (generate one with: openssl rand -hex 32)",
            path.display()
        ))
    })
}

/// Loads (or generates) the certificate; in manual mode the leaf must be valid for the
/// hostname, as derper requires.
fn load_certificate(config: &Config) -> Result<cert::LoadedCert, RunError> {
    let source = config.cert_source();
    let loaded = cert::load(&source).map_err(|err| RunError(err.to_string()))?;
    if let cert::CertSource::Manual { cert: path, .. } = &source {
        cert::check_valid_for(&loaded, &config.hostname, path)
            .map_err(|err| RunError(err.to_string()))?;
    }
    Ok(loaded)
}

/// Prepares everything that can fail before any socket is opened: key, certificate, TLS.
pub(crate) fn prepare(config: Config) -> Result<Arc<Server>, RunError> {
    let key = crate::keyfile::load_or_create(&config.server_key)
        .map_err(|err| RunError(err.to_string()))?;
    if key.created {
        log::info!(
            "created a new server key in {}",
            config.server_key.display()
        );
    }
    let secret = key.secret;
    let public = secret.public_key();
    let mesh_key = match &config.mesh_psk_file {
        Some(path) => Some(read_mesh_key(path)?),
        None => None,
    };
    let loaded = load_certificate(&config)?;
    if loaded.generated {
        log::info!(
            "generated a self-signed certificate; its pin is {}",
            loaded.pin
        );
    }
    let meta = if config.cert.meta_cert {
        Some(cert::meta_cert(&public).map_err(|err| RunError(err.to_string()))?)
    } else {
        None
    };
    let resolver = CertResolver::new(loaded, meta).map_err(|err| RunError(err.to_string()))?;
    let tls = cert::server_config(resolver.clone()).map_err(|err| RunError(err.to_string()))?;
    let relay = Relay::new(public, RelayLimits::default());
    let admit = AdmitContext::new(&config.admit)
        .map_err(|err| RunError(format!("--verify-client-url: {err}")))?;
    let client_rate = match &config.limits.rate_config {
        Some(path) => limits::load_rate_config(path).map_err(RunError)?,
        None => config.limits.client_rate,
    };
    let total_bucket = config.limits.total_rate.map(|rate| {
        Mutex::new(TokenBucket::new(
            rate.bytes_per_sec,
            rate.burst,
            Instant::now(),
        ))
    });
    Ok(Arc::new(Server {
        config,
        secret,
        public,
        mesh_key,
        tls,
        resolver,
        hub: Mutex::new(Hub {
            relay,
            conns: HashMap::new(),
            actions: Vec::new(),
        }),
        metrics: Mutex::new(NetMetrics::default()),
        conn_log: RateLimitedLog::new(),
        started: Instant::now(),
        stopping: AtomicBool::new(false),
        client_rate: ClientRate::new(client_rate),
        total_bucket,
        refused_keys: Mutex::new(RefusedKeys::default()),
        admit,
    }))
}

/// Runs the server until SIGTERM or SIGINT: binds every listener, serves, and on a stop
/// signal sends Restarting to every client, stops accepting and returns.
pub fn run(config: Config) -> Result<(), RunError> {
    listen::raise_fd_limit();
    let server = prepare(config)?;
    let ex = Arc::new(smol::Executor::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_EXECUTOR_THREADS);
    let (stop_threads, threads_stopped) = smol::channel::unbounded::<()>();
    let mut workers = Vec::new();
    for index in 1..threads {
        let ex = ex.clone();
        let stopped = threads_stopped.clone();
        let worker = std::thread::Builder::new()
            .name(format!("tinyderp-{index}"))
            .spawn(move || smol::block_on(ex.run(stopped.recv())))
            .map_err(|err| RunError(format!("cannot start worker thread: {err}")))?;
        workers.push(worker);
    }
    let result = smol::block_on(ex.run(serve(server, ex.clone())));
    drop(stop_threads);
    for worker in workers {
        let _ = worker.join();
    }
    result
}

/// Binds the listeners, spawns their loops, and waits for a stop signal.
async fn serve(server: Arc<Server>, ex: Arc<smol::Executor<'static>>) -> Result<(), RunError> {
    let signals = async_signal::Signals::new([
        async_signal::Signal::Hup,
        async_signal::Signal::Term,
        async_signal::Signal::Int,
    ])
    .map_err(|err| RunError(format!("cannot install signal handlers: {err}")))?;

    let derp_listener = listen::bind_tcp(server.config.listen)?;
    let mut owned_tasks = Vec::new();
    if let Some(addr) = server.config.stun {
        let socket = listen::bind_udp(addr)?;
        log::info!(
            "STUN listening on udp {}",
            describe(&socket.local_addr().ok(), addr)
        );
        owned_tasks.push(ex.spawn(stun::serve(server.clone(), socket)));
    }
    if let Some(addr) = server.config.http {
        let listener = listen::bind_tcp(addr)?;
        log::info!(
            "plain HTTP listening on {}",
            describe(&listener.local_addr().ok(), addr)
        );
        owned_tasks.push(ex.spawn(conn::accept_loop(
            server.clone(),
            listener,
            ex.clone(),
            false,
        )));
    }
    let derp_addr = derp_listener.local_addr().ok();
    log::info!(
        "DERP (TLS) listening on {}; server key {}",
        describe(&derp_addr, server.config.listen),
        server.public
    );
    log::info!("certificate pin {}", server.resolver.pin());
    log::info!("{}", server.config.admit.describe());
    log_limits(&server);
    log::info!(
        "paste one of these into your DERP map:\n{}",
        server.derp_map_text()
    );
    owned_tasks.push(ex.spawn(super::check_watch::watch(server.config.clone())));
    owned_tasks.push(ex.spawn(conn::accept_loop(
        server.clone(),
        derp_listener,
        ex.clone(),
        true,
    )));

    let mut signals = signals;
    while let Some(signal) = signals.next().await {
        match signal {
            Ok(async_signal::Signal::Hup) => {
                reload_certificate(&server);
                limits::reload_rate_config(&server);
            }
            Ok(async_signal::Signal::Term) | Ok(async_signal::Signal::Int) => break,
            Ok(_) => {}
            Err(err) => log::warn!("signal handling error: {err}"),
        }
    }
    log::info!("stopping: telling clients to reconnect later");
    server.stopping.store(true, Ordering::SeqCst);
    drop(owned_tasks); // stops accepting (listeners close) and STUN
    {
        let mut hub = server.hub();
        let Hub { relay, actions, .. } = &mut *hub;
        relay.broadcast_restarting(RESTART_RECONNECT_IN_MS, RESTART_TRY_FOR_MS, actions);
        hub.apply_actions();
    }
    wait_for_flush(&server).await;
    let hub = server.hub();
    for handle in hub.conns.values() {
        close_handle(handle);
    }
    log::info!("stopped");
    Ok(())
}

/// Gives every writer the grace period to send its Restarting frame.
async fn wait_for_flush(server: &Server) {
    let _ = server;
    smol::Timer::after(SHUTDOWN_GRACE).await;
}

/// SIGHUP: reload the certificate from its source; connected clients are untouched.
fn reload_certificate(server: &Server) {
    let old_pin = server.resolver.pin();
    match cert::load(&server.config.cert_source())
        .and_then(|loaded| server.resolver.replace(loaded))
    {
        Ok(()) => {
            let new_pin = server.resolver.pin();
            if new_pin == old_pin {
                log::info!("SIGHUP: certificate reloaded (pin unchanged)");
            } else {
                log::warn!(
                    "SIGHUP: certificate reloaded; the pin changed to {new_pin}: update CertName in your DERP map"
                );
            }
        }
        Err(err) => log::error!("SIGHUP: certificate reload failed, keeping the old one: {err}"),
    }
}

/// One start-up line about the uplink limits, and upstream's rate-config line.
fn log_limits(server: &Server) {
    let limits = &server.config.limits;
    if limits.rate_config.is_some() || limits.client_rate.is_some() {
        log::info!("{}", limits::describe_client_rate(server.client_rate.get()));
    }
    let mut parts = Vec::new();
    if let Some(total) = limits.total_rate {
        parts.push(format!("total-rate={} bytes/sec", total.bytes_per_sec));
    }
    if let Some(max) = limits.max_clients {
        parts.push(format!("max-clients={max}"));
    }
    if let Some(accept) = limits.accept {
        parts.push(format!(
            "accept-rate={}.{:03}/sec burst {}",
            accept.millis_per_sec / crate::config::ACCEPT_TOKENS_PER_CONN,
            accept.millis_per_sec % crate::config::ACCEPT_TOKENS_PER_CONN,
            accept.burst
        ));
    }
    if !parts.is_empty() {
        log::info!("limits: {}", parts.join(", "));
    }
}

/// "actual (configured)" when they differ, e.g. an ephemeral port in tests.
fn describe(actual: &Option<SocketAddr>, configured: SocketAddr) -> String {
    match actual {
        Some(addr) if *addr != configured => format!("{addr} (configured {configured})"),
        Some(addr) => addr.to_string(),
        None => configured.to_string(),
    }
}
