//! Verdicts of `tinyderp check` for the home-line situations it must name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::addr::{default_gateway_v4, default_route_v4, default_route_v6};
use super::firewall::{judge, Packet};
use super::*;
use crate::proto::json;

const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const OLD: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

fn ip4(ip: Ipv4Addr) -> IpAddr {
    IpAddr::V4(ip)
}

fn wan(v4: &[Ipv4Addr], v6: &[Ipv6Addr]) -> WanView {
    let mut local: Vec<IpAddr> = v4.iter().map(|ip| IpAddr::V4(*ip)).collect();
    local.extend(v6.iter().map(|ip| IpAddr::V6(*ip)));
    local.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    WanView {
        interface: Some("wan0".into()),
        v4: v4.to_vec(),
        v6: v6.to_vec(),
        local,
    }
}

fn open_firewall() -> Vec<(Proto, u16, FirewallVerdict)> {
    [(Proto::Tcp, 8443), (Proto::Udp, 3478)]
        .into_iter()
        .map(|(proto, port)| {
            (
                proto,
                port,
                FirewallVerdict {
                    accepted: true,
                    uncertain: false,
                    reason: "accepted".into(),
                },
            )
        })
        .collect()
}

/// Probes that reached this relay through every record.
fn healthy(records: &[IpAddr], wan: WanView) -> Observations {
    Observations {
        hostname: "home.example.test".into(),
        derp_port: 8443,
        stun_port: Some(3478),
        resolved: Ok(records.to_vec()),
        wan,
        firewall: open_firewall(),
        firewall_skipped: None,
        derp: records.iter().map(|ip| (*ip, DerpProbe::Relayed)).collect(),
        stun: records
            .iter()
            .map(|ip| (*ip, StunProbe::Mapped(SocketAddr::new(*ip, 40000))))
            .collect(),
        admission_restricted: false,
        outside: None,
        portmap: super::PortmapView::Off,
        now_unix: 0,
    }
}

fn status(report: &Report, step: &str) -> Status {
    report
        .step(step)
        .map(|step| step.status)
        .unwrap_or(Status::Skip)
}

#[test]
fn address_classes() {
    assert_eq!(classify_v4(Ipv4Addr::new(8, 8, 8, 8)), V4Class::Public);
    assert_eq!(classify_v4(PUBLIC), V4Class::Public);
    assert_eq!(classify_v4(Ipv4Addr::new(192, 168, 1, 2)), V4Class::Private);
    assert_eq!(classify_v4(Ipv4Addr::new(10, 0, 0, 1)), V4Class::Private);
    assert_eq!(classify_v4(Ipv4Addr::new(172, 31, 0, 1)), V4Class::Private);
    assert_eq!(classify_v4(Ipv4Addr::new(100, 64, 0, 1)), V4Class::Cgnat);
    assert_eq!(
        classify_v4(Ipv4Addr::new(100, 127, 255, 254)),
        V4Class::Cgnat
    );
    assert_eq!(classify_v4(Ipv4Addr::new(100, 128, 0, 1)), V4Class::Public);
    assert_eq!(
        classify_v4(Ipv4Addr::new(100, 63, 255, 255)),
        V4Class::Public
    );
    assert_eq!(
        classify_v4(Ipv4Addr::new(169, 254, 3, 4)),
        V4Class::LinkLocal
    );
    assert_eq!(classify_v4(Ipv4Addr::LOCALHOST), V4Class::Unusable);
    assert_eq!(classify_v6(V6), V6Class::Global);
    assert_eq!(
        classify_v6("fd00::1".parse().unwrap()),
        V6Class::UniqueLocal
    );
    assert_eq!(classify_v6("fe80::1".parse().unwrap()), V6Class::LinkLocal);
    assert_eq!(classify_v6(Ipv6Addr::LOCALHOST), V6Class::Unusable);
}

