//! DERP over WebSocket, for browsers and upstream's WebSocket client: the RFC 6455 opening
//! handshake on `GET /derp`, then a byte-stream adapter ([`WsStream`]) that carries the DERP
//! stream in binary messages, so the DERP login and relay code in `derp.rs` runs unchanged.
//!
//! As upstream derper: any `Origin`, no extensions (compression off), subprotocol `derp`
//! selected when offered, and a 101 followed by close 1008 when it is not. Client frames
//! are checked by [`crate::proto::websocket::Decoder`]; a violation is answered with a close
//! frame carrying its code (1002 protocol error, 1003 text, 1009 too big) before the
//! connection ends. Pings are answered with pongs; a client close is echoed and ends the
//! DERP stream like EOF.
//!
//! Bounds: the read buffer is [`IN_BUF_LEN`] bytes (data payloads larger than what it holds
//! are read straight into the caller's buffer); the write side holds at most one outgoing
//! message of [`MAX_OUT_MESSAGE`] bytes plus one pong and one close frame; a message from
//! the client may not exceed [`MAX_MESSAGE_LEN`]. Every wait has a deadline: the 101 write
//! ([`UPGRADE_WRITE_TIMEOUT`]), the close frame ([`CLOSE_TIMEOUT`]), and everything after
//! the upgrade runs under the deadlines of `derp.rs`.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use smol::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::proto::http::{self as http_proto, RequestHead};
use crate::proto::websocket::{
    self as ws, close_code, ControlPayload, Decoder, Item, UpgradeError, UpgradeRequest, Violation,
};

use super::deadline::with_deadline;
use super::server::Server;

/// Deadline for writing the 101 (or the refusal) after the request head.
pub(crate) const UPGRADE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server tries to deliver its close frame before it drops the connection.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest message accepted from a client, in payload bytes. A DERP client's messages are
/// one flush of its writer: at most one 64 KiB packet plus a frame head (upstream's Go
/// client writes big packets as one message), so twice that leaves room and still refuses
/// a client that streams one endless message. Beyond it: close 1009.
pub(crate) const MAX_MESSAGE_LEN: u64 = 128 << 10;
/// Largest message the server sends. Upstream's WebSocket library refuses messages over
/// 32 KiB by default, so bigger writes are split into several messages.
pub(crate) const MAX_OUT_MESSAGE: usize = 16 << 10;
/// Read buffer: holds at least one whole frame head plus a whole control frame.
pub(crate) const IN_BUF_LEN: usize = 2048;
/// The write buffer is released after use when it grew beyond this (idle clients stay small).
const IDLE_OUT_KEEP: usize = 4 << 10;

const _: () = assert!(IN_BUF_LEN >= ws::MAX_HEAD_LEN + ws::MAX_CONTROL_PAYLOAD);

/// How WebSocket connections ended (label of `tinyderp_websocket_closes_total`).
const CLOSE_REASONS: [&str; 9] = [
    "client_close",
    "eof",
    "io_error",
    "protocol_error",
    "unsupported_data",
    "invalid_payload",
    "too_big",
    "no_subprotocol",
    "server_end",
];

/// Every client-frame violation, in the order of their counters.
const VIOLATIONS: [Violation; 12] = [
    Violation::Unmasked,
    Violation::ReservedBits,
    Violation::ReservedOpcode,
    Violation::FragmentedControl,
    Violation::ControlTooLong,
    Violation::LengthOverflow,
    Violation::UnexpectedContinuation,
    Violation::UnfinishedMessage,
    Violation::TextMessage,
    Violation::MessageTooBig,
    Violation::BadCloseCode,
    Violation::BadCloseReason,
];

/// Every reason an upgrade is refused with an HTTP error, in the order of their counters.
const REFUSALS: [UpgradeError; 4] = [
    UpgradeError::NotGet,
    UpgradeError::NoConnectionUpgrade,
    UpgradeError::BadVersion,
    UpgradeError::BadKey,
];

