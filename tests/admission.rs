//! Admission, end to end: the real binary on loopback with each check configured, and
//! fake peers in the test (a LocalAPI on a Unix socket answering whois like tailscaled,
//! an admission controller on 127.0.0.1), asserting who gets in, what the peers were
//! asked, what is counted and what is logged.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::https::{metric, varz};
use support::{closed_port, write_mesh_key, TestServer};
use tinyderp::client::Client;
use tinyderp::proto::key::{PublicKey, SecretKey};

/// Requests a fake peer received, as text.
type Seen = Arc<Mutex<Vec<String>>>;

/// What a fake peer answers to one request: `Some(raw response)`, or `None` to hold the
/// connection open without answering (a hung peer).
type Answer = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads one request (head plus Content-Length body) from `stream`.
fn read_request(stream: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

fn serve_one(mut stream: impl Read + Write, answer: &Answer, seen: &Seen) {
    let stream = &mut stream;
    let request = read_request(stream);
    seen.lock().unwrap().push(request.clone());
    match answer(&request) {
        Some(response) => {
            let _ = stream.write_all(response.as_bytes());
        }
        None => std::thread::sleep(Duration::from_secs(30)),
    }
}

/// A fake tailscaled LocalAPI on a Unix socket.
fn fake_localapi(path: &std::path::Path, answer: Answer) -> Seen {
    let listener = UnixListener::bind(path).unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (answer, record) = (answer.clone(), record.clone());
            std::thread::spawn(move || serve_one(stream, &answer, &record));
        }
    });
    seen
}

/// A fake admission controller on 127.0.0.1 speaking TLS with `cert`; returns its URL.
#[cfg(feature = "https-admission")]
fn fake_tls_controller(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    answer: Answer,
) -> (String, Seen) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}/admit",
        listener.local_addr().unwrap().port()
    );
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (answer, record, config) = (answer.clone(), record.clone(), config.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                serve_one(&mut stream, &answer, &record);
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    (url, seen)
}

/// A fake admission controller on 127.0.0.1; returns its URL.
fn fake_controller(answer: Answer) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/admit", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (answer, record) = (answer.clone(), record.clone());
            std::thread::spawn(move || serve_one(stream, &answer, &record));
        }
    });
    (url, seen)
}

fn http_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Go's chunked encoding, as tailscaled uses for larger whois answers.
fn chunked_response(status: &str, body: &str) -> String {
    let (a, b) = body.split_at(body.len() / 2);
    format!(
        "HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
}

/// Tries to log in with `secret`; true when the server admitted the client.
fn try_login(server: &TestServer, secret: &SecretKey) -> bool {
    let mut config = server.client_config();
    config.secret = secret.clone();
    smol::block_on(Client::connect(&config)).is_ok()
}

/// A client configuration for `server` that logs in as a mesh peer with `mesh_key` under a
/// fresh node key (returned too).
fn mesh_peer_config(
    server: &TestServer,
    mesh_key: [u8; 32],
) -> (tinyderp::client::ClientConfig, PublicKey) {
    let (secret, public) = fresh();
    let mut config = server.client_config();
    config.secret = secret;
    config.mesh_key = Some(mesh_key);
    (config, public)
}

fn fresh() -> (SecretKey, PublicKey) {
    let secret = SecretKey::generate().unwrap();
    let public = secret.public_key();
    (secret, public)
}

#[test]
fn allowlist_admits_listed_keys_and_refuses_others() {
    let (a_secret, a_key) = fresh();
    let (b_secret, b_key) = fresh();
    let (c_secret, _) = fresh();
    // Both accepted spellings: nodekey: form and bare upper-case hex.
    let a_text = a_key.to_string();
    let b_text = b_key.to_hex().to_uppercase();
    let server = TestServer::start(&["--allowed-key", &a_text, "--allowed-key", &b_text]);
    assert!(server.log().contains("admission: 2 allowed keys"));
    assert!(try_login(&server, &a_secret));
    assert!(try_login(&server, &b_secret));
    assert!(!try_login(&server, &c_secret));
    assert!(!try_login(&server, &c_secret));
    assert!(server.wait_for_log("refused: not in the allowed keys", Duration::from_secs(5)));
    let varz = varz(&server);
    assert_eq!(
        metric(
            &varz,
            "tinyderp_clients_refused_total{reason=\"not_allowlisted\"} "
        ),
        2
    );
    assert_eq!(
        metric(&varz, "tinyderp_clients_admitted_total{how=\"allowlist\"} "),
        2
    );
    // Without learn mode the full key of a refused client is not logged.
    assert!(!server.log().contains("to allow it"));
}

#[test]
fn refused_client_is_closed_before_server_info_and_others_are_unaffected() {
    let (a_secret, a_key) = fresh();
    let (b_secret, b_key) = fresh();
    let server = TestServer::start(&[
        "--allowed-key",
        &a_key.to_string(),
        "--allowed-key",
        &b_key.to_string(),
    ]);
    let mut a = {
        let mut config = server.client_config();
        config.secret = a_secret;
        smol::block_on(Client::connect(&config)).unwrap()
    };
    let mut b = {
        let mut config = server.client_config();
        config.secret = b_secret;
        smol::block_on(Client::connect(&config)).unwrap()
    };
    let started = Instant::now();
    let (stranger, _) = fresh();
    let mut config = server.client_config();
    config.secret = stranger;
    let err = smol::block_on(Client::connect(&config))
        .err()
        .expect("refused");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refusal must be immediate, took {:?} ({err})",
        started.elapsed()
    );
    smol::block_on(a.send_packet(&b_key, b"still relayed")).unwrap();
    let got = support::recv_until(&mut b, |m| {
        matches!(m, tinyderp::client::ServerMessage::RecvPacket { .. })
    });
    assert!(
        matches!(got, tinyderp::client::ServerMessage::RecvPacket { data, .. } if *data == *b"still relayed")
    );
}

