//! The load scenarios: many logged-in DERP clients against one server, driven by
//! [`tinyderp::client`] exactly as a Tailscale client would talk to it.
//!
//! Everything but the latency probe runs on one thread (a local executor), so the tool
//! can be pinned to one core; the probe has its own thread so its echo is not queued
//! behind the bulk traffic inside the tool.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::lock::Semaphore;
use smol::LocalExecutor;
use tinyderp::client::{Client, ClientConfig, ClientReader, ClientWriter, TlsVerify};
use tinyderp::proto::frame::FrameType;
use tinyderp::proto::key::{PublicKey, SecretKey, KEY_LEN};

use crate::procfs::{self, ProcSample};
use crate::stats::{Latencies, LatencySummary};

/// Size of the latency probe's packets (as in the published derper comparisons).
pub const PROBE_PACKET_LEN: usize = 64;
/// Longest wait for in-flight packets after the senders stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// The drain ends early once nothing arrived for this long.
pub const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// How often the progress line is printed.
pub const PROGRESS_PERIOD: Duration = Duration::from_secs(1);
/// A paced sender that falls further behind than this many packets skips them instead of
/// bursting (they are counted in `skipped`, not `sent`).
pub const MAX_PACING_BACKLOG: u64 = 64;
/// Each connect (TCP + TLS + upgrade + login) must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and which process to sample.
#[derive(Clone, Debug)]
pub struct Target {
    /// Server TCP address.
    pub addr: SocketAddr,
    /// TLS name; empty uses the IP (no SNI).
    pub server_name: String,
    /// Server process to sample from /proc, if known.
    pub pid: Option<u32>,
    /// TLS cipher suites to offer (empty: all).
    pub suites: Vec<rustls::CipherSuite>,
}

impl Target {
    fn config(&self, secret: SecretKey) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.addr, secret);
        cfg.server_name = self.server_name.clone();
        cfg.verify = TlsVerify::Insecure;
        cfg.timeout = CONNECT_TIMEOUT;
        cfg.tls_suites = self.suites.clone();
        cfg
    }

    fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(|pid| procfs::sample(pid).ok())
    }
}

fn fresh_keys(count: usize) -> io::Result<Vec<SecretKey>> {
    (0..count)
        .map(|_| SecretKey::generate().map_err(|err| io::Error::other(err.to_string())))
        .collect()
}

