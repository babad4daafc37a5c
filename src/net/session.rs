//! One DERP connection after the HTTP upgrade: the server side of the handshake, then a
//! reader loop (frames in, relay events) and a writer loop (relay output and keep-alives
//! out) running together in the connection's task until either ends.
//!
//! Liveness after login: reads have no idle deadline (an idle client is normal); a dead
//! peer is found by the writer, whose keep-alive frames carry a write deadline, and by
//! the kernel through TCP keep-alive and `TCP_USER_TIMEOUT`. A failed write ends both
//! loops.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;

use crate::admit::Refusal;
use crate::proto::frame::{self, FrameHeader, FrameType, PayloadPlan, HEADER_LEN};
use crate::proto::handshake::{self, ClientInfo, HandshakeError, SharedBox};
use crate::proto::http::{self as http_proto, RequestHead};
use crate::proto::key::PublicKey;
use crate::relay::{ConnParams, PacketBuf};

use super::admission;
use super::deadline::with_deadline;
use super::hub::{ConnHandle, Endpoint, SharedHub};
use super::pacing::ReadLimiter;
use super::server::Server;

/// Deadline for each handshake step: writing ServerKey, then reading ClientInfo (as upstream).
const HANDSHAKE_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Base keep-alive period; clients give up after 120 s of silence.
const KEEP_ALIVE_PERIOD: Duration = Duration::from_secs(60);
/// Per-connection random jitter added to the keep-alive period, so keep-alives of
/// clients that connected together do not fire together.
const KEEP_ALIVE_JITTER_MS: u64 = 5_000;
/// Write deadline for mesh peers (upstream: 30 s); ordinary clients use the configured one.
const MESH_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes gathered into one write; bigger batches wait for the next round.
const MAX_WRITE_BATCH: usize = 128 << 10;
/// Buffers larger than this are released after use, so an idle client holds little memory
/// (the packet buffers themselves come from and go back to the relay's bounded pool).
const IDLE_BUFFER_KEEP: usize = 4 << 10;
/// Most slices handed to one vectored write into TLS (built on the stack of one poll).
const MAX_WRITE_SLICES: usize = 64;
/// Frames a reader handles before it yields to the other tasks on its thread. Per frame
/// costs throughput (every packet would leave in its own write); never starves the writers.
const FRAMES_PER_YIELD: u32 = 32;
/// Chunk used to discard the payload of frames we skip; allocated only while skipping,
/// since an array in the future would be part of every connection's task.
const SKIP_CHUNK: usize = 2048;

/// ClientInfo frames up to this size are read without drawing on the budget below: real
/// ones are about 200 bytes (a mesh key, a version and two flags, sealed).
const SMALL_CLIENT_INFO: usize = 4 << 10;
/// Server-wide bytes that larger ClientInfo frames (upstream allows up to 256 KiB each)
/// may hold while they are read. Without it, a few hundred connections each announcing
/// 256 KiB and sending it hold hundreds of MiB before any of them has logged in, more
/// than a router has. Legitimate clients stay under [`SMALL_CLIENT_INFO`] and are never
/// refused for it.
const LARGE_CLIENT_INFO_BUDGET: usize = 4 << 20;

/// Bytes of [`LARGE_CLIENT_INFO_BUDGET`] in use (one server per process).
static LARGE_CLIENT_INFO_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// A share of [`LARGE_CLIENT_INFO_BUDGET`], given back when dropped.
struct LargeClientInfo(usize);

impl LargeClientInfo {
    /// Takes `len` bytes of the budget, or `None` if that would overspend it.
    fn reserve(len: usize) -> Option<LargeClientInfo> {
        LARGE_CLIENT_INFO_IN_USE
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(len)
                    .filter(|total| *total <= LARGE_CLIENT_INFO_BUDGET)
            })
            .ok()
            .map(|_| LargeClientInfo(len))
    }
}

impl Drop for LargeClientInfo {
    fn drop(&mut self) {
        let len = self.0;
        let _ = LARGE_CLIENT_INFO_IN_USE.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
            Some(used.saturating_sub(len))
        });
    }
}

/// Why a DERP login (ServerKey out, ClientInfo in) failed; the label goes to the metrics.
#[derive(Debug)]
enum LoginError {
    /// The socket failed, closed or ran out of time.
    Io(std::io::Error),
    /// The first frame was not ClientInfo.
    WrongFrameType(u8),
    /// ClientInfo shorter or longer than the protocol allows.
    ClientInfoBadLength(usize),
    /// A large ClientInfo while the server-wide budget for them is spent.
    ClientInfoBudget(usize),
    /// The sealed ClientInfo could not be opened or parsed.
    ClientInfo(HandshakeError),
}