#[test]
fn default_routes_from_proc() {
    let route =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 br-lan\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 wan0\t00000000\t010071CB\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
    assert_eq!(default_route_v4(route).as_deref(), Some("wan0"));
    assert_eq!(default_route_v4("Iface\tDestination\n"), None);
    let gateway = if cfg!(target_endian = "little") {
        "0101A8C0"
    } else {
        "C0A80101"
    };
    let table = format!(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
        lan0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
        wan0\t00000000\t{gateway}\t0003\t0\t0\t0\t00000000\n"
    );
    assert_eq!(
        default_gateway_v4(&table),
        Some(std::net::Ipv4Addr::new(192, 168, 1, 1))
    );
    assert_eq!(default_gateway_v4("Iface\tDestination\n"), None);
    let route6 = "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     wan0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000000000000000000000001 00000400 00000001 00000000 00000003     wan0\n";
    assert_eq!(default_route_v6(route6).as_deref(), Some("wan0"));
}

#[test]
fn public_line_with_correct_records_is_all_ok() {
    let report = evaluate(&healthy(
        &[ip4(PUBLIC), IpAddr::V6(V6)],
        wan(&[PUBLIC], &[V6]),
    ));
    for step in &report.steps {
        assert_eq!(step.status, Status::Ok, "{step:?}");
        assert_eq!(step.action, None);
    }
    assert_eq!(report.exit_code(), EXIT_ALL_OK);
    assert!(report.render_text().contains("result: OK (exit 0)"));
}

#[test]
fn stale_record_is_named() {
    let mut obs = healthy(&[ip4(OLD)], wan(&[PUBLIC], &[]));
    obs.derp = vec![(ip4(OLD), DerpProbe::Unreachable("timed out".into()))];
    obs.stun = vec![(ip4(OLD), StunProbe::NoAnswer("timed out".into()))];
    let report = evaluate(&obs);
    let records = report.step("records").unwrap();
    assert_eq!(records.status, Status::Fail);
    assert!(records.detail.contains("stale DDNS record"), "{records:?}");
    assert!(records.detail.contains("203.0.113.99"));
    assert!(records.detail.contains("203.0.113.10"));
    assert_eq!(status(&report, "derp"), Status::Fail);
    assert_eq!(status(&report, "stun"), Status::Fail);
    assert_eq!(report.exit_code(), EXIT_SOME_FAIL);
}

#[test]
fn stale_aaaa_is_named() {
    let old6: Ipv6Addr = "2001:db8::99".parse().unwrap();
    let mut obs = healthy(&[ip4(PUBLIC), IpAddr::V6(old6)], wan(&[PUBLIC], &[V6]));
    obs.derp[1].1 = DerpProbe::Unreachable("refused".into());
    obs.stun[1].1 = StunProbe::NoAnswer("timed out".into());
    let report = evaluate(&obs);
    let records = report.step("records").unwrap();
    assert_eq!(records.status, Status::Fail);
    assert!(records.detail.contains("2001:db8::99"));
}

#[test]
fn cgnat_is_named_and_ipv6_still_ok() {
    let cgnat = Ipv4Addr::new(100, 64, 0, 2);
    let mut obs = healthy(&[ip4(PUBLIC), IpAddr::V6(V6)], wan(&[cgnat], &[V6]));
    obs.derp[0].1 = DerpProbe::Unreachable("timed out".into());
    obs.stun[0].1 = StunProbe::NoAnswer("timed out".into());
    let report = evaluate(&obs);
    let v4 = report.step("wan-ipv4").unwrap();
    assert_eq!(v4.status, Status::Warn);
    assert!(v4.detail.contains("carrier-grade NAT"), "{v4:?}");
    assert!(v4.action.as_deref().unwrap_or("").contains("IPv6"));
    assert_eq!(status(&report, "wan-ipv6"), Status::Ok);
    // Unreachable through an address that is not ours: not reported as a dead relay.
    assert_eq!(status(&report, "derp"), Status::Warn);
    // Without IPv6, CGNAT makes the relay unreachable.
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[cgnat], &[]));
    obs.derp[0].1 = DerpProbe::Unreachable("timed out".into());
    assert_eq!(status(&evaluate(&obs), "wan-ipv4"), Status::Fail);
}

