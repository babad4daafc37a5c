//! `tinyderp check`: why the relay is (or is not) reachable from the internet.
//!
//! Most relays that clients never use are not broken: the DDNS name points at an old
//! address, the line is behind carrier-grade NAT or a second router, or the firewall keeps
//! the port closed. This module turns what the probes in `net::check_probe` observed
//! ([`Observations`]) into a [`Report`] of steps, each OK, WARN, FAIL or SKIP with one line
//! saying what to do. It is pure (no sockets, no clock), so every verdict is unit-tested.

pub mod addr;
pub mod firewall;
pub mod portmap;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::proto::json::{self, Value};

pub use addr::{classify_v4, classify_v6, V4Class, V6Class};
pub use firewall::{FirewallVerdict, Proto};
pub use portmap::{PortmapRecord, PortmapView};

/// The outcome of one step. The order is the severity order (the worst step decides the
/// exit status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Nothing to check here (not OpenWrt, STUN off); does not change the exit status.
    Skip,
    /// Works.
    Ok,
    /// Works only in part, or cannot be confirmed from the router.
    Warn,
    /// Cannot work as configured.
    Fail,
}

impl Status {
    /// The word in the JSON report.
    pub fn json_word(self) -> &'static str {
        match self {
            Status::Skip => "skip",
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// The word printed in the text report.
    pub fn word(self) -> &'static str {
        match self {
            Status::Skip => "SKIP",
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// Exit status of `tinyderp check` when every step is OK (or skipped).
pub const EXIT_ALL_OK: u8 = 0;
/// Exit status when at least one step warns and none fails.
pub const EXIT_SOME_WARN: u8 = 1;
/// Exit status when at least one step fails.
pub const EXIT_SOME_FAIL: u8 = 2;

/// One checked fact: its name, outcome, what was seen, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Stable short name (`dns`, `records`, `wan-ipv4`, ...), for scripts.
    pub step: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was observed, one line.
    pub detail: String,
    /// What to do, one line; `None` when nothing needs doing.
    pub action: Option<String>,
}

impl Step {
    fn new(step: &'static str, status: Status, detail: String, action: Option<String>) -> Step {
        Step {
            step,
            status,
            detail,
            action,
        }
    }
}

/// The result of one whole check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The public name that was checked.
    pub hostname: String,
    /// The public DERP port (TCP).
    pub derp_port: u16,
    /// The public STUN port (UDP), if STUN is on.
    pub stun_port: Option<u16>,
    /// The steps, in the order they were checked.
    pub steps: Vec<Step>,
}

impl Report {
    /// The worst status of any step (OK when every step was skipped).
    pub fn overall(&self) -> Status {
        self.steps
            .iter()
            .map(|step| step.status)
            .max()
            .unwrap_or(Status::Ok)
            .max(Status::Ok)
    }

    /// 0 all OK, 1 some WARN, 2 some FAIL.
    pub fn exit_code(&self) -> u8 {
        match self.overall() {
            Status::Skip | Status::Ok => EXIT_ALL_OK,
            Status::Warn => EXIT_SOME_WARN,
            Status::Fail => EXIT_SOME_FAIL,
        }
    }

    /// The step with this name, if it was checked.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.step == name)
    }

    /// Human-readable report: one line per step, the action indented under it.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let stun = self
            .stun_port
            .map_or_else(|| "STUN off".to_string(), |port| format!("STUN {port}/udp"));
        let _ = writeln!(
            out,
            "tinyderp check: {} (DERP {}/tcp, {stun})",
            self.hostname, self.derp_port
        );
        for step in &self.steps {
            let _ = writeln!(
                out,
                "{:<4}  {:<9} {}",
                step.status.word(),
                step.step,
                step.detail
            );
            if let Some(action) = &step.action {
                let _ = writeln!(out, "{:<16}-> {action}", "");
            }
        }
        let _ = write!(
            out,
            "result: {} (exit {})",
            self.overall().word(),
            self.exit_code()
        );
        out
    }

    /// Machine-readable report (`--json`): the report plus its overall status and exit code.
    pub fn render_json(&self) -> String {
        let steps = self
            .steps
            .iter()
            .map(|step| {
                Value::object([
                    ("step", Value::from(step.step)),
                    ("status", Value::from(step.status.json_word())),
                    ("detail", Value::from(step.detail.as_str())),
                    ("action", Value::from(step.action.as_deref())),
                ])
            })
            .collect();
        json::to_string_pretty(&Value::object([
            ("hostname", Value::from(self.hostname.as_str())),
            ("derp_port", Value::from(u64::from(self.derp_port))),
            ("stun_port", Value::from(self.stun_port.map(u64::from))),
            ("steps", Value::Array(steps)),
            ("status", Value::from(self.overall().json_word())),
            ("exit", Value::from(u64::from(self.exit_code()))),
        ]))
    }

    /// One line per changed step between two reports, for the server's log.
    pub fn changes_since(&self, before: Option<&Report>) -> Vec<String> {
        let mut lines = Vec::new();
        for step in &self.steps {
            let old = before.and_then(|report| report.step(step.step));
            let changed =
                old.is_none_or(|old| old.status != step.status || old.detail != step.detail);
            if changed {
                let mut line = format!(
                    "check {}: {} {}",
                    step.step,
                    step.status.word(),
                    step.detail
                );
                if let Some(action) = &step.action {
                    let _ = write!(line, " -> {action}");
                }
                lines.push(line);
            }
        }
        lines
    }
}