/// Result of logging in a batch of clients.
struct Connected {
    clients: Vec<Client>,
    failures: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

/// Logs in one client per key, at most `concurrency` handshakes in flight.
async fn connect_many(
    ex: &LocalExecutor<'_>,
    target: &Target,
    keys: Vec<SecretKey>,
    concurrency: usize,
) -> Connected {
    let start = Instant::now();
    let gate = Rc::new(Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let cfg = target.config(key);
            let gate = gate.clone();
            ex.spawn(async move {
                let _permit = gate.acquire().await;
                Client::connect(&cfg).await
            })
        })
        .collect();
    let mut out = Connected {
        clients: Vec::with_capacity(tasks.len()),
        failures: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok(client) => out.clients.push(client),
            Err(err) => {
                out.failures += 1;
                out.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}

fn rate(count: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count / secs
    } else {
        0.0
    }
}

/// Reads frames forever, answering server pings, so an idle or sending client keeps its
/// receive side drained. Returns when the connection ends.
async fn drain_frames(mut reader: ClientReader, mut writer: Option<ClientWriter>) {
    while let Ok((frame_type, payload)) = reader.recv_frame().await {
        if frame_type == FrameType::Ping as u8 {
            if let (Some(w), Ok(data)) = (writer.as_mut(), <[u8; 8]>::try_from(payload)) {
                if w.pong(data).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Options of [`run_relay`].
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// Sender/receiver pairs carrying bulk packets (0: latency probe only).
    pub pairs: usize,
    /// Bulk packet size in bytes.
    pub size: usize,
    /// Packets per second per pair; 0 sends as fast as the connection takes them.
    pub rate_pps: f64,
    /// Most packets in flight per pair (0: no window). With a window nothing is dropped.
    pub window: usize,
    /// Seconds of traffic before measuring.
    pub warmup: Duration,
    /// Length of the measured window (upper bound when `packets` is set).
    pub duration: Duration,
    /// Packets per pair, then stop (0: run for `duration`).
    pub packets: u64,
    /// Probe packets per second (0: no latency probe).
    pub probe_rate: f64,
    /// Concurrent handshakes while connecting.
    pub concurrency: usize,
    /// Print a progress line every second.
    pub progress: bool,
}

/// What a relay run measured.
#[derive(Debug, serde::Serialize)]
pub struct RelayReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Bulk pairs.
    pub pairs: usize,
    /// Bulk packet size.
    pub size: usize,
    /// Clients that logged in (bulk pairs; the probe's two are separate).
    pub clients_logged_in: usize,
    /// Clients that failed to log in.
    pub login_failures: usize,
    /// First login error, if any.
    pub first_error: Option<String>,
    /// Logins per second while connecting the bulk clients.
    pub handshakes_per_sec: f64,
    /// The TLS cipher suite the server chose for the first bulk client (none: plaintext).
    pub tls_suite: Option<String>,
    /// Length of the measured window, seconds.
    pub window_seconds: f64,
    /// Payload bits delivered per second in the window, in Mbit/s.
    pub relayed_mbps: f64,
    /// Packets delivered per second in the window.
    pub relayed_pps: f64,
    /// Packets sent over the whole run.
    pub sent_packets: u64,
    /// Packets received over the whole run (after the drain).
    pub received_packets: u64,
    /// Paced packets skipped because a sender fell behind.
    pub skipped_packets: u64,
    /// 1 - received/sent over the whole run.
    pub loss: f64,
    /// Server CPU seconds in the window.
    pub server_cpu_seconds: f64,
    /// Server CPU use in the window, 1.0 = one core busy.
    pub server_cpu_cores: f64,
    /// Relayed Mbit/s per server core: `relayed_mbps / server_cpu_cores`.
    pub mbps_per_server_core: f64,
    /// Server resident set at the end of the window, KiB.
    pub server_rss_kib: u64,
    /// Server peak resident set, KiB.
    pub server_hwm_kib: u64,
    /// Probe round trips (two relay traversals) in the window.
    pub latency: Option<LatencySummary>,
    /// Probe packets sent / echoed back in the window.
    pub probe_sent: u64,
    /// Probe packets that came back in the window.
    pub probe_received: u64,
}

#[derive(Default)]
struct BulkCounters {
    sent: Cell<u64>,
    skipped: Cell<u64>,
    received: Cell<u64>,
    received_bytes: Cell<u64>,
}

#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    received: u64,
    received_bytes: u64,
    server: Option<ProcSample>,
}

impl BulkCounters {
    fn snapshot(&self, target: &Target) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            received: self.received.get(),
            received_bytes: self.received_bytes.get(),
            server: target.sample(),
        }
    }
}

const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

/// Runs bulk pairs (and the latency probe) against the server and measures.
pub fn run_relay(target: &Target, opts: &RelayOptions) -> io::Result<RelayReport> {
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let probe = if opts.probe_rate > 0.0 {
        let (target, phase, rate) = (target.clone(), phase.clone(), opts.probe_rate);
        Some(std::thread::spawn(move || run_probe(&target, rate, &phase)))
    } else {
        None
    };
    let ex = LocalExecutor::new();
    let bulk = smol::block_on(ex.run(run_bulk(&ex, target, opts, &phase)));
    phase.store(PHASE_STOP, Ordering::SeqCst);
    let mut report = bulk?;
    if let Some(handle) = probe {
        let probe = handle
            .join()
            .map_err(|_| io::Error::other("latency probe thread panicked"))??;
        report.latency = Some(probe.latencies.summary());
        report.probe_sent = probe.sent;
        report.probe_received = probe.received;
    }
    Ok(report)
}

