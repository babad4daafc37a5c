//! Integration tests: the real `tinyderp` binary on loopback over TLS, driven by the
//! crate's own DERP client (and raw sockets where the client would hide the bytes).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use nix::sys::signal::Signal;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use support::https::{connector, https_request, tls_connect};
use support::{assert_nothing, recv_until, run_tinyderp, TestServer};
use tinyderp::client::{cert_pin, Client, ServerMessage, TlsVerify};
use tinyderp::proto::frame::DISCO_MAGIC;
use tinyderp::proto::key::{PublicKey, SecretKey};
use tinyderp::proto::stun;

fn is_packet_from(src: PublicKey) -> impl Fn(&ServerMessage) -> bool {
    move |m| matches!(m, ServerMessage::RecvPacket { src: s, .. } if *s == src)
}

fn packet_data(message: ServerMessage) -> Vec<u8> {
    match message {
        ServerMessage::RecvPacket { data, .. } => data.into_owned(),
        other => panic!("expected a packet, got {other:?}"),
    }
}

fn key_of(client: &support::TestServer, secret: &SecretKey) -> PublicKey {
    let _ = client;
    secret.public_key()
}

/// Connects a client with a known key.
fn connect_with(server: &TestServer, secret: SecretKey, fast_start: bool) -> Client {
    let mut config = server.client_config();
    config.secret = secret;
    config.fast_start = fast_start;
    smol::block_on(Client::connect(&config)).expect("client connects")
}

#[test]
fn two_clients_relay_both_ways_with_every_size() {
    let server = TestServer::start(&[]);
    let (a_secret, b_secret) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let (a_key, b_key) = (key_of(&server, &a_secret), key_of(&server, &b_secret));
    let mut a = connect_with(&server, a_secret, true);
    let mut b = connect_with(&server, b_secret, true);
    let big: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    for payload in [Vec::new(), b"hello".to_vec(), big.clone()] {
        smol::block_on(a.send_packet(&b_key, &payload)).unwrap();
        assert_eq!(
            packet_data(recv_until(&mut b, is_packet_from(a_key))),
            payload
        );
        smol::block_on(b.send_packet(&a_key, &payload)).unwrap();
        assert_eq!(
            packet_data(recv_until(&mut a, is_packet_from(b_key))),
            payload
        );
    }
}

#[test]
fn oversized_packet_closes_the_sender_only() {
    let server = TestServer::start(&[]);
    let b_secret = SecretKey::generate().unwrap();
    let b_key = b_secret.public_key();
    let mut a = server.connect();
    let mut b = connect_with(&server, b_secret, true);
    // A hand-built SendPacket whose data is one byte over 64 KiB (the client refuses to build it).
    let mut frame = vec![0x04];
    frame.extend_from_slice(&(32u32 + 65537).to_be_bytes());
    frame.extend_from_slice(b_key.as_bytes());
    frame.extend_from_slice(&vec![0u8; 65537]);
    let _ = smol::block_on(a.send_raw(&frame));
    let ended = support::closed_within(&mut a, Duration::from_secs(5));
    assert!(
        ended,
        "server must close a client that sends more than 64 KiB"
    );
    let mut c = server.connect();
    smol::block_on(c.send_packet(&b_key, b"still fine")).unwrap();
    assert_eq!(
        packet_data(recv_until(&mut b, |m| matches!(
            m,
            ServerMessage::RecvPacket { .. }
        ))),
        b"still fine"
    );
}

#[test]
fn peer_gone_disconnected_after_sender_leaves() {
    let server = TestServer::start(&[]);
    let (a_secret, b_secret) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let (a_key, b_key) = (a_secret.public_key(), b_secret.public_key());
    let mut a = connect_with(&server, a_secret, true);
    let mut b = connect_with(&server, b_secret, true);
    let mut bystander = server.connect();
    smol::block_on(a.send_packet(&b_key, b"hi")).unwrap();
    recv_until(&mut b, is_packet_from(a_key));
    smol::block_on(a.close()).unwrap();
    let gone = recv_until(&mut b, |m| matches!(m, ServerMessage::PeerGone { .. }));
    assert_eq!(
        gone,
        ServerMessage::PeerGone {
            key: a_key,
            reason: 0
        }
    );
    assert_nothing(&mut bystander, Duration::from_millis(500), |m| {
        matches!(m, ServerMessage::PeerGone { .. })
    });
}