#[test]
fn double_nat_is_named_with_the_forward_to_make() {
    let inner = Ipv4Addr::new(192, 168, 1, 2);
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[inner], &[]));
    obs.derp[0].1 = DerpProbe::Unreachable("timed out".into());
    obs.stun[0].1 = StunProbe::NoAnswer("timed out".into());
    let report = evaluate(&obs);
    let v4 = report.step("wan-ipv4").unwrap();
    assert_eq!(v4.status, Status::Warn);
    assert!(v4.detail.contains("double NAT"));
    assert!(v4
        .action
        .as_deref()
        .unwrap_or("")
        .contains("TCP 8443 and UDP 3478"));
    // No hairpin: a warning that says so, not a dead relay.
    let derp = report.step("derp").unwrap();
    assert_eq!(derp.status, Status::Warn);
    assert!(derp.action.as_deref().unwrap_or("").contains("hairpin"));
    assert_eq!(status(&report, "records"), Status::Warn);
    // With a working forward and hairpin, the record is confirmed.
    let report = evaluate(&healthy(&[ip4(PUBLIC)], wan(&[inner], &[])));
    assert_eq!(status(&report, "records"), Status::Ok);
    assert_eq!(status(&report, "derp"), Status::Ok);
}

#[test]
fn relay_not_running_is_a_failure() {
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[PUBLIC], &[]));
    obs.derp[0].1 = DerpProbe::Unreachable("connection refused".into());
    let report = evaluate(&obs);
    let derp = report.step("derp").unwrap();
    assert_eq!(derp.status, Status::Fail);
    assert!(derp
        .action
        .as_deref()
        .unwrap_or("")
        .contains("start tinyderp"));
}

#[test]
fn refused_login_under_admission_is_only_a_warning() {
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[PUBLIC], &[]));
    obs.derp[0].1 = DerpProbe::Broken("closed during login".into());
    obs.admission_restricted = true;
    assert_eq!(status(&evaluate(&obs), "derp"), Status::Warn);
    obs.admission_restricted = false;
    assert_eq!(status(&evaluate(&obs), "derp"), Status::Fail);
}

#[test]
fn unresolvable_name_fails() {
    let mut obs = healthy(&[], wan(&[PUBLIC], &[]));
    obs.resolved = Err("no such name".into());
    let report = evaluate(&obs);
    assert_eq!(status(&report, "dns"), Status::Fail);
    assert!(report.step("records").is_none());
}

#[test]
fn skipped_steps_do_not_change_the_exit_code() {
    let mut obs = healthy(&[ip4(PUBLIC), IpAddr::V6(V6)], wan(&[PUBLIC], &[V6]));
    obs.firewall.clear();
    obs.firewall_skipped = Some("not OpenWrt: skipped".into());
    let report = evaluate(&obs);
    assert_eq!(status(&report, "firewall"), Status::Skip);
    assert_eq!(report.exit_code(), EXIT_ALL_OK);
    assert!(report
        .render_text()
        .contains("SKIP  firewall  not OpenWrt: skipped"));
}

#[test]
fn json_has_status_exit_and_steps() {
    let mut obs = healthy(&[ip4(OLD)], wan(&[PUBLIC], &[]));
    obs.derp[0].1 = DerpProbe::Unreachable("timed out".into());
    let report = evaluate(&obs);
    let json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["exit"], 2);
    assert_eq!(json["hostname"], "home.example.test");
    assert_eq!(json["steps"][1]["step"], "records");
    assert_eq!(json["steps"][1]["status"], "fail");
    assert!(json["steps"][1]["action"]
        .as_str()
        .unwrap()
        .contains("DDNS"));
}

