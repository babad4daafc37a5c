//! End-to-end tests of the command line: process arguments in, a validated
//! configuration or the exact one-line error out.

use super::*;
use crate::config::{CertMode, Cidr, Config};
use std::net::SocketAddr;
use std::time::Duration;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| String::from(*s)).collect()
}

fn argv(args: &[&str]) -> Vec<String> {
    let mut all = vec![String::from("/usr/sbin/tinyderp")];
    all.extend(strings(args));
    all
}

fn serve(args: &[&str]) -> Config {
    match parse(&argv(args)) {
        Ok(Command::Serve(config)) => config,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    match parse(&argv(args)) {
        Err(exit) => {
            assert_eq!(exit.code, EXIT_USAGE, "{args:?}");
            assert!(exit.to_stderr);
            assert_eq!(exit.output.lines().count(), 1, "{:?}", exit.output);
            exit.output
        }
        Ok(command) => panic!("{args:?} should fail, got {command:?}"),
    }
}

#[test]
fn defaults() {
    let config = serve(&[]);
    assert_eq!(config.listen, "[::]:8443".parse::<SocketAddr>().unwrap());
    assert_eq!(config.stun, Some("[::]:3478".parse().unwrap()));
    assert_eq!(config.http, None);
    assert_eq!(config.hostname, "localhost");
    assert!(config.extra_names.is_empty() && config.extra_ips.is_empty());
    assert_eq!(config.state_dir.to_str(), Some("/etc/tinyderp"));
    assert_eq!(config.server_key.to_str(), Some("/etc/tinyderp/derper.key"));
    assert_eq!(config.cert.mode, CertMode::SelfSigned);
    assert_eq!(config.cert.certdir.to_str(), Some("/etc/tinyderp"));
    assert!(config.cert.meta_cert);
    assert_eq!(config.mesh_psk_file, None);
    assert_eq!(config.derp_map.region_id, 900);
    assert_eq!(config.derp_map.region_code, "home");
    assert_eq!(config.derp_map.region_name, "Home router");
    assert_eq!(config.derp_map.node_name, "900a");
    assert_eq!(config.derp_map.hostname, "localhost");
    assert_eq!(config.derp_map.derp_port, 8443);
    assert_eq!(config.derp_map.stun_port, Some(3478));
    assert_eq!(config.log_level, log::LevelFilter::Info);
    assert!(config.metrics_allow.is_empty());
    assert_eq!(config.tcp_write_timeout, Some(Duration::from_secs(2)));
    assert_eq!(config.tcp_keepalive, Some(Duration::from_secs(600)));
    assert_eq!(config.tcp_user_timeout, Some(Duration::from_secs(15)));
    assert!(!config.dev);
    assert!(config.metrics_allowed("127.0.0.1".parse().unwrap()));
    assert!(config.metrics_allowed("::1".parse().unwrap()));
    assert!(config.metrics_allowed("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!config.metrics_allowed("192.168.1.2".parse().unwrap()));
}

#[test]
fn every_flag_maps_to_config() {
    let config = serve(&[
        "-a",
        "192.168.1.1:443",
        "--stun-port",
        "3479",
        "--http-port",
        "80",
        "--hostname",
        "myhome.example.net",
        "--extra-name",
        "derp.lan",
        "--extra-name",
        "router.lan",
        "--extra-ip",
        "192.168.1.1",
        "--extra-ip",
        "fd00::1",
        "--state-dir",
        "/srv/td",
        "-c",
        "/srv/key.json",
        "--certmode",
        "manual",
        "--certdir",
        "/srv/certs",
        "--tls-cert",
        "/srv/c.pem",
        "--tls-key",
        "/srv/k.pem",
        "--no-meta-cert",
        "--region-id",
        "901",
        "--region-code",
        "gran",
        "--region-name",
        "Grandma's house",
        "--node-name",
        "gran1",
        "--public-derp-port",
        "443",
        "--public-stun-port",
        "13478",
        "--public-ipv4",
        "203.0.113.10",
        "--public-ipv6",
        "2001:db8::10",
        "--metrics-allow",
        "192.168.1.0/24",
        "--metrics-allow",
        "fd00::/8",
        "--tcp-write-timeout",
        "0",
        "--tcp-keepalive",
        "1m30s",
        "--tcp-user-timeout",
        "30",
        "--mesh-psk-file",
        "/srv/mesh.key",
        "--log-level",
        "DEBUG",
    ]);
    assert_eq!(
        config.listen,
        "192.168.1.1:443".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.stun, Some("192.168.1.1:3479".parse().unwrap()));
    assert_eq!(config.http, Some("192.168.1.1:80".parse().unwrap()));
    assert_eq!(config.hostname, "myhome.example.net");
    assert_eq!(config.extra_names, ["derp.lan", "router.lan"]);
    assert_eq!(
        config.extra_ips,
        [
            "192.168.1.1".parse::<std::net::IpAddr>().unwrap(),
            "fd00::1".parse().unwrap()
        ]
    );
    assert_eq!(config.state_dir.to_str(), Some("/srv/td"));
    assert_eq!(config.server_key.to_str(), Some("/srv/key.json"));
    assert_eq!(config.cert.mode, CertMode::Manual);
    assert_eq!(config.cert.certdir.to_str(), Some("/srv/certs"));
    assert_eq!(
        config.cert.tls_cert.as_deref().and_then(|p| p.to_str()),
        Some("/srv/c.pem")
    );
    assert_eq!(
        config.cert.tls_key.as_deref().and_then(|p| p.to_str()),
        Some("/srv/k.pem")
    );
    assert!(!config.cert.meta_cert);
    let map = &config.derp_map;
    assert_eq!(
        (
            map.region_id,
            map.region_code.as_str(),
            map.region_name.as_str()
        ),
        (901, "gran", "Grandma's house")
    );
    assert_eq!(map.node_name, "gran1");
    assert_eq!(map.hostname, "myhome.example.net");
    assert_eq!((map.derp_port, map.stun_port), (443, Some(13478)));
    assert_eq!(map.ipv4, Some("203.0.113.10".parse().unwrap()));
    assert_eq!(map.ipv6, Some("2001:db8::10".parse().unwrap()));
    assert_eq!(
        config.metrics_allow,
        [
            "192.168.1.0/24".parse::<Cidr>().unwrap(),
            "fd00::/8".parse().unwrap()
        ]
    );
    assert!(config.metrics_allowed("192.168.1.77".parse().unwrap()));
    assert!(!config.metrics_allowed("10.0.0.1".parse().unwrap()));
    assert_eq!(config.tcp_write_timeout, None);
    assert_eq!(config.tcp_keepalive, Some(Duration::from_secs(90)));
    assert_eq!(config.tcp_user_timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        config.mesh_psk_file.as_deref().and_then(|p| p.to_str()),
        Some("/srv/mesh.key")
    );
    assert_eq!(config.log_level, log::LevelFilter::Debug);
}

#[test]
fn derper_spellings_are_accepted() {
    let config = serve(&[
        "-hostname",
        "203.0.113.10",
        "-certmode=manual",
        "-a",
        ":443",
        "-c",
        "/k",
        "-stun-port=3478",
        "-http-port=-1",
        "-verify-clients=false",
        "--certdir=/certs",
    ]);
    assert_eq!(config.hostname, "203.0.113.10");
    assert_eq!(config.cert.mode, CertMode::Manual);
    assert_eq!(config.listen, "[::]:443".parse::<SocketAddr>().unwrap());
    assert_eq!(config.server_key.to_str(), Some("/k"));
    assert_eq!(config.stun.map(|a| a.port()), Some(3478));
    assert_eq!(config.http, None);
    assert_eq!(config.cert.certdir.to_str(), Some("/certs"));
}

#[test]
fn ports_can_be_turned_off() {
    let config = serve(&["--stun-port", "-1", "--http-port", "-1"]);
    assert_eq!((config.stun, config.http), (None, None));
    assert_eq!(config.derp_map.stun_port, None);
    let config = serve(&["--stun-port=-1", "--public-stun-port", "3478"]);
    assert_eq!(config.derp_map.stun_port, Some(3478));
}

#[test]
fn listener_port_zero_binds_any_free_port_but_is_never_advertised() {
    let config = serve(&["-a", "127.0.0.1:0", "--stun-port", "0", "--http-port", "0"]);
    assert_eq!(config.listen.port(), 0);
    let ports = (config.stun.map(|a| a.port()), config.http.map(|a| a.port()));
    assert_eq!(ports, (Some(0), Some(0)));
    assert!(parse(&argv(&["--public-stun-port", "0"])).is_err());
    assert!(parse(&argv(&["--public-derp-port", "0"])).is_err());
}

#[test]
fn dev_defaults_and_overrides() {
    let config = serve(&["--dev"]);
    assert!(config.dev);
    assert_eq!(
        config.listen,
        "127.0.0.1:8443".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.stun, Some("127.0.0.1:3478".parse().unwrap()));
    assert_eq!(config.state_dir.to_str(), Some("./tinyderp-dev"));
    assert_eq!(
        config.server_key.to_str(),
        Some("./tinyderp-dev/derper.key")
    );
    assert_eq!(config.hostname, "localhost");
    let config = serve(&[
        "-dev",
        "-a",
        "[::1]:9443",
        "--state-dir",
        "/tmp/x",
        "--hostname",
        "h.lan",
    ]);
    assert_eq!(config.listen, "[::1]:9443".parse::<SocketAddr>().unwrap());
    assert_eq!(config.stun, Some("[::1]:3478".parse().unwrap()));
    assert_eq!(config.state_dir.to_str(), Some("/tmp/x"));
    assert_eq!(config.hostname, "h.lan");
}

#[test]
fn derpmap_command() {
    for args in [
        &["derpmap", "-hostname", "myhome.example.net"][..],
        &["-hostname", "myhome.example.net", "derpmap"][..],
    ] {
        match parse(&argv(args)) {
            Ok(Command::DerpMap(config)) => assert_eq!(config.hostname, "myhome.example.net"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    // As an option's value, "derpmap" is just a value.
    match parse(&argv(&["--region-code", "derpmap"])) {
        Ok(Command::Serve(config)) => assert_eq!(config.derp_map.region_code, "derpmap"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error(&["derpmap", "derpmap"]),
        "tinyderp: Unrecognized argument: derpmap (see tinyderp --help)"
    );
}

#[test]
fn help_and_version() {
    let help = parse(&argv(&["--help"])).unwrap_err();
    assert_eq!((help.code, help.to_stderr), (EXIT_OK, false));
    for flag in [
        "--addr",
        "--stun-port",
        "--http-port",
        "--hostname",
        "--extra-name",
        "--extra-ip",
        "--state-dir",
        "--server-key",
        "--certmode",
        "--certdir",
        "--tls-cert",
        "--tls-key",
        "--no-meta-cert",
        "--region-id",
        "--region-code",
        "--region-name",
        "--node-name",
        "--public-derp-port",
        "--public-stun-port",
        "--public-ipv4",
        "--public-ipv6",
        "--metrics-allow",
        "--tcp-write-timeout",
        "--tcp-keepalive",
        "--tcp-user-timeout",
        "--mesh-psk-file",
        "--mesh-with",
        "--mesh-pin",
        "--verify-clients",
        "--verify-client-url",
        "--allowed-key",
        "--socket",
        "--verify-client-url-fail-open",
        "--verify-client-url-ca",
        "--log-refused-keys",
        "--client-rate",
        "--client-burst",
        "--rate-config",
        "--total-rate",
        "--max-clients",
        "--accept-rate",
        "--accept-burst",
        "--log-level",
        "--dev",
        "--version",
        "derpmap",
    ] {
        assert!(help.output.contains(flag), "help lacks {flag}");
    }
    assert!(help.output.contains("Default :8443"));
    assert!(help.output.contains("900-999"));
    assert_eq!(parse(&argv(&["-h"])).unwrap_err().output, help.output);
    assert_eq!(
        parse(&argv(&["--dev", "--help"])).unwrap_err().output,
        help.output
    );
    assert_eq!(
        parse(&argv(&["--help", "--bogus"])).unwrap_err().output,
        help.output
    );
    assert_eq!(
        parse(&argv(&["derpmap", "--help"])).unwrap_err().output,
        help.output
    );

    let version = parse(&argv(&["--version"])).unwrap_err();
    assert_eq!(
        version,
        CliExit {
            code: EXIT_OK,
            output: format!("tinyderp {VERSION}"),
            to_stderr: false
        }
    );
    assert_eq!(parse(&argv(&["-version"])).unwrap_err(), version);
}

#[test]
fn errors_are_one_clear_line() {
    let table: &[(&[&str], &str)] = &[
        (
            &["--stun-port", "abc"],
            "tinyderp: --stun-port: \"abc\" is not a port number (use 1-65535, or -1 to turn STUN off)",
        ),
        (
            &["--http-port", "65536"],
            "tinyderp: --http-port: \"65536\" is not a port number (use 1-65535, or -1 to turn plain HTTP off)",
        ),
        (&["--public-derp-port", "-1"], "tinyderp: --public-derp-port: \"-1\" is not a port number (use 1-65535)"),
        (
            &["--region-id", "1000"],
            "tinyderp: --region-id: \"1000\" is not a region id (use 1-999; 900-999 are for user-run relays)",
        ),
        (&["--region-id", "0"], "tinyderp: --region-id: \"0\" is not a region id (use 1-999; 900-999 are for user-run relays)"),
        (&["--hostname", "my home"], "tinyderp: --hostname: \"my home\" must not contain spaces"),
        (
            &["--hostname", ""],
            "tinyderp: --hostname: must not be empty (use your DDNS name or public IP, e.g. --hostname myhome.example.net)",
        ),
        (
            &["--certmode", "manual", "--tls-cert", "/c.pem"],
            "tinyderp: --tls-cert: needs --tls-key too (give both, or neither to use <certdir>/<hostname>.crt/.key)",
        ),
        (
            &["--certmode", "manual", "--tls-key", "/k.pem"],
            "tinyderp: --tls-key: needs --tls-cert too (give both, or neither to use <certdir>/<hostname>.crt/.key)",
        ),
        (
            &["--tls-cert", "/c.pem", "--tls-key", "/k.pem"],
            "tinyderp: --tls-cert: only applies with --certmode manual (add it, or drop --tls-cert)",
        ),
        (
            &["-certmode=letsencrypt"],
            "tinyderp: --certmode: \"letsencrypt\" is not supported (use self-signed or manual; tinyderp has no built-in ACME)",
        ),
        (
            &["--mesh-with", "a.example,b.example"],
            "tinyderp: --mesh-with: needs --mesh-psk-file (the key every relay of the region shares)",
        ),
        (
            &["--socket", "/run/ts.sock"],
            "tinyderp: --socket: only applies with --verify-clients (add it, or drop --socket)",
        ),
        (
            &["--verify-client-url", "http://admit.example/x", "--verify-client-url-ca", "/ca.pem"],
            "tinyderp: --verify-client-url-ca: only applies to an https:// --verify-client-url",
        ),
        (
            &["--verify-client-url", "admit.example"],
            "tinyderp: --verify-client-url: \"admit.example\" is not an http:// or https:// URL (e.g. http://127.0.0.1:9000/admit)",
        ),
        (
            &["--verify-client-url-fail-open=maybe"],
            "tinyderp: --verify-client-url-fail-open: \"maybe\" is not true or false (write --verify-client-url-fail-open=true or --verify-client-url-fail-open=false)",
        ),
        (
            &["--allowed-key", "nodekey:12"],
            "tinyderp: --allowed-key: \"nodekey:12\" is not a node key (use nodekey: and 64 hex digits, as --log-refused-keys prints them)",
        ),
        (
            &["--client-rate", "fast"],
            "tinyderp: --client-rate: \"fast\" is not a byte amount (use e.g. 200000, 200k, 1M or 512Ki; 0 = no limit)",
        ),
        (
            &["--client-burst", "1M"],
            "tinyderp: --client-burst: needs --client-rate (the burst of an unlimited rate means nothing)",
        ),
        (
            &["--rate-config", "/r.json", "--client-rate", "1M"],
            "tinyderp: --rate-config: replaces --client-rate and --client-burst; give one or the other",
        ),
        (
            &["--max-clients", "-5"],
            "tinyderp: --max-clients: \"-5\" is not a client count (use 1-1000000, or 0 for no limit)",
        ),
        (
            &["--accept-rate", "-1"],
            "tinyderp: --accept-rate: \"-1\" is not a rate (use connections per second, e.g. 10 or 0.5; 0 = no limit)",
        ),
        (
            &["--accept-rate", "0.0001"],
            "tinyderp: --accept-rate: must be at least 0.001 connections per second (or 0 for no limit)",
        ),
        (&["--accept-burst", "5"], "tinyderp: --accept-burst: needs --accept-rate"),
        (&["--accept-rate", "5", "--accept-burst", "0"], "tinyderp: --accept-burst: \"0\" is not a connection count (use 1-1000000)"),
        (
            &["--log-level", "loud"],
            "tinyderp: --log-level: \"loud\" is not a log level (use error, warn, info, debug or trace)",
        ),
        (
            &["--tcp-write-timeout", "2 s"],
            "tinyderp: --tcp-write-timeout: \"2 s\" is not a duration (use e.g. 2s, 10m, 1m30s, 500ms, or seconds)",
        ),
        (&["--tcp-user-timeout", "10h"], "tinyderp: --tcp-user-timeout: must be at most 9h"),
        (&["--tcp-keepalive", "500ms"], "tinyderp: --tcp-keepalive: must be at least 1s (or 0 to turn keep-alive off)"),
        (&["--public-ipv4", "2001:db8::1"], "tinyderp: --public-ipv4: \"2001:db8::1\" is not an IPv4 address"),
        (&["--extra-ip", "router"], "tinyderp: --extra-ip: \"router\" is not an IP address"),
        (
            &["--metrics-allow", "lan"],
            "tinyderp: --metrics-allow: \"lan\" is not an IP range (use e.g. 192.168.1.0/24, fd00::/8 or 192.168.1.10)",
        ),
        (&["--region-code", "my home"], "tinyderp: --region-code: \"my home\" must not contain spaces"),
        (&["--node-name", ""], "tinyderp: --node-name: must not be empty"),
        (
            &["-verify-clients=maybe"],
            "tinyderp: --verify-clients: \"maybe\" is not true or false (write --verify-clients alone, or --verify-clients=false)",
        ),
        (&["--bogus"], "tinyderp: Unrecognized argument: --bogus (see tinyderp --help)"),
        (&["serve"], "tinyderp: Unrecognized argument: serve (see tinyderp --help)"),
        (&["--hostname"], "tinyderp: No value provided for option '--hostname' (see tinyderp --help)"),
        (&["--hostname", "a", "-hostname=b"], "tinyderp: --hostname: given more than once (give it once)"),
    ];
    for (args, expected) in table {
        assert_eq!(error(args), *expected, "{args:?}");
    }
    let too_many: Vec<&str> = (0..=crate::config::MAX_EXTRA_IPS)
        .flat_map(|_| ["--extra-ip", "10.0.0.1"])
        .collect();
    assert_eq!(
        error(&too_many),
        "tinyderp: --extra-ip: given 17 times; at most 16 are allowed"
    );
}

#[test]
fn admission_flags() {
    use crate::admit::DEFAULT_TAILSCALED_SOCKET;
    let config = serve(&[]);
    assert!(config.admit.is_open());
    assert!(config.admit.url_fail_open);
    let a = format!("nodekey:{}", "ab".repeat(32));
    let b = "CD".repeat(32);
    let config = serve(&[
        "--allowed-key",
        &a,
        "--allowed-key",
        &b,
        "--allowed-key",
        &a,
        "-verify-clients",
        "--verify-client-url=http://127.0.0.1:9000/admit",
        "--verify-client-url-fail-open=false",
        "--log-refused-keys",
    ]);
    let admit = &config.admit;
    let keys: Vec<String> = admit.allowed_keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys, [a.clone(), format!("nodekey:{}", "cd".repeat(32))]);
    assert_eq!(
        admit.tailscaled_socket.as_deref().and_then(|p| p.to_str()),
        Some(DEFAULT_TAILSCALED_SOCKET)
    );
    let url = admit.url.as_ref().unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.target.as_str()),
        ("127.0.0.1", 9000, "/admit")
    );
    assert!(!admit.url_fail_open);
    assert!(admit.log_refused_keys);
    assert_eq!(admit.url_ca_file, None);
    if cfg!(feature = "https-admission") {
        let config = serve(&["--verify-client-url", "https://admit.example/x"]);
        assert_eq!(
            config.admit.url_ca_file.as_deref().and_then(|p| p.to_str()),
            Some(crate::admit::DEFAULT_CA_FILE)
        );
        let config = serve(&[
            "--verify-client-url",
            "https://admit.example/x",
            "--verify-client-url-ca",
            "/etc/my-ca.pem",
        ]);
        assert_eq!(
            config.admit.url_ca_file.as_deref().and_then(|p| p.to_str()),
            Some("/etc/my-ca.pem")
        );
    } else {
        let line = error(&["--verify-client-url", "https://admit.example/x"]);
        assert!(line.contains("https-admission cargo feature"), "{line}");
    }
    let config = serve(&["--verify-clients", "--socket", "/run/ts.sock"]);
    assert_eq!(
        config
            .admit
            .tailscaled_socket
            .as_deref()
            .and_then(|p| p.to_str()),
        Some("/run/ts.sock")
    );
    // Every spelling of the default-true boolean.
    for (args, expected) in [
        (&["--verify-client-url-fail-open"][..], true),
        (&["-verify-client-url-fail-open=0"][..], false),
        (&["--verify-client-url-fail-open", "false"][..], false),
        (&["--verify-client-url-fail-open", "F", "--dev"][..], false),
        (&["--verify-client-url-fail-open=true"][..], true),
        (&["--verify-client-url-fail-open", "--dev"][..], true),
        (&["--verify-client-url-fail-open", ""][..], true),
    ] {
        assert_eq!(serve(args).admit.url_fail_open, expected, "{args:?}");
    }
}

#[test]
fn limit_flags() {
    use crate::config::{AcceptRate, ByteRate, Limits};
    assert_eq!(serve(&[]).limits, Limits::default());
    let config = serve(&[
        "--client-rate",
        "200k",
        "--total-rate",
        "1Mi",
        "--max-clients",
        "50",
        "--accept-rate",
        "0.5",
    ]);
    assert_eq!(
        config.limits,
        Limits {
            client_rate: Some(ByteRate {
                bytes_per_sec: 200_000,
                burst: 65_568
            }),
            rate_config: None,
            total_rate: Some(ByteRate {
                bytes_per_sec: 1 << 20,
                burst: 1 << 20
            }),
            max_clients: Some(50),
            accept: Some(AcceptRate {
                millis_per_sec: 500,
                burst: 1
            }),
        }
    );
    let config = serve(&[
        "--client-rate",
        "1M",
        "--client-burst",
        "4M",
        "-accept-connection-limit=12.5",
        "-accept-connection-burst=40",
        "--max-clients",
        "0",
        "--total-rate",
        "0",
    ]);
    assert_eq!(
        config.limits.client_rate,
        Some(ByteRate {
            bytes_per_sec: 1_000_000,
            burst: 4_000_000
        })
    );
    assert_eq!(
        config.limits.accept,
        Some(AcceptRate {
            millis_per_sec: 12_500,
            burst: 40
        })
    );
    assert_eq!(
        (config.limits.max_clients, config.limits.total_rate),
        (None, None)
    );
    let config = serve(&[
        "--client-rate",
        "100",
        "--client-burst",
        "10",
        "--accept-rate",
        "+Inf",
    ]);
    assert_eq!(
        config.limits.client_rate.map(|r| r.burst),
        Some(65_568),
        "burst floor"
    );
    assert_eq!(config.limits.accept, None);
    let config = serve(&[
        "--rate-config",
        "/etc/tinyderp/rate.json",
        "--accept-rate",
        "3",
    ]);
    assert_eq!(
        config
            .limits
            .rate_config
            .as_deref()
            .and_then(|p| p.to_str()),
        Some("/etc/tinyderp/rate.json")
    );
    assert_eq!(
        config.limits.accept,
        Some(AcceptRate {
            millis_per_sec: 3000,
            burst: 3
        })
    );
}

#[test]
fn empty_uci_values_mean_unset() {
    let config = serve(&[
        "--mesh-with",
        "",
        "--verify-client-url",
        "",
        "--tls-cert",
        "",
        "--public-ipv4",
        "",
        "--mesh-psk-file",
        "",
        "--stun-port",
        "",
        "--socket",
        "",
        "--client-rate",
        "",
        "--max-clients",
        "",
        "--accept-rate",
        "",
    ]);
    assert_eq!(config.mesh_psk_file, None);
    assert!(config.admit.is_open());
    assert_eq!(config.limits, crate::config::Limits::default());
    assert_eq!(config.derp_map.ipv4, None);
    assert_eq!(config.stun.map(|a| a.port()), Some(3478));
}

#[test]
fn validate_command() {
    for args in [
        &["validate", "--max-clients", "20"][..],
        &["--max-clients", "20", "validate"][..],
    ] {
        match parse(&argv(args)) {
            Ok(Command::Validate(config)) => assert_eq!(config.limits.max_clients, Some(20)),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    // Errors name the UCI option first, for logread.
    assert_eq!(
        error(&["validate", "--max-clients", "-5"]),
        "tinyderp: option max_clients: --max-clients: \"-5\" is not a client count (use 1-1000000, or 0 for no limit)"
    );
    assert_eq!(
        error(&["validate", "--hostname", "a", "-hostname=b"]),
        "tinyderp: option hostname: --hostname: given more than once (give it once)"
    );
    assert_eq!(
        error(&["validate", "--verify-clients=maybe"]),
        "tinyderp: option verify_clients: --verify-clients: \"maybe\" is not true or false (write --verify-clients alone, or --verify-clients=false)"
    );
    // The server's own errors keep their form.
    assert_eq!(
        error(&["--max-clients", "-5"]),
        "tinyderp: --max-clients: \"-5\" is not a client count (use 1-1000000, or 0 for no limit)"
    );
    assert_eq!(
        error(&["validate", "derpmap"]),
        "tinyderp: Unrecognized argument: derpmap (see tinyderp --help)"
    );
    assert!(parse(&argv(&["validate", "--help"])).unwrap_err().code == EXIT_OK);
}

#[test]
fn config_errors_have_stable_labels() {
    let label = |args: &[&str]| {
        let normalized = crate::config::normalize_args(&strings(args)).unwrap();
        let refs: Vec<&str> = normalized.iter().map(String::as_str).collect();
        let flags = crate::cli::Flags::from_args(&[PROGRAM_NAME], &refs).unwrap();
        crate::config::Config::from_flags(&flags)
            .unwrap_err()
            .label()
    };
    assert_eq!(label(&["--stun-port", "x"]), "invalid_value");
    assert_eq!(label(&["--node-name", ""]), "empty");
    assert_eq!(label(&["--tcp-keepalive", "500ms"]), "out_of_range");
    assert_eq!(label(&["--tcp-keepalive", "5x"]), "bad_duration");
    assert_eq!(label(&["--metrics-allow", "lan"]), "bad_cidr");
    assert_eq!(label(&["--socket", "/s"]), "combination");
    assert_eq!(label(&["--mesh-with", "x"]), "combination");
    assert_eq!(label(&["--mesh-with", "x:0"]), "invalid_value");
}

#[test]
fn status_command() {
    match parse(&argv(&["status", "--addr", "127.0.0.1:9443"])) {
        Ok(Command::Status(StatusQuery { config, json })) => {
            assert_eq!(
                config.listen,
                "127.0.0.1:9443".parse::<SocketAddr>().unwrap()
            );
            assert!(!json);
        }
        other => panic!("{other:?}"),
    }
    match parse(&argv(&["status", "--json", "--state-dir", "/tmp/x"])) {
        Ok(Command::Status(StatusQuery { json, .. })) => assert!(json),
        other => panic!("{other:?}"),
    }
}
