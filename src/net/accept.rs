//! Accepting connections: the accept loops, the TLS handshake, reading one bounded HTTP
//! request head, and sending the connection to the DERP handler or the small HTTP router.
//!
//! Connection tasks are spawned on the server's executor and owned by it: they end on
//! their own (every await before login has a deadline) and are cancelled when `run`
//! drops the executor at shutdown.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

use crate::config::ACCEPT_TOKENS_PER_CONN;
use crate::proto::http::{self as http_proto, RequestHead};
use crate::relay::TokenBucket;

use super::deadline::with_deadline;
use super::server::Server;
use super::{http, listen, session, websocket};

/// Time for the TLS handshake (upstream bounds handshake + request head by 30 s; a router
/// cannot afford to hold sockets that long for scanners).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to receive a complete HTTP request head after the TLS handshake.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to write a plain HTTP response.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (EMFILE and friends) so the loop cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Bytes requested per read while collecting a request head.
const HEAD_READ_CHUNK: usize = 1024;

/// Accepts connections until the task is dropped. `tls` selects the DERP listener (TLS,
/// full router) or the optional plain-HTTP port.
pub(crate) async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    ex: Arc<smol::Executor<'static>>,
    tls: bool,
) {
    // --accept-rate applies to the TLS listener only, as upstream.
    let mut accept_bucket = server.config.limits.accept.filter(|_| tls).map(|rate| {
        TokenBucket::new(
            rate.millis_per_sec,
            rate.burst.saturating_mul(ACCEPT_TOKENS_PER_CONN),
            std::time::Instant::now(),
        )
    });
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if server.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                {
                    let mut metrics = server.telemetry.metrics();
                    metrics.tcp_accepts = metrics.tcp_accepts.saturating_add(1);
                }
                if let Some(bucket) = accept_bucket.as_mut() {
                    if !bucket.try_take(ACCEPT_TOKENS_PER_CONN, std::time::Instant::now()) {
                        // Accepted and closed at once (dropping the stream closes it).
                        let mut metrics = server.telemetry.metrics();
                        metrics.accept_rate_limited = metrics.accept_rate_limited.saturating_add(1);
                        continue;
                    }
                }
                listen::tune_accepted(
                    &stream,
                    server.config.tcp_keepalive,
                    server.config.tcp_user_timeout,
                );
                let task =
                    super::task::spawn(&ex, handle_connection(server.clone(), stream, peer, tls));
                task.detach();
            }
            Err(err) => {
                {
                    let mut metrics = server.telemetry.metrics();
                    metrics.accept_errors = metrics.accept_errors.saturating_add(1);
                }
                server
                    .telemetry
                    .conn_log
                    .log(log::Level::Warn, format_args!("accept failed: {err}"));
                smol::Timer::after(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

async fn handle_connection(server: Arc<Server>, stream: TcpStream, peer: SocketAddr, tls: bool) {
    let peer = unmap(peer);
    if !tls {
        serve_plain_http(&server, stream, peer).await;
        return;
    }
    let tcp = stream.clone();
    let acceptor = futures_rustls::TlsAcceptor::from(server.tls.config.clone());
    // Each short phase of a connection runs in its own box: an async fn's state is as large
    // as its largest phase, so an inline TLS handshake or head buffer would stay reserved
    // in the task of every idle client for its whole life.
    let accept = Box::pin(acceptor.accept(stream));
    let tls_stream = match with_deadline(TLS_HANDSHAKE_TIMEOUT, accept).await {
        Ok(tls_stream) => tls_stream,
        Err(err) => {
            let reason = tls_failure_reason(&err);
            server.telemetry.metrics().tls_failures.bump(reason);
            server.telemetry.conn_log.log(
                log::Level::Info,
                format_args!("TLS handshake with {peer} failed: {err}"),
            );
            return;
        }
    };
    {
        let mut metrics = server.telemetry.metrics();
        metrics.tls_handshakes = metrics.tls_handshakes.saturating_add(1);
    }
    // Boxed: passed by value, the TLS stream (~1.3 KB of rustls state) would be reserved
    // inline at every level of this connection's task for its whole life.
    serve_https(server, Box::new(tls_stream), tcp, peer).await;
}

/// A TLS connection as the DERP listener serves it.
type TlsConn = Box<futures_rustls::server::TlsStream<TcpStream>>;

/// The byte stream of a DERP connection: straight over TLS, or inside a WebSocket over TLS.
/// One type for both, so the DERP session code (login, reader and writer loops) is built
/// once instead of once per transport; a `match` per poll is all it costs. Both variants
/// are boxes, so the enum is as small as the TLS stream's box was alone.
enum DerpStream {
    Tls(TlsConn),
    WebSocket(Box<websocket::WsStream<TlsConn>>),
}

impl AsyncRead for DerpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            DerpStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            DerpStream::WebSocket(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DerpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            DerpStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            DerpStream::WebSocket(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            DerpStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            DerpStream::WebSocket(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            DerpStream::Tls(s) => Pin::new(s).poll_flush(cx),
            DerpStream::WebSocket(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            DerpStream::Tls(s) => Pin::new(s).poll_close(cx),
            DerpStream::WebSocket(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// Routes one request on the DERP listener: `/derp` upgrades become DERP connections,
/// everything else gets one response and the connection is closed.
async fn serve_https(server: Arc<Server>, mut stream: TlsConn, tcp: TcpStream, peer: SocketAddr) {
    let head_read = Box::pin(read_head(&mut stream));
    let (head, leftover) = match with_deadline(REQUEST_HEAD_TIMEOUT, head_read).await {
        Ok(got) => got,
        Err(err) => {
            server
                .telemetry
                .metrics()
                .http_requests
                .bump("bad_request_head");
            server.telemetry.conn_log.log(
                log::Level::Debug,
                format_args!("{peer}: no valid request head: {err}"),
            );
            if err.kind() == std::io::ErrorKind::InvalidData {
                let response =
                    http_proto::simple_response(400, "Bad Request", &[], b"bad request\n");
                let _ = write_response(&mut stream, &response).await;
            }
            return;
        }
    };
    match http::route_https(&server, &head, peer) {
        http::Route::Derp => {
            server.telemetry.metrics().http_requests.bump("derp");
            let stream = DerpStream::Tls(stream);
            session::serve(server, stream, tcp, peer, head, leftover).await;
        }
        http::Route::WebSocket => {
            let upgraded = websocket::upgrade(&server, stream, peer, head, leftover).await;
            if let Some((conn, head)) = upgraded {
                let stream = DerpStream::WebSocket(Box::new(conn));
                session::serve(server, stream, tcp, peer, head, Vec::new()).await;
            }
        }
        http::Route::Respond(response) => {
            let _ = write_response(&mut stream, &response).await;
        }
    }
}

/// The optional plain-HTTP port: captive-portal checks and a redirect to HTTPS.
async fn serve_plain_http(server: &Server, mut stream: TcpStream, peer: SocketAddr) {
    let head = match with_deadline(REQUEST_HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok((head, _)) => head,
        Err(_) => {
            server
                .telemetry
                .metrics()
                .http_requests
                .bump("bad_request_head");
            return;
        }
    };
    let response = http::route_plain(server, &head, peer);
    let _ = write_response(&mut stream, &response).await;
}

/// Writes a whole response, flushes and closes our side, all under one deadline. Takes
/// any stream as `dyn` (TLS, plain TCP, the status socket): built once, not per stream type.
pub(crate) async fn write_response(
    stream: &mut (dyn AsyncWrite + Unpin + Send),
    response: &[u8],
) -> std::io::Result<()> {
    with_deadline(RESPONSE_WRITE_TIMEOUT, async {
        stream.write_all(response).await?;
        stream.flush().await?;
        stream.close().await
    })
    .await
}

/// Reads until a complete request head is buffered. Returns the head and the bytes that
/// arrived after it (in fast-start mode, the start of the DERP stream). Takes any stream
/// as `dyn`, like [`write_response`].
pub(crate) async fn read_head(
    stream: &mut (dyn AsyncRead + Unpin + Send),
) -> std::io::Result<(RequestHead, Vec<u8>)> {
    let mut buf = Vec::with_capacity(HEAD_READ_CHUNK);
    let mut chunk = [0u8; HEAD_READ_CHUNK];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..read).unwrap_or(&[]));
        match http_proto::parse_request_head(&buf) {
            Ok(Some((head, used))) => {
                let leftover = buf.split_off(used.min(buf.len()));
                return Ok((head, leftover));
            }
            Ok(None) => continue,
            Err(err) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    err.to_string(),
                ));
            }
        }
    }
}

/// A short label for a failed TLS handshake, for the metrics.
fn tls_failure_reason(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::TimedOut => "timeout",
        std::io::ErrorKind::UnexpectedEof => "eof",
        std::io::ErrorKind::ConnectionReset => "reset",
        std::io::ErrorKind::InvalidData => "protocol",
        _ => "other",
    }
}

/// IPv4 clients on a dual-stack socket arrive as `::ffff:a.b.c.d`; show and check them as IPv4.
fn unmap(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => peer,
        },
        SocketAddr::V4(_) => peer,
    }
}
