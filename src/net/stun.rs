//! The STUN responder: one UDP socket, answers binding requests with the sender's
//! address, drops and counts everything else. Never throttled (netcheck relies on it).

use std::time::Duration;

use smol::net::UdpSocket;

use crate::proto::stun;

use super::metrics::Telemetry;

/// Largest datagram read; bigger ones are truncated and then fail to parse.
const MAX_DATAGRAM: usize = 2048;
/// Pause after a socket read error so a persistent error cannot spin a core.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves STUN on `socket` until the task is dropped.
pub(crate) async fn serve(telemetry: &Telemetry, socket: UdpSocket) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut reply = [0u8; 44];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(err) => {
                telemetry.metrics().stun_requests.bump("read_error");
                log::warn!("STUN read error: {err}");
                smol::Timer::after(READ_ERROR_PAUSE).await;
                continue;
            }
        };
        let packet = buf.get(..len).unwrap_or(&[]);
        let txid = match stun::parse_binding_request(packet) {
            Ok(txid) => txid,
            Err(err) => {
                telemetry.metrics().stun_requests.bump(err.reason());
                continue;
            }
        };
        let reply_len = stun::binding_response(&txid, from, &mut reply);
        let family = match from {
            std::net::SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_none() => "ipv6",
            _ => "ipv4",
        };
        let disposition = match socket
            .send_to(reply.get(..reply_len).unwrap_or(&[]), from)
            .await
        {
            Ok(_) => "success",
            Err(_) => "write_error",
        };
        let mut metrics = telemetry.metrics();
        metrics.stun_requests.bump(disposition);
        if disposition == "success" {
            metrics.stun_family.bump(family);
        }
    }
}