#[test]
fn peer_gone_not_here_for_disco_to_unknown_key() {
    let server = TestServer::start(&[]);
    let mut a = server.connect();
    let unknown = SecretKey::generate().unwrap().public_key();
    let mut disco = DISCO_MAGIC.to_vec();
    disco.extend_from_slice(&[7u8; 56]);
    smol::block_on(a.send_packet(&unknown, b"not disco")).unwrap();
    smol::block_on(a.send_packet(&unknown, &disco)).unwrap();
    let gone = recv_until(&mut a, |m| matches!(m, ServerMessage::PeerGone { .. }));
    assert_eq!(
        gone,
        ServerMessage::PeerGone {
            key: unknown,
            reason: 1
        }
    );
}

#[test]
fn ping_gets_pong_with_same_bytes() {
    let server = TestServer::start(&[]);
    let mut a = server.connect();
    let payload = [1, 2, 3, 4, 5, 6, 7, 0x2a];
    smol::block_on(a.ping(payload)).unwrap();
    assert_eq!(
        recv_until(&mut a, |m| matches!(m, ServerMessage::Pong(_))),
        ServerMessage::Pong(payload)
    );
}

#[test]
fn duplicate_key_keeps_both_and_last_writer_receives() {
    let server = TestServer::start(&[]);
    let dup_secret = SecretKey::generate().unwrap();
    let dup_key = dup_secret.public_key();
    let sender_secret = SecretKey::generate().unwrap();
    let sender_key = sender_secret.public_key();
    let mut first = connect_with(&server, dup_secret.clone(), true);
    let mut second = connect_with(&server, dup_secret, true);
    let mut sender = connect_with(&server, sender_secret, true);

    smol::block_on(sender.send_packet(&dup_key, b"to newest")).unwrap();
    assert_eq!(
        packet_data(recv_until(&mut second, is_packet_from(sender_key))),
        b"to newest"
    );

    // The older connection speaks: it becomes the active one.
    smol::block_on(first.note_preferred(true)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    smol::block_on(sender.send_packet(&dup_key, b"to last writer")).unwrap();
    assert_eq!(
        packet_data(recv_until(&mut first, is_packet_from(sender_key))),
        b"to last writer"
    );
    // Both are still open: the newer one still answers pings.
    smol::block_on(second.ping([9; 8])).unwrap();
    assert_eq!(
        recv_until(&mut second, |m| matches!(m, ServerMessage::Pong(_))),
        ServerMessage::Pong([9; 8])
    );
}

#[test]
fn fast_start_and_slow_path_both_log_in() {
    let server = TestServer::start(&[]);
    let fast = connect_with(&server, SecretKey::generate().unwrap(), true);
    assert!(
        fast.used_fast_start(),
        "meta cert + TLS 1.3 must allow fast start"
    );
    let slow = connect_with(&server, SecretKey::generate().unwrap(), false);
    assert!(!slow.used_fast_start());
    assert_eq!(fast.server_key(), slow.server_key());
}

#[test]
fn raw_slow_path_has_exact_101_and_server_key() {
    let server = TestServer::start(&[]);
    smol::block_on(async {
        let mut tls = tls_connect(&connector(), server.derp_addr).await.unwrap();
        let host = format!("localhost:{}", server.derp_addr.port());
        tls.write_all(&tinyderp::client::upgrade_request(&host, false))
            .await
            .unwrap();
        tls.flush().await.unwrap();
        let mut got = vec![0u8; 4096];
        let mut len = 0;
        while !got[..len].windows(4).any(|w| w == b"\r\n\r\n") || len < 200 {
            let n = tls.read(&mut got[len..]).await.unwrap();
            assert!(n > 0, "server closed early");
            len += n;
        }
        let text = String::from_utf8_lossy(&got[..len]).to_string();
        let head_end = text.find("\r\n\r\n").unwrap() + 4;
        let head = &text[..head_end];
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Upgrade: DERP\r\n") && head.contains("Derp-Version: 2\r\n"),
            "{head}"
        );
        let key_line = head
            .lines()
            .find(|l| l.starts_with("Derp-Public-Key: "))
            .unwrap();
        let hex = key_line.trim_start_matches("Derp-Public-Key: ");
        let frame = &got[head_end..];
        assert_eq!(&frame[..5], &[0x01, 0, 0, 0, 0x28]);
        assert_eq!(&frame[5..13], b"DERP\xf0\x9f\x94\x91");
        assert_eq!(tinyderp::proto::key::hex_lower(&frame[13..45]), hex);
    });
}