/// WebSocket counters. Process-wide (one server per process), so the adapter can count
/// from its `Drop` without a handle on the server; fixed label sets, so memory is bounded.
/// (A mutex, not 64-bit atomics: those are absent on 32-bit MIPS routers.)
struct WsMetrics {
    accepts: u64,
    refused: [u64; REFUSALS.len()],
    closes: [u64; CLOSE_REASONS.len()],
    violations: [u64; VIOLATIONS.len()],
}

static METRICS: Mutex<WsMetrics> = Mutex::new(WsMetrics {
    accepts: 0,
    refused: [0; REFUSALS.len()],
    closes: [0; CLOSE_REASONS.len()],
    violations: [0; VIOLATIONS.len()],
});

fn metrics() -> MutexGuard<'static, WsMetrics> {
    METRICS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn bump_at(counters: &mut [u64], index: Option<usize>) {
    if let Some(counter) = index.and_then(|i| counters.get_mut(i)) {
        *counter = counter.saturating_add(1);
    }
}

fn count_close(reason: &'static str) {
    let index = CLOSE_REASONS.iter().position(|r| *r == reason);
    bump_at(&mut metrics().closes, index);
}

fn count_violation(violation: Violation) {
    let index = VIOLATIONS.iter().position(|v| *v == violation);
    bump_at(&mut metrics().violations, index);
}

fn count_refusal(refusal: UpgradeError) {
    let index = REFUSALS.iter().position(|r| *r == refusal);
    bump_at(&mut metrics().refused, index);
}

/// Appends the WebSocket counters in Prometheus text format.
pub(crate) fn render_metrics(out: &mut String) {
    let counts = metrics();
    let _ = writeln!(
        out,
        "# HELP tinyderp_websocket_accepts_total DERP-over-WebSocket connections accepted (upstream: derp_websocket_accepts)\n\
         # TYPE tinyderp_websocket_accepts_total counter\n\
         tinyderp_websocket_accepts_total {}",
        counts.accepts
    );
    family(
        out,
        "tinyderp_websocket_upgrades_refused_total",
        "WebSocket upgrade requests answered with an HTTP error",
        "reason",
        REFUSALS
            .iter()
            .zip(counts.refused.iter())
            .map(|(r, c)| (r.reason(), *c)),
    );
    family(
        out,
        "tinyderp_websocket_closes_total",
        "WebSocket connections ended, by reason",
        "reason",
        CLOSE_REASONS
            .iter()
            .zip(counts.closes.iter())
            .map(|(r, c)| (*r, *c)),
    );
    family(
        out,
        "tinyderp_websocket_violations_total",
        "client frames that broke RFC 6455 or the server's bounds, by kind",
        "kind",
        VIOLATIONS
            .iter()
            .zip(counts.violations.iter())
            .map(|(v, c)| (v.reason(), *c)),
    );
}

