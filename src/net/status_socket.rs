//! The status socket: the running relay's counters (`/debug/varz`) on a Unix socket in
//! the state directory, in plain HTTP, for `tinyderp status` and LuCI's rpcd plugin.
//! A Unix socket needs no TLS client (the router builds have none), is reachable only
//! by local users allowed into the state directory, and costs no port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use smol::net::unix::{UnixListener, UnixStream};

use super::deadline::with_deadline;
use super::server::Server;

/// The socket's file name inside the state directory.
pub const STATUS_SOCKET_NAME: &str = "status.sock";
/// Deadline for one whole request: read the head, write the answer.
const STATUS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the status socket of a relay with state directory `state_dir` lives.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATUS_SOCKET_NAME)
}

/// Binds the status socket, replacing a stale one left by a relay that died.
pub(crate) fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(state_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    UnixListener::bind(&path)
}

/// Serves the status socket until the task is dropped (server stop). One request at a
/// time, each under [`STATUS_REQUEST_TIMEOUT`]: the callers are a poll every few seconds,
/// and a stalled local client holds the socket for that long at most.
pub(crate) async fn serve(server: Arc<Server>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if with_deadline(STATUS_REQUEST_TIMEOUT, answer(&server, stream))
                    .await
                    .is_err()
                {
                    server
                        .telemetry
                        .metrics()
                        .http_requests
                        .bump("status_socket_failed");
                }
            }
            Err(err) => {
                log::warn!("status socket: accept failed: {err}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head and answers `GET /debug/varz` with the metrics, anything else
/// with 404.
async fn answer(server: &Server, mut stream: UnixStream) -> std::io::Result<()> {
    let (head, _) = super::accept::read_head(&mut stream).await?;
    let response = if head.method == "GET" && head.path == "/debug/varz" {
        let body = super::http::render_metrics(server);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
            .to_string()
    };
    super::accept::write_response(&mut stream, response.as_bytes()).await
}