impl LoginError {
    /// Short stable label for metrics and logs.
    fn label(&self) -> &'static str {
        match self {
            LoginError::Io(err) => match err.kind() {
                std::io::ErrorKind::TimedOut => "timeout",
                std::io::ErrorKind::UnexpectedEof => "eof",
                _ => "io_error",
            },
            LoginError::WrongFrameType(_) => "wrong_frame_type",
            LoginError::ClientInfoBadLength(_) => "client_info_bad_length",
            LoginError::ClientInfoBudget(_) => "client_info_budget",
            LoginError::ClientInfo(err) => err.reason(),
        }
    }
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Io(err) => write!(f, "{err}"),
            LoginError::WrongFrameType(frame_type) => write!(
                f,
                "first frame has type {frame_type:#04x}, expected ClientInfo"
            ),
            LoginError::ClientInfoBadLength(len) => write!(f, "ClientInfo of {len} bytes"),
            LoginError::ClientInfoBudget(len) => write!(
                f,
                "ClientInfo of {len} bytes while the budget for large ones is spent"
            ),
            LoginError::ClientInfo(err) => write!(f, "{err}"),
        }
    }
}

/// Serves one DERP connection from the upgrade request to the end.
pub(crate) async fn serve<S>(
    server: Arc<Server>,
    stream: S,
    tcp: TcpStream,
    peer: SocketAddr,
    head: RequestHead,
    leftover: Vec<u8>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read_half, mut writer) = split(stream);
    let mut reader = smol::io::Cursor::new(leftover).chain(read_half);
    // The login and admission steps are boxed so their state is freed when they end and
    // is not reserved in the task for the life of the connection (see accept.rs).
    let login = with_deadline(HANDSHAKE_STEP_TIMEOUT.saturating_mul(2), async {
        Ok(Box::pin(handshake(&server, &mut reader, &mut writer, &head)).await)
    })
    .await;
    let (client_key, info, shared_box) = match login {
        Ok(Ok(login)) => login,
        Ok(Err(failure)) => return log_failure(&server, peer, failure),
        Err(err) => return log_failure(&server, peer, LoginError::Io(err)),
    };
    let is_mesh = match (server.identity.mesh_key, info.mesh_key) {
        (Some(ours), Some(theirs)) => constant_time_eq(&ours, &theirs),
        _ => false,
    };
    // Admission runs here, in this connection's task, under the checks' own deadlines,
    // so a slow tailscaled or admission URL holds up only this client.
    if !is_mesh {
        match Box::pin(admission::decide(
            &server.config.admit,
            &server.admission,
            &client_key,
            Some(peer.ip()),
        ))
        .await
        {
            Ok(how) => server
                .telemetry
                .metrics()
                .admission_allowed
                .bump(how.label()),
            Err(refusal) => return refuse(&server, peer, &client_key, &refusal),
        }
    }
    let (wake_tx, wake_rx) = smol::channel::bounded(1);
    let closed = Arc::new(AtomicBool::new(false));
    let params = ConnParams {
        key: client_key,
        addr: Some(peer),
        is_mesh,
        is_prober: info.is_prober,
        not_ideal: head
            .ideal_node
            .as_deref()
            .is_some_and(|node| !node.is_empty()),
    };
    let endpoint = {
        let mut hub = server.hub.lock();
        // Checked under the same lock as the registration, so the limit cannot be passed
        // by clients finishing their handshakes together.
        if let Some(max) = server.config.limits.max_clients {
            if !is_mesh && hub.conns.len() >= max {
                drop(hub);
                let refusal = Refusal::new(
                    "max_clients",
                    format!("server full ({max} clients; see --max-clients)"),
                );
                return refuse(&server, peer, &client_key, &refusal);
            }
        }
        let hub = &mut *hub;
        let id = hub.relay.register(params, Instant::now(), &mut hub.actions);
        let endpoint = Arc::new(Endpoint::new(id, client_key, wake_tx));
        hub.conns.insert(
            id,
            ConnHandle {
                endpoint: endpoint.clone(),
                closed: closed.clone(),
                tcp,
            },
        );
        hub.apply_actions();
        endpoint
    };
    let id = endpoint.id;
    let label = format!("derp client {peer}{}", client_key.short());
    log::debug!(
        "{label}: connected{}",
        if is_mesh { " (mesh peer)" } else { "" }
    );

    let write_timeout = if is_mesh {
        Some(MESH_WRITE_TIMEOUT)
    } else {
        server.config.tcp_write_timeout
    };
    let mut info_frame = Vec::new();
    let sent_info = match handshake::encode_server_info_with(&mut info_frame, &shared_box) {
        Ok(()) => write_all_flush(&mut writer, &info_frame, write_timeout).await,
        Err(err) => Err(protocol_error(err)),
    };

    if sent_info.is_ok() {
        let outcome = read_loop(&server, &endpoint, &mut reader, ReadLimiter::new(is_mesh))
            .or(write_loop(
                &server.hub,
                &endpoint,
                &mut writer,
                wake_rx,
                &closed,
                write_timeout,
            ))
            .await;
        if let Err(err) = outcome {
            if !is_quiet_end(&err) && !closed.load(Ordering::SeqCst) {
                log::info!("{label}: {err}");
            }
        }
    }
    server.hub.lock().remove(id, Instant::now());
    log::debug!("{label}: disconnected");
}