async fn run_bulk(
    ex: &LocalExecutor<'_>,
    target: &Target,
    opts: &RelayOptions,
    phase: &AtomicU8,
) -> io::Result<RelayReport> {
    let keys = fresh_keys(opts.pairs * 2)?;
    let publics: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let connected = connect_many(ex, target, keys, opts.concurrency).await;
    let login_failures = connected.failures;
    let handshakes_per_sec = rate(connected.clients.len() as f64, connected.elapsed);
    let clients_logged_in = connected.clients.len();
    let tls_suite = connected
        .clients
        .first()
        .and_then(Client::tls_suite)
        .and_then(|suite| suite.as_str())
        .map(String::from);
    if login_failures > 0 {
        eprintln!(
            "derp-load: {login_failures} of {} logins failed: {}",
            opts.pairs * 2,
            connected.first_error.as_deref().unwrap_or("?")
        );
    }
    let counters = Rc::new(BulkCounters::default());
    let stop = Rc::new(Cell::new(false));
    let mut senders = Vec::new();
    let mut clients = connected.clients.into_iter();
    let mut pair_index = 0usize;
    while let (Some(sender), Some(receiver)) = (clients.next(), clients.next()) {
        let dst = publics
            .get(pair_index * 2 + 1)
            .copied()
            .unwrap_or(PublicKey::ZERO);
        pair_index += 1;
        let credits = (opts.window > 0).then(|| smol::channel::bounded::<()>(opts.window));
        if let Some((tx, _)) = &credits {
            for _ in 0..opts.window {
                let _ = tx.try_send(());
            }
        }
        let (rx_reader, rx_writer) = receiver.split();
        let credit_return = credits.as_ref().map(|(tx, _)| tx.clone());
        ex.spawn(receive_bulk(
            rx_reader,
            rx_writer,
            counters.clone(),
            credit_return,
        ))
        .detach();
        let (tx_reader, tx_writer) = sender.split();
        ex.spawn(drain_frames(tx_reader, None)).detach();
        let plan = SendPlan {
            dst,
            size: opts.size,
            rate_pps: opts.rate_pps,
            packets: opts.packets,
            credits: credits.map(|(_, rx)| rx),
        };
        senders.push(ex.spawn(send_bulk(tx_writer, plan, counters.clone(), stop.clone())));
    }
    let pairs_running = senders.len();

    // Warmup, then the measured window, with a progress line each second.
    let run_start = Instant::now();
    let mut last = counters.snapshot(target);
    let mut begin: Option<Snapshot> = opts.warmup.is_zero().then_some(last);
    if begin.is_some() {
        phase.store(PHASE_MEASURE, Ordering::SeqCst);
    }
    let wanted_total = opts.packets.saturating_mul(pairs_running as u64);
    loop {
        let measured_for = begin.map(|b| b.at.elapsed()).unwrap_or_default();
        if begin.is_some() && measured_for >= opts.duration {
            break;
        }
        if opts.packets > 0 && counters.received.get() >= wanted_total {
            break;
        }
        let step = match begin {
            Some(_) => PROGRESS_PERIOD.min(opts.duration.saturating_sub(measured_for)),
            None => PROGRESS_PERIOD.min(opts.warmup.saturating_sub(run_start.elapsed())),
        };
        let step = if opts.packets > 0 {
            step.min(Duration::from_millis(20))
        } else {
            step
        };
        smol::Timer::after(step.max(Duration::from_millis(1))).await;
        let now = counters.snapshot(target);
        if opts.progress && now.at.duration_since(last.at) >= PROGRESS_PERIOD {
            print_progress(run_start, &last, &now, &counters, begin.is_some());
            last = now;
        }
        if begin.is_none() && run_start.elapsed() >= opts.warmup {
            begin = Some(now);
            phase.store(PHASE_MEASURE, Ordering::SeqCst);
        }
    }
    let end = counters.snapshot(target);
    let begin = begin.unwrap_or(end);
    phase.store(PHASE_STOP, Ordering::SeqCst);
    stop.set(true);
    for sender in senders {
        sender.await;
    }
    // Let what is in flight arrive before counting loss.
    let drain_start = Instant::now();
    let mut seen = counters.received.get();
    let mut quiet_since = Instant::now();
    while drain_start.elapsed() < DRAIN_TIMEOUT && counters.received.get() < counters.sent.get() {
        smol::Timer::after(Duration::from_millis(20)).await;
        if counters.received.get() != seen {
            seen = counters.received.get();
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= DRAIN_QUIET {
            break;
        }
    }

    let window = end.at.duration_since(begin.at);
    let bytes = end.received_bytes.saturating_sub(begin.received_bytes);
    let packets = end.received.saturating_sub(begin.received);
    let relayed_mbps = rate(bytes as f64 * 8.0, window) / 1e6;
    let (server_cpu_seconds, server_rss_kib, server_hwm_kib) = match (begin.server, end.server) {
        (Some(b), Some(e)) => (e.cpu_seconds_since(&b), e.rss_kib, e.hwm_kib),
        _ => (0.0, 0, 0),
    };
    let server_cpu_cores = rate(server_cpu_seconds, window);
    let sent = counters.sent.get();
    let received = counters.received.get();
    Ok(RelayReport {
        scenario: "relay",
        pairs: opts.pairs,
        size: opts.size,
        clients_logged_in,
        tls_suite,
        login_failures,
        first_error: connected.first_error,
        handshakes_per_sec,
        window_seconds: window.as_secs_f64(),
        relayed_mbps,
        relayed_pps: rate(packets as f64, window),
        sent_packets: sent,
        received_packets: received,
        skipped_packets: counters.skipped.get(),
        loss: if sent > 0 {
            1.0 - (received.min(sent) as f64 / sent as f64)
        } else {
            0.0
        },
        server_cpu_seconds,
        server_cpu_cores,
        mbps_per_server_core: if server_cpu_cores > 0.0 {
            relayed_mbps / server_cpu_cores
        } else {
            0.0
        },
        server_rss_kib,
        server_hwm_kib,
        latency: None,
        probe_sent: 0,
        probe_received: 0,
    })
}

fn print_progress(
    run_start: Instant,
    last: &Snapshot,
    now: &Snapshot,
    counters: &BulkCounters,
    measuring: bool,
) {
    let span = now.at.duration_since(last.at);
    let mbps = rate(
        now.received_bytes.saturating_sub(last.received_bytes) as f64 * 8.0,
        span,
    ) / 1e6;
    let pps = rate(now.received.saturating_sub(last.received) as f64, span);
    let cpu = match (last.server, now.server) {
        (Some(a), Some(b)) => format!(
            " server cpu {:.0}% rss {} KiB",
            rate(b.cpu_seconds_since(&a), span) * 100.0,
            b.rss_kib
        ),
        _ => String::new(),
    };
    let sent = counters.sent.get();
    let lost = sent.saturating_sub(counters.received.get());
    eprintln!(
        "[{:5.1}s {}] {mbps:8.1} Mbit/s {pps:9.0} pkt/s  sent {sent} in-flight/lost {lost}{cpu}",
        run_start.elapsed().as_secs_f64(),
        if measuring { "measure" } else { "warmup " },
    );
}

struct SendPlan {
    dst: PublicKey,
    size: usize,
    rate_pps: f64,
    packets: u64,
    credits: Option<smol::channel::Receiver<()>>,
}

async fn send_bulk(
    mut writer: ClientWriter,
    plan: SendPlan,
    counters: Rc<BulkCounters>,
    stop: Rc<Cell<bool>>,
) {
    let mut packet = vec![0u8; plan.size];
    let start = Instant::now();
    let mut sent_here: u64 = 0;
    let mut slot: u64 = 0;
    while !stop.get() && (plan.packets == 0 || sent_here < plan.packets) {
        if plan.rate_pps > 0.0 {
            let due = (start.elapsed().as_secs_f64() * plan.rate_pps) as u64;
            if due < slot {
                let at = start + Duration::from_secs_f64(slot as f64 / plan.rate_pps);
                smol::Timer::at(at).await;
                continue;
            }
            if due.saturating_sub(slot) > MAX_PACING_BACKLOG {
                let skipped = due - slot - MAX_PACING_BACKLOG;
                counters
                    .skipped
                    .set(counters.skipped.get().saturating_add(skipped));
                slot += skipped;
            }
            slot += 1;
        }
        if let Some(credits) = &plan.credits {
            if credits.recv().await.is_err() {
                return;
            }
        }
        if let Some(head) = packet.get_mut(..8) {
            head.copy_from_slice(&sent_here.to_be_bytes());
        }
        if writer.send_packet(&plan.dst, &packet).await.is_err() {
            return;
        }
        sent_here += 1;
        counters.sent.set(counters.sent.get() + 1);
        // A socket that always takes more data never makes the task wait. A zero timer
        // goes through the reactor, so the receivers' socket events on this thread are
        // polled too (a plain yield only reschedules the task and starves them).
        if plan.credits.is_none() {
            smol::Timer::after(Duration::ZERO).await;
        }
    }
}

async fn receive_bulk(
    mut reader: ClientReader,
    mut writer: ClientWriter,
    counters: Rc<BulkCounters>,
    credits: Option<smol::channel::Sender<()>>,
) {
    while let Ok((frame_type, payload)) = reader.recv_frame().await {
        if frame_type == FrameType::RecvPacket as u8 {
            let data_len = payload.len().saturating_sub(KEY_LEN) as u64;
            counters.received.set(counters.received.get() + 1);
            counters
                .received_bytes
                .set(counters.received_bytes.get() + data_len);
            if let Some(tx) = &credits {
                let _ = tx.try_send(());
            }
        } else if frame_type == FrameType::Ping as u8 {
            if let Ok(data) = <[u8; 8]>::try_from(payload) {
                if writer.pong(data).await.is_err() {
                    return;
                }
            }
        }
    }
}

struct ProbeResult {
    latencies: Latencies,
    sent: u64,
    received: u64,
}

/// Ping/echo through the relay: A sends a timestamped packet to B, B sends it back.
fn run_probe(target: &Target, rate_pps: f64, phase: &AtomicU8) -> io::Result<ProbeResult> {
    smol::block_on(async {
        let keys = fresh_keys(2)?;
        let a_key = keys
            .first()
            .map(SecretKey::public_key)
            .unwrap_or(PublicKey::ZERO);
        let b_key = keys
            .get(1)
            .map(SecretKey::public_key)
            .unwrap_or(PublicKey::ZERO);
        let mut clients = Vec::new();
        for key in keys {
            clients.push(Client::connect(&target.config(key)).await?);
        }
        let (Some(b), Some(a)) = (clients.pop(), clients.pop()) else {
            return Err(io::Error::other("probe clients missing"));
        };
        let (mut a_reader, mut a_writer) = a.split();
        let (mut b_reader, mut b_writer) = b.split();
        let origin = Instant::now();
        let sent = Cell::new(0u64);
        let received = Cell::new(0u64);
        let latencies = std::cell::RefCell::new(Latencies::default());

        let echo = async {
            while let Ok((frame_type, payload)) = b_reader.recv_frame().await {
                if frame_type == FrameType::RecvPacket as u8 {
                    let data = payload.get(KEY_LEN..).unwrap_or(&[]);
                    if b_writer.send_packet(&a_key, data).await.is_err() {
                        break;
                    }
                }
            }
        };
        let collect = async {
            while let Ok((frame_type, payload)) = a_reader.recv_frame().await {
                if frame_type != FrameType::RecvPacket as u8 {
                    continue;
                }
                let stamp = payload
                    .get(KEY_LEN + 8..KEY_LEN + 16)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes);
                let measuring = payload.get(KEY_LEN) == Some(&1);
                if let (Some(stamp), true) = (stamp, measuring) {
                    let now = origin.elapsed().as_nanos() as u64;
                    received.set(received.get() + 1);
                    latencies.borrow_mut().push(now.saturating_sub(stamp));
                }
            }
        };
        let send = async {
            let period = Duration::from_secs_f64(1.0 / rate_pps);
            let mut packet = [0u8; PROBE_PACKET_LEN];
            let mut next = Instant::now();
            loop {
                let current = phase.load(Ordering::SeqCst);
                if current == PHASE_STOP {
                    break;
                }
                next += period;
                smol::Timer::at(next).await;
                // Byte 0 marks probes sent inside the measured window.
                packet[0] = u8::from(current == PHASE_MEASURE);
                let stamp = origin.elapsed().as_nanos() as u64;
                packet[8..16].copy_from_slice(&stamp.to_be_bytes());
                if a_writer.send_packet(&b_key, &packet).await.is_err() {
                    break;
                }
                if current == PHASE_MEASURE {
                    sent.set(sent.get() + 1);
                }
            }
            // Give the last probes time to come back.
            smol::Timer::after(Duration::from_millis(200)).await;
        };
        smol::future::or(send, smol::future::or(echo, collect)).await;
        Ok(ProbeResult {
            latencies: latencies.into_inner(),
            sent: sent.get(),
            received: received.get(),
        })
    })
}

