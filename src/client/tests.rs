//! The client against a tiny loopback DERP server written with `proto/` only.

use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use smol::channel::{bounded, Receiver, Sender};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpListener;

use super::*;
use crate::proto::frame::{encode_pong, encode_recv_packet, encode_server_key, ClientFrame};
use crate::proto::http::{derp_switching_protocols, parse_request_head, simple_response};

/// How the test server behaves after reading the request head.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Full handshake, then echo packets sent to the client's own key and answer pings.
    Echo,
    /// Answer 426 like a server that wants an upgrade.
    Refuse,
    /// Never answer anything.
    Silent,
    /// Read ClientInfo, then close without ServerInfo (a rejected client).
    CloseAfterClientInfo,
    /// Send a KeepAlive where ServerInfo belongs.
    KeepAliveFirst,
}

/// What the server observed, for assertions.
#[derive(Debug)]
struct Seen {
    fast_start: bool,
    host: Option<String>,
    client: PublicKey,
    info: ClientInfo,
}

struct TestCerts {
    chain: Vec<CertificateDer<'static>>,
    leaf: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn make_certs(server: &PublicKey, with_meta: bool) -> TestCerts {
    let leaf =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf_der = leaf.cert.der().clone();
    let mut chain = vec![leaf_der.clone()];
    if with_meta {
        let meta_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut name = rcgen::DistinguishedName::new();
        name.push(
            rcgen::DnType::CommonName,
            format!("derpkey{}", server.to_hex()),
        );
        params.distinguished_name = name;
        params.serial_number = Some(rcgen::SerialNumber::from(vec![2u8]));
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        chain.push(params.self_signed(&meta_key).unwrap().der().clone());
    }
    TestCerts {
        chain,
        leaf: leaf_der,
        key: PrivatePkcs8KeyDer::from(leaf.signing_key.serialize_der()),
    }
}

fn acceptor(certs: &TestCerts) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            certs.chain.clone(),
            PrivateKeyDer::Pkcs8(certs.key.clone_key()),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Reads one frame from `pending` + `stream`.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    pending: &mut Vec<u8>,
) -> io::Result<(u8, Vec<u8>)> {
    loop {
        if pending.len() >= HEADER_LEN {
            let header = FrameHeader::decode(pending[..HEADER_LEN].try_into().unwrap());
            let total = HEADER_LEN + header.len as usize;
            if pending.len() >= total {
                let payload = pending[HEADER_LEN..total].to_vec();
                pending.drain(..total);
                return Ok((header.frame_type, payload));
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&chunk[..read]);
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    secret: SecretKey,
    behaviour: Behaviour,
    seen: Sender<Seen>,
) -> io::Result<()> {
    let mut pending = Vec::new();
    let (head, consumed) = loop {
        if let Some(done) = parse_request_head(&pending).unwrap() {
            break done;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..read]);
    };
    pending.drain(..consumed);
    match behaviour {
        Behaviour::Refuse => {
            let body = b"DERP requires connection upgrade";
            stream
                .write_all(&simple_response(426, "Upgrade Required", &[], body))
                .await?;
            return stream.flush().await;
        }
        Behaviour::Silent => {
            smol::Timer::after(Duration::from_secs(5)).await;
            return Ok(());
        }
        _ => {}
    }
    let server_pub = secret.public_key();
    let mut out = Vec::new();
    if !head.fast_start {
        out.extend(derp_switching_protocols(&server_pub));
    }
    encode_server_key(&mut out, &server_pub);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let (frame_type, payload) = read_frame(&mut stream, &mut pending).await?;
    assert_eq!(frame_type, FrameType::ClientInfo as u8);
    let (client, info) = handshake::open_client_info(&secret, &payload).unwrap();
    let _ = seen
        .send(Seen {
            fast_start: head.fast_start,
            host: head.host.clone(),
            client,
            info,
        })
        .await;
    if behaviour == Behaviour::CloseAfterClientInfo {
        return Ok(());
    }
    out.clear();
    if behaviour == Behaviour::KeepAliveFirst {
        frame::encode_keep_alive(&mut out);
    }
    handshake::encode_server_info(&mut out, &secret, &client).unwrap();
    stream.write_all(&out).await?;
    stream.flush().await?;
    loop {
        let Ok((frame_type, payload)) = read_frame(&mut stream, &mut pending).await else {
            return Ok(());
        };
        out.clear();
        match frame::parse_client_frame(frame_type, &payload).unwrap() {
            ClientFrame::SendPacket { dst, data } if dst == client => {
                encode_recv_packet(&mut out, &client, data);
            }
            ClientFrame::Ping(echo) => encode_pong(&mut out, &echo),
            _ => continue,
        }
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
}

/// Starts a one-connection server; returns its address and what it saw.
async fn start_server(
    secret: SecretKey,
    tls: Option<TlsAcceptor>,
    behaviour: Behaviour,
) -> (SocketAddr, Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = bounded(1);
    smol::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let result = match tls {
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(stream) => serve(stream, secret, behaviour, seen_tx).await,
                Err(_) => Ok(()), // the client refused our certificate
            },
            None => serve(tcp, secret, behaviour, seen_tx).await,
        };
        let _ = result;
    })
    .detach();
    (addr, seen_rx)
}

