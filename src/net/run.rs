//! `run`: prepares everything that can fail before a socket is opened (key, certificate,
//! TLS, admission, limits), then owns the executor, the listeners and the signal loop from
//! start to graceful stop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smol::stream::StreamExt;

use crate::cert::{self, CertResolver};
use crate::config::Config;
use crate::relay::{Relay, RelayLimits};

use super::admission::Admission;
use super::error::RunError;
use super::hub::{close_handle, Hub, SharedHub};
use super::metrics::Telemetry;
use super::pacing::{self, Pacing};
use super::server::{Identity, Server, TlsState};
use super::task::spawn;
use super::{accept, listen, stun};

/// How long a graceful stop waits for writers to flush the Restarting frame.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// What the Restarting frame tells clients: try again after this long ...
const RESTART_RECONNECT_IN_MS: u32 = 2_000;
/// ... and keep trying for this long.
const RESTART_TRY_FOR_MS: u32 = 60_000;
/// Most executor threads we start, whatever the CPU count (routers have 1 to 4 cores).
const MAX_EXECUTOR_THREADS: usize = 4;

/// Reads the mesh key file: 64 hex digits, surrounding white space ignored.
fn read_mesh_key(path: &std::path::Path) -> Result<[u8; 32], RunError> {
    let text = std::fs::read_to_string(path).map_err(|err| RunError::MeshKeyRead {
        path: path.to_path_buf(),
        err,
    })?;
    crate::proto::key::parse_hex_32(text.trim()).ok_or_else(|| RunError::MeshKeyFormat {
        path: path.to_path_buf(),
    })
}

/// Loads (or generates) the certificate; in manual mode the leaf must be valid for the
/// hostname, as derper requires.
fn load_certificate(config: &Config) -> Result<cert::LoadedCert, RunError> {
    let source = config.cert_source();
    let loaded = super::cert_files::load(&source).map_err(RunError::Certificate)?;
    if let cert::CertSource::Manual { cert: path, .. } = &source {
        cert::check_valid_for(&loaded, &config.hostname, path).map_err(RunError::Certificate)?;
    }
    Ok(loaded)
}

/// Prepares everything that can fail before any socket is opened: key, certificate, TLS.
pub(crate) fn prepare(config: Config) -> Result<Arc<Server>, RunError> {
    let key = super::statefile::load_or_create(&config.server_key).map_err(RunError::ServerKey)?;
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
        Some(cert::meta_cert(&public).map_err(RunError::Certificate)?)
    } else {
        None
    };
    let resolver = CertResolver::new(loaded, meta).map_err(RunError::Certificate)?;
    let tls = cert::server_config(resolver.clone()).map_err(RunError::Certificate)?;
    let relay = Relay::new(public, RelayLimits::default());
    let admission = Admission::new(&config.admit).map_err(RunError::Admission)?;
    let pacing = Pacing::new(&config.limits).map_err(RunError::RateConfig)?;
    let config_mesh_peers = config.mesh_peers.clone();
    Ok(Arc::new(Server {
        config,
        identity: Identity {
            secret,
            public,
            mesh_key,
        },
        tls: TlsState {
            config: tls,
            resolver,
        },
        hub: SharedHub::new(relay),
        telemetry: Telemetry::new(),
        pacing,
        admission,
        stopping: AtomicBool::new(false),
        mesh: super::mesh_status::MeshPeers::new(&config_mesh_peers),
    }))
}

/// How many CPUs this process may run on (its affinity mask; 1 when unknown). Not
/// `std::thread::available_parallelism`, whose cgroup quota reader costs flash and has
/// nothing to read on a router.
fn cpus_allowed() -> usize {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return 1;
    };
    (0..nix::sched::CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .count()
}

