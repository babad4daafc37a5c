//! What the running relay got from the upstream gateway when it asked for the DERP and
//! STUN port mappings (`--port-mapping`), as one record: the server keeps it for its log,
//! status page and metrics and writes it to [`STATE_FILE`] in the state directory, where
//! `tinyderp check` and `tinyderp derpmap` (other processes) read it. Pure: no I/O here.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use super::{Status, Step};

/// File name of the record in the state directory.
pub const STATE_FILE: &str = "portmap.state";
/// Longest record file read back (a record is a few hundred bytes).
pub const MAX_STATE_FILE_LEN: u64 = 4096;

/// One port forwarded by the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedPort {
    /// `tcp` (DERP) or `udp` (STUN).
    pub proto: String,
    /// The port tinyderp listens on.
    pub internal_port: u16,
    /// The port on the gateway's external address.
    pub external_port: u16,
}

/// The mappings the relay holds (or why it holds none).
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The state-file form: one `key value` line per field, `port PROTO EXTERNAL INTERNAL`
    /// per mapping (a text format of our own: a JSON reader would cost flash).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "method {}", self.method);
        if let Some(gateway) = self.gateway {
            let _ = writeln!(out, "gateway {gateway}");
        }
        if let Some(ip) = self.external_ip {
            let _ = writeln!(out, "external_ip {ip}");
        }
        for port in &self.ports {
            let _ = writeln!(
                out,
                "port {} {} {}",
                port.proto, port.external_port, port.internal_port
            );
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out, "error {}", error.replace('\n', " "));
        }
        let _ = writeln!(out, "updated {}", self.updated_unix);
        let _ = writeln!(out, "expires {}", self.expires_unix);
        out
    }

    /// Reads [`PortmapRecord::to_text`] back; `None` for anything else.
    pub fn from_text(text: &str) -> Option<PortmapRecord> {
        let mut record = PortmapRecord {
            method: String::new(),
            gateway: None,
            external_ip: None,
            ports: Vec::new(),
            error: None,
            updated_unix: 0,
            expires_unix: 0,
        };
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "method" => record.method = value.to_string(),
                "gateway" => record.gateway = Some(value.parse().ok()?),
                "external_ip" => record.external_ip = Some(value.parse().ok()?),
                "port" => {
                    let mut fields = value.split(' ');
                    let proto = fields.next()?.to_string();
                    let external_port = fields.next()?.parse().ok()?;
                    let internal_port = fields.next()?.parse().ok()?;
                    record.ports.push(MappedPort {
                        proto,
                        internal_port,
                        external_port,
                    });
                }
                "error" => record.error = Some(value.to_string()),
                "updated" => record.updated_unix = value.parse().ok()?,
                "expires" => record.expires_unix = value.parse().ok()?,
                _ => return None,
            }
        }
        Some(record)
    }

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
        assert_eq!(
            PortmapRecord::from_text(&record.to_text()),
            Some(record.clone())
        );
        assert_eq!(PortmapRecord::from_text("port tcp x 1\n"), None);
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
        assert_eq!(
            PortmapRecord::from_text(&failed.to_text()),
            Some(failed.clone())
        );
        let step =
            portmap_step(&PortmapView::Record(failed), 1000).unwrap_or_else(|| unreachable!());
        assert_eq!(step.status, Status::Warn);
        assert_eq!(
            step.detail,
            "no mapping from gateway 192.168.1.1: no answer from PCP or NAT-PMP"
        );
    }
}