fn client_config(addr: SocketAddr, verify: TlsVerify, fast_start: bool) -> ClientConfig {
    ClientConfig {
        verify,
        fast_start,
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(addr, SecretKey::from_bytes([0x42; 32]))
    }
}

async fn assert_echo_and_pong(client: &mut Client) {
    let me = PublicKey(*SecretKey::from_bytes([0x42; 32]).public_key().as_bytes());
    client.send_packet(&me, b"hello derp").await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        ServerFrame::RecvPacket {
            src: me,
            data: b"hello derp".to_vec().into()
        }
    );
    client.ping([1, 2, 3, 4, 5, 6, 7, 0x2a]).await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        ServerFrame::Pong([1, 2, 3, 4, 5, 6, 7, 0x2a])
    );
}

#[test]
fn go_style_request_bytes() {
    assert_eq!(
        upgrade_request("derp.example.com:8443", true),
        b"GET /derp HTTP/1.1\r\nHost: derp.example.com:8443\r\nUser-Agent: Go-http-client/1.1\r\n\
Connection: Upgrade\r\nDerp-Fast-Start: 1\r\nUpgrade: DERP\r\n\r\n"
            .to_vec()
    );
    let secret = SecretKey::from_bytes([1; 32]);
    let mut cfg = ClientConfig::new("127.0.0.1:8443".parse().unwrap(), secret);
    assert_eq!(cfg.host_header(), "127.0.0.1:8443");
    cfg.server_name = "derp.example.com".into();
    assert_eq!(cfg.host_header(), "derp.example.com:8443");
    cfg.addr = "[::1]:443".parse().unwrap();
    assert_eq!(cfg.host_header(), "derp.example.com");
    cfg.server_name = String::new();
    assert_eq!(cfg.host_header(), "[::1]");
    cfg.verify = TlsVerify::Plaintext;
    cfg.addr = "[::1]:3340".parse().unwrap();
    assert_eq!(cfg.host_header(), "[::1]:3340");
}

