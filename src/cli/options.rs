//! Every option in one table, next to the flag definitions in [`super::Flags`]: its UCI
//! kind, the `validate_data` datatype the init script gives `uci_load_validate`, its
//! default, an example the binary accepts and one it refuses, and a one-line summary.
//!
//! Tests check that the table and `--help` name the same flags, that every valid example
//! is accepted and every invalid one refused, and that the generated files
//! (`init.d/tinyderp`'s validation list, `init.d/tinyderp.config`,
//! `docs/configuration.md`, `tests/openwrt/options.json`) match it; `TINYDERP_BLESS=1
//! cargo test --lib generated_files` rewrites them. Nothing in the binary reads this table.

#[cfg(test)]
mod generate;

/// How an option appears in `/etc/config/tinyderp` and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `option x 'v'`, passed as `--x v` when set.
    Value,
    /// `list x 'v'` (repeatable), passed as one `--x v` per item.
    List,
    /// `option x '1'`, passed as a bare `--x` when true.
    Switch,
    /// A command-line flag with no UCI option (help, version, the loopback demo).
    CommandLineOnly,
}

impl Kind {
    /// The name used in `tests/openwrt/options.json`.
    pub fn json_name(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::List => "list",
            Kind::Switch => "switch",
            Kind::CommandLineOnly => "none",
        }
    }
}

/// An option's default as the documentation states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A literal value, in UCI spelling.
    Literal(&'static str),
    /// Derived from other options; the text says how.
    Derived(&'static str),
    /// Unset: the feature is off or the value absent.
    Unset(&'static str),
}

/// One command-line flag and its UCI option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The long flag, e.g. `--stun-port`; the UCI name is the same with `_` for `-`.
    pub flag: &'static str,
    /// How it appears in UCI and on the command line.
    pub kind: Kind,
    /// The `validate_data` datatype of the value (of each item, for lists). Only what
    /// procd's validation and the init script need; the binary checks the rest.
    pub datatype: &'static str,
    /// A default the init script gets from `validate_data`, because the script reads
    /// the value itself (ports for the firewall, the state dir it creates).
    pub script_default: Option<&'static str>,
    /// The binary's default.
    pub default: DefaultValue,
    /// A value the binary accepts (together with `with`); `None` if no value is.
    pub valid: Option<&'static str>,
    /// A value the binary refuses on its own; `None` if every value is accepted.
    pub invalid: Option<&'static str>,
    /// Other options that must be set for `valid` to be accepted, as (UCI name, value).
    pub with: &'static [(&'static str, &'static str)],
    /// A build feature `valid` needs, if any.
    pub feature: Option<&'static str>,
    /// One line saying what it does.
    pub summary: &'static str,
}

impl OptionSpec {
    /// The UCI option name: the flag without dashes, `_` for `-`.
    pub fn uci_name(&self) -> String {
        self.flag.trim_start_matches('-').replace('-', "_")
    }
}

/// An option only the init script reads (not a flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptOption {
    /// UCI option name.
    pub name: &'static str,
    /// `validate_data` datatype.
    pub datatype: &'static str,
    /// The default the script uses.
    pub default: &'static str,
    /// What it does.
    pub summary: &'static str,
}

/// Options of `config tinyderp` that the init script reads itself.
pub const SCRIPT_OPTIONS: &[ScriptOption] = &[
    ScriptOption {
        name: "enabled",
        datatype: "bool",
        default: "0",
        summary: "Start the relay (1) or not (0). Off until you have set hostname.",
    },
    ScriptOption {
        name: "open_firewall",
        datatype: "bool",
        default: "1",
        summary: "Open the DERP TCP port, the STUN UDP port (and http_port if on) from WAN through fw4.",
    },
    ScriptOption {
        name: "user",
        datatype: "string",
        default: "tinyderp",
        summary: "Run as this user; ports below 1024 then get only CAP_NET_BIND_SERVICE (needs procd-ujail). 'root' runs unconfined.",
    },
    ScriptOption {
        name: "meta_cert",
        datatype: "bool",
        default: "1",
        summary: "Older spelling of no_meta_cert: '0' here is no_meta_cert '1'.",
    },
];

