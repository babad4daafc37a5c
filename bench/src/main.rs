//! derp-load: a load tool for any DERP server (tinyderp or upstream derper), built as
//! its own binary so the router binary never carries it. Each subcommand prints a
//! progress line on stderr while it runs and one JSON result line on stdout for scripts.

mod load;
#[path = "../../tests/support/procfs.rs"]
mod procfs;
mod stats;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;

use load::{IdleOptions, RelayOptions, Target};

/// Load tool for DERP servers: relayed throughput, latency, idle clients, logins.
#[derive(FromArgs)]
struct Args {
    /// server TCP address, e.g. 127.0.0.1:8443
    #[argh(option)]
    addr: SocketAddr,
    /// TLS server name; empty (default) sends no SNI and uses the address's IP
    #[argh(option, default = "String::new()")]
    server_name: String,
    /// server process id, sampled from /proc for CPU time and memory
    #[argh(option)]
    pid: Option<u32>,
    /// offer only this TLS cipher suite: aes128, aes256 or chacha (default: offer all,
    /// the server picks)
    #[argh(option)]
    suite: Option<String>,
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Relay(RelayArgs),
    Idle(IdleArgs),
    Handshakes(HandshakeArgs),
    Wait(WaitArgs),
}

/// Relay packets between client pairs and measure throughput, loss and latency.
#[derive(FromArgs)]
#[argh(subcommand, name = "relay")]
struct RelayArgs {
    /// sender/receiver pairs (0: latency probe only)
    #[argh(option, default = "10")]
    pairs: usize,
    /// packet size in bytes (8..=65536)
    #[argh(option, default = "1400")]
    size: usize,
    /// packets per second per pair; 0 (default) is open loop
    #[argh(option, default = "0.0")]
    rate: f64,
    /// most packets in flight per pair; 0 (default) is no window
    #[argh(option, default = "0")]
    window: usize,
    /// seconds of traffic before the measured window
    #[argh(option, default = "2.0")]
    warmup: f64,
    /// seconds in the measured window
    #[argh(option, default = "10.0")]
    duration: f64,
    /// packets per pair, then stop (0: run for the duration)
    #[argh(option, default = "0")]
    packets: u64,
    /// latency probe packets per second (0: no probe)
    #[argh(option, default = "200.0")]
    probe_rate: f64,
    /// concurrent logins while connecting
    #[argh(option, default = "32")]
    concurrency: usize,
    /// no progress line
    #[argh(switch)]
    quiet: bool,
}

/// Connect idle clients in steps and sample the server's memory after each step.
#[derive(FromArgs)]
#[argh(subcommand, name = "idle")]
struct IdleArgs {
    /// comma-separated totals of connected clients, e.g. 1000,2000,5000
    #[argh(option, default = "String::from(\"1000,2000,3000,4000,5000\")")]
    steps: String,
    /// seconds to wait after each step before sampling
    #[argh(option, default = "2.0")]
    settle: f64,
    /// concurrent logins while connecting
    #[argh(option, default = "32")]
    concurrency: usize,
}

/// Log in clients (each closes right after login) and report logins per second.
#[derive(FromArgs)]
#[argh(subcommand, name = "handshakes")]
struct HandshakeArgs {
    /// number of clients
    #[argh(option, default = "1000")]
    count: usize,
    /// concurrent logins
    #[argh(option, default = "16")]
    concurrency: usize,
}

/// Wait until one client can log in (server start-up check).
#[derive(FromArgs)]
#[argh(subcommand, name = "wait")]
struct WaitArgs {
    /// give up after this many seconds
    #[argh(option, default = "30.0")]
    timeout: f64,
}

fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{name} must be a duration >= 0"))
}

/// The TLS 1.3 suite named by `--suite`.
fn suite(name: &str) -> Result<rustls::CipherSuite, String> {
    match name {
        "aes128" => Ok(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        "aes256" => Ok(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
        "chacha" => Ok(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
        _ => Err("--suite must be aes128, aes256 or chacha".into()),
    }
}

fn run(args: Args) -> Result<String, String> {
    let target = Target {
        addr: args.addr,
        server_name: args.server_name,
        pid: args.pid,
        suites: args.suite.as_deref().map(suite).transpose()?.into_iter().collect(),
    };
    match args.command {
        Command::Relay(r) => {
            if !(8..=tinyderp::proto::frame::MAX_PACKET_SIZE).contains(&r.size) {
                return Err("--size must be 8..=65536".into());
            }
            if !r.rate.is_finite()
                || r.rate < 0.0
                || !r.probe_rate.is_finite()
                || r.probe_rate < 0.0
            {
                return Err("--rate and --probe-rate must be >= 0".into());
            }
            let opts = RelayOptions {
                pairs: r.pairs,
                size: r.size,
                rate_pps: r.rate,
                window: r.window,
                warmup: seconds(r.warmup, "warmup")?,
                duration: seconds(r.duration, "duration")?,
                packets: r.packets,
                probe_rate: r.probe_rate,
                concurrency: r.concurrency,
                progress: !r.quiet,
            };
            let report = load::run_relay(&target, &opts).map_err(|e| e.to_string())?;
            Ok(to_json(&report))
        }
        Command::Idle(i) => {
            let steps = i
                .steps
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "--steps must be comma-separated counts".to_string())?;
            if steps.windows(2).any(|w| w[0] > w[1]) {
                return Err("--steps must ascend".into());
            }
            let opts = IdleOptions {
                steps,
                settle: seconds(i.settle, "settle")?,
                concurrency: i.concurrency,
            };
            let report = load::run_idle(&target, &opts).map_err(|e| e.to_string())?;
            Ok(to_json(&report))
        }
        Command::Handshakes(h) => {
            let report =
                load::run_handshakes(&target, h.count, h.concurrency).map_err(|e| e.to_string())?;
            Ok(to_json(&report))
        }
        Command::Wait(w) => {
            let took = load::wait_ready(&target, seconds(w.timeout, "timeout")?)
                .map_err(|e| format!("server not ready: {e}"))?;
            Ok(format!(
                "{{\"scenario\":\"wait\",\"seconds\":{:.3}}}",
                took.as_secs_f64()
            ))
        }
    }
}

/// One JSON line for a report (the scripts read these).
fn to_json<T: serde::Serialize>(report: &T) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    match run(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("derp-load: {err}");
            ExitCode::FAILURE
        }
    }
}
