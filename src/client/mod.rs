//! An async DERP client built on [`crate::proto`], speaking exactly like a Go Tailscale
//! client: TCP, TLS (or cleartext), the `/derp` HTTP upgrade with optional fast start,
//! then DERP frames. Used by integration tests, the mesh dialer and the load tool.
//!
//! [`Client::connect`] returns only after the server has sent its ServerInfo, i.e. after
//! it accepted the client. [`Client::split`] gives a reader and a writer for two tasks.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use smol::net::TcpStream;

use crate::proto::frame::{
    self, FrameHeader, FrameType, HEADER_LEN, MAX_FRAME_TO_CLIENT, MAX_PACKET_SIZE,
};
use crate::proto::handshake::{self, ClientInfo, HandshakeError, ServerInfoJson, CLIENT_VERSION};
use crate::proto::key::{PublicKey, SecretKey};

#[cfg(test)]
mod tests;
mod tls;

pub use tls::{
    cert_pin, client_tls_config, client_tls_config_offering, meta_cert_key, AcceptAnyCert,
    TlsVerify, META_CERT_MARKER, PIN_PREFIX,
};

/// Size of the client's read buffer; frames larger than it are assembled across reads.
pub const READ_BUFFER_LEN: usize = 64 << 10;
/// Largest HTTP response head accepted before the DERP stream starts.
pub const MAX_RESPONSE_HEAD: usize = 8 << 10;
/// Most header lines accepted in that response head.
pub const MAX_RESPONSE_HEADERS: usize = 32;
/// Whole connect + handshake deadline used by [`ClientConfig::new`] (a Go client's value).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Anything the client can run DERP over: a TCP stream or a TLS stream on top of one.
pub trait DerpStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DerpStream for T {}

/// The connection after [`tls::wrap`]: TLS over TCP, or TCP alone.
type BoxedStream = Box<dyn DerpStream>;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// TCP address of the server.
    pub addr: SocketAddr,
    /// TLS server name (SNI) and `Host` header name. An IP literal sends no SNI;
    /// empty means the IP of `addr`.
    pub server_name: String,
    /// How the server certificate is trusted, or plaintext.
    pub verify: TlsVerify,
    /// This client's private key; its public key is the client's identity.
    pub secret: SecretKey,
    /// Mesh key to present in ClientInfo (grants mesh privileges).
    pub mesh_key: Option<[u8; 32]>,
    /// Use fast start when the server allows it (TLS 1.3 + meta certificate).
    pub fast_start: bool,
    /// Announce `IsProber` in ClientInfo.
    pub is_prober: bool,
    /// Deadline for the whole connect: TCP, TLS, HTTP upgrade and DERP handshake.
    pub timeout: Duration,
    /// TLS cipher suites offered, in this order; empty offers every suite of the provider.
    /// The bench offers one at a time to count what each costs the server.
    pub tls_suites: Vec<rustls::CipherSuite>,
}

impl ClientConfig {
    /// A TLS config that accepts any certificate and uses fast start, with the 10 s deadline.
    pub fn new(addr: SocketAddr, secret: SecretKey) -> ClientConfig {
        ClientConfig {
            addr,
            server_name: addr.ip().to_string(),
            verify: TlsVerify::Insecure,
            secret,
            mesh_key: None,
            fast_start: true,
            is_prober: false,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            tls_suites: Vec::new(),
        }
    }

    /// The `Host` header value: name (IPv6 in brackets) plus `:port` unless it is the
    /// scheme's default port, as Go's HTTP client writes it.
    pub fn host_header(&self) -> String {
        let name = if self.server_name.is_empty() {
            self.addr.ip().to_string()
        } else {
            self.server_name.clone()
        };
        let name = match name.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => name,
        };
        let default_port = match self.verify {
            TlsVerify::Plaintext => 80,
            _ => 443,
        };
        if self.addr.port() == default_port {
            name
        } else {
            format!("{name}:{}", self.addr.port())
        }
    }
}

/// The upgrade request a Go client writes (same header order and values).
pub fn upgrade_request(host: &str, fast_start: bool) -> Vec<u8> {
    let fast = if fast_start {
        "Derp-Fast-Start: 1\r\n"
    } else {
        ""
    };
    format!(
        "GET /derp HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Connection: Upgrade\r\n{fast}Upgrade: DERP\r\n\r\n"
    )
    .into_bytes()
}

