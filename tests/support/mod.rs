//! Shared support for the integration tests: starts the real `tinyderp` binary on
//! loopback with a temporary state directory, reads the addresses it bound from its own
//! log, hands out client configs and reads the server from /proc ([`procfs`]).
//!
//! Every listener is bound to port 0 and the kernel picks the port; the launcher reads
//! it back from the server's `… listening on ADDR` lines, so no test picks a "free" port
//! first and races other processes for it.
//!
//! `TINYDERP_BIN` overrides the binary (a cross-built router binary) and
//! `TINYDERP_RUNNER` gives a command prefix such as `qemu-mips -cpu 24Kc`.
#![allow(dead_code)]

pub mod https;
pub mod procfs;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tinyderp::client::{Client, ClientConfig, ServerMessage, TlsVerify};
use tinyderp::proto::key::SecretKey;

/// How long the server may take to come up (qemu-user emulation is slow).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a test waits for one expected frame.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// The start-up log lines that name the bound addresses (written by `src/net/`); the
/// address is the first word after the prefix.
const DERP_LISTENING: &str = "DERP (TLS) listening on ";
const STUN_LISTENING: &str = "STUN listening on udp ";
const HTTP_LISTENING: &str = "plain HTTP listening on ";

/// A running tinyderp process and the addresses it bound.
pub struct TestServer {
    child: Option<Child>,
    /// The DERP (TLS) listener.
    pub derp_addr: SocketAddr,
    /// The STUN socket, unless the test turned STUN off (`--stun-port -1`).
    pub stun_addr: Option<SocketAddr>,
    /// The plain HTTP listener, when the test turned it on (`--http-port 0`).
    pub http_addr: Option<SocketAddr>,
    pub state_dir: tempfile::TempDir,
    pub log_path: PathBuf,
    pub args: Vec<String>,
}

/// Writes `key` as a derper mesh PSK file (64 hex digits) in `dir`; returns its path for
/// `--mesh-psk-file`.
pub fn write_mesh_key(dir: &std::path::Path, key: &[u8; 32]) -> String {
    let path = dir.join("mesh.key");
    std::fs::write(&path, tinyderp::proto::key::hex_lower(key)).expect("write mesh key");
    path.to_str().expect("utf-8 temp path").to_string()
}

/// A TCP port on 127.0.0.1 where nothing listens, held until the value is dropped: the
/// socket is bound but never listens, so connecting is refused at once and no other
/// process can take the port meanwhile (for "unreachable controller" cases).
pub struct ClosedPort {
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

/// Reserves a [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
    let socket = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .expect("bind");
    let bound: SockaddrIn =
        socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&socket)).expect("getsockname");
    ClosedPort {
        _socket: socket,
        port: bound.port(),
    }
}

fn binary_command() -> Command {
    let bin = std::env::var("TINYDERP_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tinyderp").to_string());
    match std::env::var("TINYDERP_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut command = Command::new(words.next().expect("runner"));
            command.args(words).arg(bin);
            command
        }
        _ => Command::new(bin),
    }
}

