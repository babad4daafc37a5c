//! Ready-to-paste DERP map snippets for this relay.
//!
//! A DERP relay is useless until the tailnet's control server lists it in its DERP map.
//! The owner pastes one of these snippets: into the Tailscale policy file (`"derpMap"`),
//! into a headscale YAML file listed under `derp.paths`, or serves the JSON document to
//! headscale through `derp.urls`. Field names and meanings follow upstream
//! `tailcfg.DERPMap` / `DERPRegion` / `DERPNode` (docs/protocol.md §7).
//!
//! JSON is written with proto/json.rs from values built in upstream's field order.
//! YAML is written by hand (there is no YAML dependency) with every string value
//! double-quoted using JSON string escaping, which YAML's double-quoted style accepts.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::proto::json::{self, Object, Value};

/// STUNPort value that tells clients this node runs no STUN server.
pub const STUN_PORT_OFF: i32 = -1;

/// Everything a DERP map entry for this single-node region needs.
///
/// Built by [`crate::config::Config`] from the command line; see there for defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpMapParams {
    /// `RegionID`: 900-999 are set aside for user-run relays.
    pub region_id: u16,
    /// `RegionCode`: short code shown in client UIs (`tailscale netcheck`).
    pub region_code: String,
    /// `RegionName`: long human name of the region.
    pub region_name: String,
    /// `Name` of the node: unique across the whole DERP map, e.g. `900a`.
    pub node_name: String,
    /// `HostName`: DNS name or IP literal clients dial and use for TLS.
    pub hostname: String,
    /// `DERPPort`: the TCP port clients dial (after any port forward).
    pub derp_port: u16,
    /// `STUNPort`: the UDP port clients send STUN to; `None` = no STUN (written as -1).
    pub stun_port: Option<u16>,
    /// `IPv4`: force this address instead of resolving `HostName` (omit for DDNS names).
    pub ipv4: Option<Ipv4Addr>,
    /// `IPv6`: force this address instead of resolving `HostName` (omit for DDNS names).
    pub ipv6: Option<Ipv6Addr>,
}

impl DerpMapParams {
    /// The `STUNPort` number as written in a DERP map.
    fn stun_port_value(&self) -> i32 {
        self.stun_port.map_or(STUN_PORT_OFF, i32::from)
    }
}

/// One `tailcfg.DERPNode`, written in upstream's field order (`None` fields left out).
struct NodeJson<'a> {
    name: &'a str,
    region_id: u16,
    host_name: &'a str,
    cert_name: Option<&'a str>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    stun_port: i32,
    derp_port: u16,
    insecure_for_tests: Option<bool>,
}

impl NodeJson<'_> {
    fn to_json(&self) -> Value {
        let mut members = vec![
            (String::from("Name"), Value::from(self.name)),
            (
                String::from("RegionID"),
                Value::from(u64::from(self.region_id)),
            ),
            (String::from("HostName"), Value::from(self.host_name)),
        ];
        let optional = [
            ("CertName", self.cert_name.map(Value::from)),
            ("IPv4", self.ipv4.clone().map(Value::from)),
            ("IPv6", self.ipv6.clone().map(Value::from)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                members.push((String::from(name), value));
            }
        }
        members.push((
            String::from("STUNPort"),
            Value::from(i64::from(self.stun_port)),
        ));
        members.push((
            String::from("DERPPort"),
            Value::from(u64::from(self.derp_port)),
        ));
        if let Some(insecure) = self.insecure_for_tests {
            members.push((String::from("InsecureForTests"), Value::from(insecure)));
        }
        Value::Object(Object(members))
    }
}