/// A frame from the server as [`Client::recv`] hands it out: the protocol's own
/// [`ServerFrame`], owning its bytes.
pub type ServerMessage = ServerFrame<'static>;
pub use crate::proto::frame::ServerFrame;

fn invalid_data(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

/// The receiving half: buffered reads of whole frames.
pub struct ClientReader {
    stream: ReadHalf<BoxedStream>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    payload: Vec<u8>,
}

impl ClientReader {
    fn new(stream: ReadHalf<BoxedStream>) -> ClientReader {
        ClientReader {
            stream,
            buf: vec![0u8; READ_BUFFER_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            payload: Vec::new(),
        }
    }

    fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Reads more bytes from the stream into the buffer (compacting it first).
    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end = self.end.saturating_sub(self.start);
            self.start = 0;
        }
        let room = self.buf.get_mut(self.end..).unwrap_or(&mut []);
        let read = self.stream.read(room).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "derp server closed the connection",
            ));
        }
        self.end = self.end.saturating_add(read).min(self.buf.len());
        Ok(())
    }

    /// Reads exactly `len` bytes into `self.payload`.
    async fn read_payload(&mut self, len: usize) -> io::Result<()> {
        self.payload.clear();
        self.payload.reserve(len);
        while self.payload.len() < len {
            if self.start == self.end {
                self.fill().await?;
            }
            let wanted = len.saturating_sub(self.payload.len());
            let take = wanted.min(self.end.saturating_sub(self.start));
            let chunk = self
                .buf
                .get(self.start..self.start.saturating_add(take))
                .unwrap_or(&[]);
            self.payload.extend_from_slice(chunk);
            self.start = self.start.saturating_add(take);
        }
        Ok(())
    }

    /// Reads the HTTP response head and returns its status code; the bytes after it
    /// stay buffered as the start of the DERP stream.
    async fn read_response_status(&mut self) -> io::Result<u16> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(self.buffered()) {
                Ok(httparse::Status::Complete(consumed)) => {
                    let status = response.code.unwrap_or(0);
                    self.start = self.start.saturating_add(consumed);
                    return Ok(status);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buffered().len() >= MAX_RESPONSE_HEAD {
                        return Err(invalid_data(io::Error::other("response head too large")));
                    }
                }
                Err(err) => return Err(invalid_data(err)),
            }
            self.fill().await?;
        }
    }

    /// Reads one whole frame: its raw type byte and its payload (valid until the next call).
    /// Frames over 1 MiB end the connection, as in a Go client.
    pub async fn recv_frame(&mut self) -> io::Result<(u8, &[u8])> {
        self.read_payload(HEADER_LEN).await?;
        let header_bytes: [u8; HEADER_LEN] = self
            .payload
            .as_slice()
            .try_into()
            .map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let header = FrameHeader::decode(header_bytes);
        let len = usize::try_from(header.len).unwrap_or(usize::MAX);
        if len > MAX_FRAME_TO_CLIENT {
            return Err(invalid_data(io::Error::other(format!(
                "frame type {:#04x} of {len} bytes exceeds the 1 MiB client limit",
                header.frame_type
            ))));
        }
        self.read_payload(len).await?;
        Ok((header.frame_type, &self.payload))
    }

    /// Reads and parses the next frame.
    pub async fn recv(&mut self) -> io::Result<ServerMessage> {
        let (frame_type, payload) = self.recv_frame().await?;
        let frame = frame::parse_server_frame(frame_type, payload).map_err(invalid_data)?;
        Ok(frame.into_owned())
    }
}

/// The sending half: each call writes one frame and flushes it.
pub struct ClientWriter {
    stream: WriteHalf<BoxedStream>,
    buf: Vec<u8>,
}