/// Appends one labelled counter family.
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    rows: impl Iterator<Item = (&'static str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in rows {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// Answers `GET /derp` with `Upgrade: websocket` and a `derp` subprotocol offer: the
/// handshake. Returns the DERP byte stream inside the WebSocket and the request head to
/// serve it with (the caller runs the DERP connection, so the DERP session code is built
/// once for both transports), or `None` when the upgrade was refused or closed.
pub(crate) async fn upgrade<S>(
    server: &Server,
    mut stream: S,
    peer: SocketAddr,
    mut head: RequestHead,
    leftover: Vec<u8>,
) -> Option<(WsStream<S>, RequestHead)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = UpgradeRequest {
        method: &head.method,
        connection: head.connection.as_deref(),
        version: head.websocket_version.as_deref(),
        key: head.websocket_key.as_deref(),
        protocols: head.websocket_protocol.as_deref(),
    };
    let accepted = match ws::check_upgrade(&request) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            count_refusal(refusal);
            server.telemetry.conn_log.log(
                log::Level::Debug,
                format_args!("{peer}: websocket upgrade refused: {refusal}"),
            );
            let (status, phrase) = refusal.status();
            let mut headers = vec![("Content-Type", "text/plain; charset=utf-8")];
            if refusal == UpgradeError::BadVersion {
                headers.push(("Sec-WebSocket-Version", "13"));
            }
            let response =
                http_proto::simple_response(status, phrase, &headers, refusal.message().as_bytes());
            let _ = with_deadline(UPGRADE_WRITE_TIMEOUT, async {
                stream.write_all(&response).await?;
                stream.flush().await?;
                stream.close().await
            })
            .await;
            return None;
        }
    };
    let speaks_derp = accepted.protocol.as_deref() == Some(ws::SUBPROTOCOL);
    let answer = ws::switching_protocols(&accepted);
    let mut conn = WsStream::new(stream, leftover);
    let sent = with_deadline(UPGRADE_WRITE_TIMEOUT, async {
        conn.inner.write_all(&answer).await?;
        conn.inner.flush().await
    })
    .await;
    if let Err(err) = sent {
        conn.end_reason = Some("io_error");
        server.telemetry.conn_log.log(
            log::Level::Debug,
            format_args!("{peer}: websocket upgrade not sent: {err}"),
        );
        return None;
    }
    if !speaks_derp {
        // Upstream answers 101 without a subprotocol and then closes with 1008.
        conn.start_close(
            close_code::POLICY_VIOLATION,
            "client must speak the derp subprotocol",
            Ending::Eof,
            "no_subprotocol",
        );
        std::future::poll_fn(|cx| conn.poll_closing(cx)).await;
        return None;
    }
    {
        let mut counts = metrics();
        counts.accepts = counts.accepts.saturating_add(1);
    }
    // The 101 above was this request's HTTP answer; the DERP stream starts with the
    // ServerKey frame inside the WebSocket, as on the fast-start path (no DERP 101).
    head.fast_start = true;
    Some((conn, head))
}

/// What the reader sees once the close handshake is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// End of stream (the client closed, or the server did).
    Eof,
    /// The client broke the protocol.
    Violation(Violation),
}

impl Ending {
    fn result(self) -> io::Result<usize> {
        match self {
            Ending::Eof => Ok(0),
            Ending::Violation(v) => Err(io::Error::new(io::ErrorKind::InvalidData, v)),
        }
    }
}

/// Where the adapter is in the connection's life.
enum Phase {
    /// Frames flow both ways.
    Open,
    /// A close frame is queued; reads and writes wait until it is written or `deadline`.
    Closing { then: Ending, deadline: smol::Timer },
    /// Done: reads give `Ending`, writes fail.
    Closed(Ending),
}

/// A WebSocket connection seen as the DERP byte stream: reads return the payload bytes of
/// the client's binary messages, writes become binary messages.
pub(crate) struct WsStream<S> {
    inner: S,
    decoder: Decoder,
    /// Bytes read from `inner` not yet decoded: `inbuf[in_start..in_end]`.
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// Whole encoded frames waiting to be written: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// The latest ping's payload, answered at the next frame boundary (one at most).
    pending_pong: Option<ControlPayload>,
    phase: Phase,
    /// Why the connection ended, once known (counted when the stream is dropped).
    end_reason: Option<&'static str>,
}

impl<S> WsStream<S> {
    /// Wraps `inner` right after the 101; `leftover` holds bytes the client sent after its
    /// request head (already WebSocket frames).
    fn new(inner: S, leftover: Vec<u8>) -> WsStream<S> {
        let mut inbuf = leftover;
        let in_end = inbuf.len();
        inbuf.resize(in_end.max(IN_BUF_LEN), 0);
        WsStream {
            inner,
            decoder: Decoder::new(MAX_MESSAGE_LEN),
            inbuf,
            in_start: 0,
            in_end,
            out: Vec::new(),
            out_pos: 0,
            pending_pong: None,
            phase: Phase::Open,
            end_reason: None,
        }
    }

    fn note_end(&mut self, reason: &'static str) {
        if self.end_reason.is_none() {
            self.end_reason = Some(reason);
        }
    }

    /// Queues a close frame and enters the closing phase (first call only).
    fn start_close(&mut self, code: u16, reason: &str, then: Ending, label: &'static str) {
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        self.note_end(label);
        self.pending_pong = None;
        ws::encode_close(&mut self.out, code, reason);
        self.phase = Phase::Closing {
            then,
            deadline: smol::Timer::after(CLOSE_TIMEOUT),
        };
    }