/// The JSON report byte for byte as serde_json's derive wrote it before proto/json.rs
/// (rename_all lowercase for the status, the report flattened next to status and exit).
#[test]
fn json_report_is_what_serde_json_wrote() {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    enum SerdeStatus {
        Skip,
        Ok,
        Warn,
        Fail,
    }
    #[derive(serde::Serialize)]
    struct SerdeStep<'a> {
        step: &'a str,
        status: SerdeStatus,
        detail: &'a str,
        action: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct SerdeReport<'a> {
        hostname: &'a str,
        derp_port: u16,
        stun_port: Option<u16>,
        steps: Vec<SerdeStep<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Whole<'a> {
        #[serde(flatten)]
        report: SerdeReport<'a>,
        status: SerdeStatus,
        exit: u8,
    }
    let status = |status: Status| match status {
        Status::Skip => SerdeStatus::Skip,
        Status::Ok => SerdeStatus::Ok,
        Status::Warn => SerdeStatus::Warn,
        Status::Fail => SerdeStatus::Fail,
    };
    let mut obs = healthy(&[ip4(OLD)], wan(&[PUBLIC], &[]));
    obs.derp[0].1 = DerpProbe::Unreachable("timed \"out\"\n\u{1}\u{e9}".into());
    let mut reports = vec![
        evaluate(&obs),
        evaluate(&healthy(&[ip4(PUBLIC)], wan(&[PUBLIC], &[]))),
    ];
    let mut no_stun = reports[1].clone();
    no_stun.stun_port = None;
    no_stun.steps.clear();
    reports.push(no_stun);
    for report in &reports {
        let whole = Whole {
            report: SerdeReport {
                hostname: &report.hostname,
                derp_port: report.derp_port,
                stun_port: report.stun_port,
                steps: report
                    .steps
                    .iter()
                    .map(|step| SerdeStep {
                        step: step.step,
                        status: status(step.status),
                        detail: &step.detail,
                        action: step.action.as_deref(),
                    })
                    .collect(),
            },
            status: status(report.overall()),
            exit: report.exit_code(),
        };
        assert_eq!(
            report.render_json(),
            serde_json::to_string_pretty(&whole).unwrap()
        );
    }
}

#[test]
fn changes_are_listed_once() {
    let first = evaluate(&healthy(&[ip4(PUBLIC)], wan(&[PUBLIC], &[])));
    assert_eq!(first.changes_since(None).len(), first.steps.len());
    assert!(first.changes_since(Some(&first)).is_empty());
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[PUBLIC], &[]));
    obs.derp[0].1 = DerpProbe::Unreachable("connection refused".into());
    let second = evaluate(&obs);
    let changes = second.changes_since(Some(&first));
    assert_eq!(changes.len(), 1);
    assert!(changes[0].starts_with("check derp: FAIL"));
}

fn fixture(name: &str) -> json::Value {
    let text = match name {
        "closed" => include_str!("testdata/fw4-closed.json"),
        _ => include_str!("testdata/fw4-open.json"),
    };
    json::parse(text.as_bytes()).unwrap()
}

/// A ruleset written with serde_json's `json!`, read as the probe reads nft's output.
fn tree(value: serde_json::Value) -> json::Value {
    json::parse(value.to_string().as_bytes()).unwrap()
}

fn packet(iif: &str, proto: Proto, dport: u16, v6: bool) -> Packet {
    Packet {
        iifname: iif.into(),
        proto,
        dport,
        v6,
    }
}

#[test]
fn fw4_ruleset_without_a_rule_closes_the_ports() {
    let closed = fixture("closed");
    for v6 in [false, true] {
        let verdict = judge(&closed, &packet("wan0", Proto::Tcp, 8443, v6)).unwrap();
        assert!(!verdict.accepted, "{verdict:?}");
        assert!(!verdict.uncertain, "{verdict:?}");
        assert!(verdict.reason.contains("handle_reject"), "{verdict:?}");
        let verdict = judge(&closed, &packet("wan0", Proto::Udp, 3478, v6)).unwrap();
        assert!(!verdict.accepted);
    }
    // DHCP renewals are let in; from the LAN everything is.
    assert!(
        judge(&closed, &packet("wan0", Proto::Udp, 68, false))
            .unwrap()
            .accepted
    );
    assert!(
        !judge(&closed, &packet("wan0", Proto::Udp, 68, true))
            .unwrap()
            .accepted
    );
    assert!(
        judge(&closed, &packet("br-lan", Proto::Tcp, 8443, false))
            .unwrap()
            .accepted
    );
}