/// A `tailcfg.DERPMap` holding one region (keyed by the decimal region id), with `nodes`,
/// in upstream's field order.
fn map_json(params: &DerpMapParams, nodes: &[NodeJson<'_>]) -> Value {
    let region = Value::object([
        ("RegionID", Value::from(u64::from(params.region_id))),
        ("RegionCode", Value::from(params.region_code.as_str())),
        ("RegionName", Value::from(params.region_name.as_str())),
        (
            "Nodes",
            Value::Array(nodes.iter().map(NodeJson::to_json).collect()),
        ),
    ]);
    let regions = Object(vec![(params.region_id.to_string(), region)]);
    Value::object([("Regions", Value::Object(regions))])
}

/// How clients are told to trust the self-signed certificate.
#[derive(Clone, Copy)]
enum Trust<'a> {
    /// `CertName: sha256-raw:<hex>`: pin the leaf (clients v1.84+).
    Pin(&'a str),
    /// `InsecureForTests: true`: no verification (clients older than v1.82).
    Insecure,
}

impl<'a> Trust<'a> {
    fn from_pin(pin: Option<&'a str>) -> Trust<'a> {
        pin.map_or(Trust::Insecure, Trust::Pin)
    }
}

fn build_map(params: &DerpMapParams, trust: Trust<'_>) -> Value {
    let (cert_name, insecure_for_tests) = match trust {
        Trust::Pin(pin) => (Some(pin), None),
        Trust::Insecure => (None, Some(true)),
    };
    let node = NodeJson {
        name: &params.node_name,
        region_id: params.region_id,
        host_name: &params.hostname,
        cert_name,
        ipv4: params.ipv4.map(|ip| ip.to_string()),
        ipv6: params.ipv6.map(|ip| ip.to_string()),
        stun_port: params.stun_port_value(),
        derp_port: params.derp_port,
        insecure_for_tests,
    };
    map_json(params, &[node])
}

/// Pretty JSON (two-space indent), as the policy file and headscale docs show it.
fn to_pretty_json(value: &Value) -> String {
    json::to_string_pretty(value)
}

/// The `"derpMap": {...}` member to paste inside the top-level object of the Tailscale
/// policy file (admin console, Access controls).
///
/// With `pin` (`sha256-raw:<hex>`) the node carries `CertName`, which clients v1.84 and
/// newer verify; without it the node carries `InsecureForTests: true` for older clients.
/// Tailscale's own regions stay in the map (no `OmitDefaultRegions`).
pub fn tailscale_policy(params: &DerpMapParams, pin: Option<&str>) -> String {
    let map = build_map(params, Trust::from_pin(pin));
    format!("\"derpMap\": {}", to_pretty_json(&map))
}

/// A complete DERP map JSON document (`{"Regions":{"900":{...}}}`) for headscale's
/// `derp.urls` (serve it over HTTP) or any tool that reads a `tailcfg.DERPMap`.
pub fn headscale_json(params: &DerpMapParams, pin: Option<&str>) -> String {
    to_pretty_json(&build_map(params, Trust::from_pin(pin)))
}

/// A YAML string scalar: double-quoted with JSON escaping, which YAML also understands.
fn yaml_string(text: &str) -> String {
    json::quote(text)
}

/// A complete YAML file for headscale's `derp.paths`.
///
/// headscale decodes it straight into `tailcfg.DERPMap`, so keys are the Go field names
/// lower-cased (`regions`, `regionid`, `nodes`, `hostname`, `certname`, ...).
pub fn headscale_yaml(params: &DerpMapParams, pin: Option<&str>) -> String {
    let mut out = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        out,
        "# tinyderp DERP map for headscale: save as a file and list it under derp.paths"
    );
    let _ = writeln!(out, "regions:");
    let _ = writeln!(out, "  {}:", params.region_id);
    let _ = writeln!(out, "    regionid: {}", params.region_id);
    let _ = writeln!(out, "    regioncode: {}", yaml_string(&params.region_code));
    let _ = writeln!(out, "    regionname: {}", yaml_string(&params.region_name));
    let _ = writeln!(out, "    nodes:");
    let _ = writeln!(out, "      - name: {}", yaml_string(&params.node_name));
    let _ = writeln!(out, "        regionid: {}", params.region_id);
    let _ = writeln!(out, "        hostname: {}", yaml_string(&params.hostname));
    match Trust::from_pin(pin) {
        Trust::Pin(pin) => {
            let _ = writeln!(out, "        certname: {}", yaml_string(pin));
        }
        Trust::Insecure => {}
    }
    if let Some(ip) = params.ipv4 {
        let _ = writeln!(out, "        ipv4: {}", yaml_string(&ip.to_string()));
    }
    if let Some(ip) = params.ipv6 {
        let _ = writeln!(out, "        ipv6: {}", yaml_string(&ip.to_string()));
    }
    let _ = writeln!(out, "        stunport: {}", params.stun_port_value());
    let _ = writeln!(out, "        derpport: {}", params.derp_port);
    if let Trust::Insecure = Trust::from_pin(pin) {
        let _ = writeln!(out, "        insecurefortests: true");
    }
    out
}

/// The text printed by `tinyderp derpmap` and logged at start-up: every variant with a
/// heading saying which clients it is for and where to paste it.
///
/// `pin` is the certificate's `sha256-raw:<hex>` CertName.
pub fn render_all(params: &DerpMapParams, pin: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DERP map for region {} ({}), node {} at {} (DERP port {}, STUN {}).",
        params.region_id,
        params.region_code,
        params.node_name,
        params.hostname,
        params.derp_port,
        params
            .stun_port
            .map_or_else(|| String::from("off"), |port| format!("port {port}")),
    );
    let _ = writeln!(out, "Certificate pin: {pin}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "== 1. Tailscale policy file, clients v1.84 or newer (pinned certificate) =="
    );
    let _ = writeln!(
        out,
        "Paste inside the top-level {{ }} of the policy file (admin console > Access controls)."
    );
    let _ = writeln!(
        out,
        "Clients v1.82.x fail with a pin unless tinyderp runs with --no-meta-cert."
    );
    let _ = writeln!(
        out,
        "Add \"OmitDefaultRegions\": true next to \"Regions\" to use only this relay."
    );
    let _ = writeln!(out, "{}", tailscale_policy(params, Some(pin)));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "== 2. Tailscale policy file, clients older than v1.82 (no certificate check) =="
    );
    let _ = writeln!(
        out,
        "Same place as 1; InsecureForTests turns off TLS verification for this node only."
    );
    let _ = writeln!(out, "{}", tailscale_policy(params, None));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "== 3. headscale, YAML file for derp.paths (pinned certificate) =="
    );
    let _ = writeln!(
        out,
        "Save as e.g. /etc/headscale/derp.yaml and list it under derp.paths in config.yaml;"
    );
    let _ = writeln!(
        out,
        "for clients older than v1.82 replace the certname line with: insecurefortests: true"
    );
    out.push_str(&headscale_yaml(params, Some(pin)));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "== 4. headscale, JSON document for derp.urls (pinned certificate) =="
    );
    let _ = writeln!(
        out,
        "Serve this file over HTTP(S) and list its URL under derp.urls in config.yaml."
    );
    let _ = writeln!(out, "{}", headscale_json(params, Some(pin)));
    out
}