/// ServerKey out (after the 101 unless fast start), ClientInfo in, box opened.
async fn handshake<R, W>(
    server: &Server,
    reader: &mut R,
    writer: &mut W,
    head: &RequestHead,
) -> Result<(PublicKey, ClientInfo, SharedBox), LoginError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    if !head.fast_start {
        out.extend_from_slice(&http_proto::derp_switching_protocols(
            &server.identity.public,
        ));
    }
    frame::encode_server_key(&mut out, &server.identity.public);
    write_all_flush(writer, &out, Some(HANDSHAKE_STEP_TIMEOUT))
        .await
        .map_err(LoginError::Io)?;

    let mut header = [0u8; HEADER_LEN];
    with_deadline(HANDSHAKE_STEP_TIMEOUT, reader.read_exact(&mut header))
        .await
        .map_err(LoginError::Io)?;
    let header = FrameHeader::decode(header);
    if header.frame_type != FrameType::ClientInfo as u8 {
        return Err(LoginError::WrongFrameType(header.frame_type));
    }
    let len = header.len as usize;
    if !(frame::MIN_CLIENT_INFO_LEN..=frame::MAX_CLIENT_INFO_LEN).contains(&len) {
        return Err(LoginError::ClientInfoBadLength(len));
    }
    let _reservation = if len > SMALL_CLIENT_INFO {
        Some(LargeClientInfo::reserve(len).ok_or(LoginError::ClientInfoBudget(len))?)
    } else {
        None
    };
    let mut payload = vec![0u8; len];
    with_deadline(HANDSHAKE_STEP_TIMEOUT, reader.read_exact(&mut payload))
        .await
        .map_err(LoginError::Io)?;
    handshake::open_client_info_box(&server.identity.secret, &payload)
        .map_err(LoginError::ClientInfo)
}

/// Counts and logs a client refused after its handshake; the caller then drops the
/// connection without sending ServerInfo (as upstream).
fn refuse(server: &Server, peer: SocketAddr, key: &PublicKey, refusal: &Refusal) {
    let telemetry = &server.telemetry;
    telemetry.metrics().admission_refused.bump(refusal.reason);
    telemetry.conn_log.log(
        log::Level::Info,
        format_args!(
            "derp: {peer}: client {} refused: {}",
            key.short(),
            refusal.detail
        ),
    );
    // Once per key (see RefusedKeys), and under the shared per-connection log budget,
    // so a scanner inventing keys cannot flood the log either.
    if let Some(line) = server
        .admission
        .learn(&server.config.admit, key, Some(peer.ip()), refusal)
    {
        telemetry
            .conn_log
            .log(log::Level::Info, format_args!("{line}"));
    }
}

fn log_failure(server: &Server, peer: SocketAddr, failure: LoginError) {
    let telemetry = &server.telemetry;
    telemetry
        .metrics()
        .derp_handshake_failures
        .bump(failure.label());
    telemetry.conn_log.log(
        log::Level::Info,
        format_args!("derp: {peer}: login failed: {failure}"),
    );
}