#[test]
fn fw4_ruleset_with_the_rules_opens_the_ports() {
    let open = fixture("open");
    let tcp = judge(&open, &packet("wan0", Proto::Tcp, 8443, false)).unwrap();
    assert!(tcp.accepted && !tcp.uncertain, "{tcp:?}");
    assert!(
        judge(&open, &packet("wan0", Proto::Udp, 3478, false))
            .unwrap()
            .accepted
    );
    assert!(
        judge(&open, &packet("wan0", Proto::Tcp, 8443, true))
            .unwrap()
            .accepted
    );
    // Only those ports.
    assert!(
        !judge(&open, &packet("wan0", Proto::Tcp, 8444, false))
            .unwrap()
            .accepted
    );
    assert!(
        !judge(&open, &packet("wan0", Proto::Udp, 8443, false))
            .unwrap()
            .accepted
    );
}

#[test]
fn no_input_chain_means_no_filter() {
    let empty = tree(serde_json::json!({"nftables": [{"metainfo": {}}]}));
    assert_eq!(
        judge(&empty, &packet("wan0", Proto::Tcp, 8443, false)),
        None
    );
    assert_eq!(
        judge(
            &tree(serde_json::json!({})),
            &packet("wan0", Proto::Tcp, 1, false)
        ),
        None
    );
}

#[test]
fn unknown_matches_make_the_answer_uncertain() {
    let ruleset = tree(serde_json::json!({"nftables": [
        {"chain": {"family": "ip", "table": "t", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "t", "chain": "in", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 7}},
            {"drop": null}
        ]}}
    ]}));
    let verdict = judge(&ruleset, &packet("wan0", Proto::Tcp, 8443, false)).unwrap();
    assert!(verdict.accepted);
    assert!(verdict.uncertain);
}

#[test]
fn hairpin_mapped_address_is_expected_but_a_foreign_public_one_is_not() {
    let inner = Ipv4Addr::new(192, 168, 1, 2);
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[inner], &[]));
    obs.stun[0].1 = StunProbe::Mapped("192.168.1.1:40000".parse().unwrap());
    let report = evaluate(&obs);
    let stun = report.step("stun").unwrap();
    assert_eq!(stun.status, Status::Ok);
    assert!(stun.detail.contains("hairpin NAT"), "{stun:?}");
    obs.stun[0].1 = StunProbe::Mapped("198.51.100.200:40000".parse().unwrap());
    assert_eq!(status(&evaluate(&obs), "stun"), Status::Warn);
}

#[test]
fn check_command_line() {
    use crate::command::{parse, Command};
    let argv = |words: &[&str]| -> Vec<String> {
        std::iter::once("tinyderp")
            .chain(words.iter().copied())
            .map(String::from)
            .collect()
    };
    match parse(&argv(&[
        "check",
        "--json",
        "--hostname",
        "home.example.net",
        "--wan-interface",
        "eth1",
    ])) {
        Ok(Command::Check { config, json }) => {
            assert!(json);
            assert_eq!(config.hostname, "home.example.net");
            assert_eq!(config.wan_interface.as_deref(), Some("eth1"));
        }
        other => panic!("{other:?}"),
    }
    match parse(&argv(&["-hostname", "h.example.net", "check"])) {
        Ok(Command::Check { json, config }) => {
            assert!(!json);
            assert_eq!(config.wan_interface, None);
        }
        other => panic!("{other:?}"),
    }
    // --json belongs to check only.
    assert!(parse(&argv(&["--json"])).is_err());
}

#[test]
fn answered_without_a_tls_client_says_the_login_was_not_tried() {
    let mut obs = healthy(&[ip4(PUBLIC)], wan(&[PUBLIC], &[]));
    obs.derp[0].1 = DerpProbe::Answered;
    let report = evaluate(&obs);
    assert_eq!(status(&report, "derp"), Status::Ok);
    let detail = &report.step("derp").unwrap().detail;
    assert!(detail.contains("login not tried"), "{detail}");
    assert!(detail.contains("tls-client"), "{detail}");
    // A relayed record next to an answered one reports the stronger result.
    obs.derp.push((ip4(OLD), DerpProbe::Answered));
    obs.derp.swap(0, 1);
    obs.derp[1].1 = DerpProbe::Relayed;
    let report = evaluate(&obs);
    assert!(report
        .step("derp")
        .unwrap()
        .detail
        .contains("relayed a packet"));
}
