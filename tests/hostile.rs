//! Hostile-input tests against the real binary on loopback: connections that stall in the
//! TLS handshake or the request head, garbage, frames beyond every limit, ClientInfo boxes
//! that do not open, a receiver that never reads, connection churn and fd exhaustion.
//!
//! The server is watched from outside through /proc/PID (VmRSS, open fds, CPU time) and its
//! `/debug/varz` counters. Every test is bounded in time; the handshake and head deadlines
//! of the server are 10 s, so the two stall tests take about 15 s each.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_rustls::client::TlsStream;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use support::https::{connector, https_exchange, metric, tls_connect, varz, within};
use support::{procfs, recv_until, TestServer};
use tinyderp::client::{upgrade_request, Client, ServerMessage};
use tinyderp::proto::frame::{self, FrameType, HEADER_LEN};
use tinyderp::proto::handshake::{self, ClientInfo};
use tinyderp::proto::key::{PublicKey, SecretKey};

/// Connections held open by each stall test.
const STALLED_CONNECTIONS: usize = 1000;
/// Connections opened and dropped by the churn test.
const CHURN_CONNECTIONS: usize = 10_000;
/// How long the server may take to free stalled connections: its 10 s deadline plus slack
/// for a loaded machine.
const STALL_RELEASE_TIMEOUT: Duration = Duration::from_secs(30);
/// RSS may end this much above the baseline after the stalled connections are freed
/// (allocator caches and the first-use growth of pools; the stalls peak far higher).
const RSS_MARGIN_KIB: u64 = 4 << 10;
/// Also allowed: this fraction of the baseline, in percent.
const RSS_MARGIN_PERCENT: u64 = 10;

// ---------------------------------------------------------------------------------------
// Reading the server process from /proc.

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    procfs::sample(pid)
        .expect("read /proc of the server")
        .rss_kib
}

/// Number of open file descriptors of `pid`.
fn open_fds(pid: u32) -> usize {
    procfs::open_fds(pid).expect("read /proc/PID/fd of the server")
}

/// User + system CPU time of `pid` (all threads) in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    procfs::sample(pid)
        .expect("read /proc of the server")
        .cpu_ticks
}

/// Raises this process's soft fd limit to the hard limit (the tests hold thousands of
/// sockets; servers started afterwards inherit the raised limit too).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The allowed end RSS for a baseline.
fn rss_limit(baseline_kib: u64) -> u64 {
    baseline_kib + RSS_MARGIN_KIB.max(baseline_kib * RSS_MARGIN_PERCENT / 100)
}

// ---------------------------------------------------------------------------------------
// Raw TLS and HTTP helpers (the DERP client would hide the bytes these tests need).

