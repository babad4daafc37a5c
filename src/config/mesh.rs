//! `--mesh-with` and `--mesh-pin`: the other relays of the region this one dials.
//!
//! `--mesh-with` takes upstream derper's syntax: a comma-separated list of `host[:port]`
//! (port 443 if omitted); an entry `host[:port]/dialhost` connects to `dialhost` on that
//! port but verifies the certificate for `host`. The server's own name in the list is
//! skipped (same hostname and the port it listens on, or no port), so one list can be
//! copied to every node. The option may also be given several times (UCI `list
//! mesh_with`), each value again a comma-separated list.
//!
//! `--mesh-pin host=sha256-raw:HEX` (repeatable, or comma-separated) trusts the relay
//! `host` (the name as written in `--mesh-with`, without port) by its certificate hash
//! instead of the system roots, so relays with self-signed certificates mesh without a CA.

use super::error::{ConfigError, Rule, Unsupported, Want};
use super::values::{check_hostname, not_a};
use crate::relay::MAX_MESH_PEERS;

/// Port dialed when a `--mesh-with` entry has none (upstream: https).
pub const DEFAULT_MESH_PORT: u16 = 443;

/// One relay to mesh with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    /// Name its certificate is verified for (and sent as SNI and Host).
    pub name: String,
    /// TCP port dialed.
    pub port: u16,
    /// Host name or IP actually dialed (the `/dialhost` part, else `name`).
    pub dial_host: String,
    /// `sha256-raw:<hex>` pin from `--mesh-pin`; `None` = system roots.
    pub pin: Option<String>,
}

impl MeshPeer {
    /// `name:port` as the logs and the status page show it.
    pub fn label(&self) -> String {
        if self.name.contains(':') {
            format!("[{}]:{}", self.name, self.port)
        } else {
            format!("{}:{}", self.name, self.port)
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into name and port.
fn split_host_port(flag: &'static str, text: &str) -> Result<(String, Option<u16>), ConfigError> {
    let bad = || not_a(flag, text, Want::MeshPeer);
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return Err(bad()),
        },
    };
    if host.is_empty() {
        return Err(bad());
    }
    let host = check_hostname(flag, host).map_err(|_| bad())?;
    Ok((host, port))
}

/// Parses one `--mesh-with` entry: `host[:port][/dialhost]`.
fn parse_entry(text: &str) -> Result<(MeshPeer, bool), ConfigError> {
    const FLAG: &str = "--mesh-with";
    let mut parts = text.split('/');
    let (Some(host), dial, None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(not_a(FLAG, text, Want::MeshPeer));
    };
    let (name, port) = split_host_port(FLAG, host)?;
    let dial_host = match dial {
        Some(dial) => {
            let dial = dial.trim_start_matches('[').trim_end_matches(']');
            check_hostname(FLAG, dial).map_err(|_| not_a(FLAG, text, Want::MeshPeer))?
        }
        None => name.clone(),
    };
    Ok((
        MeshPeer {
            name,
            port: port.unwrap_or(DEFAULT_MESH_PORT),
            dial_host,
            pin: None,
        },
        port.is_none(),
    ))
}

/// Parses one `--mesh-pin` entry: `host=sha256-raw:<64 hex>`.
fn parse_pin(text: &str) -> Result<(String, String), ConfigError> {
    const FLAG: &str = "--mesh-pin";
    let bad = || not_a(FLAG, text, Want::MeshPin);
    let (host, pin) = text.split_once('=').ok_or_else(bad)?;
    let hex = pin.strip_prefix(crate::cert::PIN_PREFIX).ok_or_else(bad)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = check_hostname(FLAG, host).map_err(|_| bad())?;
    Ok((
        host.to_ascii_lowercase(),
        format!("{}{}", crate::cert::PIN_PREFIX, hex.to_ascii_lowercase()),
    ))
}

/// Every comma-separated item of a repeatable option, trimmed, empty ones left out.
fn items(values: &[String]) -> impl Iterator<Item = &str> {
    values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Builds the peer list from `--mesh-with` and `--mesh-pin`. `own_name` and `own_port`
/// are this server's hostname and listen port: an entry naming them is skipped. Listing a
/// relay twice keeps one. Peers need the mesh key (`has_mesh_key`).
pub fn parse_mesh_peers(
    mesh_with: &[String],
    mesh_pin: &[String],
    own_name: &str,
    own_port: u16,
    has_mesh_key: bool,
) -> Result<Vec<MeshPeer>, ConfigError> {
    let mut pins = Vec::new();
    for item in items(mesh_pin) {
        pins.push(parse_pin(item)?);
    }
    let mut peers: Vec<MeshPeer> = Vec::new();
    for item in items(mesh_with) {
        let (mut peer, port_omitted) = parse_entry(item)?;
        if peer.name.eq_ignore_ascii_case(own_name) && (port_omitted || peer.port == own_port) {
            continue;
        }
        if peers
            .iter()
            .any(|known| known.name.eq_ignore_ascii_case(&peer.name) && known.port == peer.port)
        {
            continue;
        }
        peer.pin = pins
            .iter()
            .find(|(host, _)| host.eq_ignore_ascii_case(&peer.name))
            .map(|(_, pin)| pin.clone());
        peers.push(peer);
    }
    if peers.len() > MAX_MESH_PEERS {
        return Err(ConfigError::TooMany {
            flag: "--mesh-with",
            given: peers.len(),
            max: MAX_MESH_PEERS,
        });
    }
    if let Some((host, _)) = pins.iter().find(|(host, _)| {
        !host.eq_ignore_ascii_case(own_name)
            && !peers
                .iter()
                .any(|peer| peer.name.eq_ignore_ascii_case(host))
    }) {
        return Err(not_a("--mesh-pin", host, Want::MeshPinPeer));
    }
    if !peers.is_empty() && !has_mesh_key {
        return Err(ConfigError::Combination {
            flag: "--mesh-with",
            rule: Rule::MeshNeedsKey,
        });
    }
    if !peers.is_empty() && !cfg!(feature = "tls-client") {
        return Err(ConfigError::Unsupported {
            flag: "--mesh-with",
            what: Unsupported::MeshDialer,
        });
    }
    Ok(peers)
}

/// The pin given for this server's own name, if the shared `--mesh-pin` list has one
/// (used to print the whole region).
pub fn own_pin(mesh_pin: &[String], own_name: &str) -> Option<String> {
    items(mesh_pin)
        .filter_map(|item| parse_pin(item).ok())
        .find(|(host, _)| host.eq_ignore_ascii_case(own_name))
        .map(|(_, pin)| pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "sha256-raw:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn peers(with: &[&str], pins: &[&str]) -> Result<Vec<MeshPeer>, ConfigError> {
        parse_mesh_peers(&strings(with), &strings(pins), "a.example", 8443, true)
    }

    #[cfg(feature = "tls-client")]
    #[test]
    fn upstream_syntax() {
        let got = peers(
            &[
                "a.example,b.example, c.example:8443/10.0.0.3",
                "[::1]:9/d.example",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                MeshPeer {
                    name: "b.example".into(),
                    port: 443,
                    dial_host: "b.example".into(),
                    pin: None
                },
                MeshPeer {
                    name: "c.example".into(),
                    port: 8443,
                    dial_host: "10.0.0.3".into(),
                    pin: None
                },
                MeshPeer {
                    name: "::1".into(),
                    port: 9,
                    dial_host: "d.example".into(),
                    pin: None
                },
            ]
        );
        assert_eq!(got[2].label(), "[::1]:9");
        assert_eq!(got[1].label(), "c.example:8443");
    }

    #[cfg(feature = "tls-client")]
    #[test]
    fn own_name_skipped_only_on_own_port() {
        let got = peers(&["A.example:8443,a.example:9443,a.example"], &[]).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].port, 9443);
        // Duplicates collapse.
        assert_eq!(peers(&["b.example,b.example:443"], &[]).unwrap().len(), 1);
        assert!(peers(&[], &[]).unwrap().is_empty());
    }

