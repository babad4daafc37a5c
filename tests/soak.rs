//! Bounded soak: many clients churn (connect, exchange packets, leave, come back with a new
//! key) against the real binary on loopback while the server's RSS is sampled once a
//! second. After the warm-up, every sample must stay within 10 % of the plateau (the median
//! of the post-warm-up samples). Writes `soak.csv` and `summary.txt` to the results dir;
//! `scripts/soak.sh` draws the PNG curve from the CSV.
//!
//! Ignored by default (it needs minutes and thousands of fds); run it with
//! `scripts/soak.sh` (CI: 60 s; `--manual`: 600 s) or directly:
//! `SOAK_SECS=60 cargo test --release --test soak -- --ignored --nocapture`.
//!
//! Environment: `SOAK_SECS` (run time, default 60), `SOAK_CLIENTS` (concurrent clients,
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

use support::TestServer;
use tinyderp::client::{Client, ServerMessage};
use tinyderp::proto::key::{PublicKey, SecretKey};

/// Allowed distance of each post-warm-up RSS sample from the plateau, in percent.
const PLATEAU_TOLERANCE_PERCENT: u64 = 10;
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
/// Measuring starts this long after the last client slot was started.
const SETTLE_AFTER_RAMP: Duration = Duration::from_secs(10);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
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
fn soak_rss_stays_on_its_plateau() {
    let seconds = env_u64("SOAK_SECS", 60);
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

    // Warm-up: a quarter of the run, and at least until the ramp is over and settled.
    let ramp_end = clients as u64 / ramp_per_second + SETTLE_AFTER_RAMP.as_secs();
    let warm_up = (seconds * WARM_UP_PERCENT / 100).max(ramp_end);
    let mut settled: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= warm_up)
        .map(|(_, rss)| *rss)
        .collect();
    settled.sort_unstable();
    assert!(!settled.is_empty(), "no samples after warm-up");
    let plateau = settled[settled.len() / 2];
    let (low, high) = (settled[0], settled[settled.len() - 1]);
    let tolerance = plateau * PLATEAU_TOLERANCE_PERCENT / 100;
    let connects = tally.connects.load(Ordering::Relaxed);
    let sent = tally.sent.load(Ordering::Relaxed);
    let received = tally.received.load(Ordering::Relaxed);
    let summary = format!(
        "seconds={seconds} clients={clients} connects={connects} connect_failures={} \
         sent={sent} received={received}\nwarm_up_s={warm_up} plateau_kib={plateau} \
         min_kib={low} max_kib={high} tolerance_percent={PLATEAU_TOLERANCE_PERCENT}\n",
        tally.connect_failures.load(Ordering::Relaxed),
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
        plateau - low <= tolerance && high - plateau <= tolerance,
        "RSS left its plateau {plateau} KiB: min {low}, max {high}"
    );
}