impl ClientWriter {
    async fn flush_buf(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.buf).await?;
        self.stream.flush().await
    }

    /// Writes raw bytes as they are (for tests of malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends `data` (at most 64 KiB) to the client with key `dst`.
    pub async fn send_packet(&mut self, dst: &PublicKey, data: &[u8]) -> io::Result<()> {
        check_packet_len(data)?;
        self.buf.clear();
        frame::encode_send_packet(&mut self.buf, dst, data);
        self.flush_buf().await
    }

    /// Mesh: delivers `data` from `src` to the server's local client `dst`.
    pub async fn forward_packet(
        &mut self,
        src: &PublicKey,
        dst: &PublicKey,
        data: &[u8],
    ) -> io::Result<()> {
        check_packet_len(data)?;
        self.buf.clear();
        frame::encode_forward_packet(&mut self.buf, src, dst, data);
        self.flush_buf().await
    }

    /// Tells the server whether this is the client's home DERP.
    pub async fn note_preferred(&mut self, preferred: bool) -> io::Result<()> {
        self.buf.clear();
        frame::encode_note_preferred(&mut self.buf, preferred);
        self.flush_buf().await
    }

    /// Mesh: subscribes to PeerPresent/PeerGone for every client of the server.
    pub async fn watch_conns(&mut self) -> io::Result<()> {
        self.buf.clear();
        frame::encode_watch_conns(&mut self.buf);
        self.flush_buf().await
    }

    /// Mesh: asks the server to close every connection of `peer`.
    pub async fn close_peer(&mut self, peer: &PublicKey) -> io::Result<()> {
        self.buf.clear();
        frame::encode_close_peer(&mut self.buf, peer);
        self.flush_buf().await
    }

    /// Sends a Ping; the server answers with a Pong carrying the same 8 bytes.
    pub async fn ping(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.buf.clear();
        frame::encode_ping(&mut self.buf, &data);
        self.flush_buf().await
    }

    /// Answers a server Ping.
    pub async fn pong(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.buf.clear();
        frame::encode_frame(&mut self.buf, FrameType::Pong, &[&data]);
        self.flush_buf().await
    }

    /// Closes the write side (TLS close_notify, then the socket's write half).
    pub async fn close(&mut self) -> io::Result<()> {
        self.stream.close().await
    }
}

fn check_packet_len(data: &[u8]) -> io::Result<()> {
    if data.len() > MAX_PACKET_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "packet larger than 64 KiB",
        ));
    }
    Ok(())
}

/// A logged-in DERP connection.
pub struct Client {
    reader: ClientReader,
    writer: ClientWriter,
    server_key: PublicKey,
    server_info: ServerInfoJson,
    peer_certificates: Vec<CertificateDer<'static>>,
    used_fast_start: bool,
    tls_suite: Option<rustls::CipherSuite>,
    local_addr: SocketAddr,
}

impl Client {
    /// Connects, upgrades and logs in, all within `cfg.timeout`.
    pub async fn connect(cfg: &ClientConfig) -> io::Result<Client> {
        let deadline = async {
            smol::Timer::after(cfg.timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("derp connect to {} timed out", cfg.addr),
            ))
        };
        smol::future::or(connect_inner(cfg), deadline).await
    }

    /// The server's DERP public key (from ServerKey or the meta certificate).
    pub fn server_key(&self) -> PublicKey {
        self.server_key
    }

    /// The ServerInfo the server sent.
    pub fn server_info(&self) -> ServerInfoJson {
        self.server_info
    }

    /// The certificates the server presented, in order (empty for plaintext).
    pub fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.peer_certificates.clone()
    }

    /// True if the login used fast start (no 101 response, key from the meta cert).
    pub fn used_fast_start(&self) -> bool {
        self.used_fast_start
    }

    /// The TLS cipher suite the server chose; `None` over plaintext.
    pub fn tls_suite(&self) -> Option<rustls::CipherSuite> {
        self.tls_suite
    }

    /// This end's TCP address (what the server sees, on loopback).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// See [`ClientWriter::send_packet`].
    pub async fn send_packet(&mut self, dst: &PublicKey, data: &[u8]) -> io::Result<()> {
        self.writer.send_packet(dst, data).await
    }

    /// See [`ClientWriter::forward_packet`].
    pub async fn forward_packet(
        &mut self,
        src: &PublicKey,
        dst: &PublicKey,
        data: &[u8],
    ) -> io::Result<()> {
        self.writer.forward_packet(src, dst, data).await
    }

    /// See [`ClientWriter::note_preferred`].
    pub async fn note_preferred(&mut self, preferred: bool) -> io::Result<()> {
        self.writer.note_preferred(preferred).await
    }

    /// See [`ClientWriter::watch_conns`].
    pub async fn watch_conns(&mut self) -> io::Result<()> {
        self.writer.watch_conns().await
    }

    /// See [`ClientWriter::close_peer`].
    pub async fn close_peer(&mut self, peer: &PublicKey) -> io::Result<()> {
        self.writer.close_peer(peer).await
    }

    /// See [`ClientWriter::ping`].
    pub async fn ping(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.writer.ping(data).await
    }

    /// See [`ClientWriter::pong`].
    pub async fn pong(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.writer.pong(data).await
    }

    /// See [`ClientWriter::send_raw`].
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.send_raw(bytes).await
    }

    /// See [`ClientReader::recv`].
    pub async fn recv(&mut self) -> io::Result<ServerMessage> {
        self.reader.recv().await
    }

    /// Closes the connection's write side (the server sees EOF and drops the client).
    pub async fn close(mut self) -> io::Result<()> {
        self.writer.close().await
    }

    /// Separates reading and writing so two tasks can use the connection.
    pub fn split(self) -> (ClientReader, ClientWriter) {
        (self.reader, self.writer)
    }
}