#[test]
fn learn_mode_logs_refused_key_once_with_paste_ready_lines() {
    let (allowed, allowed_key) = fresh();
    let (stranger, stranger_key) = fresh();
    let server = TestServer::start(&[
        "--allowed-key",
        &allowed_key.to_string(),
        "--log-refused-keys",
    ]);
    assert!(try_login(&server, &allowed));
    for _ in 0..3 {
        assert!(!try_login(&server, &stranger));
    }
    let needle = format!("refused {stranger_key} from 127.0.0.1 (not_allowlisted)");
    assert!(
        server.wait_for_log(&needle, Duration::from_secs(5)),
        "{}",
        server.log()
    );
    let log = server.log();
    assert_eq!(log.matches(&needle).count(), 1, "one line per key:\n{log}");
    assert!(log.contains(&format!(
        "uci add_list tinyderp.main.allowed_key='{stranger_key}'"
    )));
    assert!(!log.contains(&format!("refused {allowed_key}")));
}

/// `tinyderp status --json` lists learn mode's refused keys (address, count, reason) from
/// the relay's own record, and the relays logged in with the mesh key; what LuCI shows.
#[test]
fn status_json_lists_refused_keys_and_mesh_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_key = [0x43u8; 32];
    let mesh_file = write_mesh_key(dir.path(), &mesh_key);
    let (allowed, allowed_key) = fresh();
    let (stranger, stranger_key) = fresh();
    let server = TestServer::start(&[
        "--allowed-key",
        &allowed_key.to_string(),
        "--log-refused-keys",
        "--mesh-psk-file",
        &mesh_file,
    ]);
    let state = server.state_dir.path().to_str().unwrap().to_string();
    let status = || {
        let (exit, stdout, stderr) =
            support::run_tinyderp(&["status", "--json", "--state-dir", &state]);
        assert!(exit.success(), "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON")
    };
    let before = status();
    assert_eq!(before["refused_keys"]["learn"], true);
    assert_eq!(before["refused_keys"]["bound"], 64);
    assert_eq!(before["refused_keys"]["keys"].as_array().unwrap().len(), 0);
    assert_eq!(before["mesh"]["key_configured"], true);
    assert_eq!(before["mesh"]["clients_total"], 0);
    assert!(before["varz"]
        .as_str()
        .unwrap()
        .contains("tinyderp_uptime_seconds"));

    assert!(try_login(&server, &allowed));
    for _ in 0..2 {
        assert!(!try_login(&server, &stranger));
    }
    let (mesh_config, mesh_public) = mesh_peer_config(&server, mesh_key);
    let _mesh = smol::block_on(Client::connect(&mesh_config)).expect("mesh peer admitted");

    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let now = status();
        if now["mesh"]["clients_total"] == 1 && now["refused_keys"]["keys"][0]["count"] == 2
            || Instant::now() > deadline
        {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let keys = after["refused_keys"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{after}");
    assert_eq!(keys[0]["key"], stranger_key.to_string());
    assert_eq!(keys[0]["address"], "127.0.0.1");
    assert_eq!(keys[0]["reason"], "not_allowlisted");
    assert_eq!(keys[0]["count"], 2);
    assert!(keys[0]["last_seen_ago"].as_u64().unwrap() < 60);
    let clients = after["mesh"]["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{after}");
    assert_eq!(clients[0]["key"], mesh_public.to_string());
    assert!(clients[0]["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(after["mesh"]["peers"].as_array().unwrap().len(), 0);
}

#[test]
fn mesh_peers_bypass_admission() {
    let server_dir = tempfile::tempdir().unwrap();
    let mesh_key = [0x42u8; 32];
    let mesh_file = write_mesh_key(server_dir.path(), &mesh_key);
    let (other, other_key) = fresh();
    let dead = closed_port();
    let server = TestServer::start(&[
        "--mesh-psk-file",
        &mesh_file,
        "--allowed-key",
        &other_key.to_string(),
        "--verify-client-url",
        &format!("http://127.0.0.1:{}/admit", dead.port),
        "--verify-client-url-fail-open=false",
    ]);
    let (config, _) = mesh_peer_config(&server, mesh_key);
    assert!(
        smol::block_on(Client::connect(&config)).is_ok(),
        "mesh peer admitted"
    );
    assert!(
        !try_login(&server, &config.secret),
        "same key without the mesh key is refused"
    );
    assert!(try_login(&server, &other));
}

const WHOIS_BODY: &str = r#"{"Node":{"ID":7,"Name":"laptop.tailnet.ts.net."},"UserProfile":{"ID":1,"LoginName":"me@example.com"},"CapMap":{}}"#;

#[test]
fn verify_clients_asks_local_tailscaled() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    let (known, known_key) = fresh();
    let (chunked, chunked_key) = fresh();
    let (unknown, _) = fresh();
    let known_hex = known_key.to_hex();
    let chunked_hex = chunked_key.to_hex();
    let seen = fake_localapi(
        &socket,
        Box::new(move |request| {
            Some(if request.contains(&known_hex) {
                http_response("200 OK", WHOIS_BODY)
            } else if request.contains(&chunked_hex) {
                chunked_response("200 OK", WHOIS_BODY)
            } else {
                http_response("404 Not Found", "no match for IP:port\n")
            })
        }),
    );
    let server = TestServer::start(&["-verify-clients", "--socket", socket.to_str().unwrap()]);
    assert!(try_login(&server, &known));
    assert!(try_login(&server, &chunked));
    assert!(!try_login(&server, &unknown));
    assert!(server.wait_for_log(
        "refused: not found in local tailscaled",
        Duration::from_secs(5)
    ));

    // The request is what tailscaled expects.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert!(
        first.starts_with(&format!(
            "GET /localapi/v0/whois?addr=nodekey%3A{} HTTP/1.1\r\n",
            known_key.to_hex()
        )),
        "{first}"
    );
    assert!(
        first.contains("\r\nHost: local-tailscaled.sock\r\n"),
        "{first}"
    );
    assert!(first.contains("\r\nTailscale-Cap: 145\r\n"), "{first}");

    let varz = varz(&server);
    assert_eq!(
        metric(&varz, "tinyderp_clients_admitted_total{how=\"checked\"} "),
        2
    );
    assert_eq!(
        metric(
            &varz,
            "tinyderp_clients_refused_total{reason=\"tailscaled_unknown\"} "
        ),
        1
    );
}

#[test]
fn verify_clients_without_a_socket_refuses_everyone_but_the_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let (listed, listed_key) = fresh();
    let (other, _) = fresh();
    let server = TestServer::start(&[
        "--verify-clients",
        "--socket",
        dir.path().join("no-such.sock").to_str().unwrap(),
        "--allowed-key",
        &listed_key.to_string(),
    ]);
    assert!(!try_login(&server, &other));
    assert!(try_login(&server, &listed));
    assert!(server.wait_for_log(
        "refused: local tailscaled did not answer",
        Duration::from_secs(5)
    ));
    let varz = varz(&server);
    assert_eq!(
        metric(
            &varz,
            "tinyderp_clients_refused_total{reason=\"tailscaled_unreachable\"} "
        ),
        1
    );
}

