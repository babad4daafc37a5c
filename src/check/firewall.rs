//! Does the firewall let a new DERP (TCP) or STUN (UDP) connection in from the WAN?
//!
//! OpenWrt's fw4 compiles /etc/config/firewall into an nftables ruleset; what counts is
//! what the kernel runs, so this walks the ruleset as `nft -j list ruleset` prints it
//! (the probe runs nft, this stays pure). A packet — new, arriving on the WAN interface,
//! to the port — is followed through every `filter` base chain on the `input` hook of its
//! family, with jumps, gotos, returns, verdict maps on `ct state` and the chain policy.
//! Matches it cannot judge (source address sets, marks, ...) are skipped and make the
//! answer "uncertain" rather than wrong; source-address matches count as not matching,
//! since a rule for some sources does not open the port to the internet.

use std::collections::HashMap;
use std::fmt;

use crate::proto::json::Value;

/// Nested jumps followed before giving up (nft itself allows 16).
const MAX_JUMP_DEPTH: usize = 16;

/// Transport protocol of the probed port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// DERP.
    Tcp,
    /// STUN.
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        })
    }
}

/// The packet the firewall is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Interface it arrives on (the WAN).
    pub iifname: String,
    /// TCP or UDP.
    pub proto: Proto,
    /// Destination port.
    pub dport: u16,
    /// IPv6 (else IPv4).
    pub v6: bool,
}

/// The firewall's answer for one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallVerdict {
    /// Every input base chain accepts it.
    pub accepted: bool,
    /// Some rule could not be judged and was skipped.
    pub uncertain: bool,
    /// Which chain or rule decided, for the report.
    pub reason: String,
}

#[derive(Default)]
struct Chain<'a> {
    hook: Option<&'a str>,
    kind: Option<&'a str>,
    prio: i64,
    policy: Option<&'a str>,
    rules: Vec<&'a [Value]>,
}

type ChainKey<'a> = (&'a str, &'a str, &'a str);

/// Ends of walking one chain.
enum Outcome {
    Accept,
    Drop(String),
    /// Fell off the end or returned.
    Continue,
}

struct Walk<'a> {
    chains: HashMap<ChainKey<'a>, Chain<'a>>,
    packet: &'a Packet,
    uncertain: bool,
}

