//! `tinyderp status [--json]`: the running relay's counters (`/debug/varz`), or with
//! `--json` the counters, learn mode's refused keys and the mesh peers (`/status.json`),
//! read from its status socket in the state directory (see `status_socket`). LuCI's rpcd
//! plugin runs it, so the web interface shows live data without scraping HTML or the log
//! and without a TLS client.

use crate::text::{DurationText, Quoted};
use std::io;
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::unix::UnixStream;

use crate::config::Config;

/// The whole exchange (connect, request, response) must finish within this.
const FETCH_DEADLINE: Duration = Duration::from_secs(5);
/// Largest response accepted; the counters are a few KiB.
const MAX_RESPONSE: u64 = 1 << 20;

/// Fetches `/debug/varz` (or `/status.json` when `json`) from the relay `config`
/// describes and returns its body.
pub fn run(config: &Config, json: bool) -> io::Result<String> {
    let path = super::status_socket::socket_path(&config.state_dir);
    let target = if json {
        super::status_socket::STATUS_JSON_PATH
    } else {
        super::status_socket::VARZ_PATH
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: tinyderp-status\r\n\r\n"
    );
    let fetch = async {
        let mut stream = UnixStream::connect(&path).await.map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "cannot reach the relay at {}: {err} (is it running?)",
                    path.display()
                ),
            )
        })?;
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await?;
        body_of(&raw)
    };
    let deadline = async {
        smol::Timer::after(FETCH_DEADLINE).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from {} within {}",
                path.display(),
                DurationText(FETCH_DEADLINE)
            ),
        ))
    };
    smol::block_on(smol::future::or(fetch, deadline))
}

/// The body of a `200` response; an error naming the status otherwise.
fn body_of(raw: &[u8]) -> io::Result<String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("truncated HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(io::Error::other(format!(
            "relay answered {}",
            Quoted(status)
        )));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_gives_a_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nx 1\n";
        assert_eq!(body_of(ok).unwrap(), "x 1\n");
        let denied = b"HTTP/1.1 403 Forbidden\r\n\r\ndebug access denied\n";
        assert!(body_of(denied).unwrap_err().to_string().contains("403"));
        assert!(body_of(b"HTTP/1.1 200").is_err());
    }
}
