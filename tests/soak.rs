//! Bounded soak: many clients churn (connect, exchange packets, leave, come back with a new
//! key) against the real binary on loopback while the server's RSS is sampled once a
//! second. A leak is judged by the trend: the least-squares slope of RSS over time across
//! the post-warm-up samples must stay at or below [`MAX_SLOPE_MIB_PER_MINUTE`].
//!
//! Why that bound: 2,000 clients living 5-30 s make about 6,600 connections a minute, so
//! 2 MiB/min is a leak of about 320 bytes per connection. Allocator arenas grow in steps
//! of a few MiB while the churn settles (a one-off step of height `h` in the middle of a
//! window of `T` minutes fits a slope of `1.5 h / T`): over the CI window of 2 minutes the
//! bound tolerates one 2.6 MiB step, and the recorded 10-minute run fits 0.2 MiB/min.
//! Writes `soak.csv` and `summary.txt` to the results dir; `scripts/soak.sh` draws the PNG
//! curve (samples and the fitted line) from them.
//!
//! Ignored by default (it needs minutes and thousands of fds); run it with
//! `scripts/soak.sh` (CI: 180 s; `--manual`: 600 s) or directly:
//! `SOAK_SECS=180 cargo test --release --test soak -- --ignored --nocapture`.
//!
//! Environment: `SOAK_SECS` (run time, default 180), `SOAK_CLIENTS` (concurrent clients,
//! default 2000), `SOAK_RAMP` (client starts per second, default 100), `SOAK_OUT`
//! (results dir, default `target/soak`).
// Test binaries run on the build host (only the server is emulated for routers), so
// 64-bit atomics are fine here; clippy.toml forbids them in code that ships.
#![allow(clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{procfs, TestServer};
use tinyderp::client::{Client, ServerMessage};
use tinyderp::proto::key::{PublicKey, SecretKey};

/// Highest allowed least-squares slope of RSS over the post-warm-up samples, MiB per
/// minute (see the module comment for why).
const MAX_SLOPE_MIB_PER_MINUTE: f64 = 2.0;
/// Fewest post-warm-up samples (one a second) a slope is judged on; a shorter run fails
/// instead of passing on too little data.
const MIN_SLOPE_SAMPLES: usize = 60;
/// Part of the run treated as warm-up (clients ramping up, pools growing), in percent.
const WARM_UP_PERCENT: u64 = 25;
/// Shortest and longest life of one client connection.
const MIN_LIFE: Duration = Duration::from_secs(5);
const MAX_LIFE: Duration = Duration::from_secs(30);
/// Pause between two packets of one client.
const SEND_INTERVAL: Duration = Duration::from_millis(1000);
/// Size of each packet.
const PACKET_SIZE: usize = 512;
/// Share of sent packets that must arrive (the rest went to keys that had just left).
const MIN_DELIVERED_PERCENT: u64 = 80;
/// Clients started per second while ramping up (each start is a TLS handshake and a box
/// exchange on both sides); `SOAK_RAMP` overrides it.
const DEFAULT_RAMP_PER_SECOND: u64 = 100;
/// Measuring starts this long after every client slot has lived out its first life
/// (the last slot starts at the end of the ramp and lives at most `MAX_LIFE`).
const SETTLE_AFTER_FIRST_LIVES: Duration = Duration::from_secs(10);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// VmRSS of the server in KiB (the server must be alive: a dead one fails the soak).
fn rss_kib(pid: u32) -> u64 {
    procfs::sample(pid)
        .expect("read /proc of the server")
        .rss_kib
}

/// Open file descriptors of the server.
fn open_fds(pid: u32) -> usize {
    procfs::open_fds(pid).expect("read /proc/PID/fd of the server")
}

/// Least-squares fit of `y = intercept + slope * x` over `points`; `None` for fewer than
/// two distinct `x`.
fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let sxy: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    if points.len() < 2 || sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((mean_y - slope * mean_x, slope))
}

