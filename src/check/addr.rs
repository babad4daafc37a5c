//! Address classes that decide what a WAN address means for inbound reachability:
//! public, private (a router in front: double NAT), 100.64.0.0/10 (carrier-grade NAT).
//!
//! Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)
//! count as public: they stand for public addresses in examples and in the tests'
//! network namespaces.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What an IPv4 WAN address says about the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4Class {
    /// Routable on the internet.
    Public,
    /// RFC 1918: another router is in front (double NAT).
    Private,
    /// RFC 6598 shared address space 100.64.0.0/10: carrier-grade NAT.
    Cgnat,
    /// 169.254.0.0/16: no DHCP lease.
    LinkLocal,
    /// Loopback, unspecified, multicast, broadcast or reserved.
    Unusable,
}

impl V4Class {
    /// Preference when the WAN has several addresses (lowest first).
    pub fn rank(self) -> u8 {
        match self {
            V4Class::Public => 0,
            V4Class::Private => 1,
            V4Class::Cgnat => 2,
            V4Class::LinkLocal => 3,
            V4Class::Unusable => 4,
        }
    }

    /// Words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            V4Class::Public => "public",
            V4Class::Private => "private (RFC 1918)",
            V4Class::Cgnat => "carrier-grade NAT space (100.64.0.0/10)",
            V4Class::LinkLocal => "link-local (no DHCP lease)",
            V4Class::Unusable => "loopback or reserved",
        }
    }
}

/// Classifies an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> V4Class {
    let [a, b, ..] = ip.octets();
    if ip.is_private() {
        V4Class::Private
    } else if a == 100 && (64..128).contains(&b) {
        V4Class::Cgnat
    } else if ip.is_link_local() {
        V4Class::LinkLocal
    } else if ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || a >= 240
    {
        V4Class::Unusable
    } else {
        V4Class::Public
    }
}

/// What an IPv6 WAN address says about the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V6Class {
    /// Global unicast (2000::/3): reachable if the firewall lets it.
    Global,
    /// fc00::/7 unique local: inside the site only.
    UniqueLocal,
    /// fe80::/10.
    LinkLocal,
    /// Loopback, unspecified, multicast or other.
    Unusable,
}

/// Classifies an IPv6 address.
pub fn classify_v6(ip: Ipv6Addr) -> V6Class {
    let first = ip.segments().first().copied().unwrap_or(0);
    if first & 0xe000 == 0x2000 {
        V6Class::Global
    } else if first & 0xfe00 == 0xfc00 {
        V6Class::UniqueLocal
    } else if first & 0xffc0 == 0xfe80 {
        V6Class::LinkLocal
    } else {
        V6Class::Unusable
    }
}

/// The interface holding the IPv4 default route, from `/proc/net/route` text.
pub fn default_route_v4(proc_net_route: &str) -> Option<String> {
    proc_net_route.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let iface = fields.next()?;
        let destination = fields.next()?;
        let _gateway = fields.next()?;
        let _flags = fields.next()?;
        let mask = line.split_whitespace().nth(7)?;
        (destination == "00000000" && mask == "00000000").then(|| iface.to_string())
    })
}

/// The IPv4 default gateway (where PCP/NAT-PMP requests go), from `/proc/net/route` text.
/// The kernel prints the network-order address as a native-endian hex word, so the bytes
/// are swapped back on little-endian hosts.
pub fn default_gateway_v4(proc_net_route: &str) -> Option<std::net::Ipv4Addr> {
    proc_net_route.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let destination = fields.get(1)?;
        let gateway = fields.get(2)?;
        let mask = fields.get(7)?;
        if *destination != "00000000" || *mask != "00000000" {
            return None;
        }
        let raw = u32::from_str_radix(gateway, 16).ok()?;
        let ip = std::net::Ipv4Addr::from(if cfg!(target_endian = "little") {
            raw.swap_bytes()
        } else {
            raw
        });
        (!ip.is_unspecified()).then_some(ip)
    })
}

/// The interface holding the IPv6 default route, from `/proc/net/ipv6_route` text.
pub fn default_route_v6(proc_net_ipv6_route: &str) -> Option<String> {
    proc_net_ipv6_route.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let destination = fields.first()?;
        let prefix = fields.get(1)?;
        let iface = fields.last()?;
        let is_default = destination.bytes().all(|b| b == b'0') && *prefix == "00";
        (is_default && *iface != "lo").then(|| (*iface).to_string())
    })
}