/// Options of [`run_idle`].
#[derive(Clone, Debug)]
pub struct IdleOptions {
    /// Total connected clients after each step, ascending.
    pub steps: Vec<usize>,
    /// Wait after each step before sampling the server.
    pub settle: Duration,
    /// Concurrent handshakes while connecting.
    pub concurrency: usize,
}

/// One step of an idle run.
#[derive(Debug, serde::Serialize)]
pub struct IdleStep {
    /// Clients connected and logged in at this point.
    pub clients: usize,
    /// Logins that failed during this step.
    pub failures: usize,
    /// Logins per second during this step.
    pub handshakes_per_sec: f64,
    /// Server after settling.
    pub server: Option<ProcSample>,
}

/// What an idle run measured.
#[derive(Debug, serde::Serialize)]
pub struct IdleReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Server before any client.
    pub baseline: Option<ProcSample>,
    /// Server after each step.
    pub steps: Vec<IdleStep>,
    /// First login error, if any.
    pub first_error: Option<String>,
    /// Least-squares slope of RSS over clients across the steps, KiB per client.
    pub rss_kib_per_client: f64,
}

/// Connects idle clients in steps and samples the server's memory after each.
pub fn run_idle(target: &Target, opts: &IdleOptions) -> io::Result<IdleReport> {
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(async {
        let baseline = target.sample();
        let mut steps = Vec::new();
        let mut total = 0usize;
        let mut first_error = None;
        for &goal in &opts.steps {
            let adding = goal.saturating_sub(total);
            let connected = connect_many(&ex, target, fresh_keys(adding)?, opts.concurrency).await;
            if first_error.is_none() {
                first_error = connected.first_error.clone();
            }
            let handshakes_per_sec = rate(connected.clients.len() as f64, connected.elapsed);
            total += connected.clients.len();
            for client in connected.clients {
                let (reader, writer) = client.split();
                ex.spawn(drain_frames(reader, Some(writer))).detach();
            }
            smol::Timer::after(opts.settle).await;
            let server = target.sample();
            eprintln!(
                "[idle] {total} clients ({} failed) {handshakes_per_sec:.0} logins/s server rss {} KiB",
                connected.failures,
                server.map(|s| s.rss_kib).unwrap_or(0)
            );
            steps.push(IdleStep {
                clients: total,
                failures: connected.failures,
                handshakes_per_sec,
                server,
            });
        }
        let points: Vec<(f64, f64)> = steps
            .iter()
            .filter_map(|s| s.server.map(|p| (s.clients as f64, p.rss_kib as f64)))
            .collect();
        Ok(IdleReport {
            scenario: "idle",
            baseline,
            rss_kib_per_client: slope(&points),
            steps,
            first_error,
        })
    }))
}