#[test]
fn slow_path_over_plaintext() {
    smol::block_on(async {
        let secret = SecretKey::from_bytes([9; 32]);
        let (addr, seen) = start_server(secret.clone(), None, Behaviour::Echo).await;
        let cfg = client_config(addr, TlsVerify::Plaintext, true);
        let mut client = Client::connect(&cfg).await.unwrap();
        assert_eq!(client.server_key(), secret.public_key());
        assert!(!client.used_fast_start());
        assert!(client.peer_certificates().is_empty());
        assert_eq!(client.server_info().version, 2);
        let seen = seen.recv().await.unwrap();
        assert!(!seen.fast_start);
        assert_eq!(seen.host, Some(format!("127.0.0.1:{}", addr.port())));
        assert_eq!(seen.client, cfg.secret.public_key());
        assert_eq!(
            seen.info,
            ClientInfo {
                version: 2,
                can_ack_pings: true,
                ..ClientInfo::default()
            }
        );
        assert_eq!(client.local_addr().ip(), addr.ip());
        assert_echo_and_pong(&mut client).await;
        client.close().await.unwrap();
    });
}

#[test]
fn fast_path_with_meta_certificate() {
    smol::block_on(async {
        let secret = SecretKey::from_bytes([10; 32]);
        let certs = make_certs(&secret.public_key(), true);
        let (addr, seen) =
            start_server(secret.clone(), Some(acceptor(&certs)), Behaviour::Echo).await;
        let mut cfg = client_config(addr, TlsVerify::Insecure, true);
        cfg.mesh_key = Some([0xcd; 32]);
        cfg.is_prober = true;
        let mut client = Client::connect(&cfg).await.unwrap();
        assert!(client.used_fast_start());
        assert_eq!(client.server_key(), secret.public_key());
        assert_eq!(client.peer_certificates(), certs.chain);
        let seen = seen.recv().await.unwrap();
        assert!(seen.fast_start);
        assert_eq!(seen.info.mesh_key, Some([0xcd; 32]));
        assert!(seen.info.is_prober);
        assert!(
            !seen.info.can_ack_pings,
            "mesh clients do not claim to ack pings"
        );
        assert_echo_and_pong(&mut client).await;
    });
}

#[test]
fn tls_without_meta_or_without_fast_start_uses_slow_path() {
    smol::block_on(async {
        for (with_meta, fast_start) in [(false, true), (true, false)] {
            let secret = SecretKey::from_bytes([11; 32]);
            let certs = make_certs(&secret.public_key(), with_meta);
            let (addr, seen) =
                start_server(secret.clone(), Some(acceptor(&certs)), Behaviour::Echo).await;
            let cfg = client_config(addr, TlsVerify::Insecure, fast_start);
            let mut client = Client::connect(&cfg).await.unwrap();
            assert!(!client.used_fast_start());
            assert_eq!(client.server_key(), secret.public_key());
            assert!(!seen.recv().await.unwrap().fast_start);
            assert_echo_and_pong(&mut client).await;
        }
    });
}

#[test]
fn pin_accepts_matching_leaf_and_rejects_others() {
    smol::block_on(async {
        let secret = SecretKey::from_bytes([12; 32]);
        let certs = make_certs(&secret.public_key(), true);
        let pin = cert_pin(&certs.leaf);

        let (addr, _seen) =
            start_server(secret.clone(), Some(acceptor(&certs)), Behaviour::Echo).await;
        let mut client = Client::connect(&client_config(addr, TlsVerify::Pin(pin.clone()), true))
            .await
            .unwrap();
        assert!(client.used_fast_start());
        assert_echo_and_pong(&mut client).await;

        let wrong = format!("{PIN_PREFIX}{}", "00".repeat(32));
        let (addr, _seen) =
            start_server(secret.clone(), Some(acceptor(&certs)), Behaviour::Echo).await;
        let err = Client::connect(&client_config(addr, TlsVerify::Pin(wrong), true))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("pin"), "{err}");

        // Upper-case hex is a different string and fails, as in Go.
        let (addr, _seen) =
            start_server(secret.clone(), Some(acceptor(&certs)), Behaviour::Echo).await;
        let upper = format!("{PIN_PREFIX}{}", pin[PIN_PREFIX.len()..].to_uppercase());
        assert!(
            Client::connect(&client_config(addr, TlsVerify::Pin(upper), true))
                .await
                .is_err()
        );

        // A second non-meta certificate in the chain is refused even with the right pin.
        let mut two = make_certs(&secret.public_key(), true);
        let extra = make_certs(&secret.public_key(), false).leaf;
        two.chain.insert(1, extra);
        let pin_two = cert_pin(&two.leaf);
        let (addr, _seen) =
            start_server(secret.clone(), Some(acceptor(&two)), Behaviour::Echo).await;
        let err = Client::connect(&client_config(addr, TlsVerify::Pin(pin_two), true))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("exactly one"), "{err}");
    });
}