#[test]
fn verify_client_url_allows_and_refuses_by_answer() {
    let (yes, yes_key) = fresh();
    let (no, _) = fresh();
    let yes_text = yes_key.to_string();
    let (url, seen) = fake_controller(Box::new(move |request| {
        let allow = request.contains(&yes_text);
        Some(http_response("200 OK", &format!("{{\"Allow\":{allow}}}")))
    }));
    let server = TestServer::start(&["--verify-client-url", &url]);
    assert!(try_login(&server, &yes));
    assert!(!try_login(&server, &no));
    assert!(server.wait_for_log(
        "refused: admission controller said no",
        Duration::from_secs(5)
    ));
    let requests = seen.lock().unwrap().clone();
    let first = &requests[0];
    assert!(first.starts_with("POST /admit HTTP/1.1\r\n"), "{first}");
    let body = &first[first.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["NodePublic"], yes_key.to_string());
    assert_eq!(json["Source"], "127.0.0.1");
    let varz = varz(&server);
    assert_eq!(
        metric(
            &varz,
            "tinyderp_clients_refused_total{reason=\"url_denied\"} "
        ),
        1
    );
}

#[test]
fn verify_client_url_unreachable_fail_open_and_fail_closed() {
    let nobody = closed_port();
    let dead = format!("http://127.0.0.1:{}/admit", nobody.port);
    let (a, _) = fresh();
    let open = TestServer::start(&["--verify-client-url", &dead]);
    assert!(try_login(&open, &a), "fail-open is the default");
    assert!(open.wait_for_log("unreachable", Duration::from_secs(5)));
    assert!(open.log().contains("allowing client"));
    assert_eq!(
        metric(
            &varz(&open),
            "tinyderp_clients_admitted_total{how=\"fail_open\"} "
        ),
        1
    );

    let closed = TestServer::start(&[
        "--verify-client-url",
        &dead,
        "--verify-client-url-fail-open=false",
    ]);
    assert!(!try_login(&closed, &a));
    assert!(closed.wait_for_log(
        "refused: admission controller unreachable",
        Duration::from_secs(5)
    ));
    assert_eq!(
        metric(
            &varz(&closed),
            "tinyderp_clients_refused_total{reason=\"url_unreachable\"} "
        ),
        1
    );
}