const fn opt(flag: &'static str, kind: Kind, datatype: &'static str) -> OptionSpec {
    OptionSpec {
        flag,
        kind,
        datatype,
        script_default: None,
        default: DefaultValue::Unset("none"),
        valid: None,
        invalid: None,
        with: &[],
        feature: None,
        summary: "",
    }
}

/// A node key for examples.
const EXAMPLE_KEY: &str =
    "nodekey:2f6c1a1e3b9d4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6";

/// Every flag of [`super::Flags`], in `--help` order.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        default: DefaultValue::Literal(":8443"),
        valid: Some(":9443"),
        invalid: Some("8443"),
        summary: "DERP TLS listen address: ':PORT' (all interfaces), 'IP:PORT' or '[IPv6]:PORT'.",
        ..opt("--addr", Kind::Value, "string")
    },
    OptionSpec {
        script_default: Some("3478"),
        default: DefaultValue::Literal("3478"),
        valid: Some("3479"),
        invalid: Some("70000"),
        summary: "UDP STUN port on the same IP as addr; -1 turns STUN off.",
        ..opt("--stun-port", Kind::Value, "range(-1,65535)")
    },
    OptionSpec {
        script_default: Some("-1"),
        default: DefaultValue::Literal("-1"),
        valid: Some("8080"),
        invalid: Some("65536"),
        summary: "Plain-HTTP port (captive-portal check, redirect to https); -1 turns it off.",
        ..opt("--http-port", Kind::Value, "range(-1,65535)")
    },
    OptionSpec {
        default: DefaultValue::Derived(
            "the first enabled ddns-scripts service's lookup_host, else localhost",
        ),
        valid: Some("myhome.example.net"),
        invalid: Some("my home"),
        summary: "DNS name (your DDNS name) or IP that clients dial; first name in the self-signed certificate.",
        ..opt("--hostname", Kind::Value, "host")
    },
    OptionSpec {
        valid: Some("router.lan"),
        invalid: Some("not ok"),
        summary: "Another DNS name for the self-signed certificate (repeatable).",
        ..opt("--extra-name", Kind::List, "hostname")
    },
    OptionSpec {
        valid: Some("192.0.2.1"),
        invalid: Some("192.0.2.300"),
        summary: "An IP address for the self-signed certificate (repeatable).",
        ..opt("--extra-ip", Kind::List, "ipaddr")
    },
    OptionSpec {
        script_default: Some("/etc/tinyderp"),
        default: DefaultValue::Literal("/etc/tinyderp"),
        valid: Some("/etc/tinyderp"),
        summary: "Directory of the server key and the generated certificate (kept by sysupgrade; created 0700 and given to user).",
        ..opt("--state-dir", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Derived("derper.key in state_dir"),
        valid: Some("/etc/tinyderp/derper.key"),
        summary: "The server's private key file (derper's JSON format), created on first start.",
        ..opt("--server-key", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("self-signed"),
        valid: Some("self-signed"),
        invalid: Some("letsencrypt"),
        summary: "'self-signed' (generated once, pinned by clients) or 'manual' (your own files).",
        ..opt("--certmode", Kind::Value, "or(\"self-signed\",\"manual\")")
    },
    OptionSpec {
        default: DefaultValue::Derived("state_dir"),
        valid: Some("/etc/tinyderp"),
        summary: "Where the self-signed files are generated, or manual HOSTNAME.crt and HOSTNAME.key are read.",
        ..opt("--certdir", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Derived("HOSTNAME.crt in certdir"),
        valid: Some("/etc/ssl/derp.crt"),
        with: &[("certmode", "manual"), ("tls_key", "/etc/ssl/derp.key")],
        summary: "certmode manual: certificate chain file (PEM); needs tls_key.",
        ..opt("--tls-cert", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Derived("HOSTNAME.key in certdir"),
        valid: Some("/etc/ssl/derp.key"),
        with: &[("certmode", "manual"), ("tls_cert", "/etc/ssl/derp.crt")],
        summary: "certmode manual: private key file (PEM); needs tls_cert.",
        ..opt("--tls-key", Kind::Value, "string")
    },
    OptionSpec {
        script_default: Some("0"),
        default: DefaultValue::Literal("0"),
        valid: Some("1"),
        summary: "'1' leaves the meta certificate out of the TLS chain (for Tailscale v1.82.x clients with a pinned certificate).",
        ..opt("--no-meta-cert", Kind::Switch, "bool")
    },
    OptionSpec {
        default: DefaultValue::Literal("900"),
        valid: Some("901"),
        invalid: Some("1000"),
        summary: "Region id in the DERP map, 1-999; 900-999 are set aside for user-run relays.",
        ..opt("--region-id", Kind::Value, "range(1,999)")
    },
    OptionSpec {
        default: DefaultValue::Literal("home"),
        valid: Some("flat"),
        invalid: Some("my home"),
        summary: "Short region code shown by clients (tailscale netcheck); no spaces.",
        ..opt("--region-code", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("Home router"),
        valid: Some("Bob's flat"),
        invalid: Some("A region name that is far too long to be shown by any client at all"),
        summary: "Long region name shown by clients (at most 64 characters).",
        ..opt("--region-name", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Derived("region_id followed by 'a' (900a)"),
        valid: Some("901b"),
        invalid: Some("node a"),
        summary: "Node name in the DERP map, unique across all regions; no spaces.",
        ..opt("--node-name", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Derived("the port of addr"),
        valid: Some("443"),
        invalid: Some("0"),
        summary: "TCP port clients dial, when a port forward maps another outside port to addr.",
        ..opt("--public-derp-port", Kind::Value, "range(1,65535)")
    },
    OptionSpec {
        default: DefaultValue::Derived("stun_port"),
        valid: Some("3478"),
        invalid: Some("0"),
        summary: "UDP port clients send STUN to, when a port forward changes it; -1 tells clients there is no STUN.",
        ..opt("--public-stun-port", Kind::Value, "range(-1,65535)")
    },
    OptionSpec {
        valid: Some("198.51.100.7"),
        invalid: Some("2001:db8::1"),
        summary: "Public IPv4 address written into the DERP map (leave unset with a DDNS name).",
        ..opt("--public-ipv4", Kind::Value, "ip4addr")
    },
    OptionSpec {
        valid: Some("2001:db8::7"),
        invalid: Some("198.51.100.1"),
        summary: "Public IPv6 address written into the DERP map (leave unset with a DDNS name).",
        ..opt("--public-ipv6", Kind::Value, "ip6addr")
    },
    OptionSpec {
        default: DefaultValue::Unset("the interface holding the default route"),
        valid: Some("eth1"),
        invalid: Some("eth 1"),
        summary: "Interface of the internet line that tinyderp check and the running relay's reachability watch compare DNS records with.",
        ..opt("--wan-interface", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Unset("loopback only"),
        valid: Some("192.168.1.0/24"),
        invalid: Some("10.0.0.0/33"),
        summary: "An address or range allowed to read /debug/varz and the status detail (repeatable); loopback always may.",
        ..opt("--metrics-allow", Kind::List, "cidr")
    },
    OptionSpec {
        default: DefaultValue::Literal("2s"),
        valid: Some("1m30s"),
        invalid: Some("2x"),
        summary: "How long one write to a client may take before it is dropped (Go duration like 2s, 10m, 1m30s, or seconds; 0 = no limit).",
        ..opt("--tcp-write-timeout", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("10m"),
        valid: Some("5m"),
        invalid: Some("500ms"),
        summary: "TCP keep-alive period (at least 1s; 0 = off).",
        ..opt("--tcp-keepalive", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("15s"),
        valid: Some("30s"),
        invalid: Some("10h"),
        summary: "Linux TCP_USER_TIMEOUT: drop a connection whose sent data stays unacknowledged this long (at most 9h; 0 = kernel default).",
        ..opt("--tcp-user-timeout", Kind::Value, "string")
    },
    OptionSpec {
        valid: Some("/etc/tinyderp/mesh.key"),
        summary: "File holding the 64-hex-digit mesh key shared by the relays of one region.",
        ..opt("--mesh-psk-file", Kind::Value, "string")
    },
    OptionSpec {
        valid: Some("derp2.example.net:8443,derp3.example.net/10.0.0.3"),
        invalid: Some("derp2.example.net:0"),
        with: &[("mesh_psk_file", "/etc/tinyderp/mesh.key")],
        feature: Some("tls-client"),
        summary: "Other relays of the region to dial, in derper syntax (repeatable, comma-separated host[:port], host/dialhost); this server's own name is skipped.",
        ..opt("--mesh-with", Kind::List, "string")
    },
    OptionSpec {
        valid: Some("derp2.example.net=sha256-raw:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        invalid: Some("derp2.example.net=sha256-raw:12"),
        with: &[
            ("mesh_psk_file", "/etc/tinyderp/mesh.key"),
            ("mesh_with", "derp2.example.net"),
        ],
        feature: Some("tls-client"),
        summary: "Trust a mesh_with relay by its certificate pin (host=sha256-raw:HEX, repeatable) instead of the system CA roots; needed for self-signed peers.",
        ..opt("--mesh-pin", Kind::List, "string")
    },
    OptionSpec {
        default: DefaultValue::Unset("none: every node may use the relay"),
        valid: Some(EXAMPLE_KEY),
        invalid: Some("nodekey:12"),
        summary: "A node key allowed without other checks, as nodekey:HEX (repeatable); with only this, every other key is refused.",
        ..opt("--allowed-key", Kind::List, "string")
    },
    OptionSpec {
        script_default: Some("0"),
        default: DefaultValue::Literal("0"),
        valid: Some("1"),
        summary: "'1' admits only nodes the local tailscaled knows (its node and its tailnet peers).",
        ..opt("--verify-clients", Kind::Switch, "bool")
    },
    OptionSpec {
        default: DefaultValue::Literal("/var/run/tailscale/tailscaled.sock"),
        valid: Some("/var/run/tailscale/tailscaled.sock"),
        with: &[("verify_clients", "1")],
        summary: "tailscaled's LocalAPI socket for verify_clients.",
        ..opt("--socket", Kind::Value, "string")
    },
    OptionSpec {
        valid: Some("http://127.0.0.1:9000/admit"),
        invalid: Some("admit.example"),
        summary: "Ask this http:// URL whether to admit each node (https:// needs a build with the https-admission feature).",
        ..opt("--verify-client-url", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("/etc/ssl/certs/ca-certificates.crt"),
        valid: Some("/etc/ssl/my-ca.pem"),
        with: &[("verify_client_url", "https://admit.example/check")],
        feature: Some("https-admission"),
        summary: "Trusted CA certificates (PEM) for an https:// verify_client_url.",
        ..opt("--verify-client-url-ca", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("1"),
        valid: Some("0"),
        invalid: Some("maybe"),
        summary: "Admit nodes (1) or refuse them (0) when verify_client_url cannot be reached.",
        ..opt("--verify-client-url-fail-open", Kind::Value, "bool")
    },
    OptionSpec {
        script_default: Some("0"),
        default: DefaultValue::Literal("0"),
        valid: Some("1"),
        summary: "Learn mode: log each refused node key every 10 minutes with the command that allows it.",
        ..opt("--log-refused-keys", Kind::Switch, "bool")
    },
    OptionSpec {
        default: DefaultValue::Unset("no limit"),
        valid: Some("2M"),
        invalid: Some("fast"),
        summary: "Per-client receive rate in bytes/s (k, M, G, Ki, Mi, Gi; 0 = no limit); faster clients are slowed, mesh peers exempt.",
        ..opt("--client-rate", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Literal("65568"),
        valid: Some("4M"),
        invalid: Some("big"),
        with: &[("client_rate", "1M")],
        summary: "Per-client burst in bytes (at least 65568).",
        ..opt("--client-burst", Kind::Value, "string")
    },
    OptionSpec {
        valid: Some("/etc/tinyderp/rate.json"),
        summary: "derper's per-client rate JSON file, re-read on SIGHUP; replaces client_rate and client_burst.",
        ..opt("--rate-config", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Unset("no limit"),
        valid: Some("10M"),
        invalid: Some("-1"),
        summary: "Cap on the bytes/s read from all DERP connections together (suffixes as client_rate; 0 = no limit).",
        ..opt("--total-rate", Kind::Value, "string")
    },
    OptionSpec {
        default: DefaultValue::Unset("no limit"),
        valid: Some("20"),
        invalid: Some("-5"),
        summary: "Most clients connected at once; more are closed after the handshake (0 = no limit; mesh peers never refused).",
        ..opt("--max-clients", Kind::Value, "uinteger")
    },
    OptionSpec {
        default: DefaultValue::Unset("no limit"),
        valid: Some("0.5"),
        invalid: Some("0.0001"),
        summary: "New TLS connections accepted per second (decimals allowed; 0 = no limit); excess ones are closed at once.",
        ..opt("--accept-rate", Kind::Value, "ufloat")
    },
    OptionSpec {
        default: DefaultValue::Derived("accept_rate rounded up"),
        valid: Some("10"),
        invalid: Some("0"),
        with: &[("accept_rate", "5")],
        summary: "Connections accepted at once before accept_rate applies.",
        ..opt("--accept-burst", Kind::Value, "uinteger")
    },
    OptionSpec {
        default: DefaultValue::Literal("info"),
        valid: Some("debug"),
        invalid: Some("loud"),
        summary: "Log verbosity: error, warn, info, debug or trace.",
        ..opt(
            "--log-level",
            Kind::Value,
            "or(\"error\",\"warn\",\"info\",\"debug\",\"trace\")",
        )
    },
    OptionSpec {
        summary: "Loopback demo: listen on 127.0.0.1, state dir ./tinyderp-dev.",
        ..opt("--dev", Kind::CommandLineOnly, "")
    },
    OptionSpec {
        summary: "Print the version and exit.",
        ..opt("--version", Kind::CommandLineOnly, "")
    },
    OptionSpec {
        script_default: Some("0"),
        default: DefaultValue::Literal("0"),
        valid: Some("1"),
        feature: Some("port-mapping"),
        summary: "'1' asks the router in front (double NAT) to forward the DERP and STUN ports with PCP, NAT-PMP or UPnP IGD, renews the mappings and removes them on stop. Needs a build with port mapping (the router packages leave it out to save flash).",
        ..opt("--port-mapping", Kind::Switch, "bool")
    },
    OptionSpec {
        valid: Some("stun.example.net:3478"),
        invalid: Some("stun.example.net"),
        summary: "A STUN server on the internet (HOST:PORT) that tinyderp check and the reachability watch ask for this line's public address.",
        ..opt("--check-stun-server", Kind::Value, "string")
    },
    OptionSpec {
        summary: "Print the help and exit.",
        ..opt("--help", Kind::CommandLineOnly, "")
    },
];

/// The options of `config tinyderp` that are flags, in table order.
pub fn uci_options() -> impl Iterator<Item = &'static OptionSpec> {
    OPTIONS
        .iter()
        .filter(|spec| spec.kind != Kind::CommandLineOnly)
}
