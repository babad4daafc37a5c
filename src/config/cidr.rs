//! IP ranges for `--metrics-allow`: parsing (`192.168.1.0/24`, `fd00::/8`, a bare
//! address) and matching, with IPv4-mapped IPv6 peers matched as IPv4.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::error::CidrError;

/// An IP range such as `192.168.1.0/24` or `fd00::/8`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address with the host bits cleared.
    network: IpAddr,
    /// Number of leading bits that must match (0-32 for IPv4, 0-128 for IPv6).
    prefix_len: u8,
}

impl Cidr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// True when `ip` lies in this range. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
    /// what a dual-stack listener reports for IPv4 peers) are matched as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical_ip(ip)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix_len) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix_len) == u128::from(network)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `IP/LEN` or a bare `IP` (a single host). Host bits are cleared, as in
    /// Go's `netip.Prefix.Masked`.
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError::Malformed(String::from(text));
        let (ip_text, len_text) = match text.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (text, None),
        };
        let ip = IpAddr::from_str(ip_text).map_err(|_| bad())?;
        if let IpAddr::V6(v6) = ip {
            if v6.to_ipv4_mapped().is_some() {
                return Err(CidrError::Mapped(String::from(text)));
            }
        }
        let max_len: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => max_len,
            Some(len) if len.bytes().all(|b| b.is_ascii_digit()) && !len.is_empty() => {
                match len.parse::<u8>() {
                    Ok(len) if len <= max_len => len,
                    _ => {
                        return Err(CidrError::PrefixLength {
                            value: String::from(text),
                            max: max_len,
                        })
                    }
                }
            }
            Some(_) => return Err(bad()),
        };
        let network = match ip {
            IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(ip), prefix_len))),
            IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(ip), prefix_len))),
        };
        Ok(Cidr {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Keeps the top `prefix_len` bits of an IPv4 address.
fn mask_v4(bits: u32, prefix_len: u8) -> u32 {
    let host_bits = 32u32.saturating_sub(u32::from(prefix_len));
    bits & u32::MAX.checked_shl(host_bits).unwrap_or(0)
}

/// Keeps the top `prefix_len` bits of an IPv6 address.
fn mask_v6(bits: u128, prefix_len: u8) -> u128 {
    let host_bits = 128u32.saturating_sub(u32::from(prefix_len));
    bits & u128::MAX.checked_shl(host_bits).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses become plain IPv4; everything else is unchanged.
pub(super) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_contains_and_display() {
        let lan: Cidr = "192.168.1.77/24".parse().unwrap();
        assert_eq!(lan.to_string(), "192.168.1.0/24");
        assert!(lan.contains("192.168.1.200".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(!lan.contains("fd00::1".parse().unwrap()));

        let host: Cidr = "10.0.0.1".parse().unwrap();
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains("10.0.0.1".parse().unwrap()));
        assert!(!host.contains("10.0.0.2".parse().unwrap()));

        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));

        let ula: Cidr = "fd00::/8".parse().unwrap();
        assert!(ula.contains("fdab:1::2".parse().unwrap()));
        assert!(!ula.contains("fe80::1".parse().unwrap()));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains("2001:db8::1".parse().unwrap()));

        assert!(
            "::ffff:10.1.0.0/112".parse::<Cidr>().is_err(),
            "mapped ranges are refused"
        );
        for text in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "lan",
            "10.0.0.0/+8",
        ] {
            assert!(text.parse::<Cidr>().is_err(), "{text:?} should fail");
        }
    }
}