/// Another relay of the region, for [`render_region`]: its `--mesh-with` name and port
/// and, if given, its `--mesh-pin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPeer {
    /// `HostName` of the node.
    pub hostname: String,
    /// `DERPPort` of the node.
    pub derp_port: u16,
    /// `CertName`; `None` for a node with a CA-signed certificate.
    pub pin: Option<String>,
}

/// The whole region for the Tailscale policy file: this node and every mesh peer, nodes
/// ordered by host name and named `<region id>a`, `<region id>b`, ... in that order, so
/// every node of a region given the same lists prints the same snippet. This node keeps
/// its IPv4/IPv6; peers are assumed to run STUN on this node's STUN port. `None` without
/// peers.
pub fn render_region(
    params: &DerpMapParams,
    own_pin: &str,
    peers: &[RegionPeer],
) -> Option<String> {
    if peers.is_empty() {
        return None;
    }
    let mut nodes: Vec<(&str, u16, Option<&str>, bool)> = peers
        .iter()
        .map(|peer| {
            (
                peer.hostname.as_str(),
                peer.derp_port,
                peer.pin.as_deref(),
                false,
            )
        })
        .collect();
    nodes.push((&params.hostname, params.derp_port, Some(own_pin), true));
    nodes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let names: Vec<String> = (0..nodes.len())
        .map(|index| node_letter_name(params.region_id, index))
        .collect();
    let json_nodes: Vec<NodeJson<'_>> = nodes
        .iter()
        .zip(names.iter())
        .map(|(&(host, port, pin, own), name)| NodeJson {
            name,
            region_id: params.region_id,
            host_name: host,
            cert_name: pin,
            ipv4: if own {
                params.ipv4.map(|ip| ip.to_string())
            } else {
                None
            },
            ipv6: if own {
                params.ipv6.map(|ip| ip.to_string())
            } else {
                None
            },
            stun_port: params.stun_port_value(),
            derp_port: port,
            insecure_for_tests: None,
        })
        .collect();
    let map = map_json(params, &json_nodes);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== Whole region: this node and its {} mesh peers (Tailscale policy file, clients v1.84 or newer) ==",
        peers.len()
    );
    let _ = writeln!(
        out,
        "Nodes without a --mesh-pin carry no CertName: their certificate must be CA-signed."
    );
    let _ = write!(out, "\"derpMap\": {}", to_pretty_json(&map));
    Some(out)
}