/// How far the DERP probe through one public address got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DerpProbe {
    /// Logged in twice and relayed a packet from one client to the other.
    Relayed,
    /// TCP connected, but TLS (certificate pin), login or the relayed packet failed.
    Broken(String),
    /// No TCP connection (refused, unreachable, timed out).
    Unreachable(String),
    /// TCP connected, login not tried: this build has no TLS client (the `tls-client`
    /// cargo feature, left out of the router builds to save flash).
    Answered,
}

/// What the STUN probe to one public address got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StunProbe {
    /// Answered with this mapped address.
    Mapped(SocketAddr),
    /// No (valid) answer in time.
    NoAnswer(String),
}

/// The router's WAN side as read from its interfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WanView {
    /// The WAN interface: named by `--wan-interface`, or the one holding the default route.
    pub interface: Option<String>,
    /// Its IPv4 addresses.
    pub v4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses (every scope; classified here).
    pub v6: Vec<Ipv6Addr>,
    /// Every address on any interface of this host (a record naming one is "this line").
    pub local: Vec<IpAddr>,
}

impl WanView {
    fn global_v6(&self) -> Vec<Ipv6Addr> {
        self.v6
            .iter()
            .copied()
            .filter(|ip| classify_v6(*ip) == V6Class::Global)
            .collect()
    }

    fn best_v4(&self) -> Option<(Ipv4Addr, V4Class)> {
        self.v4
            .iter()
            .map(|ip| (*ip, classify_v4(*ip)))
            .min_by_key(|(_, class)| class.rank())
    }
}

/// Everything the probes saw, the input of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observations {
    /// The public name (`--hostname`), maybe an IP literal.
    pub hostname: String,
    /// The public DERP port.
    pub derp_port: u16,
    /// The public STUN port, if STUN is on.
    pub stun_port: Option<u16>,
    /// The addresses the name resolves to (A and AAAA), or why it does not.
    pub resolved: Result<Vec<IpAddr>, String>,
    /// The WAN side.
    pub wan: WanView,
    /// The firewall's answer for new DERP (TCP) and STUN (UDP) connections from the WAN.
    pub firewall: Vec<(Proto, u16, FirewallVerdict)>,
    /// Why the firewall could not be read, or that it is not there (not OpenWrt).
    pub firewall_skipped: Option<String>,
    /// DERP through each resolved address.
    pub derp: Vec<(IpAddr, DerpProbe)>,
    /// STUN through each resolved address.
    pub stun: Vec<(IpAddr, StunProbe)>,
    /// Admission is restricted and the check has no mesh key, so its logins may be refused.
    pub admission_restricted: bool,
    /// What an outside STUN server (`--check-stun-server`) says our public address is.
    pub outside: Option<OutsideView>,
    /// The running relay's port mappings on the upstream gateway (`--port-mapping`).
    pub portmap: PortmapView,
    /// Unix time of the check (to tell an expired mapping record).
    pub now_unix: u64,
}

/// The line's public address as a STUN server outside sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideView {
    /// The server asked, as configured (`HOST:PORT`).
    pub server: String,
    /// The mapped address it answered with, or why there is none.
    pub seen: Result<SocketAddr, String>,
}