#[test]
fn mesh_watcher_sees_presence_and_forwards() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_hex = "a1".repeat(32);
    let psk = dir.path().join("mesh.key");
    std::fs::write(&psk, format!("{mesh_hex}\n")).unwrap();
    let server = TestServer::start(&["--mesh-psk-file", psk.to_str().unwrap()]);
    let client_secret = SecretKey::generate().unwrap();
    let client_key = client_secret.public_key();
    let mut client = connect_with(&server, client_secret, true);

    let mut mesh_config = server.client_config();
    let mesh_key = mesh_config.secret.public_key();
    mesh_config.mesh_key = tinyderp::proto::key::parse_hex_32(&mesh_hex);
    let mut mesh = smol::block_on(Client::connect(&mesh_config)).unwrap();
    smol::block_on(mesh.watch_conns()).unwrap();
    let present = |key: PublicKey| move |m: &ServerMessage| matches!(m, ServerMessage::PeerPresent { key: k, .. } if *k == key);
    // The snapshot lists every connected key (sorted, so in no particular order here).
    let mut snapshot = std::collections::HashMap::new();
    while snapshot.len() < 2 {
        if let ServerMessage::PeerPresent { key, addr, flags } = recv_until(&mut mesh, |m| {
            matches!(m, ServerMessage::PeerPresent { .. })
        }) {
            snapshot.insert(key, (addr, flags));
        }
    }
    let (client_addr, client_flags) = snapshot[&client_key];
    assert_eq!(client_flags, 0x01, "regular client");
    assert_eq!(client_addr.map(|a| a.ip()), Some(server.derp_addr.ip()));
    assert_eq!(snapshot[&mesh_key].1, 0x02, "mesh peer");

    let late_secret = SecretKey::generate().unwrap();
    let late_key = late_secret.public_key();
    let late = connect_with(&server, late_secret, false);
    recv_until(&mut mesh, present(late_key));
    smol::block_on(late.close()).unwrap();
    let gone = recv_until(
        &mut mesh,
        |m| matches!(m, ServerMessage::PeerGone { key, .. } if *key == late_key),
    );
    assert_eq!(
        gone,
        ServerMessage::PeerGone {
            key: late_key,
            reason: 0
        }
    );

    let far_away = SecretKey::generate().unwrap().public_key();
    smol::block_on(mesh.forward_packet(&far_away, &client_key, b"via mesh")).unwrap();
    assert_eq!(
        packet_data(recv_until(&mut client, is_packet_from(far_away))),
        b"via mesh"
    );

    // A client without the mesh key may not watch: the server closes it.
    let mut intruder = server.connect();
    smol::block_on(intruder.watch_conns()).unwrap();
    let closed = support::closed_within(&mut intruder, Duration::from_secs(5));
    assert!(closed);
}