/// Least-squares slope of y over x; 0 with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// What a handshake run measured.
#[derive(Debug, serde::Serialize)]
pub struct HandshakeReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Clients that logged in (then closed).
    pub logged_in: usize,
    /// Clients that failed.
    pub failures: usize,
    /// First error, if any.
    pub first_error: Option<String>,
    /// Logins per second.
    pub handshakes_per_sec: f64,
    /// Server CPU seconds spent over the run.
    pub server_cpu_seconds: f64,
}

/// Logs in `count` clients, `concurrency` at a time, closing each after login.
pub fn run_handshakes(
    target: &Target,
    count: usize,
    concurrency: usize,
) -> io::Result<HandshakeReport> {
    let ex = LocalExecutor::new();
    smol::block_on(ex.run(async {
        let before = target.sample();
        let start = Instant::now();
        let gate = Rc::new(Semaphore::new(concurrency.max(1)));
        let tasks: Vec<_> = fresh_keys(count)?
            .into_iter()
            .map(|key| {
                let cfg = target.config(key);
                let gate = gate.clone();
                ex.spawn(async move {
                    let _permit = gate.acquire().await;
                    let client = Client::connect(&cfg).await?;
                    client.close().await
                })
            })
            .collect();
        let mut logged_in = 0;
        let mut failures = 0;
        let mut first_error = None;
        for task in tasks {
            match task.await {
                Ok(()) => logged_in += 1,
                Err(err) => {
                    failures += 1;
                    first_error.get_or_insert_with(|| err.to_string());
                }
            }
        }
        let elapsed = start.elapsed();
        let after = target.sample();
        Ok(HandshakeReport {
            scenario: "handshakes",
            logged_in,
            failures,
            first_error,
            handshakes_per_sec: rate(logged_in as f64, elapsed),
            server_cpu_seconds: match (before, after) {
                (Some(b), Some(a)) => a.cpu_seconds_since(&b),
                _ => 0.0,
            },
        })
    }))
}

/// Tries to log in until it works or `timeout` passes (server start-up check).
pub fn wait_ready(target: &Target, timeout: Duration) -> io::Result<Duration> {
    smol::block_on(async {
        let start = Instant::now();
        loop {
            let mut cfg = target.config(fresh_keys(1)?.pop().unwrap_or_else(zero_key));
            cfg.timeout = Duration::from_secs(2);
            match Client::connect(&cfg).await {
                Ok(client) => {
                    let _ = client.close().await;
                    return Ok(start.elapsed());
                }
                Err(err) if start.elapsed() >= timeout => return Err(err),
                Err(_) => smol::Timer::after(Duration::from_millis(100)).await,
            };
        }
    })
}

fn zero_key() -> SecretKey {
    SecretKey::from_bytes([1; KEY_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let points = [(1000.0, 3000.0), (2000.0, 4000.0), (3000.0, 5000.0)];
        assert!((slope(&points) - 1.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 5.0)]), 0.0);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(10.0, Duration::from_secs(2)), 5.0);
        assert_eq!(rate(10.0, Duration::ZERO), 0.0);
    }
}