impl Observations {
    /// Whether the running relay holds unexpired port mappings on the upstream gateway.
    fn portmap_held(&self) -> bool {
        matches!(&self.portmap, PortmapView::Record(record)
            if !record.ports.is_empty() && record.expires_unix > self.now_unix)
    }

    /// The public IPv4 address the outside STUN server reported, if it did.
    fn outside_v4(&self) -> Option<IpAddr> {
        self.outside
            .as_ref()
            .and_then(|view| view.seen.as_ref().ok())
            .map(SocketAddr::ip)
            .filter(IpAddr::is_ipv4)
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns observations into the report's steps.
pub fn evaluate(obs: &Observations) -> Report {
    let mut steps = Vec::new();
    let records = obs.resolved.clone().unwrap_or_default();
    steps.push(dns_step(obs));
    if obs.resolved.is_ok() {
        steps.push(records_step(obs, &records));
    }
    steps.push(wan_v4_step(obs));
    steps.push(wan_v6_step(obs, &records));
    if let Some(view) = &obs.outside {
        steps.push(outside_step(view));
    }
    if let Some(step) = portmap::portmap_step(&obs.portmap, obs.now_unix) {
        steps.push(step);
    }
    steps.push(firewall_step(obs));
    steps.push(derp_step(obs, &records));
    steps.push(stun_step(obs, &records));
    Report {
        hostname: obs.hostname.clone(),
        derp_port: obs.derp_port,
        stun_port: obs.stun_port,
        steps,
    }
}

fn dns_step(obs: &Observations) -> Step {
    match &obs.resolved {
        Err(err) => Step::new(
            "dns",
            Status::Fail,
            format!("{} does not resolve: {err}", obs.hostname),
            Some(
                "set up the DDNS name (OpenWrt: ddns-scripts, /etc/config/ddns) or fix --hostname"
                    .into(),
            ),
        ),
        Ok(addrs) if addrs.is_empty() => Step::new(
            "dns",
            Status::Fail,
            format!("{} has no A or AAAA record", obs.hostname),
            Some("publish the line's address under this name (DDNS client)".into()),
        ),
        Ok(addrs) => {
            let v4: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv4).collect();
            let v6: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv6).collect();
            Step::new(
                "dns",
                Status::Ok,
                format!(
                    "{} resolves: A {}; AAAA {}",
                    obs.hostname,
                    join(&v4),
                    join(&v6)
                ),
                None,
            )
        }
    }
}

/// Whether a probe through `ip` reached this relay.
fn reached_here(obs: &Observations, ip: IpAddr) -> bool {
    let derp_ok = obs.derp.iter().any(|(addr, probe)| {
        *addr == ip && matches!(probe, DerpProbe::Relayed | DerpProbe::Answered)
    });
    let stun_ok = obs
        .stun
        .iter()
        .any(|(addr, probe)| *addr == ip && matches!(probe, StunProbe::Mapped(_)));
    derp_ok || stun_ok
}

fn records_step(obs: &Observations, records: &[IpAddr]) -> Step {
    let wan = &obs.wan;
    let wan_desc = format!(
        "WAN {} has {}",
        wan.interface.as_deref().unwrap_or("(no default route)"),
        join(
            &wan.v4
                .iter()
                .map(|ip| IpAddr::V4(*ip))
                .chain(wan.global_v6().into_iter().map(IpAddr::V6))
                .collect::<Vec<_>>()
        )
    );
    let mut stale = Vec::new();
    let mut behind_nat = Vec::new();
    let mut fine = Vec::new();
    let best_v4 = wan.best_v4();
    let global_v6 = wan.global_v6();
    let outside_v4 = obs.outside_v4();
    for ip in records {
        let local = wan.local.contains(ip);
        match ip {
            _ if local => fine.push(*ip),
            IpAddr::V4(_) if outside_v4 == Some(*ip) => fine.push(*ip),
            IpAddr::V4(_) if outside_v4.is_some() => stale.push(*ip),
            IpAddr::V4(_) => match best_v4 {
                Some((_, V4Class::Public)) | None => stale.push(*ip),
                Some(_) if reached_here(obs, *ip) => fine.push(*ip),
                Some(_) => behind_nat.push(*ip),
            },
            IpAddr::V6(_) => {
                if global_v6.is_empty() && !reached_here(obs, *ip) {
                    stale.push(*ip);
                } else if reached_here(obs, *ip) {
                    fine.push(*ip);
                } else {
                    stale.push(*ip);
                }
            }
        }
    }
    let wan_desc = match outside_v4 {
        Some(seen) => format!("{wan_desc}; seen from outside as {seen}"),
        None => wan_desc,
    };
    if !stale.is_empty() {
        return Step::new(
            "records",
            Status::Fail,
            format!(
                "stale DDNS record: {} -> {} is not this line's address ({wan_desc})",
                obs.hostname,
                join(&stale)
            ),
            Some("update the DDNS record to the current address (OpenWrt: check the ddns-scripts service and its log)".into()),
        );
    }
    if !behind_nat.is_empty() {
        return Step::new(
            "records",
            Status::Warn,
            format!(
                "{} -> {} is not on this router ({wan_desc}, behind NAT) and nothing answered through it",
                obs.hostname,
                join(&behind_nat)
            ),
            Some("make sure the record is the upstream router's public address and that it forwards the ports here".into()),
        );
    }
    Step::new(
        "records",
        Status::Ok,
        format!("every record is this line's address: {}", join(&fine)),
        None,
    )
}