/// Reads until EOF or error; true if that happened within `limit` (the server closed).
async fn closed_within<S: smol::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    within(limit, async {
        let mut sink = [0u8; 4096];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_some()
}

/// A TLS connection that sent a fast-start upgrade and read the ServerKey frame: the next
/// bytes written are the ClientInfo frame.
async fn derp_until_server_key(
    server: &TestServer,
) -> (TlsStream<smol::net::TcpStream>, PublicKey) {
    let mut tls = tls_connect(&connector(), server.derp_addr)
        .await
        .expect("tls connect");
    tls.write_all(&upgrade_request("localhost", true))
        .await
        .expect("upgrade request");
    tls.flush().await.expect("flush");
    let mut frame = [0u8; HEADER_LEN + 40];
    tls.read_exact(&mut frame).await.expect("ServerKey frame");
    assert_eq!(frame[0], FrameType::ServerKey as u8);
    let key = handshake::parse_server_key_payload(&frame[HEADER_LEN..]).expect("server key");
    (tls, key)
}

fn raw_frame(frame_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![frame_type];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A client still gets a Pong from the server: it is alive and serving.
fn assert_serving(server: &TestServer) {
    let mut client = server.connect();
    smol::block_on(client.ping(*b"alive!!!")).expect("ping");
    let pong = recv_until(&mut client, |m| matches!(m, ServerMessage::Pong(_)));
    assert_eq!(pong, ServerMessage::Pong(*b"alive!!!"));
}

// ---------------------------------------------------------------------------------------
// Tests.

/// Opens [`STALLED_CONNECTIONS`] raw TCP connections; half send nothing, half send the
/// first bytes of a ClientHello record and stop. Returns them and the peak fd count seen.
fn stall_tls_round(server: &TestServer) -> (Vec<TcpStream>, usize) {
    let pid = server.pid();
    let partial_hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let mut stalled = Vec::with_capacity(STALLED_CONNECTIONS);
    for index in 0..STALLED_CONNECTIONS {
        let mut stream = TcpStream::connect(server.derp_addr).expect("connect");
        if index % 2 == 1 {
            stream.write_all(&partial_hello).expect("partial hello");
        }
        stalled.push(stream);
    }
    let mut peak = 0;
    wait_until(Duration::from_secs(5), || {
        peak = peak.max(open_fds(pid));
        peak >= STALLED_CONNECTIONS
    });
    (stalled, peak)
}

/// Completes [`STALLED_CONNECTIONS`] TLS handshakes; half then send an unfinished request
/// head, half send nothing. Returns them and the peak fd count seen while opening.
fn stall_head_round(server: &TestServer) -> (Vec<TlsStream<smol::net::TcpStream>>, usize) {
    /// Handshakes run at once.
    const BATCH: usize = 200;
    let pid = server.pid();
    let connector = connector();
    let addr = server.derp_addr;
    let mut stalled = Vec::with_capacity(STALLED_CONNECTIONS);
    let mut peak = 0;
    smol::block_on(async {
        for batch in 0..STALLED_CONNECTIONS / BATCH {
            let tasks: Vec<_> = (0..BATCH)
                .map(|index| {
                    let connector = connector.clone();
                    smol::spawn(async move {
                        let mut tls = tls_connect(&connector, addr).await?;
                        let partial: &[u8] = if (batch + index) % 2 == 0 {
                            b"GET /derp HTTP/1.1\r\nHost: localhost\r\nUpgrade: DE"
                        } else {
                            b""
                        };
                        tls.write_all(partial).await?;
                        tls.flush().await?;
                        Ok::<_, std::io::Error>(tls)
                    })
                })
                .collect();
            for task in tasks {
                stalled.push(task.await.expect("TLS handshake of a stalling client"));
            }
            peak = peak.max(open_fds(pid));
        }
    });
    (stalled, peak)
}

/// Waits until the server's fd count stops moving and returns it (a connection that was
/// just closed may still be open on the server side for a moment).
fn settled_fds(pid: u32) -> usize {
    let mut last = open_fds(pid);
    let mut same = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = open_fds(pid);
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same >= 3 {
            break;
        }
    }
    last
}

/// Runs two stall rounds against a fresh server and checks that each round's connections
/// are all freed by the server's deadlines, that fds return exactly to the baseline, and
/// that RSS after the second round is back within the margin of the RSS after the first.
///
/// Why two rounds: the first one grows allocator arenas and runtime slabs to their
/// 1000-connection size and glibc's malloc keeps most freed heap pages mapped, so the
/// cold RSS is not a baseline that any process returns to. A leak shows up as the second
/// round ending higher than the first; the cold figure is printed for the record.
/// `HOSTILE_STALL_ROUNDS` runs more rounds (a leak then grows round after round).
fn check_stall_rounds<T>(what: &str, round: impl Fn(&TestServer) -> (Vec<T>, usize)) -> TestServer {
    raise_fd_limit();
    let server = TestServer::start(&[]);
    let pid = server.pid();
    assert_serving(&server);
    let base_fds = settled_fds(pid);
    let cold_rss = rss_kib(pid);
    let rounds = std::env::var("HOSTILE_STALL_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2usize)
        .max(2);
    let mut figures = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let (stalled, peak_fds) = round(&server);
        let peak_rss = rss_kib(pid);
        // On a loaded machine opening them all can take longer than the server's 10 s
        // deadline, so the first may be gone before the last arrive; that every one of
        // them stalled and timed out is checked through the counters by the caller.
        assert!(
            peak_fds >= base_fds + STALLED_CONNECTIONS / 10,
            "{what}: the server never held the stalled connections (peak {peak_fds} fds)"
        );
        let freed = wait_until(STALL_RELEASE_TIMEOUT, || open_fds(pid) <= base_fds);
        assert!(freed, "{what}: still {} fds open", open_fds(pid));
        drop(stalled);
        assert_eq!(
            settled_fds(pid),
            base_fds,
            "{what}: fds not back to the baseline"
        );
        let end_rss = rss_kib(pid);
        eprintln!(
            "{what}: {STALLED_CONNECTIONS} stalled, peak {peak_fds} fds, all freed after {:?}; \
             rss cold {cold_rss} KiB, peak {peak_rss} KiB, end {end_rss} KiB",
            started.elapsed()
        );
        figures.push(end_rss);
    }
    let (warm, end) = (figures[0], figures[figures.len() - 1]);
    assert!(
        end <= rss_limit(warm),
        "{what}: RSS {end} KiB after the last round, {warm} KiB after the first: memory kept"
    );
    server
}

#[test]
fn stalled_tls_handshakes_are_freed_and_memory_returns() {
    let server = check_stall_rounds("stalled TLS handshakes", stall_tls_round);
    let text = varz(&server);
    assert!(
        metric(
            &text,
            "tinyderp_tls_handshake_failures_total{reason=\"timeout\"}"
        ) >= 2 * STALLED_CONNECTIONS as u64,
        "timeouts not counted:\n{text}"
    );
    assert_serving(&server);
}

#[test]
fn stalled_request_heads_are_freed_and_memory_returns() {
    let server = check_stall_rounds("stalled request heads", stall_head_round);
    let text = varz(&server);
    assert!(
        metric(
            &text,
            "tinyderp_http_requests_total{route=\"bad_request_head\"}"
        ) >= 2 * STALLED_CONNECTIONS as u64,
        "head timeouts not counted:\n{text}"
    );
    assert_serving(&server);
}

#[test]
fn garbage_before_the_request_is_refused() {
    let server = TestServer::start(&[]);
    // Not TLS at all: the handshake fails and the server closes at once.
    let mut plain = TcpStream::connect(server.derp_addr).expect("connect");
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = plain.write_all(&noise);
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    let mut sink = [0u8; 512];
    loop {
        match plain.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "plain garbage not closed at once"
    );

    // TLS, then bytes that are no HTTP request; a head with too many headers; a head that
    // never ends within 8 KiB. Each gets a 400 and the connection is closed.
    let mut too_many_headers = b"GET /derp HTTP/1.1\r\n".to_vec();
    for index in 0..40 {
        too_many_headers.extend_from_slice(format!("X-H{index}: v\r\n").as_bytes());
    }
    too_many_headers.extend_from_slice(b"\r\n");
    let mut endless = b"GET /derp HTTP/1.1\r\nX-Long: ".to_vec();
    endless.extend(std::iter::repeat_n(b'a', 9 << 10));
    let cases: [(&str, Vec<u8>); 4] = [
        ("binary noise", noise.clone()),
        (
            "nul before method",
            b"\0GET /derp HTTP/1.1\r\n\r\n".to_vec(),
        ),
        ("too many headers", too_many_headers),
        ("endless head", endless),
    ];
    for (name, bytes) in &cases {
        let got = https_exchange(&server, bytes);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 400 "), "{name}: got {text:?}");
    }
    let text = varz(&server);
    assert!(
        metric(
            &text,
            "tinyderp_tls_handshake_failures_total{reason=\"protocol\"}"
        ) >= 1
    );
    assert!(
        metric(
            &text,
            "tinyderp_http_requests_total{route=\"bad_request_head\"}"
        ) >= cases.len() as u64
    );
    assert_serving(&server);
}

/// A logged-in client sends `bytes`; true if the server closes the connection.
fn closes_after(server: &TestServer, bytes: &[u8]) -> bool {
    let mut client = server.connect();
    smol::block_on(async {
        let _ = client.send_raw(bytes).await;
        within(Duration::from_secs(5), async {
            loop {
                if client.recv().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_some()
    })
}

#[test]
fn frames_beyond_every_limit_close_the_sender() {
    let server = TestServer::start(&[]);
    let key = [7u8; 32];
    let header_only = |frame_type: FrameType, len: u32| {
        let mut out = vec![frame_type as u8];
        out.extend_from_slice(&len.to_be_bytes());
        out
    };
    // (what, bytes): the header alone is enough to be refused, before any payload is read.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "SendPacket above 64 KiB",
            header_only(FrameType::SendPacket, 32 + 65537),
        ),
        (
            "SendPacket without a key",
            raw_frame(FrameType::SendPacket as u8, &[0; 31]),
        ),
        (
            "SendPacket of 4 GiB",
            header_only(FrameType::SendPacket, u32::MAX),
        ),
        (
            "ForwardPacket above 64 KiB",
            header_only(FrameType::ForwardPacket, 64 + 65537),
        ),
        (
            "ForwardPacket without keys",
            raw_frame(FrameType::ForwardPacket as u8, &[0; 63]),
        ),
        (
            "NotePreferred empty",
            raw_frame(FrameType::NotePreferred as u8, &[]),
        ),
        (
            "NotePreferred long",
            raw_frame(FrameType::NotePreferred as u8, &[1, 1]),
        ),
        (
            "WatchConns with payload",
            raw_frame(FrameType::WatchConns as u8, &[0]),
        ),
        (
            "ClosePeer short",
            raw_frame(FrameType::ClosePeer as u8, &[0; 31]),
        ),
        (
            "ClosePeer long",
            raw_frame(FrameType::ClosePeer as u8, &[0; 33]),
        ),
        ("Ping short", raw_frame(FrameType::Ping as u8, &[0; 7])),
        ("Ping above 1000", header_only(FrameType::Ping, 1001)),
        // Within the limits but mesh-only, from a client without the mesh key.
        ("ForwardPacket not mesh", {
            let mut payload = key.to_vec();
            payload.extend_from_slice(&key);
            raw_frame(FrameType::ForwardPacket as u8, &payload)
        }),
        (
            "WatchConns not mesh",
            raw_frame(FrameType::WatchConns as u8, &[]),
        ),
        (
            "ClosePeer not mesh",
            raw_frame(FrameType::ClosePeer as u8, &key),
        ),
    ];
    for (what, bytes) in &cases {
        assert!(
            closes_after(&server, bytes),
            "{what}: connection stayed open"
        );
    }

    // An unknown frame type is skipped without buffering, however long: 1 MiB of it,
    // then a Ping, still gets its Pong.
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let mut client = server.connect();
    let mut unknown = vec![0x7f];
    unknown.extend_from_slice(&(1u32 << 20).to_be_bytes());
    unknown.extend(std::iter::repeat_n(0x55u8, 1 << 20));
    smol::block_on(client.send_raw(&unknown)).expect("unknown frame");
    smol::block_on(client.ping(*b"skipped!")).expect("ping");
    let pong = recv_until(&mut client, |m| matches!(m, ServerMessage::Pong(_)));
    assert_eq!(pong, ServerMessage::Pong(*b"skipped!"));
    assert!(
        rss_kib(pid) < rss_before + 1024,
        "skipped frame was buffered"
    );

    // Limits of the login frame: ClientInfo too short, too long, or not ClientInfo at all.
    smol::block_on(async {
        for (frame_type, len) in [
            (
                FrameType::ClientInfo as u8,
                frame::MIN_CLIENT_INFO_LEN as u32 - 1,
            ),
            (
                FrameType::ClientInfo as u8,
                frame::MAX_CLIENT_INFO_LEN as u32 + 1,
            ),
            (FrameType::ClientInfo as u8, u32::MAX),
            (FrameType::SendPacket as u8, 40),
        ] {
            let (mut tls, _) = derp_until_server_key(&server).await;
            let mut bytes = vec![frame_type];
            bytes.extend_from_slice(&len.to_be_bytes());
            tls.write_all(&bytes).await.expect("header");
            tls.flush().await.expect("flush");
            assert!(closed_within(&mut tls, Duration::from_secs(5)).await);
        }
    });
    let text = varz(&server);
    assert_eq!(
        metric(
            &text,
            "tinyderp_derp_handshake_failures_total{reason=\"client_info_bad_length\"}"
        ),
        3,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "tinyderp_derp_handshake_failures_total{reason=\"wrong_frame_type\"}"
        ),
        1
    );
    assert_serving(&server);
}

#[test]
fn large_client_infos_cannot_hold_unbounded_memory() {
    /// Connections that each announce and send a maximal (256 KiB) ClientInfo.
    const CONNECTIONS: usize = 200;
    /// Allowed server growth while they are pending: the 4 MiB budget for large
    /// ClientInfos plus TLS state of the connections. Without the budget they hold 50 MiB.
    const GROWTH_KIB: u64 = 16 << 10;
    raise_fd_limit();
    let server = TestServer::start(&[]);
    let pid = server.pid();
    assert_serving(&server);
    let base_rss = rss_kib(pid);
    let len = frame::MAX_CLIENT_INFO_LEN;
    let mut held = Vec::new();
    let mut peak_rss = base_rss;
    smol::block_on(async {
        for _ in 0..CONNECTIONS / 50 {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let addr = server.derp_addr;
                    smol::spawn(async move {
                        let mut tls = tls_connect(&connector(), addr).await.expect("tls");
                        tls.write_all(&upgrade_request("localhost", true))
                            .await
                            .expect("upgrade");
                        tls.flush().await.expect("flush");
                        let mut server_key = [0u8; HEADER_LEN + 40];
                        tls.read_exact(&mut server_key).await.expect("ServerKey");
                        // All but the last byte: the server waits for it while holding the rest.
                        let mut bytes = vec![FrameType::ClientInfo as u8];
                        bytes.extend_from_slice(&(len as u32).to_be_bytes());
                        bytes.resize(HEADER_LEN + len - 1, 0x33);
                        let _ = tls.write_all(&bytes).await;
                        let _ = tls.flush().await;
                        tls
                    })
                })
                .collect();
            for task in tasks {
                held.push(task.await);
            }
            peak_rss = peak_rss.max(rss_kib(pid));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    peak_rss = peak_rss.max(rss_kib(pid));
    // A real client still logs in while they are pending.
    assert_serving(&server);
    eprintln!("{CONNECTIONS} x 256 KiB ClientInfo pending: rss {base_rss} -> {peak_rss} KiB");
    assert!(
        peak_rss <= base_rss + GROWTH_KIB,
        "pending ClientInfos grew the server from {base_rss} to {peak_rss} KiB"
    );
    let text = varz(&server);
    let refused = metric(
        &text,
        "tinyderp_derp_handshake_failures_total{reason=\"client_info_budget\"}",
    );
    assert!(
        refused >= (CONNECTIONS - 16) as u64,
        "only {refused} large ClientInfos refused:\n{text}"
    );
    drop(held);
}

#[test]
fn client_info_whose_box_does_not_open_is_refused() {
    let server = TestServer::start(&[]);
    let info = ClientInfo {
        version: 2,
        ..ClientInfo::default()
    };
    let json = handshake::client_info_json(&info);
    let wrong_server = SecretKey::generate().unwrap().public_key();
    // (label the server counts, ClientInfo payload builder given the real server key)
    type Build = Box<dyn Fn(&PublicKey) -> Vec<u8>>;
    let cases: Vec<(&str, Build)> = vec![
        ("box_open_failed", {
            // Random bytes where the box should be.
            let json_len = json.len();
            Box::new(move |_| {
                let client = SecretKey::generate().unwrap().public_key();
                let mut payload = client.as_bytes().to_vec();
                payload.extend((0..handshake::SEALED_OVERHEAD + json_len).map(|i| i as u8));
                payload
            })
        }),
        ("box_open_failed", {
            // A real box, sealed to another server.
            let json = json.clone();
            Box::new(move |_| {
                let client = SecretKey::generate().unwrap();
                let mut payload = client.public_key().as_bytes().to_vec();
                payload.extend(handshake::seal_random(&client, &wrong_server, &json).unwrap());
                payload
            })
        }),
        ("box_open_failed", {
            // A box whose sender key was swapped after sealing.
            let json = json.clone();
            Box::new(move |server_key| {
                let client = SecretKey::generate().unwrap();
                let other = SecretKey::generate().unwrap().public_key();
                let mut payload = other.as_bytes().to_vec();
                payload.extend(handshake::seal_random(&client, server_key, &json).unwrap());
                payload
            })
        }),
        ("zero_key", {
            let json = json.clone();
            Box::new(move |server_key| {
                let client = SecretKey::generate().unwrap();
                let mut payload = vec![0u8; 32];
                payload.extend(handshake::seal_random(&client, server_key, &json).unwrap());
                payload
            })
        }),
        (
            "bad_json",
            Box::new(|server_key| {
                let client = SecretKey::generate().unwrap();
                let mut payload = client.public_key().as_bytes().to_vec();
                payload
                    .extend(handshake::seal_random(&client, server_key, b"{\"version\":").unwrap());
                payload
            }),
        ),
    ];
    smol::block_on(async {
        for (label, build) in &cases {
            let (mut tls, server_key) = derp_until_server_key(&server).await;
            let frame = raw_frame(FrameType::ClientInfo as u8, &build(&server_key));
            tls.write_all(&frame).await.expect("ClientInfo");
            tls.flush().await.expect("flush");
            // No ServerInfo comes back: the connection is closed.
            assert!(
                closed_within(&mut tls, Duration::from_secs(5)).await,
                "{label}"
            );
        }
    });
    let text = varz(&server);
    for (label, count) in [("box_open_failed", 3), ("zero_key", 1), ("bad_json", 1)] {
        let name = format!("tinyderp_derp_handshake_failures_total{{reason=\"{label}\"}}");
        assert_eq!(metric(&text, &name), count, "{label}:\n{text}");
    }
    assert_eq!(
        metric(&text, "tinyderp_accepts_total"),
        0,
        "nobody was registered"
    );
    assert_serving(&server);
}

#[test]
fn a_client_that_never_reads_drops_only_its_own_packets() {
    /// Packets sent to the stuck client, and their size: 48 MiB, far beyond every buffer.
    const FLOOD_PACKETS: usize = 3072;
    const FLOOD_SIZE: usize = 16 << 10;
    /// Server memory may grow by at most this during the flood (queues are bounded by
    /// 2 x 32 packets per client and a 16 MiB global budget).
    const FLOOD_RSS_GROWTH_KIB: u64 = 40 << 10;
    // No write deadline: the stuck client is never closed, so its queues must take the
    // whole flood (with the default 2 s deadline the server would close it instead).
    let server = TestServer::start(&["--tcp-write-timeout", "0s"]);
    let pid = server.pid();
    assert_serving(&server);
    let base_rss = rss_kib(pid);

    let stuck_secret = SecretKey::generate().unwrap();
    let stuck_key = stuck_secret.public_key();
    let mut config = server.client_config();
    config.secret = stuck_secret;
    let stuck = smol::block_on(Client::connect(&config)).expect("stuck client");
    // Keep its socket open but never read from it.
    let (_stuck_reader, _stuck_writer) = stuck.split();

    let mut flooder = server.connect();
    let bystander_secret = SecretKey::generate().unwrap();
    let bystander_key = bystander_secret.public_key();
    let mut config = server.client_config();
    config.secret = bystander_secret;
    let mut bystander = smol::block_on(Client::connect(&config)).expect("bystander");
    let mut talker = server.connect();

    let payload = vec![0x42u8; FLOOD_SIZE];
    let mut peak_rss = base_rss;
    let started = Instant::now();
    for index in 0..FLOOD_PACKETS {
        smol::block_on(flooder.send_packet(&stuck_key, &payload)).expect("flood");
        if index % 256 == 0 {
            peak_rss = peak_rss.max(rss_kib(pid));
            // Meanwhile two other clients talk with no loss and little delay.
            let sent = Instant::now();
            let message = format!("ping {index}");
            smol::block_on(talker.send_packet(&bystander_key, message.as_bytes())).expect("talk");
            let got = recv_until(&mut bystander, |m| {
                matches!(m, ServerMessage::RecvPacket { .. })
            });
            match got {
                ServerMessage::RecvPacket { data, .. } => assert_eq!(data, message.as_bytes()),
                other => panic!("unexpected {other:?}"),
            }
            assert!(sent.elapsed() < Duration::from_secs(2), "bystander delayed");
        }
    }
    eprintln!(
        "flood of {} MiB took {:?}; rss base {base_rss} KiB, peak {peak_rss} KiB",
        (FLOOD_PACKETS * FLOOD_SIZE) >> 20,
        started.elapsed()
    );
    // The whole flood goes through the server's reader (the last of it may still sit in
    // socket buffers when the sender is done).
    let mut text = String::new();
    let all_read = wait_until(Duration::from_secs(10), || {
        text = varz(&server);
        metric(&text, "tinyderp_packets_received_total") >= FLOOD_PACKETS as u64
    });
    peak_rss = peak_rss.max(rss_kib(pid));
    assert!(all_read, "server did not read the whole flood:\n{text}");
    let dropped = metric(
        &text,
        "tinyderp_packets_dropped_total{reason=\"queue_head\"",
    ) + metric(
        &text,
        "tinyderp_packets_dropped_total{reason=\"queue_tail\"",
    ) + metric(
        &text,
        "tinyderp_packets_dropped_total{reason=\"queue_budget\"",
    );
    assert!(
        dropped >= (FLOOD_PACKETS / 2) as u64,
        "only {dropped} of {FLOOD_PACKETS} packets to a client that never reads were dropped:\n{text}"
    );
    assert!(
        peak_rss <= base_rss + FLOOD_RSS_GROWTH_KIB,
        "server memory grew from {base_rss} to {peak_rss} KiB"
    );
    assert!(metric(&text, "tinyderp_queued_bytes") <= 16 << 20);
    assert_serving(&server);
}

#[test]
fn ten_thousand_connections_opened_and_dropped_leave_no_fd_behind() {
    /// Connections open at once from this side.
    const WINDOW: usize = 64;
    raise_fd_limit();
    let server = TestServer::start(&[]);
    let pid = server.pid();
    assert_serving(&server);
    let base_fds = settled_fds(pid);
    let mut open: std::collections::VecDeque<TcpStream> = std::collections::VecDeque::new();
    let started = Instant::now();
    for index in 0..CHURN_CONNECTIONS {
        let mut stream = TcpStream::connect(server.derp_addr).expect("connect");
        match index % 4 {
            // Closed at once, with nothing sent.
            0 => drop(stream),
            // A reset instead of a FIN.
            1 => {
                use std::os::fd::AsFd;
                let linger = nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                nix::sys::socket::setsockopt(
                    &stream.as_fd(),
                    nix::sys::socket::sockopt::Linger,
                    &linger,
                )
                .expect("SO_LINGER");
                drop(stream);
            }
            // Half a ClientHello, then gone.
            2 => {
                let _ = stream.write_all(&[0x16, 0x03, 0x01, 0x01]);
                drop(stream);
            }
            // Held for a while among others, then dropped.
            _ => {
                open.push_back(stream);
                if open.len() > WINDOW {
                    open.pop_front();
                }
            }
        }
    }
    drop(open);
    eprintln!("{CHURN_CONNECTIONS} connections in {:?}", started.elapsed());
    let settled = wait_until(Duration::from_secs(20), || open_fds(pid) == base_fds);
    assert!(
        settled,
        "server fds: {base_fds} before, {} after",
        open_fds(pid)
    );
    let text = varz(&server);
    assert!(metric(&text, "tinyderp_tcp_accepts_total") >= CHURN_CONNECTIONS as u64);
    assert_serving(&server);
    assert!(wait_until(Duration::from_secs(5), || open_fds(pid) == base_fds));
}

#[test]
fn fd_exhaustion_does_not_spin_the_accept_loop() {
    /// Connections opened while the server has no fds left.
    const OVER_LIMIT: usize = 48;
    /// Free fds the server gets above what it uses idle.
    const HEADROOM: usize = 8;
    /// Window over which CPU use is measured.
    const WINDOW: Duration = Duration::from_secs(3);
    let server = TestServer::start(&[]);
    let pid = server.pid();
    assert_serving(&server);
    let limit = open_fds(pid) + HEADROOM;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed");

    let held: Vec<TcpStream> = (0..OVER_LIMIT)
        .map(|_| TcpStream::connect(server.derp_addr).expect("connect (backlog)"))
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .contains("accept failed")),
        "the server never ran out of fds"
    );
    let ticks = procfs::TICKS_PER_SECOND;
    let before = cpu_ticks(pid);
    std::thread::sleep(WINDOW);
    let used = cpu_ticks(pid) - before;
    let used_ms = used * 1000 / ticks;
    eprintln!("CPU while out of fds: {used_ms} ms in {WINDOW:?}");
    assert!(
        used_ms < WINDOW.as_millis() as u64 / 5,
        "accept loop spins: {used_ms} ms CPU in {WINDOW:?}"
    );

    // Recovery: once the connections go, the server serves again.
    drop(held);
    let mut recovered = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !recovered {
        let mut config = server.client_config();
        config.secret = SecretKey::generate().unwrap();
        recovered = smol::block_on(within(Duration::from_secs(3), Client::connect(&config)))
            .is_some_and(|result| result.is_ok());
    }
    assert!(recovered, "server did not recover from fd exhaustion");
    let text = varz(&server);
    assert!(metric(&text, "tinyderp_accept_errors_total") >= 1, "{text}");
    assert_serving(&server);
}