    /// A violation by the client: count it and close with its code.
    fn violation(&mut self, violation: Violation) {
        count_violation(violation);
        let label = match violation.close_code() {
            close_code::MESSAGE_TOO_BIG => "too_big",
            close_code::UNSUPPORTED_DATA => "unsupported_data",
            close_code::INVALID_PAYLOAD => "invalid_payload",
            _ => "protocol_error",
        };
        let reason = match violation {
            Violation::TextMessage => "DERP over WebSocket uses binary messages",
            Violation::MessageTooBig => "message too big",
            _ => violation.reason(),
        };
        self.start_close(
            violation.close_code(),
            reason,
            Ending::Violation(violation),
            label,
        );
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Writes everything queued (a pending pong first joins the queue).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(pong) = self.pending_pong.take() {
            ws::encode_pong(&mut self.out, &pong);
        }
        while let Some(rest) = self.out.get(self.out_pos..).filter(|rest| !rest.is_empty()) {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos = self.out_pos.saturating_add(written);
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > IDLE_OUT_KEEP {
            self.out = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Drives the close frame out; ready once it is written and flushed, failed, or the
    /// deadline passed. Moves the phase to `Closed`.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Closing { then, deadline } = &mut self.phase else {
            return Poll::Ready(());
        };
        let then = *then;
        let timed_out = Pin::new(deadline).poll(cx).is_ready();
        let done = timed_out
            || match self.poll_drain(cx) {
                Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx).is_ready(),
                Poll::Ready(Err(_)) => true,
                Poll::Pending => false,
            };
        if !done {
            return Poll::Pending;
        }
        self.phase = Phase::Closed(then);
        Poll::Ready(())
    }

    /// Sends a waiting pong without blocking the read side on it.
    fn push_control(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.pending_pong.is_none() && self.out_pos >= self.out.len() {
            return Ok(());
        }
        if let Poll::Ready(Err(err)) = self.poll_drain(cx) {
            return Err(err);
        }
        if let Poll::Ready(Err(err)) = Pin::new(&mut self.inner).poll_flush(cx) {
            return Err(err);
        }
        Ok(())
    }