fn outside_step(view: &OutsideView) -> Step {
    match &view.seen {
        Ok(mapped) => Step::new(
            "outside",
            Status::Ok,
            format!(
                "STUN server {} sees this line as {}",
                view.server,
                mapped.ip()
            ),
            None,
        ),
        Err(why) => Step::new(
            "outside",
            Status::Warn,
            format!("STUN server {} did not answer: {why}", view.server),
            Some("check --check-stun-server (HOST:PORT of a STUN server on the internet)".into()),
        ),
    }
}

fn derp_ports(obs: &Observations) -> String {
    match obs.stun_port {
        Some(stun) => format!("TCP {} and UDP {stun}", obs.derp_port),
        None => format!("TCP {}", obs.derp_port),
    }
}

fn wan_v4_step(obs: &Observations) -> Step {
    let has_v6 = !obs.wan.global_v6().is_empty();
    match obs.wan.best_v4() {
        None => Step::new(
            "wan-ipv4",
            if has_v6 { Status::Warn } else { Status::Fail },
            format!(
                "no IPv4 address on the WAN interface {}",
                obs.wan.interface.as_deref().unwrap_or("(no default route)")
            ),
            Some("IPv4-only clients cannot reach the relay; name the WAN interface with --wan-interface if it is another one".into()),
        ),
        Some((ip, V4Class::Public)) => Step::new(
            "wan-ipv4",
            Status::Ok,
            format!("public IPv4 {ip} on the WAN: inbound IPv4 can work"),
            None,
        ),
        Some((ip, V4Class::Cgnat)) => Step::new(
            "wan-ipv4",
            if has_v6 { Status::Warn } else { Status::Fail },
            format!("carrier-grade NAT: WAN IPv4 {ip} is in 100.64.0.0/10, inbound IPv4 cannot reach this router"),
            Some(if has_v6 {
                "clients must use IPv6 (publish the AAAA record), or ask the ISP for a public IPv4".into()
            } else {
                "get IPv6 from the ISP or ask for a public IPv4 address; a relay behind CGNAT is unreachable".into()
            }),
        ),
        Some((ip, V4Class::Private)) if obs.portmap_held() => Step::new(
            "wan-ipv4",
            Status::Ok,
            format!("double NAT: WAN IPv4 {ip} is private, and the router in front forwards the ports here by port mapping"),
            None,
        ),
        Some((ip, V4Class::Private)) => Step::new(
            "wan-ipv4",
            Status::Warn,
            format!("double NAT: WAN IPv4 {ip} is private, another router is in front of this one"),
            Some(format!(
                "forward {} on the upstream router to {ip}, or put it in bridge mode",
                derp_ports(obs)
            )),
        ),
        Some((ip, class)) => Step::new(
            "wan-ipv4",
            Status::Fail,
            format!("WAN IPv4 {ip} is {}, not routable on the internet", class.describe()),
            Some("name the right interface with --wan-interface".into()),
        ),
    }
}