#[test]
fn verify_clients_and_url_must_both_agree() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    let (both, both_key) = fresh();
    let (only_tailscaled, only_key) = fresh();
    let (both_hex, only_hex) = (both_key.to_hex(), only_key.to_hex());
    fake_localapi(
        &socket,
        Box::new(move |request| {
            Some(
                if request.contains(&both_hex) || request.contains(&only_hex) {
                    http_response("200 OK", WHOIS_BODY)
                } else {
                    http_response("404 Not Found", "")
                },
            )
        }),
    );
    let both_text = both_key.to_string();
    let (url, _) = fake_controller(Box::new(move |request| {
        Some(http_response(
            "200 OK",
            &format!("{{\"Allow\":{}}}", request.contains(&both_text)),
        ))
    }));
    let server = TestServer::start(&[
        "--verify-clients",
        "--socket",
        socket.to_str().unwrap(),
        "--verify-client-url",
        &url,
    ]);
    assert!(try_login(&server, &both));
    assert!(!try_login(&server, &only_tailscaled));
}

#[test]
fn a_hung_controller_delays_only_its_own_client() {
    let (listed, listed_key) = fresh();
    let (waiting, _) = fresh();
    let (url, _) = fake_controller(Box::new(|_| None));
    let server = TestServer::start(&[
        "--verify-client-url",
        &url,
        "--verify-client-url-fail-open=false",
        "--allowed-key",
        &listed_key.to_string(),
    ]);
    let config = {
        let mut config = server.client_config();
        config.secret = waiting;
        config
    };
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let result = smol::block_on(Client::connect(&config));
        (result.is_ok(), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(try_login(&server, &listed));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the allowlisted client waited {:?}",
        started.elapsed()
    );
    let (admitted, took) = slow.join().unwrap();
    assert!(!admitted, "fail-closed refuses after the 5 s deadline");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(9),
        "refused after {took:?}"
    );
    assert!(server.wait_for_log("no answer within 5s", Duration::from_secs(5)));
}