/// Reads frames until the client leaves or breaks the protocol.
async fn read_loop<R: AsyncRead + Unpin>(
    server: &Server,
    endpoint: &Endpoint,
    reader: &mut R,
    mut limiter: ReadLimiter,
) -> std::io::Result<()> {
    // One buffer, reused: a SendPacket is read into it in place and handed to the relay,
    // which queues it for the receiver and gives back a pooled buffer for the next read.
    let mut payload: Vec<u8> = Vec::new();
    let mut frames_since_yield: u32 = 0;
    let id = endpoint.id;
    loop {
        let mut header = [0u8; HEADER_LEN];
        reader.read_exact(&mut header).await?;
        let header = FrameHeader::decode(header);
        // Pacing delays reading the payload: the sender meets TCP back-pressure.
        limiter
            .before_frame(&server.pacing, &server.telemetry, header.len)
            .await;
        let plan = frame::plan_client_payload(header).map_err(protocol_error)?;
        let now;
        let result = match plan {
            PayloadPlan::Skip(len) => {
                skip(reader, len).await?;
                now = Instant::now();
                let mut hub = server.hub.lock();
                let hub = &mut *hub;
                let result =
                    hub.relay
                        .handle_frame(id, frame::ClientFrame::Ignored, now, &mut hub.actions);
                hub.apply_actions();
                result.map(|_| ())
            }
            PayloadPlan::Read(len) if header.frame_type == FrameType::SendPacket as u8 => {
                let mut packet = PacketBuf::for_payload(std::mem::take(&mut payload), len);
                reader.read_exact(packet.payload_mut()).await?;
                now = Instant::now();
                // The packet path: only the receiver's inbox is locked.
                server.hub.send_packet(endpoint, packet, now).map(|spare| {
                    payload = spare;
                })
            }
            PayloadPlan::Read(len) => {
                // Stale bytes are read over; only growth is zero-filled.
                payload.resize(len, 0);
                reader.read_exact(&mut payload).await?;
                let parsed = frame::parse_client_frame(header.frame_type, &payload)
                    .map_err(protocol_error)?;
                now = Instant::now();
                let mut hub = server.hub.lock();
                let hub = &mut *hub;
                let result = hub.relay.handle_frame(id, parsed, now, &mut hub.actions);
                hub.apply_actions();
                match result {
                    Ok(Some(delivery)) => {
                        hub.deliver(id, delivery, now);
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(violation) => Err(violation),
                }
            }
        };
        result.map_err(protocol_error)?;
        if payload.capacity() > IDLE_BUFFER_KEEP {
            payload = Vec::new();
        }
        // A socket that always has data never makes this task wait: yield now and then so
        // a flooding sender cannot starve the writers and other clients on its thread.
        frames_since_yield = frames_since_yield.saturating_add(1);
        if frames_since_yield >= FRAMES_PER_YIELD {
            frames_since_yield = 0;
            smol::future::yield_now().await;
        }
    }
}

/// Discards `len` payload bytes without buffering them.
async fn skip<R: AsyncRead + Unpin>(reader: &mut R, mut len: u64) -> std::io::Result<()> {
    let mut sink = vec![0u8; SKIP_CHUNK];
    while len > 0 {
        let want = usize::try_from(len).unwrap_or(SKIP_CHUNK).min(SKIP_CHUNK);
        let chunk = sink.get_mut(..want).unwrap_or(&mut []);
        reader.read_exact(chunk).await?;
        len = len.saturating_sub(want as u64);
    }
    Ok(())
}

/// Writes relay output and keep-alives until the connection is closed or a write fails.
/// Packets come from the connection's own inbox (its lock only); the registry is locked
/// only when it has control frames for this connection or a packet came from a source
/// not seen before (PeerGone subscriptions).
async fn write_loop<W: AsyncWrite + Unpin>(
    hub: &SharedHub,
    endpoint: &Endpoint,
    writer: &mut W,
    wake: Receiver<()>,
    closed: &AtomicBool,
    write_timeout: Option<Duration>,
) -> std::io::Result<()> {
    let period = KEEP_ALIVE_PERIOD.saturating_add(Duration::from_millis(jitter_ms()));
    let mut next_keep_alive = Instant::now()
        .checked_add(period)
        .unwrap_or_else(Instant::now);
    // Control frames are encoded into `out`; packets stay in their own buffers (`frames`)
    // and go into TLS with one vectored write, then back to the inbox's pool.
    let mut out: Vec<u8> = Vec::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut new_sources = Vec::new();
    let id = endpoint.id;
    loop {
        let woken = async { wake.recv().await.is_ok() }
            .or(async {
                smol::Timer::at(next_keep_alive).await;
                true
            })
            .await;
        if !woken || closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        loop {
            out.clear();
            let now = Instant::now();
            if now >= next_keep_alive {
                frame::encode_keep_alive(&mut out);
                next_keep_alive = now.checked_add(period).unwrap_or(now);
            }
            let mut control_more = false;
            if endpoint.control.swap(false, Ordering::SeqCst) {
                control_more = hub
                    .lock()
                    .relay
                    .drain_control(id, &mut out, MAX_WRITE_BATCH);
                if control_more {
                    endpoint.control.store(true, Ordering::SeqCst);
                }
            }
            let drained = endpoint.inbox().drain(
                out.len(),
                &mut frames,
                MAX_WRITE_BATCH,
                hub.data(),
                &mut new_sources,
            );
            if !new_sources.is_empty() {
                hub.lock().relay.subscribe_sources(id, &new_sources);
                new_sources.clear();
            }
            if out.is_empty() && frames.is_empty() {
                break;
            }
            let write = async {
                write_all_vectored(writer, &out, &frames).await?;
                writer.flush().await
            };
            let written = match write_timeout {
                Some(limit) => with_deadline(limit, write).await,
                None => write.await,
            };
            if let Err(err) = written {
                endpoint.inbox().note_write_failure(&drained);
                return Err(err);
            }
            if !drained.more && !control_more {
                break;
            }
        }
        if !frames.is_empty() {
            endpoint.inbox().recycle(&mut frames, hub.data());
        }
        // Only a watcher's snapshot makes `out` big; the common case keeps its buffer.
        if out.capacity() > IDLE_BUFFER_KEEP {
            out = Vec::new();
        }
        if closed.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// Writes `head` and then every buffer of `frames`, in order, with vectored writes (TLS
/// packs them into full records with one copy, instead of one record per small write).
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    head: &[u8],
    frames: &[Vec<u8>],
) -> std::io::Result<()> {
    let total = frames
        .iter()
        .fold(head.len(), |sum, frame| sum.saturating_add(frame.len()));
    let mut done: usize = 0;
    while done < total {
        let n = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let mut count = 0;
            let mut skip = done;
            for part in std::iter::once(head).chain(frames.iter().map(Vec::as_slice)) {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                let Some(slot) = slices.get_mut(count) else {
                    break;
                };
                *slot = IoSlice::new(part.get(skip..).unwrap_or_default());
                skip = 0;
                count += 1;
            }
            Pin::new(&mut *writer).poll_write_vectored(cx, slices.get(..count).unwrap_or_default())
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done = done.saturating_add(n);
    }
    Ok(())
}

/// One half of a connection's stream. Both halves are polled by the connection's one
/// task (its reader and writer loops run joined), so the lock is never contended and
/// costs two atomic operations per poll; unlike `smol::io::split`, the write half passes
/// vectored writes through to TLS.
struct Half<S>(Arc<Mutex<S>>);

/// Splits `stream` into a read half and a write half (see [`Half`]).
fn split<S>(stream: S) -> (Half<S>, Half<S>) {
    let shared = Arc::new(Mutex::new(stream));
    (Half(shared.clone()), Half(shared))
}

impl<S> Half<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Half<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Half<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_close(cx)
    }
}