/// Runs the server until SIGTERM or SIGINT: binds every listener, serves, and on a stop
/// signal sends Restarting to every client, stops accepting and returns.
pub fn run(config: Config) -> Result<(), RunError> {
    listen::raise_fd_limit();
    let server = prepare(config)?;
    let ex = Arc::new(smol::Executor::new());
    let threads = cpus_allowed().clamp(1, MAX_EXECUTOR_THREADS);
    let (stop_threads, threads_stopped) = smol::channel::unbounded::<()>();
    let mut workers = Vec::new();
    for index in 1..threads {
        let ex = ex.clone();
        let stopped = threads_stopped.clone();
        let worker = std::thread::Builder::new()
            .name(format!("tinyderp-{index}"))
            .spawn(move || smol::block_on(ex.run(stopped.recv())))
            .map_err(RunError::WorkerThread)?;
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
    .map_err(RunError::Signals)?;

    let derp_listener = listen::bind_tcp(server.config.listen)?;
    let mut owned_tasks = Vec::new();
    if let Some(addr) = server.config.stun {
        let socket = listen::bind_udp(addr)?;
        log::info!(
            "STUN listening on udp {}",
            describe(&socket.local_addr().ok(), addr)
        );
        let stun_server = server.clone();
        owned_tasks.push(spawn(&ex, async move {
            stun::serve(&stun_server.telemetry, socket).await;
        }));
    }
    if let Some(addr) = server.config.http {
        let listener = listen::bind_tcp(addr)?;
        log::info!(
            "plain HTTP listening on {}",
            describe(&listener.local_addr().ok(), addr)
        );
        owned_tasks.push(spawn(
            &ex,
            accept::accept_loop(server.clone(), listener, ex.clone(), false),
        ));
    }
    let derp_addr = derp_listener.local_addr().ok();
    log::info!(
        "DERP (TLS) listening on {}; server key {}",
        describe(&derp_addr, server.config.listen),
        server.identity.public
    );
    log::info!("certificate pin {}", server.tls.resolver.pin());
    log::info!("{}", server.config.admit.describe());
    log_limits(&server);
    log::info!(
        "paste one of these into your DERP map:\n{}",
        server.derp_map_text()
    );
    match super::status_socket::bind(&server.config.state_dir) {
        Ok(listener) => owned_tasks.push(spawn(
            &ex,
            super::status_socket::serve(server.clone(), listener),
        )),
        // Only `tinyderp status` (and LuCI) need it; the relay serves on without.
        Err(err) => log::warn!(
            "cannot create the status socket {}: {err}; `tinyderp status` will not work",
            super::status_socket::socket_path(&server.config.state_dir).display()
        ),
    }
    owned_tasks.push(spawn(&ex, super::check_watch::watch(server.config.clone())));
    owned_tasks.extend(super::mesh::start(&server, &ex));
    #[cfg(feature = "port-mapping")]
    if server.config.port_mapping {
        owned_tasks.push(spawn(&ex, super::portmap::maintain(server.config.clone())));
    }
    owned_tasks.push(spawn(
        &ex,
        accept::accept_loop(server.clone(), derp_listener, ex.clone(), true),
    ));

    let mut signals = signals;
    while let Some(signal) = signals.next().await {
        match signal {
            Ok(async_signal::Signal::Hup) => {
                reload_certificate(&server);
                if let Some(path) = &server.config.limits.rate_config {
                    pacing::reload_rate_config(&server.pacing, path);
                }
            }
            Ok(async_signal::Signal::Term) | Ok(async_signal::Signal::Int) => break,
            Ok(_) => {}
            Err(err) => log::warn!("signal handling error: {err}"),
        }
    }
    log::info!("stopping: telling clients to reconnect later");
    server.stopping.store(true, Ordering::SeqCst);
    drop(owned_tasks); // stops accepting (listeners close), STUN and port-mapping renewal
    #[cfg(feature = "port-mapping")]
    super::portmap::release(&server.config).await;
    {
        let mut hub = server.hub.lock();
        let Hub { relay, actions, .. } = &mut *hub;
        relay.broadcast_restarting(RESTART_RECONNECT_IN_MS, RESTART_TRY_FOR_MS, actions);
        hub.apply_actions();
    }
    wait_for_flush(&server).await;
    let hub = server.hub.lock();
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
    let old_pin = server.tls.resolver.pin();
    match super::cert_files::load(&server.config.cert_source())
        .and_then(|loaded| server.tls.resolver.replace(loaded))
    {
        Ok(()) => {
            let new_pin = server.tls.resolver.pin();
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
        log::info!(
            "{}",
            pacing::describe_client_rate(server.pacing.client_rate.get())
        );
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

#[cfg(test)]
mod tests {
    /// The affinity count agrees with the kernel's own list in /proc/self/status
    /// (`Cpus_allowed_list: 0-3,6`), and narrows when the mask does.
    #[test]
    fn cpus_allowed_counts_the_affinity_mask() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        let mut want = 0;
        for part in list.split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            want += hi.parse::<usize>().unwrap() - lo.parse::<usize>().unwrap() + 1;
        }
        assert_eq!(super::cpus_allowed(), want);
        // On a thread pinned to one CPU the count is 1.
        std::thread::spawn(|| {
            let mut one = nix::sched::CpuSet::new();
            let first = (0..nix::sched::CpuSet::count())
                .find(|&cpu| {
                    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
                        .unwrap()
                        .is_set(cpu)
                        .unwrap()
                })
                .unwrap();
            one.set(first).unwrap();
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one).unwrap();
            assert_eq!(super::cpus_allowed(), 1);
        })
        .join()
        .unwrap();
    }
}