/// Runs `tinyderp ARGS` to completion (for `derpmap`, `--help` …) and returns status and stdout.
pub fn run_tinyderp(args: &[&str]) -> (ExitStatus, String, String) {
    let output = binary_command().args(args).output().expect("run tinyderp");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with `extra` flags appended.
    pub fn start(extra: &[&str]) -> TestServer {
        TestServer::start_on("127.0.0.1", extra)
    }

    /// Starts a server on `ip` (`127.0.0.1` or `::1`). DERP and STUN listen on port 0
    /// unless `extra` names them; pass `--http-port 0` to turn plain HTTP on.
    pub fn start_on(ip: &str, extra: &[&str]) -> TestServer {
        let state_dir = tempfile::tempdir().expect("temp dir");
        let log_path = state_dir.path().join("server.log");
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let mut args = vec!["--log-level".to_string(), "debug".to_string()];
        if !extra.contains(&"-a") {
            args.extend(["-a".to_string(), format!("{host}:0")]);
        }
        if !extra.contains(&"--stun-port") {
            args.extend(["--stun-port".to_string(), "0".to_string()]);
        }
        if !extra.contains(&"--state-dir") {
            args.push("--state-dir".to_string());
            args.push(state_dir.path().display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = binary_command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn tinyderp");
        let mut server = TestServer {
            child: Some(child),
            derp_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stun_addr: None,
            http_addr: None,
            state_dir,
            log_path,
            args,
        };
        server.wait_ready();
        server
    }

    /// Waits for the DERP "listening on" line (logged after STUN and HTTP are bound),
    /// takes every bound address from the log and checks that DERP accepts.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let log = self.log();
            if let Some(derp) = logged_addr(&log, DERP_LISTENING) {
                self.derp_addr = derp;
                self.stun_addr = logged_addr(&log, STUN_LISTENING);
                self.http_addr = logged_addr(&log, HTTP_LISTENING);
                if TcpStream::connect_timeout(&derp, Duration::from_millis(200)).is_ok() {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("tinyderp exited early with {status}:\n{}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "tinyderp did not log \"{DERP_LISTENING}ADDR\" and accept within {START_TIMEOUT:?}:\n{}",
            self.log()
        );
    }

    /// The STUN address (panics when the test turned STUN off).
    pub fn stun(&self) -> SocketAddr {
        self.stun_addr.expect("STUN is on")
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The `sha256-raw:` pin the server logged at start.
    pub fn logged_pin(&self) -> String {
        let log = self.log();
        let start =
            log.find("certificate pin sha256-raw:").expect("pin in log") + "certificate pin ".len();
        log[start..start + "sha256-raw:".len() + 64].to_string()
    }

    /// The server's process id (for /proc/PID/status, fd and CPU readings).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("kill");
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A client config for this server: insecure TLS, fast start on, a fresh key.
    pub fn client_config(&self) -> ClientConfig {
        let mut config =
            ClientConfig::new(self.derp_addr, SecretKey::generate().expect("random key"));
        config.server_name = "localhost".to_string();
        config.verify = TlsVerify::Insecure;
        config
    }

    /// Connects a fresh client.
    pub fn connect(&self) -> Client {
        smol::block_on(Client::connect(&self.client_config())).expect("client connects")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address in the first log line containing `prefix`: the word after it, up to a
/// space or `;` (the server adds "(configured …)" and "; server key …" after it).
fn logged_addr(log: &str, prefix: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|line| line.contains(prefix))?;
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let word = rest.split([' ', ';']).next()?;
    word.parse().ok()
}

/// Receives frames until one matches `want` (skipping keep-alives and unrelated frames),
/// failing after [`RECV_TIMEOUT`].
pub fn recv_until(client: &mut Client, want: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
    smol::block_on(async {
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let next = smol::future::FutureExt::or(async { Some(client.recv().await) }, async {
                smol::Timer::after(remaining).await;
                None
            })
            .await;
            match next {
                Some(Ok(message)) if want(&message) => return message,
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("connection failed while waiting: {err}"),
                None => panic!("timed out waiting for a frame"),
            }
        }
    })
}

/// True if the server closes `client`'s connection within `window` (frames that arrive
/// before the close are skipped).
pub fn closed_within(client: &mut Client, window: Duration) -> bool {
    smol::block_on(async {
        smol::future::FutureExt::or(
            async {
                while client.recv().await.is_ok() {}
                true
            },
            async {
                smol::Timer::after(window).await;
                false
            },
        )
        .await
    })
}

/// Asserts that nothing matching `unwanted` arrives within `window`.
pub fn assert_nothing(
    client: &mut Client,
    window: Duration,
    unwanted: impl Fn(&ServerMessage) -> bool,
) {
    smol::block_on(async {
        let deadline = Instant::now() + window;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return;
            }
            let next = smol::future::FutureExt::or(async { Some(client.recv().await) }, async {
                smol::Timer::after(remaining).await;
                None
            })
            .await;
            match next {
                Some(Ok(message)) if unwanted(&message) => panic!("unexpected frame {message:?}"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            }
        }
    })
}