/// Writes and flushes `bytes` under `limit` (`None` = no deadline).
async fn write_all_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    limit: Option<Duration>,
) -> std::io::Result<()> {
    let write = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match limit {
        Some(limit) => with_deadline(limit, write).await,
        None => write.await,
    }
}

fn protocol_error(err: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string())
}

/// End-of-connection errors that are normal and not worth a log line.
fn is_quiet_end(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::NotConnected
    )
}

/// Random keep-alive jitter in `[0, KEEP_ALIVE_JITTER_MS)`.
fn jitter_ms() -> u64 {
    let mut bytes = [0u8; 2];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0;
    }
    u64::from(u16::from_le_bytes(bytes)) % KEEP_ALIVE_JITTER_MS
}

/// Compares two mesh keys without an early exit, so timing reveals nothing about them.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(&[7; 32], &[7; 32]));
        let mut other = [7u8; 32];
        other[31] = 8;
        assert!(!constant_time_eq(&[7; 32], &other));
    }

    #[test]
    fn large_client_info_budget_is_shared_and_given_back() {
        let first = LargeClientInfo::reserve(LARGE_CLIENT_INFO_BUDGET - 100).unwrap();
        assert!(LargeClientInfo::reserve(101).is_none(), "budget overspent");
        let second = LargeClientInfo::reserve(100).unwrap();
        assert!(LargeClientInfo::reserve(1).is_none());
        drop(first);
        drop(second);
        let whole = LargeClientInfo::reserve(LARGE_CLIENT_INFO_BUDGET).unwrap();
        drop(whole);
        assert!(
            LargeClientInfo::reserve(usize::MAX).is_none(),
            "overflow must refuse"
        );
        assert_eq!(LARGE_CLIENT_INFO_IN_USE.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            assert!(jitter_ms() < KEEP_ALIVE_JITTER_MS);
        }
    }
}