    #[cfg(feature = "tls-client")]
    #[test]
    fn pins_attach_by_name() {
        let got = peers(
            &["b.example:8443,c.example"],
            &[&format!(
                "b.example={}",
                PIN.to_uppercase().replace("SHA256-RAW", "sha256-raw")
            )],
        )
        .unwrap();
        assert_eq!(got[0].pin.as_deref(), Some(PIN));
        assert_eq!(got[1].pin, None);
        // The own name's pin is allowed (one list for every node) and found.
        assert!(peers(&["b.example"], &[&format!("a.example={PIN}")]).is_ok());
        assert_eq!(
            own_pin(
                &strings(&[&format!("a.example={PIN},b.example={PIN}")]),
                "a.example"
            ),
            Some(PIN.to_string())
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "b.example:0",
            "b.example:x",
            "b.example:70000",
            "a/b/c",
            "b example",
            "[::1",
            ":443",
            "b.example/",
        ] {
            let err = peers(&[bad], &[]).unwrap_err();
            assert_eq!(err.flag(), "--mesh-with", "{bad}");
        }
        for bad in [
            "b.example",
            "b.example=sha256:00",
            "b.example=sha256-raw:0011",
            "=x",
        ] {
            let err = peers(&["b.example"], &[bad]).unwrap_err();
            assert_eq!(err.flag(), "--mesh-pin", "{bad}");
        }
        let err = peers(&["b.example"], &[&format!("z.example={PIN}")]).unwrap_err();
        assert!(err.to_string().contains("z.example"), "{err}");
        let err = parse_mesh_peers(&strings(&["b.example"]), &[], "a", 1, false).unwrap_err();
        assert!(err.to_string().contains("--mesh-psk-file"), "{err}");
        let many: Vec<String> = (0..=MAX_MESH_PEERS)
            .map(|n| format!("n{n}.example"))
            .collect();
        let err = parse_mesh_peers(&many, &[], "a", 1, true).unwrap_err();
        assert_eq!(err.label(), "too_many");
    }

    /// A router build without the TLS client refuses to dial, after checking the syntax.
    #[cfg(not(feature = "tls-client"))]
    #[test]
    fn no_dialer_without_tls_client() {
        let err = peers(&["b.example"], &[]).unwrap_err();
        assert_eq!(err.label(), "unsupported");
        assert!(err.to_string().contains("tls-client"), "{err}");
        assert!(peers(&["a.example"], &[]).is_ok_and(|p| p.is_empty()));
    }
}