#[test]
fn fit_line_recovers_a_known_slope() {
    let points: Vec<(f64, f64)> = (0..100)
        .map(|i| {
            (
                f64::from(i),
                5.0 + 0.5 * f64::from(i) + if i % 2 == 0 { 1.0 } else { -1.0 },
            )
        })
        .collect();
    let (intercept, slope) = fit_line(&points).expect("fit");
    assert!((slope - 0.5).abs() < 0.01, "{slope}");
    assert!((intercept - 5.0).abs() < 1.0, "{intercept}");
    // A step of h in the middle of the window fits a slope of about 1.5 h / T.
    let step: Vec<(f64, f64)> = (0..120)
        .map(|i| (f64::from(i), if i < 60 { 0.0 } else { 2.0 }))
        .collect();
    let (_, slope) = fit_line(&step).expect("fit");
    assert!((slope - 1.5 * 2.0 / 120.0).abs() < 0.001, "{slope}");
    assert_eq!(fit_line(&[(1.0, 1.0)]), None);
    assert_eq!(fit_line(&[(1.0, 1.0), (1.0, 2.0)]), None);
}

/// A small xorshift generator: the soak needs cheap, reproducible randomness per slot.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Counters shared by all client slots.
#[derive(Default)]
struct Tally {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

/// One client slot: connects, sends to random current keys, leaves after a random life,
/// and starts over with a fresh key until `stop`.
async fn run_slot(
    slot: usize,
    config: tinyderp::client::ClientConfig,
    keys: Arc<Mutex<Vec<Option<PublicKey>>>>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (slot as u64 + 1).wrapping_mul(0x2545_f491));
    let payload = vec![0x5au8; PACKET_SIZE];
    while !stop.load(Ordering::Relaxed) {
        let mut config = config.clone();
        config.secret = SecretKey::generate().expect("random key");
        let key = config.secret.public_key();
        let client = match Client::connect(&config).await {
            Ok(client) => client,
            Err(_) => {
                // Back off 1-3 s so failures on a saturated machine do not snowball.
                tally.connect_failures.fetch_add(1, Ordering::Relaxed);
                smol::Timer::after(Duration::from_millis(1000 + rng.below(2000))).await;
                continue;
            }
        };
        tally.connects.fetch_add(1, Ordering::Relaxed);
        keys.lock().expect("keys")[slot] = Some(key);
        let (mut reader, mut writer) = client.split();
        let reader_tally = tally.clone();
        let reading = smol::spawn(async move {
            while let Ok(message) = reader.recv().await {
                if matches!(message, ServerMessage::RecvPacket { .. }) {
                    reader_tally.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let life =
            MIN_LIFE + Duration::from_millis(rng.below((MAX_LIFE - MIN_LIFE).as_millis() as u64));
        let leave_at = Instant::now() + life;
        while Instant::now() < leave_at && !stop.load(Ordering::Relaxed) {
            let jitter = Duration::from_millis(rng.below(SEND_INTERVAL.as_millis() as u64));
            smol::Timer::after(SEND_INTERVAL / 2 + jitter).await;
            let target = {
                let keys = keys.lock().expect("keys");
                keys[rng.below(keys.len() as u64) as usize]
            };
            if let Some(target) = target {
                if writer.send_packet(&target, &payload).await.is_err() {
                    break;
                }
                tally.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        keys.lock().expect("keys")[slot] = None;
        let _ = writer.close().await;
        drop(writer);
        reading.cancel().await;
    }
}

#[test]
#[ignore = "minutes long; run with scripts/soak.sh"]
fn soak_rss_has_no_upward_trend() {
    let seconds = env_u64("SOAK_SECS", 180);
    let clients = env_u64("SOAK_CLIENTS", 2000) as usize;
    let ramp_per_second = env_u64("SOAK_RAMP", DEFAULT_RAMP_PER_SECOND).max(1);
    let out_dir = std::path::PathBuf::from(
        std::env::var("SOAK_OUT").unwrap_or_else(|_| "target/soak".to_string()),
    );
    std::fs::create_dir_all(&out_dir).expect("results dir");
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
        assert!(
            hard as usize > clients * 3,
            "fd limit {hard} too low for {clients} clients"
        );
    }
    let server = TestServer::start(&[]);
    let pid = server.pid();
    let config = server.client_config();

    let executor = Arc::new(smol::Executor::new());
    let stop = Arc::new(AtomicBool::new(false));
    let (stop_threads, threads_stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let executor = executor.clone();
            let stopped = threads_stopped.clone();
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();

    let keys = Arc::new(Mutex::new(vec![None; clients]));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(clients);
    let mut csv =
        String::from("seconds,rss_kib,server_fds,connects,connect_failures,sent,received\n");
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut next_sample = started;
    let mut launched = 0usize;
    while Instant::now() < end {
        // Ramp up: start clients at a bounded rate so the start is not one handshake storm.
        let due = ((started.elapsed().as_millis() as u64 * ramp_per_second) / 1000) as usize;
        while launched < clients.min(due + 1) {
            tasks.push(executor.spawn(run_slot(
                launched,
                config.clone(),
                keys.clone(),
                tally.clone(),
                stop.clone(),
            )));
            launched += 1;
        }
        if Instant::now() >= next_sample {
            let at = started.elapsed().as_secs();
            let rss = rss_kib(pid);
            samples.push((at, rss));
            csv.push_str(&format!(
                "{at},{rss},{},{},{},{},{}\n",
                open_fds(pid),
                tally.connects.load(Ordering::Relaxed),
                tally.connect_failures.load(Ordering::Relaxed),
                tally.sent.load(Ordering::Relaxed),
                tally.received.load(Ordering::Relaxed),
            ));
            next_sample += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    smol::block_on(async {
        for task in tasks {
            let _ = smol::future::FutureExt::or(
                async {
                    task.await;
                    true
                },
                async {
                    smol::Timer::after(Duration::from_secs(5)).await;
                    false
                },
            )
            .await;
        }
    });
    drop(stop_threads);
    for thread in threads {
        let _ = thread.join();
    }
    std::fs::write(out_dir.join("soak.csv"), &csv).expect("write csv");

    // Warm-up: a quarter of the run, and at least until every slot has lived out its
    // first life (the ramp, one longest life, a settling pause).
    let first_lives =
        clients as u64 / ramp_per_second + MAX_LIFE.as_secs() + SETTLE_AFTER_FIRST_LIVES.as_secs();
    let warm_up = (seconds * WARM_UP_PERCENT / 100).max(first_lives);
    let settled: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(at, _)| *at >= warm_up)
        .map(|(at, rss)| (*at as f64, *rss as f64))
        .collect();
    let fit = fit_line(&settled);
    // KiB per second to MiB per minute.
    let slope_mib_per_minute = fit.map(|(_, slope)| slope * 60.0 / 1024.0);
    let (low, high) = settled.iter().fold((u64::MAX, 0), |(low, high), (_, rss)| {
        (low.min(*rss as u64), high.max(*rss as u64))
    });
    let connects = tally.connects.load(Ordering::Relaxed);
    let sent = tally.sent.load(Ordering::Relaxed);
    let received = tally.received.load(Ordering::Relaxed);
    let (intercept, slope) = fit.unwrap_or((0.0, 0.0));
    let summary = format!(
        "seconds={seconds} clients={clients} connects={connects} connect_failures={} \
         sent={sent} received={received}\nwarm_up_s={warm_up} samples={} \
         min_kib={low} max_kib={high} fit_intercept_kib={intercept:.1} \
         fit_slope_kib_per_s={slope:.4} slope_mib_per_min={:.3} \
         max_slope_mib_per_min={MAX_SLOPE_MIB_PER_MINUTE}\n",
        tally.connect_failures.load(Ordering::Relaxed),
        settled.len(),
        slope_mib_per_minute.unwrap_or(f64::NAN),
    );
    let mut file = std::fs::File::create(out_dir.join("summary.txt")).expect("summary");
    file.write_all(summary.as_bytes()).expect("write summary");
    eprint!("{summary}");
    assert!(
        connects as usize >= clients,
        "not every client slot connected"
    );
    assert!(
        connects as usize > clients + clients / 10 || seconds < 2 * MAX_LIFE.as_secs(),
        "clients did not churn"
    );
    // Packets to a key that just left are dropped by design; everything else arrives.
    assert!(
        received > 0 && received * 100 >= sent * MIN_DELIVERED_PERCENT,
        "packets were lost: {sent} sent, {received} received"
    );
    assert!(
        settled.len() >= MIN_SLOPE_SAMPLES,
        "only {} samples after the {warm_up} s warm-up: a slope needs {MIN_SLOPE_SAMPLES} \
         (SOAK_SECS must be at least {})",
        settled.len(),
        warm_up + MIN_SLOPE_SAMPLES as u64
    );
    let slope = slope_mib_per_minute.expect("a line fits the samples");
    assert!(
        slope <= MAX_SLOPE_MIB_PER_MINUTE,
        "RSS grows {slope:.3} MiB/min after warm-up (bound {MAX_SLOPE_MIB_PER_MINUTE}): \
         a leak ({low}-{high} KiB)"
    );
}
