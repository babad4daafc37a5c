//! `tinyderp status`: the running relay's counters, read the way an operator's tools may
//! read them, over loopback TLS (pinned to our own certificate) from `/debug/varz`.
//! LuCI's rpcd plugin runs it, so the web interface shows live data without scraping
//! HTML and without an HTTPS client on the router.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{client_tls_config, TlsVerify};
use crate::config::Config;

/// The whole exchange (connect, handshake, request, response) must finish within this.
const FETCH_DEADLINE: Duration = Duration::from_secs(5);
/// Largest response accepted; the counters are a few KiB.
const MAX_RESPONSE: u64 = 1 << 20;

/// Fetches `/debug/varz` from the relay `config` describes and returns its body.
pub fn run(config: &Config) -> io::Result<String> {
    let cert = super::cert_files::load(&config.cert_source()).map_err(io::Error::other)?;
    let addr = loopback_of(config.listen);
    let deadline = async {
        smol::Timer::after(FETCH_DEADLINE).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer from {addr} within {FETCH_DEADLINE:?}"),
        ))
    };
    smol::block_on(smol::future::or(fetch(addr, &cert.pin), deadline))
}

/// Where to reach a listener on this machine: its own address, or loopback for a
/// listener on every interface.
fn loopback_of(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip == Ipv6Addr::LOCALHOST => IpAddr::V6(ip),
        other => other,
    };
    SocketAddr::new(ip, listen.port())
}

async fn fetch(addr: SocketAddr, pin: &str) -> io::Result<String> {
    let tls_config = client_tls_config(&TlsVerify::Pin(pin.to_string()))
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other("no TLS configuration"))?;
    let tcp = smol::net::TcpStream::connect(addr).await?;
    let name = ServerName::from(addr.ip());
    let mut tls = TlsConnector::from(Arc::new(tls_config))
        .connect(name, tcp)
        .await?;
    let request = format!(
        "GET /debug/varz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: tinyderp-status\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await?;
    tls.flush().await?;
    let mut raw = Vec::new();
    let read = (&mut tls).take(MAX_RESPONSE).read_to_end(&mut raw).await;
    // A server closing without close_notify still sent the whole body.
    if let Err(err) = read {
        if raw.is_empty() {
            return Err(err);
        }
    }
    body_of(&raw)
}

/// The body of a `200` response; an error naming the status otherwise.
fn body_of(raw: &[u8]) -> io::Result<String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("truncated HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(io::Error::other(format!("relay answered {status:?}")));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_reached_over_loopback() {
        let at = |s: &str| loopback_of(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8443"), "127.0.0.1:8443");
        assert_eq!(at("[::]:443"), "127.0.0.1:443");
        assert_eq!(at("[::1]:9443"), "[::1]:9443");
        assert_eq!(at("192.0.2.1:8443"), "192.0.2.1:8443");
    }

    #[test]
    fn only_a_200_gives_a_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nx 1\n";
        assert_eq!(body_of(ok).unwrap(), "x 1\n");
        let denied = b"HTTP/1.1 403 Forbidden\r\n\r\ndebug access denied\n";
        assert!(body_of(denied).unwrap_err().to_string().contains("403"));
        assert!(body_of(b"HTTP/1.1 200").is_err());
    }
}