#[test]
#[cfg(feature = "https-admission")]
fn verify_client_url_over_https_with_a_private_ca() {
    let cert = rcgen::generate_simple_self_signed(vec![String::from("localhost")]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    let (yes, yes_key) = fresh();
    let (no, _) = fresh();
    let yes_text = yes_key.to_string();
    let (url, seen) = fake_tls_controller(
        &cert,
        Box::new(move |request| {
            let allow = request.contains(&yes_text);
            Some(http_response("200 OK", &format!("{{\"Allow\":{allow}}}")))
        }),
    );
    let server = TestServer::start(&[
        "--verify-client-url",
        &url,
        "--verify-client-url-ca",
        ca_file.to_str().unwrap(),
        "--verify-client-url-fail-open=false",
    ]);
    assert!(try_login(&server, &yes));
    assert!(!try_login(&server, &no));
    assert!(server.wait_for_log(
        "refused: admission controller said no",
        Duration::from_secs(5)
    ));
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests[0].contains("\r\nHost: localhost:"),
        "{}",
        requests[0]
    );

    // A controller whose certificate is not signed by the configured CA is unreachable.
    let other = rcgen::generate_simple_self_signed(vec![String::from("localhost")]).unwrap();
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other.cert.pem()).unwrap();
    let untrusting = TestServer::start(&[
        "--verify-client-url",
        &url,
        "--verify-client-url-ca",
        other_file.to_str().unwrap(),
        "--verify-client-url-fail-open=false",
    ]);
    assert!(!try_login(&untrusting, &yes));
    assert!(untrusting.wait_for_log(
        "admission controller unreachable: TLS",
        Duration::from_secs(5)
    ));

    // A missing CA file stops the start with a clear line.
    let (status, _, stderr) = support::run_tinyderp(&[
        "--verify-client-url",
        &url,
        "--verify-client-url-ca",
        dir.path().join("missing.pem").to_str().unwrap(),
        "--state-dir",
        dir.path().to_str().unwrap(),
        "-a",
        "127.0.0.1:0",
        "--stun-port",
        "-1",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("--verify-client-url: cannot read CA file"),
        "{stderr}"
    );
}

