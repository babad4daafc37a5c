//! Raw TLS and HTTPS helpers for tests that need the bytes the DERP client would hide:
//! hand-written request heads, `/debug/varz` counters, connections held open on purpose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use tinyderp::client::{client_tls_config, TlsVerify};

use super::TestServer;

/// How long an HTTPS exchange may take before the test reads what it has.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connector that accepts any server certificate (the pin is tested elsewhere).
pub fn connector() -> TlsConnector {
    let config = client_tls_config(&TlsVerify::Insecure)
        .expect("tls config")
        .expect("TLS mode");
    TlsConnector::from(Arc::new(config))
}

/// TCP then TLS to `addr`, with SNI `localhost`.
pub async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<smol::net::TcpStream>> {
    let tcp = smol::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await
}

/// Runs `fut` for at most `limit`; `None` when time ran out.
pub async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::FutureExt::or(async { Some(fut.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

/// Sends `request` over a fresh TLS connection and returns everything read until the
/// server closes or `EXCHANGE_TIMEOUT` passes.
pub fn https_exchange(server: &TestServer, request: &[u8]) -> Vec<u8> {
    smol::block_on(async {
        let mut tls = tls_connect(&connector(), server.derp_addr)
            .await
            .expect("tls connect");
        tls.write_all(request).await.expect("write request");
        tls.flush().await.expect("flush");
        let mut got = Vec::new();
        within(EXCHANGE_TIMEOUT, async {
            let mut chunk = [0u8; 4096];
            loop {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        got
    })
}

/// `https_exchange` with a text request and a text answer.
pub fn https_request(server: &TestServer, request: &str) -> String {
    String::from_utf8_lossy(&https_exchange(server, request.as_bytes())).into_owned()
}

/// The server's `/debug/varz` text.
pub fn varz(server: &TestServer) -> String {
    https_request(
        server,
        "GET /debug/varz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
}

/// Sum of every sample whose line starts with `prefix` (a metric name, optionally with
/// the start of its labels); 0 when there is none.
pub fn metric(varz: &str, prefix: &str) -> u64 {
    varz.lines()
        .filter(|line| !line.starts_with('#') && line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