fn wan_v6_step(obs: &Observations, records: &[IpAddr]) -> Step {
    let global = obs.wan.global_v6();
    let aaaa: Vec<IpAddr> = records.iter().copied().filter(IpAddr::is_ipv6).collect();
    match (global.is_empty(), aaaa.is_empty()) {
        (true, true) => Step::new(
            "wan-ipv6",
            Status::Warn,
            "no global IPv6 on the WAN and no AAAA record: reachable over IPv4 only".into(),
            Some("enable IPv6 on the WAN if the ISP offers it (it is the way around CGNAT)".into()),
        ),
        (true, false) => Step::new(
            "wan-ipv6",
            Status::Fail,
            format!(
                "AAAA {} published but the WAN has no global IPv6",
                join(&aaaa)
            ),
            Some("remove the AAAA record or bring IPv6 back on the WAN".into()),
        ),
        (false, true) => Step::new(
            "wan-ipv6",
            Status::Warn,
            format!(
                "global IPv6 {} on the WAN but no AAAA record",
                join(&global)
            ),
            Some(
                "publish the AAAA record (DDNS with IPv6) so IPv6 clients can reach the relay"
                    .into(),
            ),
        ),
        (false, false) => Step::new(
            "wan-ipv6",
            Status::Ok,
            format!("global IPv6 {} on the WAN, AAAA published", join(&global)),
            None,
        ),
    }
}

fn firewall_step(obs: &Observations) -> Step {
    if let Some(reason) = &obs.firewall_skipped {
        return Step::new("firewall", Status::Skip, reason.clone(), None);
    }
    let closed: Vec<String> = obs
        .firewall
        .iter()
        .filter(|(_, _, verdict)| !verdict.accepted)
        .map(|(proto, port, verdict)| format!("{proto} {port} ({})", verdict.reason))
        .collect();
    let wan = obs.wan.interface.as_deref().unwrap_or("the WAN");
    if !closed.is_empty() {
        return Step::new(
            "firewall",
            Status::Fail,
            format!("the firewall closes {} from {wan}", closed.join(", ")),
            Some(format!(
                "open the port(s) from the wan zone (OpenWrt: a rule in /etc/config/firewall, {})",
                "then /etc/init.d/firewall reload"
            )),
        );
    }
    let uncertain = obs.firewall.iter().any(|(_, _, verdict)| verdict.uncertain);
    let open: Vec<String> = obs
        .firewall
        .iter()
        .map(|(proto, port, _)| format!("{proto} {port}"))
        .collect();
    if uncertain {
        Step::new(
            "firewall",
            Status::Warn,
            format!(
                "the firewall seems to accept {} from {wan}, but some rules were not understood",
                open.join(", ")
            ),
            Some("check with: nft list ruleset".into()),
        )
    } else {
        Step::new(
            "firewall",
            Status::Ok,
            format!("the firewall accepts {} from {wan}", open.join(", ")),
            None,
        )
    }
}

fn is_local(obs: &Observations, ip: IpAddr) -> bool {
    obs.wan.local.contains(&ip)
}

fn derp_step(obs: &Observations, records: &[IpAddr]) -> Step {
    if records.is_empty() {
        return Step::new(
            "derp",
            Status::Fail,
            "no address to dial".into(),
            Some("fix the DNS step first".into()),
        );
    }
    let mut ok = Vec::new();
    let mut answered = Vec::new();
    let mut broken = Vec::new();
    let mut dead_local = Vec::new();
    let mut dead_remote = Vec::new();
    for (ip, probe) in &obs.derp {
        match probe {
            DerpProbe::Relayed => ok.push(*ip),
            DerpProbe::Answered => answered.push(*ip),
            DerpProbe::Broken(why) => broken.push(format!("{ip}: {why}")),
            DerpProbe::Unreachable(why) if is_local(obs, *ip) => {
                dead_local.push(format!("{ip}: {why}"))
            }
            DerpProbe::Unreachable(why) => dead_remote.push(format!("{ip}: {why}")),
        }
    }
    let port = obs.derp_port;
    if !broken.is_empty() {
        let refused_hint = if obs.admission_restricted {
            "; admission is restricted and the check has no mesh key, so a refused login is expected (set --mesh-psk-file)"
        } else {
            ""
        };
        return Step::new(
            "derp",
            if obs.admission_restricted {
                Status::Warn
            } else {
                Status::Fail
            },
            format!("TCP {port} answers but DERP failed: {}", broken.join("; ")),
            Some(format!(
                "is another program on the port, or the certificate pin changed?{refused_hint}"
            )),
        );
    }
    if !dead_local.is_empty() {
        return Step::new(
            "derp",
            Status::Fail,
            format!(
                "nothing answers on TCP {port} of this router: {}",
                dead_local.join("; ")
            ),
            Some(
                "start tinyderp (/etc/init.d/tinyderp start) and check --addr; see logread".into(),
            ),
        );
    }
    if !dead_remote.is_empty() {
        let stale = records
            .iter()
            .any(|ip| !is_local(obs, *ip) && classify_is_public_line(obs));
        if stale {
            return Step::new(
                "derp",
                Status::Fail,
                format!("no relay behind {}", dead_remote.join("; ")),
                Some("fix the stale record (records step)".into()),
            );
        }
        return Step::new(
            "derp",
            Status::Warn,
            format!(
                "{}cannot reach the relay through the public address from this router: {}",
                if ok.is_empty() { String::new() } else { format!("relayed through {}; ", join(&ok)) },
                dead_remote.join("; ")
            ),
            Some(format!(
                "either the upstream router does not forward TCP {port} here or it lacks hairpin NAT; test from outside (a phone on mobile data: https://{}:{port}/)",
                obs.hostname
            )),
        );
    }
    if ok.is_empty() {
        return Step::new(
            "derp",
            Status::Ok,
            format!(
                "TCP {port} answers through {}; login not tried (built without the tls-client feature)",
                join(&answered)
            ),
            None,
        );
    }
    Step::new(
        "derp",
        Status::Ok,
        format!(
            "logged in two clients through {} and relayed a packet (pin checked)",
            join(&ok)
        ),
        None,
    )
}