fn stun_round_trip(server_addr: SocketAddr, bind: &str) {
    let socket = UdpSocket::bind((bind, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let txid = [3u8; 12];
    socket
        .send_to(&stun::binding_request(&txid), server_addr)
        .unwrap();
    let mut buf = [0u8; 128];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    let (got_txid, mapped) = stun::parse_binding_response(&buf[..len]).unwrap();
    assert_eq!(got_txid, txid);
    assert_eq!(mapped, socket.local_addr().unwrap());
    // Garbage gets no answer.
    socket.send_to(b"hello, not stun", server_addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        socket.recv_from(&mut buf).is_err(),
        "garbage must not be answered"
    );
}

#[test]
fn stun_over_real_udp_ipv4_and_ipv6() {
    let v4 = TestServer::start_on("127.0.0.1", &[]);
    stun_round_trip(v4.stun(), "127.0.0.1");
    let v6 = TestServer::start_on("::1", &[]);
    stun_round_trip(v6.stun(), "::1");
}

#[test]
fn http_endpoints_answer_like_derper() {
    let server = TestServer::start(&[]);
    for path in ["/derp/probe", "/derp/latency-check"] {
        let response = https_request(
            &server,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("Access-Control-Allow-Origin: *\r\n"),
            "{response}"
        );
        let head = https_request(
            &server,
            &format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    }
    let post = https_request(
        &server,
        "POST /derp/probe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    let challenge = https_request(
        &server,
        "GET /generate_204 HTTP/1.1\r\nHost: x\r\nX-Tailscale-Challenge: ts_198.51.100.7\r\n\r\n",
    );
    assert!(
        challenge.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{challenge}"
    );
    assert!(
        challenge.contains("X-Tailscale-Response: response ts_198.51.100.7\r\n"),
        "{challenge}"
    );
    let bad = https_request(
        &server,
        "GET /generate_204 HTTP/1.1\r\nHost: x\r\nX-Tailscale-Challenge: a b\r\n\r\n",
    );
    assert!(
        bad.starts_with("HTTP/1.1 204") && !bad.contains("X-Tailscale-Response"),
        "{bad}"
    );

    let no_upgrade = https_request(&server, "GET /derp HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(no_upgrade.starts_with("HTTP/1.1 426"), "{no_upgrade}");
    let robots = https_request(&server, "GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(robots.ends_with("User-agent: *\nDisallow: /\n"), "{robots}");

    let home = https_request(&server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        home.contains("tinyderp") && home.contains(&server.logged_pin()),
        "{home}"
    );
    let metrics = https_request(&server, "GET /debug/varz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("tinyderp_tls_handshakes_total"),
        "{metrics}"
    );
    let proxied = https_request(
        &server,
        "GET /debug/varz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    );
    assert!(proxied.starts_with("HTTP/1.1 403"), "{proxied}");
}

/// `tinyderp status` reads the running relay's counters from its status socket in the
/// state directory (no TLS client needed, so it works in the router builds), and says
/// what is wrong when no relay runs there.
#[test]
fn status_command_reads_the_counters_from_the_status_socket() {
    let server = TestServer::start(&[]);
    let state = server.state_dir.path().to_str().unwrap();
    let _client = server.connect();
    let (status, stdout, stderr) = run_tinyderp(&["status", "--state-dir", state]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("tinyderp_clients 1"), "{stdout}");
    assert!(stdout.contains("tinyderp_uptime_seconds"), "{stdout}");

    let empty = tempfile::tempdir().expect("temp dir");
    let (status, _, stderr) =
        run_tinyderp(&["status", "--state-dir", empty.path().to_str().unwrap()]);
    assert!(!status.success());
    assert!(stderr.contains("is it running?"), "{stderr}");
}

#[test]
fn printed_pin_is_sha256_of_served_leaf() {
    let server = TestServer::start(&[]);
    let client = server.connect();
    let certs = client.peer_certificates();
    assert_eq!(certs.len(), 2, "leaf + meta certificate");
    let pin = cert_pin(&certs[0]);
    assert_eq!(pin, server.logged_pin());
    let (status, stdout, stderr) = run_tinyderp(&[
        "derpmap",
        "--state-dir",
        server.state_dir.path().to_str().unwrap(),
        "--hostname",
        "localhost",
    ]);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("\"CertName\": \"{pin}\"")),
        "{stdout}"
    );
    // The pinned client accepts it; a wrong pin is refused.
    let mut config = server.client_config();
    config.verify = TlsVerify::Pin(pin);
    smol::block_on(Client::connect(&config)).expect("pinned connect");
    config.verify = TlsVerify::Pin(format!("sha256-raw:{}", "0".repeat(64)));
    assert!(smol::block_on(Client::connect(&config)).is_err());
}

#[test]
fn no_meta_cert_serves_leaf_only() {
    let server = TestServer::start(&["--no-meta-cert"]);
    let client = connect_with(&server, SecretKey::generate().unwrap(), true);
    assert_eq!(client.peer_certificates().len(), 1);
    assert!(!client.used_fast_start());
}

#[test]
fn sighup_reloads_certificate_and_keeps_clients() {
    let server = TestServer::start(&[]);
    let b_secret = SecretKey::generate().unwrap();
    let b_key = b_secret.public_key();
    let mut a = server.connect();
    let mut b = connect_with(&server, b_secret, true);
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_for_log("certificate reloaded", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    smol::block_on(a.send_packet(&b_key, b"after reload")).unwrap();
    assert_eq!(
        packet_data(recv_until(&mut b, |m| matches!(
            m,
            ServerMessage::RecvPacket { .. }
        ))),
        b"after reload"
    );
    // A new client gets the same pin.
    let c = server.connect();
    assert_eq!(cert_pin(&c.peer_certificates()[0]), server.logged_pin());
}

#[test]
fn sigterm_sends_restarting_and_exits_zero() {
    // cross/smoke.sh skips this test under qemu-mips/qemu-mipsel and reports it as
    // SKIPPED (its skip table holds the reason); every other target runs it under qemu.
    let mut server = TestServer::start(&[]);
    let mut a = server.connect();
    server.signal(Signal::SIGTERM);
    let restarting = recv_until(&mut a, |m| matches!(m, ServerMessage::Restarting { .. }));
    assert!(
        matches!(restarting, ServerMessage::Restarting { reconnect_in_ms, try_for_ms } if reconnect_in_ms > 0 && try_for_ms > reconnect_in_ms)
    );
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn state_survives_restart_key_and_pin_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap().to_string();
    let first = TestServer::start(&["--state-dir", &state]);
    let key1 = first.connect().server_key();
    let pin1 = first.logged_pin();
    drop(first);
    let second = TestServer::start(&["--state-dir", &state]);
    assert_eq!(second.connect().server_key(), key1);
    assert_eq!(second.logged_pin(), pin1);
    let key_file = dir.path().join("derper.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn bad_command_line_gets_one_line_and_exit_2() {
    let (status, _, stderr) = run_tinyderp(&["--stun-port", "abc"]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--stun-port"), "{stderr}");
    let (status, stdout, _) = run_tinyderp(&["--help"]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.contains("--hostname") && stdout.contains("--certmode"));
}

#[test]
fn manual_certificate_with_derper_naming_and_hostname_check() {
    let certdir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["relay.example".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(certdir.path().join("relay.example.crt"), cert.pem()).unwrap();
    std::fs::write(
        certdir.path().join("relay.example.key"),
        key.serialize_pem(),
    )
    .unwrap();
    let dir = certdir.path().to_str().unwrap();
    let server = TestServer::start(&[
        "--certmode",
        "manual",
        "--certdir",
        dir,
        "--hostname",
        "relay.example",
    ]);
    let mut config = server.client_config();
    config.server_name = "relay.example".to_string();
    config.verify = TlsVerify::Roots(vec![cert.der().clone()]);
    let client =
        smol::block_on(Client::connect(&config)).expect("verified against the manual cert");
    assert_eq!(
        cert_pin(&client.peer_certificates()[0]),
        server.logged_pin()
    );

    // The same files for another hostname: refused at start with a line that names the problem.
    std::fs::copy(
        certdir.path().join("relay.example.crt"),
        certdir.path().join("other.example.crt"),
    )
    .unwrap();
    std::fs::copy(
        certdir.path().join("relay.example.key"),
        certdir.path().join("other.example.key"),
    )
    .unwrap();
    let (status, _, stderr) = run_tinyderp(&[
        "--certmode",
        "manual",
        "--certdir",
        dir,
        "--hostname",
        "other.example",
        "--state-dir",
        dir,
        "-a",
        "127.0.0.1:0",
        "--stun-port",
        "-1",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("other.example"), "{stderr}");
    // A missing file is refused with its path.
    let (status, _, stderr) = run_tinyderp(&[
        "--certmode",
        "manual",
        "--certdir",
        dir,
        "--hostname",
        "missing.example",
        "--state-dir",
        dir,
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.example.crt"), "{stderr}");
}

#[test]
fn plain_http_port_answers_captive_checks_and_redirects() {
    // The DERP listener is on a port the kernel picked, so the redirect target is pinned
    // with --public-derp-port (the port clients are told, which the redirect names).
    let server = TestServer::start(&["--http-port", "0", "--public-derp-port", "10443"]);
    let http_addr = server.http_addr.expect("plain HTTP listening");
    let request = |text: &str| -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(http_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    };
    let captive = request("GET /generate_204 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tailscale-Challenge: ts_127.0.0.1\r\n\r\n");
    assert!(captive.starts_with("HTTP/1.1 204"), "{captive}");
    assert!(
        captive.contains("X-Tailscale-Response: response ts_127.0.0.1\r\n"),
        "{captive}"
    );
    let redirect = request("GET /some/page?x=1 HTTP/1.1\r\nHost: router.example\r\n\r\n");
    assert!(redirect.starts_with("HTTP/1.1 302"), "{redirect}");
    let location = "Location: https://router.example:10443/some/page?x=1\r\n";
    assert!(redirect.contains(location), "{redirect}");
    let post = request("POST /x HTTP/1.1\r\nHost: router.example\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 400"), "{post}");
}

#[test]
fn private_key_never_appears_in_logs_or_pages() {
    let server = TestServer::start(&[]);
    let key_json = std::fs::read_to_string(server.state_dir.path().join("derper.key")).unwrap();
    let hex = key_json.split("privkey:").nth(1).unwrap()[..64].to_string();
    let _ = server.connect();
    let home = https_request(&server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let metrics = https_request(&server, "GET /debug/varz HTTP/1.1\r\nHost: x\r\n\r\n");
    for (what, text) in [
        ("log", server.log()),
        ("home page", home),
        ("metrics", metrics),
    ] {
        assert!(
            !text.to_lowercase().contains(&hex),
            "private key leaked into the {what}"
        );
    }
}

/// `validate`'s refusals quote the user's text exactly as the library writes them on the
/// host. Under the router stage (cross/smoke.sh) TINYDERP_BIN is the cross-built binary,
/// whose Debug formatting is cut down for size (cross/size-config.toml), so this proves
/// that no message that quotes user input depends on it.
#[test]
fn validate_messages_match_the_host_library() {
    let cases: &[&str] = &[
        "--hostname=a b",
        "--hostname=q\"u'o\\te x",
        "--hostname=é x",
        "--stun-port=abc",
        "--tcp-keepalive=-5s",
        "--tcp-keepalive=\u{301}zz",
        "--tcp-user-timeout=1 minute",
        "--metrics-allow=::ffff:10.0.0.0/104",
        "--metrics-allow=10.0.0.0/40",
        "--metrics-allow=x\u{200b}y",
        "--verify-clients=maybe",
        "--verify-client-url=ftp://x",
        "--verify-client-url=http://u@x/",
        "--verify-client-url=http://x:0/",
    ];
    for case in cases {
        let args = ["tinyderp", "validate", case].map(String::from);
        let want = match tinyderp::command::parse(&args) {
            Err(exit) => exit,
            Ok(_) => panic!("{case}: the library accepts it"),
        };
        assert!(want.to_stderr && want.code == 2, "{case}: {want:?}");
        // The message must quote the value: this test is about quoting.
        let value = case.split_once('=').map(|(_, value)| value).unwrap_or("");
        assert!(
            want.output.contains(&format!("{value:?}")),
            "{case}: {want:?}"
        );
        let (status, stdout, stderr) = run_tinyderp(&["validate", case]);
        assert_eq!(status.code(), Some(want.code), "{case}: {stderr}");
        assert_eq!(stdout, "", "{case}");
        assert_eq!(stderr, format!("{}\n", want.output), "{case}");
    }
}

/// The served binary prefers AES-128-GCM over AES-256-GCM whatever the client's order (on
/// every CPU: both preference lists in `tinyderp::cert::cipher_suites` put it first of the
/// two), also with the router binary's cut-down Debug formatting (cross/size-config.toml).
#[test]
fn server_prefers_aes_128_over_aes_256() {
    use rustls::crypto::ring::{cipher_suite, default_provider};
    let server = TestServer::start(&[]);
    let mut provider = default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    let provider = std::sync::Arc::new(provider);
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(
            tinyderp::client::AcceptAnyCert::new(provider),
        ))
        .with_no_client_auth();
    let connector = futures_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tls = smol::block_on(tls_connect(&connector, server.derp_addr)).expect("TLS handshake");
    let suite = tls.get_ref().1.negotiated_cipher_suite().expect("a suite");
    assert_eq!(suite.suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
}

/// The server picks its own first suite (`ignore_client_order`), chosen per CPU by
/// measurement (`tinyderp::cert::cipher_suites`), whatever order the client offers:
/// Go's order on a CPU with AES instructions, Go's order without them, all of rustls's.
/// A client offering only another suite still gets it. Under an emulator (the router
/// stage's `TINYDERP_RUNNER`) the server's CPU is not the test's, so there the pick is only
/// required to be the same for every order.
#[test]
fn the_server_picks_its_preferred_cipher_suite_whatever_the_client_order() {
    use rustls::CipherSuite as S;
    let server = TestServer::start(&[]);
    let emulated = std::env::var_os("TINYDERP_RUNNER").is_some_and(|runner| !runner.is_empty());
    let host_preferred = tinyderp::cert::cipher_suites(tinyderp::cert::aes_is_faster())[0].suite();
    let mut first_pick = None;
    let aes_first = vec![
        S::TLS13_AES_128_GCM_SHA256,
        S::TLS13_AES_256_GCM_SHA384,
        S::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let chacha_first = vec![
        S::TLS13_CHACHA20_POLY1305_SHA256,
        S::TLS13_AES_128_GCM_SHA256,
        S::TLS13_AES_256_GCM_SHA384,
    ];
    for offered in [aes_first, chacha_first, Vec::new()] {
        let mut config = server.client_config();
        config.tls_suites = offered.clone();
        let client = smol::block_on(Client::connect(&config)).expect("client connects");
        let picked = client.tls_suite();
        assert!(picked.is_some(), "offered {offered:?}: no suite reported");
        let expected = *first_pick.get_or_insert(if emulated {
            picked
        } else {
            Some(host_preferred)
        });
        assert_eq!(picked, expected, "offered {offered:?}");
    }
    let mut config = server.client_config();
    config.tls_suites = vec![S::TLS13_AES_256_GCM_SHA384];
    let client = smol::block_on(Client::connect(&config)).expect("client connects");
    assert_eq!(client.tls_suite(), Some(S::TLS13_AES_256_GCM_SHA384));
}