/// `<region id>` followed by `a`..`z`, then `aa`, `ab`, ... for the node at `index`.
fn node_letter_name(region_id: u16, index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index;
    loop {
        letters.push(char::from(
            b'a'.saturating_add(u8::try_from(n % 26).unwrap_or(0)),
        ));
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    letters.reverse();
    format!("{region_id}{}", letters.into_iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "sha256-raw:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn home() -> DerpMapParams {
        DerpMapParams {
            region_id: 900,
            region_code: String::from("home"),
            region_name: String::from("Home router"),
            node_name: String::from("900a"),
            hostname: String::from("myhome.example.net"),
            derp_port: 8443,
            stun_port: Some(3478),
            ipv4: None,
            ipv6: None,
        }
    }

    #[test]
    fn policy_with_pin_is_golden() {
        let expected = r#""derpMap": {
  "Regions": {
    "900": {
      "RegionID": 900,
      "RegionCode": "home",
      "RegionName": "Home router",
      "Nodes": [
        {
          "Name": "900a",
          "RegionID": 900,
          "HostName": "myhome.example.net",
          "CertName": "sha256-raw:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
          "STUNPort": 3478,
          "DERPPort": 8443
        }
      ]
    }
  }
}"#;
        assert_eq!(tailscale_policy(&home(), Some(PIN)), expected);
    }

    #[test]
    fn policy_without_pin_uses_insecure_and_stun_off_is_minus_one() {
        let mut params = home();
        params.stun_port = None;
        params.ipv4 = Some(Ipv4Addr::new(203, 0, 113, 10));
        params.ipv6 = Some("2001:db8::1".parse().unwrap());
        let expected = r#""derpMap": {
  "Regions": {
    "900": {
      "RegionID": 900,
      "RegionCode": "home",
      "RegionName": "Home router",
      "Nodes": [
        {
          "Name": "900a",
          "RegionID": 900,
          "HostName": "myhome.example.net",
          "IPv4": "203.0.113.10",
          "IPv6": "2001:db8::1",
          "STUNPort": -1,
          "DERPPort": 8443,
          "InsecureForTests": true
        }
      ]
    }
  }
}"#;
        assert_eq!(tailscale_policy(&params, None), expected);
    }

    #[test]
    fn policy_snippet_parses_back_as_json_member() {
        let text = format!("{{{}}}", tailscale_policy(&home(), Some(PIN)));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let node = &value["derpMap"]["Regions"]["900"]["Nodes"][0];
        assert_eq!(node["CertName"], PIN);
        assert_eq!(node["HostName"], "myhome.example.net");
        assert_eq!(node["DERPPort"], 8443);
        assert!(node.get("IPv4").is_none());
        assert!(node.get("InsecureForTests").is_none());
    }

    #[test]
    fn headscale_json_is_a_derp_map_document() {
        let text = headscale_json(&home(), Some(PIN));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let region = &value["Regions"]["900"];
        assert_eq!(region["RegionID"], 900);
        assert_eq!(region["RegionCode"], "home");
        assert_eq!(region["Nodes"][0]["Name"], "900a");
        assert_eq!(region["Nodes"][0]["STUNPort"], 3478);
        assert_eq!(value.as_object().unwrap().len(), 1);
        // The policy form is exactly this document behind the `"derpMap": ` key.
        assert_eq!(
            tailscale_policy(&home(), Some(PIN)),
            format!("\"derpMap\": {text}")
        );
    }

    #[test]
    fn headscale_yaml_with_pin_is_golden() {
        let expected = "\
# tinyderp DERP map for headscale: save as a file and list it under derp.paths
regions:
  900:
    regionid: 900
    regioncode: \"home\"
    regionname: \"Home router\"
    nodes:
      - name: \"900a\"
        regionid: 900
        hostname: \"myhome.example.net\"
        certname: \"sha256-raw:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"
        stunport: 3478
        derpport: 8443
";
        assert_eq!(headscale_yaml(&home(), Some(PIN)), expected);
    }

    #[test]
    fn headscale_yaml_without_pin_and_with_ips() {
        let mut params = home();
        params.region_name = String::from("Grandma's \"attic\"");
        params.ipv4 = Some(Ipv4Addr::new(203, 0, 113, 10));
        params.ipv6 = Some("2001:db8::1".parse().unwrap());
        params.stun_port = None;
        let expected = "\
# tinyderp DERP map for headscale: save as a file and list it under derp.paths
regions:
  900:
    regionid: 900
    regioncode: \"home\"
    regionname: \"Grandma's \\\"attic\\\"\"
    nodes:
      - name: \"900a\"
        regionid: 900
        hostname: \"myhome.example.net\"
        ipv4: \"203.0.113.10\"
        ipv6: \"2001:db8::1\"
        stunport: -1
        derpport: 8443
        insecurefortests: true
";
        assert_eq!(headscale_yaml(&params, None), expected);
    }

    /// Structural check of the YAML: every line is `indent key: value` or a list item,
    /// indents step by two, and each key is a lower-cased `tailcfg` field name.
    #[test]
    fn headscale_yaml_keys_are_lowercased_go_field_names() {
        const KNOWN: &[&str] = &[
            "regions",
            "regionid",
            "regioncode",
            "regionname",
            "nodes",
            "name",
            "hostname",
            "certname",
            "insecurefortests",
            "ipv4",
            "ipv6",
            "stunport",
            "derpport",
        ];
        let mut params = home();
        params.ipv4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        for pin in [Some(PIN), None] {
            let text = headscale_yaml(&params, pin);
            for line in text.lines().filter(|line| !line.starts_with('#')) {
                let body = line.trim_start().trim_start_matches("- ");
                let indent = line.len() - line.trim_start().len();
                assert_eq!(indent % 2, 0, "odd indent: {line}");
                let (key, _) = body.split_once(':').unwrap();
                assert!(
                    KNOWN.contains(&key) || key == "900",
                    "unexpected key {key:?} in {line:?}"
                );
            }
        }
    }

    #[test]
    fn render_all_holds_four_variants_in_order() {
        let text = render_all(&home(), PIN);
        let headings: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("== "))
            .collect();
        assert_eq!(headings.len(), 4);
        assert!(headings[0].contains("v1.84"));
        assert!(headings[1].contains("older than v1.82"));
        assert!(headings[2].contains("derp.paths"));
        assert!(headings[3].contains("derp.urls"));
        assert!(text.contains("--no-meta-cert"));
        assert!(text.contains(&tailscale_policy(&home(), Some(PIN))));
        assert!(text.contains(&tailscale_policy(&home(), None)));
        assert!(text.contains(&headscale_yaml(&home(), Some(PIN))));
        assert!(text.contains(&headscale_json(&home(), Some(PIN))));
    }

    #[test]
    fn whole_region_lists_every_node_with_its_pin() {
        let params = home();
        let peers = [
            RegionPeer {
                hostname: "b.example".into(),
                derp_port: 8443,
                pin: Some(format!("sha256-raw:{}", "11".repeat(32))),
            },
            RegionPeer {
                hostname: "a.example".into(),
                derp_port: 443,
                pin: None,
            },
        ];
        assert_eq!(render_region(&params, PIN, &[]), None);
        let text = render_region(&params, PIN, &peers).unwrap();
        let json: serde_json::Value = serde_json::from_str(&format!(
            "{{{}}}",
            text.split_once('\n').unwrap().1.split_once('\n').unwrap().1
        ))
        .unwrap();
        let nodes = json["derpMap"]["Regions"][params.region_id.to_string()]["Nodes"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(nodes.len(), 3);
        let hosts: Vec<&str> = nodes
            .iter()
            .map(|n| n["HostName"].as_str().unwrap())
            .collect();
        let mut sorted = hosts.clone();
        sorted.sort();
        assert_eq!(hosts, sorted);
        let names: Vec<String> = nodes
            .iter()
            .map(|n| n["Name"].as_str().unwrap().to_string())
            .collect();
        let id = params.region_id;
        assert_eq!(
            names,
            vec![format!("{id}a"), format!("{id}b"), format!("{id}c")]
        );
        let own = nodes
            .iter()
            .find(|n| n["HostName"] == params.hostname.as_str())
            .unwrap();
        assert_eq!(own["CertName"], PIN);
        let b = nodes.iter().find(|n| n["HostName"] == "b.example").unwrap();
        assert_eq!(b["DERPPort"], 8443);
        assert!(b["CertName"].as_str().unwrap().ends_with("1111"));
        let a = nodes.iter().find(|n| n["HostName"] == "a.example").unwrap();
        assert!(a.get("CertName").is_none());
        assert!(a.get("InsecureForTests").is_none());
        assert_eq!(node_letter_name(900, 25), "900z");
        assert_eq!(node_letter_name(900, 26), "900aa");
    }
}