    fn io_failed(&mut self, err: io::Error) -> Poll<io::Result<usize>> {
        self.note_end("io_error");
        Poll::Ready(Err(err))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match &this.phase {
                Phase::Closed(ending) => return Poll::Ready(ending.result()),
                Phase::Closing { .. } => {
                    ready!(this.poll_closing(cx));
                    continue;
                }
                Phase::Open => {}
            }
            if let Err(err) = this.push_control(cx) {
                return this.io_failed(err);
            }
            if dst.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let remaining = this.decoder.payload_remaining();
            if remaining > 0 {
                let want = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(dst.len());
                let buffered = this.inbuf.get(this.in_start..this.in_end).unwrap_or(&[]);
                let target = dst.get_mut(..want).unwrap_or(&mut []);
                let got = if buffered.is_empty() {
                    // Nothing buffered: read the payload straight into the caller's buffer.
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, target)) {
                        Ok(0) => {
                            this.note_end("eof");
                            return Poll::Ready(Ok(0));
                        }
                        Ok(n) => n,
                        Err(err) => return this.io_failed(err),
                    }
                } else {
                    let n = buffered.len().min(target.len());
                    let (part, _) = target.split_at_mut(n);
                    part.copy_from_slice(buffered.get(..n).unwrap_or(&[]));
                    this.in_start = this.in_start.saturating_add(n);
                    n
                };
                let taken = this.decoder.unmask(dst.get_mut(..got).unwrap_or(&mut []));
                return Poll::Ready(Ok(taken));
            }
            let buffered = this.inbuf.get(this.in_start..this.in_end).unwrap_or(&[]);
            match this.decoder.decode(buffered) {
                Err(violation) => this.violation(violation),
                Ok(Some((item, used))) => {
                    this.in_start = this.in_start.saturating_add(used);
                    match item {
                        Item::Data { .. } | Item::Pong(_) => {}
                        Item::Ping(payload) => this.pending_pong = Some(payload),
                        Item::Close { code, .. } => this.start_close(
                            code.unwrap_or(close_code::NORMAL),
                            "",
                            Ending::Eof,
                            "client_close",
                        ),
                    }
                }
                Ok(None) => {
                    // Need more bytes: compact, then read after what is buffered.
                    if this.in_start > 0 {
                        this.inbuf.copy_within(this.in_start..this.in_end, 0);
                        this.in_end = this.in_end.saturating_sub(this.in_start);
                        this.in_start = 0;
                    }
                    let room = this.inbuf.get_mut(this.in_end..).unwrap_or(&mut []);
                    if room.is_empty() {
                        // Cannot happen: the buffer holds any head plus a control frame.
                        this.violation(Violation::ControlTooLong);
                        continue;
                    }
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, room)) {
                        Ok(0) => {
                            this.note_end("eof");
                            return Poll::Ready(Ok(0));
                        }
                        Ok(n) => this.in_end = this.in_end.saturating_add(n),
                        Err(err) => return this.io_failed(err),
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Open => {}
            Phase::Closing { .. } => {
                // The reader ends the connection once the close frame is out; a write
                // error now could end it first and cut the close frame off.
                ready!(this.poll_closing(cx));
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            Phase::Closed(_) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
        // One message at a time: the previous one must be out before the next is taken.
        if let Err(err) = ready!(this.poll_drain(cx)) {
            return this.io_failed(err);
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let take = buf.len().min(MAX_OUT_MESSAGE);
        ws::encode_binary(&mut this.out, buf.get(..take).unwrap_or(&[]));
        if let Poll::Ready(Err(err)) = this.poll_drain(cx) {
            return this.io_failed(err);
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Open => {}
            Phase::Closing { .. } => {
                ready!(this.poll_closing(cx));
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            Phase::Closed(_) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
        if let Err(err) = ready!(this.poll_drain(cx)) {
            this.note_end("io_error");
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.start_close(close_code::NORMAL, "", Ending::Eof, "server_end");
        ready!(this.poll_closing(cx));
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

impl<S> Drop for WsStream<S> {
    fn drop(&mut self) {
        count_close(self.end_reason.unwrap_or("server_end"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::websocket::{encode_client_frame, Opcode};
    use smol::io::AsyncReadExt;

    /// An in-memory peer: reads come from `input`, writes collect in `output`; reads past
    /// the input report EOF.
    struct Pipe {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
        /// Most bytes a single read returns (exercises split frames).
        read_chunk: usize,
    }

    impl AsyncRead for Pipe {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = buf.len().min(this.read_chunk);
            Poll::Ready(std::io::Read::read(&mut this.input, &mut buf[..n]))
        }
    }

    impl AsyncWrite for Pipe {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().output.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn stream(client_bytes: Vec<u8>, read_chunk: usize) -> WsStream<Pipe> {
        WsStream::new(
            Pipe {
                input: std::io::Cursor::new(client_bytes),
                output: Vec::new(),
                read_chunk,
            },
            Vec::new(),
        )
    }

    /// Splits what the server wrote into (opcode, payload) of unmasked frames.
    fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while bytes.len() >= 2 {
            assert_eq!(bytes[1] & 0x80, 0, "server frames are never masked");
            let (len, at) = match bytes[1] & 0x7f {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            frames.push((bytes[0], bytes[at..at + len].to_vec()));
            bytes = &bytes[at + len..];
        }
        assert!(bytes.is_empty(), "trailing partial frame");
        frames
    }

    #[test]
    fn reads_payload_across_frames_and_answers_pings() {
        for chunk in [1usize, 3, 7, 100, 5000] {
            let mut client = Vec::new();
            encode_client_frame(&mut client, false, Opcode::Binary, [1, 2, 3, 4], b"hello ");
            encode_client_frame(&mut client, true, Opcode::Ping, [5, 6, 7, 8], b"ping!");
            encode_client_frame(
                &mut client,
                true,
                Opcode::Continuation,
                [9, 9, 9, 9],
                &[b'w'; 3000],
            );
            encode_client_frame(&mut client, true, Opcode::Pong, [1, 1, 1, 1], b"");
            encode_client_frame(
                &mut client,
                true,
                Opcode::Close,
                [2, 2, 2, 2],
                &1000u16.to_be_bytes(),
            );
            let mut s = stream(client, chunk);
            let mut got = Vec::new();
            smol::block_on(s.read_to_end(&mut got)).unwrap();
            let mut want = b"hello ".to_vec();
            want.extend_from_slice(&[b'w'; 3000]);
            assert_eq!(got, want, "chunk {chunk}");
            let frames = server_frames(&s.inner.output);
            assert_eq!(
                frames,
                vec![
                    (0x8a, b"ping!".to_vec()),
                    (0x88, 1000u16.to_be_bytes().to_vec())
                ],
                "chunk {chunk}"
            );
            assert_eq!(s.end_reason, Some("client_close"));
        }
    }

    #[test]
    fn violations_close_with_their_code() {
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            // Unmasked binary frame.
            (vec![0x82, 0x02, 0xaa, 0xbb], 1002, "protocol_error"),
            // Text message.
            (
                {
                    let mut f = Vec::new();
                    encode_client_frame(&mut f, true, Opcode::Text, [1; 4], b"hi");
                    f
                },
                1003,
                "unsupported_data",
            ),
            // Over the message bound.
            (
                {
                    let mut f = vec![0x82, 0xff];
                    f.extend_from_slice(&(MAX_MESSAGE_LEN + 1).to_be_bytes());
                    f.extend_from_slice(&[0; 4]);
                    f
                },
                1009,
                "too_big",
            ),
        ];
        for (client, code, label) in cases {
            let mut s = stream(client, 4096);
            let mut got = Vec::new();
            let err = smol::block_on(s.read_to_end(&mut got)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let frames = server_frames(&s.inner.output);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].0, 0x88);
            assert_eq!(u16::from_be_bytes([frames[0].1[0], frames[0].1[1]]), code);
            assert_eq!(s.end_reason, Some(label));
            // Writes after the close fail instead of sending data frames.
            assert!(smol::block_on(s.write_all(b"x")).is_err());
        }
    }

    #[test]
    fn writes_become_bounded_binary_messages() {
        let mut s = stream(Vec::new(), 4096);
        let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        smol::block_on(async {
            s.write_all(&data).await.unwrap();
            s.flush().await.unwrap();
        });
        let frames = server_frames(&s.inner.output);
        assert!(frames.len() >= 3);
        let mut joined = Vec::new();
        for (b0, payload) in frames {
            assert_eq!(b0, 0x82, "binary, FIN");
            assert!(payload.len() <= MAX_OUT_MESSAGE);
            joined.extend_from_slice(&payload);
        }
        assert_eq!(joined, data);
        // EOF without a close frame.
        let mut rest = Vec::new();
        smol::block_on(s.read_to_end(&mut rest)).unwrap();
        assert_eq!(s.end_reason, Some("eof"));
    }

    #[test]
    fn leftover_bytes_are_decoded_first() {
        let mut early = Vec::new();
        encode_client_frame(&mut early, true, Opcode::Binary, [4, 3, 2, 1], b"early");
        let mut later = Vec::new();
        encode_client_frame(&mut later, true, Opcode::Binary, [1, 2, 3, 4], b" later");
        let mut s = WsStream::new(
            Pipe {
                input: std::io::Cursor::new(later),
                output: Vec::new(),
                read_chunk: 4096,
            },
            early,
        );
        let mut got = Vec::new();
        smol::block_on(s.read_to_end(&mut got)).unwrap();
        assert_eq!(got, b"early later");
    }

    #[test]
    fn metrics_render_every_label() {
        count_violation(Violation::Unmasked);
        count_close("too_big");
        let mut out = String::new();
        render_metrics(&mut out);
        assert!(out.contains("tinyderp_websocket_accepts_total "));
        for reason in CLOSE_REASONS {
            assert!(out.contains(&format!(
                "tinyderp_websocket_closes_total{{reason=\"{reason}\"}}"
            )));
        }
        for v in VIOLATIONS {
            assert!(out.contains(&format!(
                "tinyderp_websocket_violations_total{{kind=\"{}\"}}",
                v.reason()
            )));
        }
        assert!(!out.contains("kind=\"unmasked\"} 0\n"));
    }
}