#[test]
fn roots_verify_the_server_name() {
    smol::block_on(async {
        let secret = SecretKey::from_bytes([13; 32]);
        let certs = make_certs(&secret.public_key(), true);
        let roots = TlsVerify::Roots(vec![certs.leaf.clone()]);
        for (name, ok) in [
            ("localhost", true),
            ("127.0.0.1", true),
            ("other.example", false),
        ] {
            let (addr, _seen) =
                start_server(secret.clone(), Some(acceptor(&certs)), Behaviour::Echo).await;
            let mut cfg = client_config(addr, roots.clone(), true);
            cfg.server_name = name.into();
            assert_eq!(Client::connect(&cfg).await.is_ok(), ok, "{name}");
        }
    });
}

#[test]
fn refusals_and_timeouts() {
    smol::block_on(async {
        let secret = SecretKey::from_bytes([14; 32]);
        let (addr, _seen) = start_server(secret.clone(), None, Behaviour::Refuse).await;
        let err = Client::connect(&client_config(addr, TlsVerify::Plaintext, false))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains("426"), "{err}");

        let (addr, seen) =
            start_server(secret.clone(), None, Behaviour::CloseAfterClientInfo).await;
        let err = Client::connect(&client_config(addr, TlsVerify::Plaintext, false))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(seen.recv().await.is_ok());

        let (addr, _seen) = start_server(secret.clone(), None, Behaviour::KeepAliveFirst).await;
        let err = Client::connect(&client_config(addr, TlsVerify::Plaintext, false))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("wrong_frame_type"), "{err}");

        let (addr, _seen) = start_server(secret.clone(), None, Behaviour::Silent).await;
        let mut cfg = client_config(addr, TlsVerify::Plaintext, false);
        cfg.timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let err = Client::connect(&cfg).await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

#[test]
fn split_halves_work_from_two_tasks() {
    smol::block_on(async {
        let secret = SecretKey::from_bytes([15; 32]);
        let certs = make_certs(&secret.public_key(), true);
        let (addr, _seen) = start_server(secret, Some(acceptor(&certs)), Behaviour::Echo).await;
        let cfg = client_config(addr, TlsVerify::Insecure, true);
        let me = cfg.secret.public_key();
        let (mut reader, mut writer) = Client::connect(&cfg).await.unwrap().split();
        const COUNT: u32 = 200;
        let sender = smol::spawn(async move {
            for i in 0..COUNT {
                writer.send_packet(&me, &i.to_be_bytes()).await.unwrap();
            }
            writer
        });
        for i in 0..COUNT {
            match reader.recv().await.unwrap() {
                ServerFrame::RecvPacket { src, data } => {
                    assert_eq!(src, me);
                    assert_eq!(*data, i.to_be_bytes());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut writer = sender.await;
        assert!(writer
            .send_packet(&me, &vec![0; MAX_PACKET_SIZE + 1])
            .await
            .is_err_and(|err| err.kind() == io::ErrorKind::InvalidInput));
        writer
            .send_packet(&me, &vec![7; MAX_PACKET_SIZE])
            .await
            .unwrap();
        assert_eq!(
            reader.recv().await.unwrap(),
            ServerFrame::RecvPacket {
                src: me,
                data: vec![7; MAX_PACKET_SIZE].into()
            }
        );
    });
}
