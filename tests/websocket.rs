//! DERP over WebSocket against the real binary on loopback, with a small WebSocket client
//! written here (independent of the server's codec): the RFC 6455 upgrade, DERP login
//! inside binary messages, relaying between two WebSocket clients and between a WebSocket
//! client and a native one, ping/pong control frames, a DERP frame split over fragments,
//! and the close codes for violations (1002 unmasked, 1003 text, 1009 too big, 1008
//! without the `derp` subprotocol). Upstream's Go client and a real Chromium are driven
//! against the server by the interop suite (tests/interop).

mod support;

use futures_rustls::client::TlsStream;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use support::https::{connector, metric, tls_connect, varz, within};
use support::{TestServer, RECV_TIMEOUT};
use tinyderp::client::ServerMessage;
use tinyderp::proto::frame::{self, FrameType, HEADER_LEN};
use tinyderp::proto::handshake::{self, ClientInfo};
use tinyderp::proto::key::{PublicKey, SecretKey};

/// RFC 6455 §1.3's example key and the accept value the server must answer with.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The server's bound on one client message (src/net/websocket.rs MAX_MESSAGE_LEN).
const SERVER_MAX_MESSAGE: u64 = 128 << 10;

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One frame as this test's client encodes it: `mask` None sends it unmasked (illegal).
fn client_frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if mask.is_some() { 0x80u8 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame the server sent.
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A WebSocket client over TLS: frames out, frames in, and the DERP stream carried by the
/// server's binary messages.
struct WsClient {
    tls: TlsStream<TcpStream>,
    raw: Vec<u8>,
    derp: Vec<u8>,
    /// Pongs and other control frames seen while reading DERP frames.
    controls: Vec<Frame>,
    mask_seed: u8,
}

/// The 101 (or other) response head and a client positioned after it.
async fn upgrade(server: &TestServer, extra_headers: &str) -> (String, WsClient) {
    let mut tls = tls_connect(&connector(), server.derp_addr)
        .await
        .expect("tls connect");
    let request = format!(
        "GET /derp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nOrigin: https://example.org\r\n{extra_headers}\r\n"
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    tls.flush().await.expect("flush");
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = within(RECV_TIMEOUT, tls.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    raw.drain(..head_end);
    let client = WsClient {
        tls,
        raw,
        derp: Vec::new(),
        controls: Vec::new(),
        mask_seed: 1,
    };
    (head, client)
}

const DERP_OFFER: &str = "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derp\r\n";

impl WsClient {
    fn next_mask(&mut self) -> [u8; 4] {
        self.mask_seed = self.mask_seed.wrapping_mul(31).wrapping_add(7);
        let s = self.mask_seed;
        [s, s ^ 0xa5, s.wrapping_add(3), 0x5a]
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).await.expect("write");
    }

    /// Writes without insisting: for frames the server may refuse before they all arrive.
    async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await
    }

    async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mask = self.next_mask();
        self.send_raw(&client_frame(fin, opcode, Some(mask), payload))
            .await;
    }

    /// Reads one server frame; `None` when the connection ended.
    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if self.raw.len() >= 2 {
                assert_eq!(self.raw[1] & 0x80, 0, "server frames must not be masked");
                let (len, at) = match self.raw[1] & 0x7f {
                    126 if self.raw.len() >= 4 => {
                        (u16::from_be_bytes([self.raw[2], self.raw[3]]) as usize, 4)
                    }
                    127 if self.raw.len() >= 10 => (
                        u64::from_be_bytes(self.raw[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if at > 0 && self.raw.len() >= at + len {
                    assert_eq!(self.raw[0] & 0x70, 0, "no reserved bits");
                    let frame = Frame {
                        fin: self.raw[0] & 0x80 != 0,
                        opcode: self.raw[0] & 0x0f,
                        payload: self.raw[at..at + len].to_vec(),
                    };
                    self.raw.drain(..at + len);
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 16 << 10];
            let n = within(RECV_TIMEOUT, self.tls.read(&mut chunk))
                .await
                .expect("frame in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.raw.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one whole DERP frame from the binary messages (control frames are kept).
    async fn derp_frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.derp.len() >= HEADER_LEN {
                let len = u32::from_be_bytes(self.derp[1..5].try_into().unwrap()) as usize;
                if self.derp.len() >= HEADER_LEN + len {
                    let frame_type = self.derp[0];
                    let payload = self.derp[HEADER_LEN..HEADER_LEN + len].to_vec();
                    self.derp.drain(..HEADER_LEN + len);
                    return (frame_type, payload);
                }
            }
            let frame = self.read_frame().await.expect("connection open");
            match frame.opcode {
                OP_BINARY | OP_CONT => {
                    assert!(frame.fin, "the server sends whole messages");
                    assert!(
                        frame.payload.len() <= 32 << 10,
                        "upstream reads at most 32 KiB"
                    );
                    self.derp.extend_from_slice(&frame.payload);
                }
                _ => self.controls.push(frame),
            }
        }
    }

    async fn recv(&mut self) -> ServerMessage {
        loop {
            let (frame_type, payload) = self.derp_frame().await;
            match frame::parse_server_frame(frame_type, &payload).expect("server frame") {
                frame::ServerFrame::RecvPacket { src, data } => {
                    return ServerMessage::RecvPacket {
                        src,
                        data: data.to_vec().into(),
                    }
                }
                frame::ServerFrame::Pong(data) => return ServerMessage::Pong(data),
                frame::ServerFrame::PeerGone { key, reason } => {
                    return ServerMessage::PeerGone { key, reason }
                }
                _ => continue,
            }
        }
    }

    /// Waits for the server's close frame and returns its status code; then the
    /// connection must end.
    async fn expect_close(&mut self) -> u16 {
        loop {
            let frame = self
                .read_frame()
                .await
                .expect("a close frame before the connection ends");
            if frame.opcode == OP_CLOSE {
                assert!(frame.payload.len() >= 2, "close frame carries a code");
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                assert!(
                    self.read_frame().await.is_none(),
                    "connection ends after the close frame"
                );
                return code;
            }
        }
    }
}

/// Upgrades and logs in; returns the client and its key.
async fn ws_login(server: &TestServer) -> (WsClient, PublicKey) {
    let (head, mut ws) = upgrade(server, DERP_OFFER).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nSec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{head}"
    );
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: derp\r\n"),
        "{head}"
    );
    assert!(
        !lower.contains("sec-websocket-extensions"),
        "no extensions: {head}"
    );
    assert!(
        !lower.contains("derp-version"),
        "no DERP 101 headers inside WebSocket"
    );
    let (frame_type, payload) = ws.derp_frame().await;
    assert_eq!(frame_type, FrameType::ServerKey as u8);
    assert_eq!(&payload[..8], b"DERP\xf0\x9f\x94\x91");
    let server_key = handshake::parse_server_key_payload(&payload).expect("server key");
    let secret = SecretKey::generate().expect("key");
    let info = ClientInfo {
        version: 2,
        can_ack_pings: true,
        ..ClientInfo::default()
    };
    let mut login = Vec::new();
    handshake::encode_client_info(&mut login, &secret, &server_key, &info).expect("seal");
    ws.send(true, OP_BINARY, &login).await;
    let (frame_type, payload) = ws.derp_frame().await;
    assert_eq!(frame_type, FrameType::ServerInfo as u8);
    let server_info = handshake::open_server_info(&secret, &server_key, &payload).expect("open");
    assert_eq!(server_info.version, 2);
    // A DERP ping round trip: the server has registered the key after it.
    let mut ping = Vec::new();
    frame::encode_ping(&mut ping, &[7; 8]);
    ws.send(true, OP_BINARY, &ping).await;
    assert_eq!(ws.recv().await, ServerMessage::Pong([7; 8]));
    (ws, secret.public_key())
}

fn send_packet_frame(dst: &PublicKey, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_send_packet(&mut out, dst, data);
    out
}

#[test]
fn websocket_clients_relay_to_each_other_and_to_native_clients() {
    let server = TestServer::start(&[]);
    let before = metric(&varz(&server), "tinyderp_websocket_accepts_total");
    smol::block_on(async {
        let (mut a, a_key) = ws_login(&server).await;
        let (mut b, b_key) = ws_login(&server).await;
        // WebSocket -> WebSocket, both ways, up to the 64 KiB maximum packet.
        for size in [1usize, 1300, 20_000, 64 << 10] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            a.send(true, OP_BINARY, &send_packet_frame(&b_key, &data))
                .await;
            assert_eq!(
                b.recv().await,
                ServerMessage::RecvPacket {
                    src: a_key,
                    data: data.clone().into()
                },
                "a -> b {size} bytes"
            );
            b.send(true, OP_BINARY, &send_packet_frame(&a_key, &data))
                .await;
            assert_eq!(
                a.recv().await,
                ServerMessage::RecvPacket {
                    src: b_key,
                    data: data.into()
                },
                "b -> a {size} bytes"
            );
        }
        // Message boundaries mean nothing: one DERP frame over three fragments, with a
        // WebSocket ping in the middle, and two DERP frames in one message.
        let frame_bytes = send_packet_frame(&b_key, b"fragmented");
        a.send(false, OP_BINARY, &frame_bytes[..3]).await;
        a.send(true, OP_PING, b"mid-message").await;
        a.send(false, OP_CONT, &frame_bytes[3..20]).await;
        a.send(true, OP_CONT, &frame_bytes[20..]).await;
        assert_eq!(
            b.recv().await,
            ServerMessage::RecvPacket {
                src: a_key,
                data: b"fragmented".to_vec().into()
            }
        );
        let mut two = send_packet_frame(&b_key, b"one");
        two.extend_from_slice(&send_packet_frame(&b_key, b"two"));
        a.send(true, OP_BINARY, &two).await;
        for want in [&b"one"[..], b"two"] {
            assert_eq!(
                b.recv().await,
                ServerMessage::RecvPacket {
                    src: a_key,
                    data: want.to_vec().into()
                }
            );
        }
        // The WebSocket ping was answered with a pong carrying the same payload.
        let mut ping = Vec::new();
        frame::encode_ping(&mut ping, &[1; 8]);
        a.send(true, OP_BINARY, &ping).await;
        assert_eq!(a.recv().await, ServerMessage::Pong([1; 8]));
        let pong = a
            .controls
            .iter()
            .find(|f| f.opcode == OP_PONG)
            .expect("a pong");
        assert!(pong.fin);
        assert_eq!(pong.payload, b"mid-message");

        // WebSocket <-> native client.
        let mut native = server.connect();
        let native_key = {
            // The key the native client logged in with, as the server reports it.
            native
                .send_packet(&a_key, b"hello from native")
                .await
                .expect("native send");
            match a.recv().await {
                ServerMessage::RecvPacket { src, data } => {
                    assert_eq!(&data[..], b"hello from native");
                    src
                }
                other => panic!("expected a packet, got {other:?}"),
            }
        };
        a.send(
            true,
            OP_BINARY,
            &send_packet_frame(&native_key, b"hello from websocket"),
        )
        .await;
        let got = recv_until_async(&mut native).await;
        assert_eq!(
            got,
            ServerMessage::RecvPacket {
                src: a_key,
                data: b"hello from websocket".to_vec().into()
            }
        );

        // A client close is echoed with the same code, then the connection ends, and the
        // peer that received from it learns it is gone.
        a.send(true, OP_CLOSE, &1000u16.to_be_bytes()).await;
        assert_eq!(a.expect_close().await, 1000);
        loop {
            match b.recv().await {
                ServerMessage::PeerGone { key, reason } if key == a_key => {
                    assert_eq!(reason, 0, "disconnected");
                    break;
                }
                _ => continue,
            }
        }
    });
    let after = varz(&server);
    assert_eq!(
        metric(&after, "tinyderp_websocket_accepts_total"),
        before + 2
    );
    assert!(
        metric(
            &after,
            "tinyderp_websocket_closes_total{reason=\"client_close\"}"
        ) >= 1
    );
}

async fn recv_until_async(client: &mut tinyderp::client::Client) -> ServerMessage {
    loop {
        let message = within(RECV_TIMEOUT, client.recv())
            .await
            .expect("in time")
            .expect("recv");
        if matches!(message, ServerMessage::RecvPacket { .. }) {
            return message;
        }
    }
}

#[test]
fn violations_close_with_clear_codes() {
    let server = TestServer::start(&[]);
    smol::block_on(async {
        // Unmasked client frame: 1002 protocol error.
        let (mut ws, _) = ws_login(&server).await;
        ws.send_raw(&client_frame(true, OP_BINARY, None, b"not masked"))
            .await;
        assert_eq!(ws.expect_close().await, 1002);

        // A message over the bound, announced by its head: 1009 before any payload.
        let (mut ws, _) = ws_login(&server).await;
        let mut head = vec![0x82, 0xff];
        head.extend_from_slice(&(SERVER_MAX_MESSAGE + 1).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        ws.send_raw(&head).await;
        assert_eq!(ws.expect_close().await, 1009);

        // Over the bound across fragments, each of them small: 1009 too.
        let (mut ws, _) = ws_login(&server).await;
        // The fragments carry one DERP frame of an unknown type, which the DERP reader
        // skips, so only the WebSocket bound can end this connection.
        let mut unknown = vec![0x7f];
        unknown.extend_from_slice(&(200_000u32).to_be_bytes());
        ws.send(false, OP_BINARY, &unknown).await;
        let chunk = vec![0u8; 32 << 10];
        for _ in 0..5 {
            // The server may close as soon as the total passes the bound, before the last
            // fragments are written: a failed write then is the expected outcome.
            let mask = ws.next_mask();
            if ws
                .try_send_raw(&client_frame(false, OP_CONT, Some(mask), &chunk))
                .await
                .is_err()
            {
                break;
            }
        }
        assert_eq!(ws.expect_close().await, 1009);

        // A text message: 1003 (DERP is binary), as upstream.
        let (mut ws, _) = ws_login(&server).await;
        ws.send(true, OP_TEXT, b"hello").await;
        assert_eq!(ws.expect_close().await, 1003);

        // A fragmented ping: 1002; before login, too.
        let (head, mut ws) = upgrade(&server, DERP_OFFER).await;
        assert!(head.starts_with("HTTP/1.1 101 "));
        ws.send(false, OP_PING, b"x").await;
        assert_eq!(ws.expect_close().await, 1002);
    });
    let after = varz(&server);
    for (name, at_least) in [
        (
            "tinyderp_websocket_closes_total{reason=\"protocol_error\"}",
            2,
        ),
        ("tinyderp_websocket_closes_total{reason=\"too_big\"}", 2),
        (
            "tinyderp_websocket_closes_total{reason=\"unsupported_data\"}",
            1,
        ),
        ("tinyderp_websocket_violations_total{kind=\"unmasked\"}", 1),
        (
            "tinyderp_websocket_violations_total{kind=\"message_too_big\"}",
            2,
        ),
        (
            "tinyderp_websocket_violations_total{kind=\"text_message\"}",
            1,
        ),
        (
            "tinyderp_websocket_violations_total{kind=\"fragmented_control\"}",
            1,
        ),
    ] {
        assert!(metric(&after, name) >= at_least, "{name}:\n{after}");
    }
}

#[test]
fn upgrade_variants_follow_upstream() {
    let server = TestServer::start(&[]);
    smol::block_on(async {
        // Offered protocols that only contain "derp" as a substring: routed to WebSocket
        // (upstream's rule), 101 without a subprotocol, then close 1008.
        let (head, mut ws) = upgrade(
            &server,
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derpy\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
            "{head}"
        );
        assert_eq!(ws.expect_close().await, 1008);

        // Several offers, derp among them: derp selected.
        let (head, _ws) = upgrade(
            &server,
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, derp\r\n",
        )
        .await;
        assert!(
            head.contains("\r\nSec-WebSocket-Protocol: derp\r\n"),
            "{head}"
        );

        // Wrong version: 400 naming the version we speak.
        let (head, _) = upgrade(
            &server,
            "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: derp\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head}");

        // No subprotocol at all: very old clients sent "Upgrade: WebSocket" but spoke raw
        // DERP; upstream treats that as a DERP upgrade, and so does tinyderp.
        let (head, mut raw) = upgrade(&server, "Sec-WebSocket-Version: 13\r\n").await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("Upgrade: DERP"), "{head}");
        let mut key_frame = raw.raw.clone();
        while key_frame.len() < HEADER_LEN + 40 {
            let mut chunk = [0u8; 256];
            let n = raw.tls.read(&mut chunk).await.expect("read");
            assert!(n > 0);
            key_frame.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(
            key_frame[0],
            FrameType::ServerKey as u8,
            "raw DERP ServerKey frame"
        );
    });
    let after = varz(&server);
    assert!(
        metric(
            &after,
            "tinyderp_websocket_closes_total{reason=\"no_subprotocol\"}"
        ) >= 1
    );
    assert!(
        metric(
            &after,
            "tinyderp_websocket_upgrades_refused_total{reason=\"bad_version\"}"
        ) >= 1
    );
}
