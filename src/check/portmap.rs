//! What the running relay got from the upstream gateway when it asked for the DERP and
//! STUN port mappings (`--port-mapping`), as one record: the server keeps it for its log,
//! status page and metrics and writes it to [`STATE_FILE`] in the state directory, where
//! `tinyderp check` and `tinyderp derpmap` (other processes) read it. Pure: no I/O here.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::{Status, Step};

/// File name of the record in the state directory.
pub const STATE_FILE: &str = "portmap.json";
/// Longest record file read back (a record is a few hundred bytes).
pub const MAX_STATE_FILE_LEN: u64 = 4096;

/// One port forwarded by the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedPort {
    /// `tcp` (DERP) or `udp` (STUN).
    pub proto: String,
    /// The port tinyderp listens on.
    pub internal_port: u16,
    /// The port on the gateway's external address.
    pub external_port: u16,
}

/// The mappings the relay holds (or why it holds none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortmapRecord {
    /// `PCP` or `NAT-PMP`; empty when no protocol answered.
    pub method: String,
    /// The gateway asked (the IPv4 default route's next hop).
    pub gateway: Option<Ipv4Addr>,
    /// The gateway's external address, as it reports it.
    pub external_ip: Option<IpAddr>,
    /// The forwarded ports; empty when the request failed.
    pub ports: Vec<MappedPort>,
    /// Why there is no mapping, when there is none.
    pub error: Option<String>,
    /// Unix time of the last (re)mapping attempt.
    pub updated_unix: u64,
    /// Unix time the mappings expire unless renewed (0 without mappings).
    pub expires_unix: u64,
}

impl PortmapRecord {
    /// The external port of the mapping for `proto` (`tcp` or `udp`).
    pub fn external_port(&self, proto: &str) -> Option<u16> {
        self.ports
            .iter()
            .find(|port| port.proto == proto)
            .map(|port| port.external_port)
    }

    /// One line: who maps what, e.g.
    /// `PCP on gateway 192.168.1.1: 203.0.113.10 TCP 8443 -> 8443, UDP 3478 -> 3478`.
    pub fn describe(&self) -> String {
        let gateway = self.gateway.map_or_else(
            || "no IPv4 gateway".to_string(),
            |ip| format!("gateway {ip}"),
        );
        if self.ports.is_empty() {
            return format!(
                "no mapping from {gateway}: {}",
                self.error.as_deref().unwrap_or("not asked yet")
            );
        }
        let external = self.external_ip.map_or_else(
            || "external address unknown".to_string(),
            |ip| ip.to_string(),
        );
        let mut line = format!("{} on {gateway}: {external}", self.method);
        for (index, port) in self.ports.iter().enumerate() {
            let _ = write!(
                line,
                "{} {} {} -> {}",
                if index == 0 { "" } else { "," },
                port.proto.to_ascii_uppercase(),
                port.external_port,
                port.internal_port
            );
        }
        line
    }
}

/// What `tinyderp check` knows about port mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortmapView {
    /// `--port-mapping` is off.
    Off,
    /// On, but no record could be read (the relay is not running, or could not write it).
    NoRecord(String),
    /// The running relay's record.
    Record(PortmapRecord),
}

/// The `portmap` step: `None` when port mapping is off.
pub fn portmap_step(view: &PortmapView, now_unix: u64) -> Option<Step> {
    let step = match view {
        PortmapView::Off => return None,
        PortmapView::NoRecord(why) => Step::new(
            "portmap",
            Status::Warn,
            format!("port mapping is on, but the running relay reports no mapping ({why})"),
            Some("start tinyderp (the server asks the gateway; this check only reads what it got)".into()),
        ),
        PortmapView::Record(record) if record.ports.is_empty() => Step::new(
            "portmap",
            Status::Warn,
            record.describe(),
            Some("enable UPnP/NAT-PMP/PCP on the upstream router, or forward the ports there by hand".into()),
        ),
        PortmapView::Record(record) if record.expires_unix <= now_unix => Step::new(
            "portmap",
            Status::Warn,
            format!("{} (expired: the relay stopped renewing it)", record.describe()),
            Some("restart tinyderp".into()),
        ),
        PortmapView::Record(record) => Step::new(
            "portmap",
            Status::Ok,
            format!(
                "{} (renewed {}s ago, lives {}s more)",
                record.describe(),
                now_unix.saturating_sub(record.updated_unix),
                record.expires_unix.saturating_sub(now_unix)
            ),
            None,
        ),
    };
    Some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped() -> PortmapRecord {
        PortmapRecord {
            method: "PCP".into(),
            gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
            external_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10))),
            ports: vec![
                MappedPort {
                    proto: "tcp".into(),
                    internal_port: 8443,
                    external_port: 8443,
                },
                MappedPort {
                    proto: "udp".into(),
                    internal_port: 3478,
                    external_port: 3479,
                },
            ],
            error: None,
            updated_unix: 1000,
            expires_unix: 8200,
        }
    }

    #[test]
    fn describes_and_judges() {
        let record = mapped();
        assert_eq!(
            record.describe(),
            "PCP on gateway 192.168.1.1: 203.0.113.10 TCP 8443 -> 8443, UDP 3479 -> 3478"
        );
        assert_eq!(record.external_port("udp"), Some(3479));
        let json = serde_json::to_string(&record).unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<PortmapRecord>(&json).ok(),
            Some(record.clone())
        );
        let ok = portmap_step(&PortmapView::Record(record.clone()), 1060)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(ok.status, Status::Ok);
        assert!(
            ok.detail.ends_with("(renewed 60s ago, lives 7140s more)"),
            "{}",
            ok.detail
        );
        let expired =
            portmap_step(&PortmapView::Record(record), 9000).unwrap_or_else(|| unreachable!());
        assert_eq!(expired.status, Status::Warn);
        assert_eq!(portmap_step(&PortmapView::Off, 0), None);
        let failed = PortmapRecord {
            method: String::new(),
            ports: Vec::new(),
            external_ip: None,
            error: Some("no answer from PCP or NAT-PMP".into()),
            ..mapped()
        };
        let step =
            portmap_step(&PortmapView::Record(failed), 1000).unwrap_or_else(|| unreachable!());
        assert_eq!(step.status, Status::Warn);
        assert_eq!(
            step.detail,
            "no mapping from gateway 192.168.1.1: no answer from PCP or NAT-PMP"
        );
    }
}
