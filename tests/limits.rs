//! Uplink limits, measured: the real binary on loopback, clients sending as fast as they
//! can, receivers timing what the relay passes on. Rates are modest (100-300 KB/s) and
//! every flood is bounded in time, so each test takes a few seconds.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::https::{connector, metric, tls_connect, varz, within};
use support::{write_mesh_key, TestServer};
use tinyderp::client::{Client, ServerMessage};
use tinyderp::proto::key::{PublicKey, SecretKey};
use tinyderp::proto::stun;

/// Packet data per SendPacket in the floods (the frame carries 32 more bytes of key).
const PACKET: usize = 16 * 1024;
/// Measurement starts this long after the flood, once the initial burst is spent.
const WARM_UP: Duration = Duration::from_millis(1500);
/// Length of the measurement window.
const WINDOW: Duration = Duration::from_secs(4);
/// Allowed deviation from the configured rate.
const TOLERANCE: f64 = 0.10;

fn connect(server: &TestServer, mesh_key: Option<[u8; 32]>) -> (Client, PublicKey) {
    let secret = SecretKey::generate().unwrap();
    let key = secret.public_key();
    let mut config = server.client_config();
    config.secret = secret;
    config.mesh_key = mesh_key;
    (smol::block_on(Client::connect(&config)).unwrap(), key)
}

/// Sends packets to `dst` as fast as the server reads them, until `until`.
fn flood(mut sender: Client, dst: PublicKey, until: Instant) -> std::thread::JoinHandle<Client> {
    std::thread::spawn(move || {
        let data = vec![0x5au8; PACKET];
        smol::block_on(async {
            while Instant::now() < until {
                if sender.send_packet(&dst, &data).await.is_err() {
                    break;
                }
            }
        });
        sender
    })
}

/// Receives until `until`, returning when each packet's data arrived and its size.
fn record(
    mut receiver: Client,
    until: Instant,
) -> std::thread::JoinHandle<(Client, Vec<(Instant, usize)>)> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        smol::block_on(async {
            loop {
                let remaining = until.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                let next =
                    smol::future::FutureExt::or(async { Some(receiver.recv().await) }, async {
                        smol::Timer::after(remaining).await;
                        None
                    })
                    .await;
                match next {
                    Some(Ok(ServerMessage::RecvPacket { data, .. })) => {
                        seen.push((Instant::now(), data.len()))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        });
        (receiver, seen)
    })
}

/// Bytes per second received inside `[from, from + WINDOW)`.
fn rate_in_window(seen: &[(Instant, usize)], from: Instant) -> f64 {
    let to = from + WINDOW;
    let bytes: usize = seen
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, len)| len)
        .sum();
    bytes as f64 / WINDOW.as_secs_f64()
}

/// Runs one flood per (sender, receiver) pair and returns the total data rate the
/// receivers saw in the measurement window.
fn measure(pairs: Vec<(Client, Client, PublicKey)>) -> (f64, Vec<(Client, Client)>) {
    let start = Instant::now();
    let until = start + WARM_UP + WINDOW + Duration::from_millis(300);
    let mut runs = Vec::new();
    for (sender, receiver, dst) in pairs {
        runs.push((flood(sender, dst, until), record(receiver, until)));
    }
    let mut total = 0.0;
    let mut clients = Vec::new();
    for (sending, recording) in runs {
        let sender = sending.join().unwrap();
        let (receiver, seen) = recording.join().unwrap();
        total += rate_in_window(&seen, start + WARM_UP);
        clients.push((sender, receiver));
    }
    (total, clients)
}

fn assert_near(measured: f64, limit: f64, what: &str) {
    let deviation = (measured - limit).abs() / limit;
    assert!(
        deviation <= TOLERANCE,
        "{what}: measured {measured:.0} B/s against a limit of {limit:.0} B/s ({:.1} % off)",
        deviation * 100.0
    );
    eprintln!(
        "{what}: {measured:.0} B/s for a limit of {limit:.0} B/s ({:.1} % off)",
        deviation * 100.0
    );
}

/// The data part of a rate that counts frame payloads (data + 32-byte key).
fn data_share(frame_rate: f64) -> f64 {
    frame_rate * PACKET as f64 / (PACKET + 32) as f64
}

#[test]
fn client_over_its_rate_is_slowed_to_the_limit_and_mesh_peers_are_exempt() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_key = [0x24u8; 32];
    let mesh_file = write_mesh_key(dir.path(), &mesh_key);
    let server = TestServer::start(&["--client-rate", "200k", "--mesh-psk-file", &mesh_file]);
    let (a, _) = connect(&server, None);
    let (b, b_key) = connect(&server, None);
    let (rate, _) = measure(vec![(a, b, b_key)]);
    assert_near(rate, data_share(200_000.0), "client at --client-rate 200k");
    assert!(server
        .log()
        .contains("rate config applied: client-rate=200000 bytes/sec, client-burst=65568 bytes"));
    assert!(counter(&server, "tinyderp_client_rate_waits_total ") > 10);
    assert_eq!(counter(&server, "tinyderp_total_rate_waits_total "), 0);

    let (mesh, _) = connect(&server, Some(mesh_key));
    let (c, c_key) = connect(&server, None);
    let (mesh_rate, _) = measure(vec![(mesh, c, c_key)]);
    eprintln!("mesh peer under --client-rate 200k: {mesh_rate:.0} B/s");
    assert!(
        mesh_rate > 3.0 * 200_000.0,
        "a mesh peer is not held to --client-rate (got {mesh_rate:.0} B/s)"
    );
}