/// Judges `packet` against a ruleset in nft's JSON form. `None` when no filter chain is
/// attached to the input hook of the packet's family (nothing filters input).
pub fn judge(ruleset: &Value, packet: &Packet) -> Option<FirewallVerdict> {
    let items = ruleset.get("nftables")?.as_array()?;
    let mut chains: HashMap<ChainKey<'_>, Chain<'_>> = HashMap::new();
    for item in items {
        if let Some(chain) = item.get("chain") {
            let (Some(family), Some(table), Some(name)) = (
                chain.get("family").and_then(Value::as_str),
                chain.get("table").and_then(Value::as_str),
                chain.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let entry = chains.entry((family, table, name)).or_default();
            entry.hook = chain.get("hook").and_then(Value::as_str);
            entry.kind = chain.get("type").and_then(Value::as_str);
            entry.prio = chain.get("prio").and_then(Value::as_i64).unwrap_or(0);
            entry.policy = chain.get("policy").and_then(Value::as_str);
        } else if let Some(rule) = item.get("rule") {
            let (Some(family), Some(table), Some(name), Some(expr)) = (
                rule.get("family").and_then(Value::as_str),
                rule.get("table").and_then(Value::as_str),
                rule.get("chain").and_then(Value::as_str),
                rule.get("expr").and_then(Value::as_array),
            ) else {
                continue;
            };
            chains
                .entry((family, table, name))
                .or_default()
                .rules
                .push(expr.as_slice());
        }
    }
    let families: [&str; 2] = if packet.v6 {
        ["inet", "ip6"]
    } else {
        ["inet", "ip"]
    };
    let mut bases: Vec<(i64, ChainKey<'_>)> = chains
        .iter()
        .filter(|((family, _, _), chain)| {
            families.contains(family)
                && chain.hook == Some("input")
                && chain.kind.is_none_or(|kind| kind == "filter")
        })
        .map(|(key, chain)| (chain.prio, *key))
        .collect();
    if bases.is_empty() {
        return None;
    }
    bases.sort();
    let mut walk = Walk {
        chains,
        packet,
        uncertain: false,
    };
    let mut deciders = Vec::new();
    for (_, key) in bases {
        let outcome = walk.chain(key, 0);
        let policy = walk.chains.get(&key).and_then(|chain| chain.policy);
        let label = format!("{} {} {}", key.0, key.1, key.2);
        match outcome {
            Outcome::Accept => deciders.push(format!("accepted in {label}")),
            Outcome::Drop(why) => {
                return Some(FirewallVerdict {
                    accepted: false,
                    uncertain: walk.uncertain,
                    reason: why,
                });
            }
            Outcome::Continue if policy == Some("drop") => {
                return Some(FirewallVerdict {
                    accepted: false,
                    uncertain: walk.uncertain,
                    reason: format!("policy drop of chain {label}"),
                });
            }
            Outcome::Continue => deciders.push(format!("policy accept of {label}")),
        }
    }
    Some(FirewallVerdict {
        accepted: true,
        uncertain: walk.uncertain,
        reason: deciders.join(", "),
    })
}

/// A three-valued match result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown,
}

impl Walk<'_> {
    fn chain(&mut self, key: ChainKey<'_>, depth: usize) -> Outcome {
        if depth > MAX_JUMP_DEPTH {
            self.uncertain = true;
            return Outcome::Continue;
        }
        let Some(rules) = self
            .chains
            .get(&(key.0, key.1, key.2))
            .map(|chain| chain.rules.clone())
        else {
            self.uncertain = true;
            return Outcome::Continue;
        };
        for expr in rules {
            match self.rule(key, expr, depth) {
                RuleEnd::Next => {}
                RuleEnd::Return => return Outcome::Continue,
                RuleEnd::Accept => return Outcome::Accept,
                RuleEnd::Drop(why) => return Outcome::Drop(why),
            }
        }
        Outcome::Continue
    }

    fn rule(&mut self, key: ChainKey<'_>, exprs: &[Value], depth: usize) -> RuleEnd {
        let mut unknown = false;
        for expr in exprs {
            // An expression is an object of one member (the first by name, if more).
            let first = expr
                .as_object()
                .and_then(|map| map.sorted().into_iter().next());
            let Some((kind, body)) = first else {
                continue;
            };
            match kind {
                "match" => match self.matches(body) {
                    Tri::Yes => {}
                    Tri::No => return RuleEnd::Next,
                    Tri::Unknown => unknown = true,
                },
                "counter" | "log" | "limit" | "comment" | "quota" => {}
                "accept" | "drop" | "reject" | "jump" | "goto" | "return" | "vmap" if unknown => {
                    self.uncertain = true;
                    return RuleEnd::Next;
                }
                "accept" => return RuleEnd::Accept,
                "drop" | "reject" => {
                    return RuleEnd::Drop(format!("{kind} in chain {} {} {}", key.0, key.1, key.2))
                }
                "return" => return RuleEnd::Return,
                "jump" | "goto" => {
                    let Some(target) = body.get("target").and_then(Value::as_str) else {
                        self.uncertain = true;
                        return RuleEnd::Next;
                    };
                    return match self.chain((key.0, key.1, target), depth.saturating_add(1)) {
                        Outcome::Accept => RuleEnd::Accept,
                        Outcome::Drop(why) => RuleEnd::Drop(why),
                        Outcome::Continue if kind == "goto" => RuleEnd::Return,
                        Outcome::Continue => RuleEnd::Next,
                    };
                }
                "vmap" => return self.vmap(key, body, depth),
                // Packet changes (mark, nat, ...) do not decide filtering.
                "mangle" | "snat" | "dnat" | "masquerade" | "redirect" | "notrack" | "set" => {}
                _ => unknown = true,
            }
        }
        if unknown {
            self.uncertain = true;
        }
        RuleEnd::Next
    }

    /// `ct state vmap { established : accept, ... }`: a new packet finds its verdict
    /// under `new`, or none.
    fn vmap(&mut self, key: ChainKey<'_>, body: &Value, depth: usize) -> RuleEnd {
        let is_ct_state = body
            .get("key")
            .and_then(|k| k.get("ct"))
            .and_then(|ct| ct.get("key"))
            .and_then(Value::as_str)
            == Some("state");
        let Some(entries) = body
            .get("data")
            .and_then(|d| d.get("set"))
            .and_then(Value::as_array)
        else {
            self.uncertain = true;
            return RuleEnd::Next;
        };
        if !is_ct_state {
            self.uncertain = true;
            return RuleEnd::Next;
        }
        for entry in entries {
            let Some(pair) = entry.as_array() else {
                continue;
            };
            let (Some(state), Some(verdict)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            if state.as_str() == Some("new") {
                return self.rule(key, std::slice::from_ref(verdict), depth);
            }
        }
        RuleEnd::Next
    }

    fn matches(&self, body: &Value) -> Tri {
        let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
        let (Some(left), Some(right)) = (body.get("left"), body.get("right")) else {
            return Tri::Unknown;
        };
        let result = self.match_left(left, right);
        match (op, result) {
            ("!=", Tri::Yes) => Tri::No,
            ("!=", Tri::No) => Tri::Yes,
            ("==" | "in" | "!=", result) => result,
            _ => Tri::Unknown,
        }
    }

    fn match_left(&self, left: &Value, right: &Value) -> Tri {
        let packet = self.packet;
        let l4 = packet.proto.name();
        if let Some(meta) = left.get("meta") {
            return match meta.get("key").and_then(Value::as_str) {
                Some("iifname" | "iif") => value_is(right, &Actual::Str(&packet.iifname)),
                Some("nfproto") => {
                    value_is(right, &Actual::Str(if packet.v6 { "ipv6" } else { "ipv4" }))
                }
                Some("l4proto") => value_is(right, &Actual::Str(l4)),
                _ => Tri::Unknown,
            };
        }
        if let Some(ct) = left.get("ct") {
            return match ct.get("key").and_then(Value::as_str) {
                Some("state") => value_is(right, &Actual::Str("new")),
                // A connection to the router itself is not a port forward.
                Some("status") => value_is(right, &Actual::Str("none")),
                _ => Tri::Unknown,
            };
        }
        if let Some(payload) = left.get("payload") {
            let protocol = payload
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("");
            let field = payload.get("field").and_then(Value::as_str).unwrap_or("");
            return match (protocol, field) {
                ("ip", _) if packet.v6 => Tri::No,
                ("ip6", _) if !packet.v6 => Tri::No,
                ("ip", "protocol") | ("ip6", "nexthdr") => value_is(right, &Actual::Str(l4)),
                ("ip" | "ip6", "saddr") => Tri::No,
                ("tcp" | "udp", _) if protocol != l4 => Tri::No,
                ("tcp" | "udp" | "th", "dport") => {
                    value_is(right, &Actual::Num(u64::from(packet.dport)))
                }
                ("tcp" | "udp" | "th", "sport") => Tri::No,
                ("icmp" | "icmpv6" | "igmp" | "sctp" | "dccp" | "esp" | "ah", _) => Tri::No,
                _ => Tri::Unknown,
            };
        }
        if let Some(and) = left.get("&").and_then(Value::as_array) {
            // `tcp flags syn / fin,syn,rst,ack`: a new TCP connection starts with a bare SYN.
            let is_tcp_flags = and.first().and_then(|v| v.get("payload")).is_some_and(|p| {
                p.get("protocol").and_then(Value::as_str) == Some("tcp")
                    && p.get("field").and_then(Value::as_str) == Some("flags")
            });
            if is_tcp_flags {
                if packet.proto != Proto::Tcp {
                    return Tri::No;
                }
                return value_is(right, &Actual::Str("syn"));
            }
        }
        Tri::Unknown
    }
}

enum RuleEnd {
    Next,
    Return,
    Accept,
    Drop(String),
}

enum Actual<'a> {
    Str(&'a str),
    Num(u64),
}

/// Does `right` (a value, set, list or range) hold the actual value?
fn value_is(right: &Value, actual: &Actual<'_>) -> Tri {
    match right {
        Value::String(text) => match actual {
            Actual::Str(have) => match text.strip_suffix('*') {
                Some(prefix) => bool_tri(have.starts_with(prefix)),
                None => bool_tri(text == have),
            },
            Actual::Num(have) => match text.parse::<u64>() {
                Ok(want) => bool_tri(want == *have),
                Err(_) => service_port(text).map_or(Tri::Unknown, |want| bool_tri(want == *have)),
            },
        },
        Value::Number(number) => match actual {
            Actual::Num(have) => bool_tri(number.as_u64() == Some(*have)),
            Actual::Str(_) => Tri::Unknown,
        },
        Value::Array(items) => any_of(items, actual),
        Value::Object(map) => {
            if let Some(items) = map.get("set").and_then(Value::as_array) {
                any_of(items, actual)
            } else if let Some(range) = map.get("range").and_then(Value::as_array) {
                match (
                    range.first().and_then(Value::as_u64),
                    range.get(1).and_then(Value::as_u64),
                    actual,
                ) {
                    (Some(low), Some(high), Actual::Num(have)) => {
                        bool_tri((low..=high).contains(have))
                    }
                    _ => Tri::Unknown,
                }
            } else {
                Tri::Unknown
            }
        }
        _ => Tri::Unknown,
    }
}

fn any_of(items: &[Value], actual: &Actual<'_>) -> Tri {
    let mut result = Tri::No;
    for item in items {
        match value_is(item, actual) {
            Tri::Yes => return Tri::Yes,
            Tri::Unknown => result = Tri::Unknown,
            Tri::No => {}
        }
    }
    result
}

fn bool_tri(yes: bool) -> Tri {
    if yes {
        Tri::Yes
    } else {
        Tri::No
    }
}

/// nft prints well-known ports by service name unless told not to (`-nn`); the probe
/// asks for numbers, this only covers a hand-written ruleset.
fn service_port(name: &str) -> Option<u64> {
    match name {
        "https" => Some(443),
        "http" => Some(80),
        "stun" => Some(3478),
        _ => None,
    }
}