fn handshake_error(err: HandshakeError) -> io::Error {
    invalid_data(err)
}

async fn connect_inner(cfg: &ClientConfig) -> io::Result<Client> {
    let tcp = TcpStream::connect(cfg.addr).await?;
    tcp.set_nodelay(true)?;
    let local_addr = tcp.local_addr()?;
    let (stream, peer_certificates, tls_suite) = tls::wrap(cfg, tcp).await?;
    let tls13 = tls_suite.is_some_and(|negotiated| negotiated.tls13);
    let (read_half, write_half) = smol::io::split(stream);
    let mut reader = ClientReader::new(read_half);
    let mut writer = ClientWriter {
        stream: write_half,
        buf: Vec::new(),
    };

    let info = ClientInfo {
        mesh_key: cfg.mesh_key,
        version: CLIENT_VERSION,
        // Like Go: tailscaled's clients answer pings, derper's mesh clients do not say so.
        can_ack_pings: cfg.mesh_key.is_none(),
        is_prober: cfg.is_prober,
        app_name: None,
    };
    let fast_key = if cfg.fast_start && tls13 {
        meta_cert_key(&peer_certificates)
    } else {
        None
    };
    let host = cfg.host_header();
    let server_key = match fast_key {
        Some(server_key) => {
            // Request and ClientInfo in one write; the server answers with no HTTP at all.
            writer.buf = upgrade_request(&host, true);
            handshake::encode_client_info(&mut writer.buf, &cfg.secret, &server_key, &info)
                .map_err(invalid_data)?;
            writer.flush_buf().await?;
            server_key
        }
        None => {
            writer.send_raw(&upgrade_request(&host, false)).await?;
            let status = reader.read_response_status().await?;
            if status != 101 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("derp upgrade refused with HTTP status {status}"),
                ));
            }
            let (frame_type, payload) = reader.recv_frame().await?;
            if frame_type != FrameType::ServerKey as u8 {
                return Err(handshake_error(HandshakeError::WrongFrameType));
            }
            let server_key =
                handshake::parse_server_key_payload(payload).map_err(handshake_error)?;
            writer.buf.clear();
            handshake::encode_client_info(&mut writer.buf, &cfg.secret, &server_key, &info)
                .map_err(invalid_data)?;
            writer.flush_buf().await?;
            server_key
        }
    };
    // Fast-start clients skip the ServerKey frame; ServerInfo must come next.
    let server_info = loop {
        let (frame_type, payload) = reader.recv_frame().await?;
        if frame_type == FrameType::ServerKey as u8 && fast_key.is_some() {
            continue;
        }
        if frame_type != FrameType::ServerInfo as u8 {
            return Err(handshake_error(HandshakeError::WrongFrameType));
        }
        break handshake::open_server_info(&cfg.secret, &server_key, payload)
            .map_err(handshake_error)?;
    };
    Ok(Client {
        reader,
        writer,
        server_key,
        server_info,
        peer_certificates,
        used_fast_start: fast_key.is_some(),
        tls_suite: tls_suite.map(|negotiated| negotiated.suite),
        local_addr,
    })
}