/// The WAN holds a public IPv4: no NAT in front, so an unanswered non-local IPv4 record
/// is simply wrong.
fn classify_is_public_line(obs: &Observations) -> bool {
    matches!(obs.wan.best_v4(), Some((_, V4Class::Public)))
}

fn stun_step(obs: &Observations, records: &[IpAddr]) -> Step {
    let Some(port) = obs.stun_port else {
        return Step::new(
            "stun",
            Status::Skip,
            "STUN is off (--stun-port -1)".into(),
            None,
        );
    };
    if records.is_empty() {
        return Step::new(
            "stun",
            Status::Fail,
            "no address to send to".into(),
            Some("fix the DNS step first".into()),
        );
    }
    let mut ok = Vec::new();
    let mut wrong = Vec::new();
    let mut silent_local = Vec::new();
    let mut silent_remote = Vec::new();
    for (ip, probe) in &obs.stun {
        match probe {
            StunProbe::Mapped(mapped) => {
                // Dialling one of our own addresses, the kernel uses that address as the
                // source; a hairpin NAT maps us to its public or its LAN address.
                let mapped_ip = mapped.ip();
                let hairpin = match mapped_ip {
                    IpAddr::V4(v4) => classify_v4(v4) != V4Class::Public,
                    IpAddr::V6(v6) => classify_v6(v6) != V6Class::Global,
                };
                if mapped_ip == *ip || obs.wan.local.contains(&mapped_ip) {
                    ok.push(format!("{ip} (mapped {mapped})"));
                } else if hairpin {
                    ok.push(format!("{ip} (mapped {mapped}: hairpin NAT)"));
                } else {
                    wrong.push(format!("{ip} answered with mapped {mapped}"));
                }
            }
            StunProbe::NoAnswer(why) if is_local(obs, *ip) => {
                silent_local.push(format!("{ip}: {why}"))
            }
            StunProbe::NoAnswer(why) => silent_remote.push(format!("{ip}: {why}")),
        }
    }
    if !wrong.is_empty() {
        return Step::new(
            "stun",
            Status::Warn,
            format!("unexpected mapped address: {}", wrong.join("; ")),
            Some("another STUN server answers on this address, or NAT rewrites it; check the port forward".into()),
        );
    }
    if !silent_local.is_empty() {
        return Step::new(
            "stun",
            Status::Fail,
            format!(
                "no STUN answer on UDP {port} of this router: {}",
                silent_local.join("; ")
            ),
            Some("start tinyderp and check --stun-port".into()),
        );
    }
    if !silent_remote.is_empty() {
        return Step::new(
            "stun",
            if classify_is_public_line(obs) { Status::Fail } else { Status::Warn },
            format!("no STUN answer through the public address: {}", silent_remote.join("; ")),
            Some(format!("forward UDP {port} on the upstream router, or it lacks hairpin NAT: test from outside with tailscale netcheck")),
        );
    }
    Step::new(
        "stun",
        Status::Ok,
        format!("answered through {}", ok.join(", ")),
        None,
    )
}