/// Kills a helper process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--verify-clients` against a real tailscaled (userspace networking, not logged in,
/// so it knows no node): the whois request must be one tailscaled understands (404,
/// not 400 or 403), and stopping tailscaled turns refusals into `tailscaled_unreachable`.
/// The admitted case needs a tailnet (headscale) and belongs to the interop suite.
#[test]
#[ignore = "needs TINYDERP_TAILSCALED=/path/to/tailscaled"]
fn verify_clients_with_a_real_logged_out_tailscaled() {
    let tailscaled = std::env::var("TINYDERP_TAILSCALED")
        .expect("set TINYDERP_TAILSCALED to a tailscaled binary to run this test");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    let child = std::process::Command::new(&tailscaled)
        .arg("--tun=userspace-networking")
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--statedir={}", dir.path().join("state").display()))
        .arg("--port=0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("tailscaled.log")).unwrap())
        .spawn()
        .expect("start tailscaled");
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "tailscaled made no socket");
        std::thread::sleep(Duration::from_millis(100));
    }
    let server = TestServer::start(&["--verify-clients", "--socket", socket.to_str().unwrap()]);
    let (stranger, _) = fresh();
    assert!(!try_login(&server, &stranger));
    assert!(
        server.wait_for_log(
            "refused: not found in local tailscaled",
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
    assert_eq!(
        metric(
            &varz(&server),
            "tinyderp_clients_refused_total{reason=\"tailscaled_unknown\"} "
        ),
        1
    );

    let _ = child.0.kill();
    let _ = child.0.wait();
    assert!(!try_login(&server, &stranger));
    assert_eq!(
        metric(
            &varz(&server),
            "tinyderp_clients_refused_total{reason=\"tailscaled_unreachable\"} "
        ),
        1
    );
}

/// Runs `program args` to completion within 90 s; returns stdout, panicking with its
/// output on failure.
fn run_ok(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost,::1")
        .output()
        .unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A free TCP port for headscale, which must be told its ports before it starts (it
/// cannot report a port the kernel picked): the one place a test still picks a port
/// first, with the small race that implies. tinyderp itself binds port 0.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind for a free port");
    listener.local_addr().expect("local addr").port()
}

/// `--verify-clients` in a real tailnet: headscale on loopback hands out a DERP map whose
/// only region is this tinyderp, which asks node1's tailscaled about every client. Both
/// nodes (node1 itself, node2 its peer) must be admitted as they connect to their home
/// DERP; a key from outside the tailnet must be refused.
///
/// Needs `TINYDERP_TS_TOOLS` (a directory with `tailscaled` and `tailscale`) and
/// `TINYDERP_HEADSCALE` (the headscale binary).
#[test]
#[ignore = "needs TINYDERP_TS_TOOLS=/dir/with/tailscaled+tailscale and TINYDERP_HEADSCALE=/path/to/headscale"]
fn verify_clients_admits_tailnet_nodes_through_real_tailscaled() {
    let tools =
        std::path::PathBuf::from(std::env::var("TINYDERP_TS_TOOLS").expect("TINYDERP_TS_TOOLS"));
    let headscale = std::env::var("TINYDERP_HEADSCALE").expect("TINYDERP_HEADSCALE");
    let tailscaled = tools.join("tailscaled").display().to_string();
    let tailscale = tools.join("tailscale").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let node_sock = |n: u32| root.join(format!("node{n}/tailscaled.sock"));
    std::fs::create_dir_all(root.join("node1")).unwrap();
    std::fs::create_dir_all(root.join("node2")).unwrap();

    // tinyderp first: until node1's tailscaled is up its whois fails and clients retry.
    let server = TestServer::start(&[
        "--verify-clients",
        "--socket",
        node_sock(1).to_str().unwrap(),
    ]);
    let derp_yaml = format!(
        "regions:\n  900:\n    regionid: 900\n    regioncode: guard\n    regionname: guard test\n    nodes:\n      - name: 900a\n        regionid: 900\n        hostname: 127.0.0.1\n        ipv4: 127.0.0.1\n        derpport: {}\n        stunport: {}\n        insecurefortests: true\n",
        server.derp_addr.port(),
        server.stun().port()
    );
    std::fs::write(root.join("derp.yaml"), derp_yaml).unwrap();
    let hs_port = free_port();
    let config = format!(
        "server_url: http://127.0.0.1:{hs_port}\nlisten_addr: 127.0.0.1:{hs_port}\nmetrics_listen_addr: 127.0.0.1:{}\ngrpc_listen_addr: 127.0.0.1:{}\ngrpc_allow_insecure: false\nnoise:\n  private_key_path: {r}/noise_private.key\nprefixes:\n  v4: 100.64.0.0/10\n  v6: fd7a:115c:a1e0::/48\n  allocation: sequential\nderp:\n  server:\n    enabled: false\n  urls: []\n  paths: [\"{r}/derp.yaml\"]\n  auto_update_enabled: false\n  update_frequency: 24h\ndisable_check_updates: true\ndatabase:\n  type: sqlite\n  sqlite:\n    path: {r}/db.sqlite\n    write_ahead_log: true\nlog:\n  level: info\npolicy:\n  mode: file\n  path: \"\"\ndns:\n  magic_dns: false\n  override_local_dns: false\n  nameservers:\n    global: []\nunix_socket: {r}/headscale.sock\nunix_socket_permission: \"0770\"\nlogtail:\n  enabled: false\n",
        free_port(),
        free_port(),
        r = root.display()
    );
    let hs_config = root.join("headscale.yaml");
    std::fs::write(&hs_config, config).unwrap();
    let hs_config = hs_config.to_str().unwrap();
    let _headscale = KillOnDrop(
        std::process::Command::new(&headscale)
            .args(["-c", hs_config, "serve"])
            .stdout(std::fs::File::create(root.join("headscale.log")).unwrap())
            .stderr(std::fs::File::create(root.join("headscale.err")).unwrap())
            .spawn()
            .expect("start headscale"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !root.join("headscale.sock").exists() {
        assert!(Instant::now() < deadline, "headscale did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    run_ok(&headscale, &["-c", hs_config, "users", "create", "guard"]);
    let users: serde_json::Value = serde_json::from_str(&run_ok(
        &headscale,
        &["-c", hs_config, "users", "list", "-o", "json"],
    ))
    .unwrap();
    let uid = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "guard")
        .map(|u| u["id"].to_string())
        .unwrap();
    let authkey = run_ok(
        &headscale,
        &[
            "-c",
            hs_config,
            "preauthkeys",
            "create",
            "-u",
            &uid,
            "--reusable",
            "-e",
            "1h",
        ],
    );
    let authkey = authkey.lines().last().unwrap().trim().to_string();

    let mut nodes = Vec::new();
    for n in 1..=2u32 {
        let child = std::process::Command::new(&tailscaled)
            .arg("--tun=userspace-networking")
            .arg(format!(
                "--statedir={}",
                root.join(format!("node{n}")).display()
            ))
            .arg(format!("--socket={}", node_sock(n).display()))
            .arg("--port=0")
            .arg("--no-logs-no-support")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("TS_DISABLE_PORTMAPPER", "1")
            .env("TS_PANIC_IF_HIT_MAIN_CONTROL", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(root.join(format!("node{n}/tailscaled.log"))).unwrap())
            .spawn()
            .expect("start tailscaled");
        nodes.push(KillOnDrop(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !node_sock(n).exists() {
            assert!(Instant::now() < deadline, "node{n} made no socket");
            std::thread::sleep(Duration::from_millis(100));
        }
        run_ok(
            &tailscale,
            &[
                &format!("--socket={}", node_sock(n).display()),
                "up",
                &format!("--login-server=http://127.0.0.1:{hs_port}"),
                &format!("--authkey={authkey}"),
                &format!("--hostname=node{n}"),
                "--accept-dns=false",
                "--timeout=60s",
            ],
        );
    }
    let node_key = |n: u32| -> String {
        let status: serde_json::Value = serde_json::from_str(&run_ok(
            &tailscale,
            &[
                &format!("--socket={}", node_sock(n).display()),
                "status",
                "--json",
            ],
        ))
        .unwrap();
        status["Self"]["PublicKey"].as_str().unwrap().to_string()
    };
    let (key1, key2) = (node_key(1), node_key(2));

    // Both nodes log in to their home DERP (the only region) and are admitted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let admitted = metric(
            &varz(&server),
            "tinyderp_clients_admitted_total{how=\"checked\"} ",
        );
        if admitted >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes not admitted ({admitted}); {key1} {key2}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = server.log();
    for key in [&key1, &key2] {
        let short = PublicKey::parse_node_key(key).unwrap().short();
        assert!(
            !log.contains(&format!("client {short} refused: not found")),
            "tailnet node {key} was refused as unknown:\n{log}"
        );
    }
    for line in log
        .lines()
        .filter(|l| l.contains("refused") || l.contains("connected"))
    {
        eprintln!("{line}");
    }
    // A key from outside the tailnet is refused.
    let (stranger, _) = fresh();
    assert!(!try_login(&server, &stranger));
    assert!(
        metric(
            &varz(&server),
            "tinyderp_clients_refused_total{reason=\"tailscaled_unknown\"} "
        ) >= 1
    );
}

#[test]
#[cfg(not(feature = "https-admission"))]
fn https_admission_url_needs_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = support::run_tinyderp(&[
        "--verify-client-url",
        "https://localhost:1/admit",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "-a",
        "127.0.0.1:0",
        "--stun-port",
        "-1",
    ]);
    assert_eq!(
        status.code(),
        Some(2),
        "a usage error, caught before any file is written: {stderr}"
    );
    assert!(
        stderr.contains("--verify-client-url") && stderr.contains("https-admission"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!dir.path().join("derper.key").exists());
}