#[test]
fn total_rate_holds_with_several_clients() {
    let server = TestServer::start(&["--total-rate", "300k"]);
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let (sender, _) = connect(&server, None);
        let (receiver, key) = connect(&server, None);
        pairs.push((sender, receiver, key));
    }
    let (rate, _) = measure(pairs);
    assert_near(
        rate,
        data_share(300_000.0),
        "3 clients under --total-rate 300k",
    );
    assert!(counter(&server, "tinyderp_total_rate_waits_total ") > 10);
    assert_eq!(counter(&server, "tinyderp_client_rate_waits_total "), 0);
}

#[test]
fn rate_config_reload_on_sighup_applies_to_connected_clients() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rate.json");
    std::fs::write(&file, r#"{"PerClientRateLimitBytesPerSec": 100000}"#).unwrap();
    let server = TestServer::start(&["-rate-config", file.to_str().unwrap()]);
    let (a, _) = connect(&server, None);
    let (b, b_key) = connect(&server, None);
    let (rate, mut clients) = measure(vec![(a, b, b_key)]);
    assert_near(rate, data_share(100_000.0), "--rate-config 100000");

    std::fs::write(
        &file,
        r#"{"PerClientRateLimitBytesPerSec": 300000, "PerClientRateBurstBytes": 100000}"#,
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(server.wait_for_log(
        "SIGHUP: rate config applied: client-rate=300000 bytes/sec, client-burst=100000 bytes",
        Duration::from_secs(5)
    ));
    let (a, b) = clients.pop().unwrap();
    let (rate, mut clients) = measure(vec![(a, b, b_key)]);
    assert_near(
        rate,
        data_share(300_000.0),
        "same connection after SIGHUP to 300000",
    );

    // A broken file keeps the old setting.
    std::fs::write(&file, "{not json").unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(server.wait_for_log(
        "rate config not reloaded, keeping the old one",
        Duration::from_secs(5)
    ));
    let (a, b) = clients.pop().unwrap();
    let (rate, _) = measure(vec![(a, b, b_key)]);
    assert_near(rate, data_share(300_000.0), "after a bad reload");
}

#[test]
fn max_clients_refuses_beyond_the_limit_but_not_mesh_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_key = [0x33u8; 32];
    let mesh_file = write_mesh_key(dir.path(), &mesh_key);
    let server = TestServer::start(&["--max-clients", "2", "--mesh-psk-file", &mesh_file]);
    let (first, _) = connect(&server, None);
    let (second, _) = connect(&server, None);
    let mut config = server.client_config();
    config.secret = SecretKey::generate().unwrap();
    assert!(
        smol::block_on(Client::connect(&config)).is_err(),
        "third client refused"
    );
    assert!(server.wait_for_log(
        "refused: server full (2 clients; see --max-clients)",
        Duration::from_secs(5)
    ));
    assert_eq!(
        counter(
            &server,
            "tinyderp_clients_refused_total{reason=\"max_clients\"} "
        ),
        1
    );
    let (_mesh, _) = connect(&server, Some(mesh_key));
    // The mesh peer got in although the server was full, and it counts: only when both
    // clients leave is there room again (1 registered < 2).
    drop(first);
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut config = server.client_config();
        config.secret = SecretKey::generate().unwrap();
        if smol::block_on(Client::connect(&config)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no room after two clients left");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One TLS handshake with the server; true when it completed within 5 s.
fn tls_handshake(server: &TestServer) -> bool {
    smol::block_on(within(
        Duration::from_secs(5),
        tls_connect(&connector(), server.derp_addr),
    ))
    .is_some_and(|handshake| handshake.is_ok())
}

fn counter(server: &TestServer, line_start: &str) -> u64 {
    metric(&varz(server), line_start)
}

#[test]
fn accept_rate_closes_excess_connections_at_once() {
    // One new connection per 4 s after a burst of 4. The harness's readiness probe may
    // have taken one token.
    let server = TestServer::start(&["--accept-rate", "0.25", "--accept-burst", "4"]);
    let started = Instant::now();
    let results: Vec<bool> = (0..8).map(|_| tls_handshake(&server)).collect();
    let quick = started.elapsed();
    let completed = results.iter().filter(|ok| **ok).count();
    assert!(
        quick < Duration::from_secs(2),
        "excess connections are closed at once ({quick:?})"
    );
    assert!((3..=4).contains(&completed), "{results:?}");
    assert!(
        results[..completed].iter().all(|ok| *ok),
        "the burst comes first: {results:?}"
    );
    // The bucket refills at the configured rate.
    std::thread::sleep(Duration::from_millis(4200));
    assert!(tls_handshake(&server));
    std::thread::sleep(Duration::from_millis(4200));
    let varz = varz(&server);
    let limited: u64 = varz
        .lines()
        .find_map(|l| l.strip_prefix("tinyderp_accept_rate_limited_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limited as usize, 8 - completed);
}

#[test]
fn stun_is_never_throttled() {
    let server = TestServer::start(&[
        "--accept-rate",
        "0.1",
        "--accept-burst",
        "1",
        "--total-rate",
        "65568",
        "--client-rate",
        "65568",
        "--max-clients",
        "1",
    ]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for i in 0..200u32 {
        let mut txid = [0u8; 12];
        txid[..4].copy_from_slice(&i.to_be_bytes());
        socket
            .send_to(&stun::binding_request(&txid), server.stun())
            .unwrap();
        let (n, _) = socket
            .recv_from(&mut buf)
            .expect("every STUN request is answered");
        let (got, mapped) = stun::parse_binding_response(&buf[..n]).unwrap();
        assert_eq!((got, mapped), (txid, socket.local_addr().unwrap()));
    }
}
