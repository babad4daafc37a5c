//! DNS address lookups (RFC 1035), the subset a stub resolver needs: A and AAAA queries, their
//! answers with CNAME chains, and the system's `/etc/resolv.conf` and `/etc/hosts`.
//!
//! The binary resolves names in two places only (`tinyderp check`'s lookups and an
//! admission or mesh URL's host), and musl's resolver with its address sort cost about
//! 22 KB of flash on MIPS; this codec and `net::dns` do the same job in a fraction of it.
//!
//! Message layout (all integers big-endian):
//!
//! ```text
//! +-------------+-------------+-------------+-------------+-------------+-------------+
//! | id u16      | flags u16   | qdcount u16 | ancount u16 | nscount u16 | arcount u16 |
//! +-------------+-------------+-------------+-------------+-------------+-------------+
//! | question: name (length-prefixed labels, 0-terminated) | qtype u16 | qclass u16      |
//! | answers:  name (labels or a 2-byte pointer 0b11 + 14-bit offset) | type u16 |       |
//! |           class u16 | ttl u32 | rdlength u16 | rdata                                |
//! +-----------------------------------------------------------------------------------+
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the fixed message header.
pub const HEADER_LEN: usize = 12;
/// Record type of an IPv4 address.
pub const TYPE_A: u16 = 1;
/// Record type of an alias: the rdata is the canonical name.
pub const TYPE_CNAME: u16 = 5;
/// Record type of an IPv6 address.
pub const TYPE_AAAA: u16 = 28;
/// The Internet class, the only one asked for.
const CLASS_IN: u16 = 1;
/// Flags of a query: standard query, recursion desired (bit 8).
const QUERY_FLAGS: u16 = 0x0100;
/// Flag bit of a response (QR).
const FLAG_RESPONSE: u16 = 0x8000;
/// Flag bit of a truncated answer (TC): the whole answer needs TCP.
const FLAG_TRUNCATED: u16 = 0x0200;
/// Longest label on the wire (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;
/// Longest name on the wire, length bytes and the terminating zero included.
const MAX_NAME_WIRE: usize = 255;
/// Most compression pointers followed in one name: more means a loop or a hostile answer.
const MAX_POINTERS: usize = 32;
/// Most CNAME hops followed from the asked name to its addresses.
const MAX_CNAME_HOPS: usize = 8;
/// Most name servers read from resolv.conf, as in every libc.
pub const MAX_NAMESERVERS: usize = 3;
/// Most search domains read from resolv.conf (the rest are ignored, as musl does).
pub const MAX_SEARCH: usize = 6;
/// Largest UDP answer read: the classic DNS limit without EDNS.
pub const MAX_UDP_ANSWER: usize = 512;

/// Why a name could not be looked up or an answer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name is not a valid DNS name (empty label, label over 63 bytes, too long).
    BadName,
    /// The answer is not a well-formed DNS message.
    Malformed,
    /// The answer does not match the question (another id, name or type).
    Mismatch,
    /// The server says the name does not exist (NXDOMAIN).
    NoSuchName,
    /// The answer was cut to fit UDP; the addresses would need TCP.
    Truncated,
    /// The server failed or refused (the response code is kept).
    Server(u8),
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::BadName => f.write_str("not a valid host name"),
            DnsError::Malformed => f.write_str("malformed DNS answer"),
            DnsError::Mismatch => f.write_str("DNS answer to another question"),
            DnsError::NoSuchName => f.write_str("no such host name"),
            DnsError::Truncated => f.write_str("DNS answer truncated (too large for UDP)"),
            DnsError::Server(2) => f.write_str("DNS server failure (SERVFAIL)"),
            DnsError::Server(5) => f.write_str("DNS server refused the query (REFUSED)"),
            DnsError::Server(code) => write!(f, "DNS server error (response code {code})"),
        }
    }
}

/// Writes a query for `name`'s records of `qtype` with the given `id`.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(name.len()).saturating_add(6));
    for word in [id, QUERY_FLAGS, 1, 0, 0, 0] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME_WIRE.saturating_sub(2) {
        return Err(DnsError::BadName);
    }
    for label in name.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| DnsError::BadName)?;
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(DnsError::BadName);
        }
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// `base + off`, or `Malformed` when that overflows.
fn offset(base: usize, off: usize) -> Result<usize, DnsError> {
    base.checked_add(off).ok_or(DnsError::Malformed)
}

/// Reads a big-endian u16 at `at`.
fn read_u16(msg: &[u8], at: usize) -> Result<u16, DnsError> {
    match msg.get(at..offset(at, 2)?) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(DnsError::Malformed),
    }
}

/// Reads the (possibly compressed) name at `at`: its lowercased dotted text and the
/// offset just past it in the record.
fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut end = None;
    let mut wire_len = 1usize;
    let mut pointers = 0usize;
    loop {
        let len = usize::from(*msg.get(at).ok_or(DnsError::Malformed)?);
        if len == 0 {
            let past = offset(at, 1)?;
            return Ok((name, end.unwrap_or(past)));
        }
        if len & 0xc0 == 0xc0 {
            let target = usize::from(read_u16(msg, at)? & 0x3fff);
            pointers = pointers.saturating_add(1);
            // A pointer must go backwards, so following them always ends.
            if target >= at || pointers > MAX_POINTERS {
                return Err(DnsError::Malformed);
            }
            if end.is_none() {
                end = Some(offset(at, 2)?);
            }
            at = target;
            continue;
        }
        if len > MAX_LABEL {
            return Err(DnsError::Malformed);
        }
        wire_len = offset(wire_len, offset(len, 1)?)?;
        let start = offset(at, 1)?;
        let label = msg
            .get(start..offset(start, len)?)
            .ok_or(DnsError::Malformed)?;
        if wire_len > MAX_NAME_WIRE {
            return Err(DnsError::Malformed);
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        at = offset(start, len)?;
    }
}

/// The name as it is compared: lowercase, without the final dot.
fn canonical(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Reads the answer to the query `encode_query(id, name, qtype)`: the addresses of `name`
/// (following CNAMEs), in the order the server gave them. An empty list means the name
/// exists without records of that type.
pub fn parse_answer(msg: &[u8], id: u16, name: &str, qtype: u16) -> Result<Vec<IpAddr>, DnsError> {
    if read_u16(msg, 0)? != id {
        return Err(DnsError::Mismatch);
    }
    let flags = read_u16(msg, 2)?;
    if flags & FLAG_RESPONSE == 0 {
        return Err(DnsError::Mismatch);
    }
    if flags & FLAG_TRUNCATED != 0 {
        return Err(DnsError::Truncated);
    }
    match flags & 0x000f {
        0 => {}
        3 => return Err(DnsError::NoSuchName),
        code => return Err(DnsError::Server(u8::try_from(code).unwrap_or(u8::MAX))),
    }
    if read_u16(msg, 4)? != 1 {
        return Err(DnsError::Mismatch);
    }
    let answers = read_u16(msg, 6)?;
    let asked = canonical(name);
    let (qname, mut at) = read_name(msg, HEADER_LEN)?;
    if qname != asked || read_u16(msg, at)? != qtype || read_u16(msg, offset(at, 2)?)? != CLASS_IN {
        return Err(DnsError::Mismatch);
    }
    at = offset(at, 4)?;
    // Owner, type and rdata of each answer record; the chain is walked afterwards because
    // servers may list a CNAME after the records it points to.
    let mut records: Vec<(String, u16, IpAddr)> = Vec::new();
    let mut aliases: Vec<(String, String)> = Vec::new();
    for _ in 0..answers {
        let (owner, next) = read_name(msg, at)?;
        let rtype = read_u16(msg, next)?;
        let class = read_u16(msg, offset(next, 2)?)?;
        let rdlen = usize::from(read_u16(msg, offset(next, 8)?)?);
        let start = offset(next, 10)?;
        at = offset(start, rdlen)?;
        let rdata = msg.get(start..at).ok_or(DnsError::Malformed)?;
        if class != CLASS_IN {
            continue;
        }
        match (rtype, rdata.len()) {
            (TYPE_A, 4) => {
                let octets: [u8; 4] = rdata.try_into().map_err(|_| DnsError::Malformed)?;
                records.push((owner, rtype, IpAddr::V4(Ipv4Addr::from(octets))));
            }
            (TYPE_AAAA, 16) => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| DnsError::Malformed)?;
                records.push((owner, rtype, IpAddr::V6(Ipv6Addr::from(octets))));
            }
            (TYPE_A | TYPE_AAAA, _) => return Err(DnsError::Malformed),
            (TYPE_CNAME, _) => aliases.push((owner, read_name(msg, start)?.0)),
            _ => {}
        }
    }
    let mut current = asked;
    let mut found = Vec::new();
    for _ in 0..=MAX_CNAME_HOPS {
        found.extend(
            records
                .iter()
                .filter(|(owner, rtype, _)| *owner == current && *rtype == qtype)
                .map(|(_, _, ip)| *ip),
        );
        if !found.is_empty() {
            break;
        }
        match aliases.iter().find(|(owner, _)| *owner == current) {
            Some((_, target)) => current = target.clone(),
            None => break,
        }
    }
    Ok(found)
}

/// What `/etc/resolv.conf` says about where and how to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    /// Name servers in file order (port 53); 127.0.0.1 when the file names none.
    pub nameservers: Vec<IpAddr>,
    /// Search domains (from the last `search` or `domain` line).
    pub search: Vec<String>,
    /// A name with at least this many dots is asked as it is, without the search list.
    pub ndots: usize,
    /// Seconds to wait for an answer in all, per name tried (`options timeout:`).
    pub timeout_secs: u64,
    /// Sends of each query within the timeout (`options attempts:`).
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> ResolvConf {
        ResolvConf {
            nameservers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            search: Vec::new(),
            ndots: 1,
            timeout_secs: 5,
            attempts: 2,
        }
    }
}

/// Reads resolv.conf text. Unknown lines and options are skipped, as every libc does.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf {
        nameservers: Vec::new(),
        ..ResolvConf::default()
    };
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A link-local IPv6 server may carry a zone (`fe80::1%eth0`); the zone is
                // dropped, so such a server is not reached (musl needs a numeric zone too).
                let text = words.next().unwrap_or("");
                let text = text.split('%').next().unwrap_or(text);
                if let Ok(ip) = text.parse::<IpAddr>() {
                    if conf.nameservers.len() < MAX_NAMESERVERS {
                        conf.nameservers.push(ip);
                    }
                }
            }
            Some("search" | "domain") => {
                conf.search = words.take(MAX_SEARCH).map(canonical).collect();
            }
            Some("options") => {
                for option in words {
                    let (key, value) = option.split_once(':').unwrap_or((option, ""));
                    let Ok(value) = value.parse::<u32>() else {
                        continue;
                    };
                    match key {
                        "ndots" => conf.ndots = value.min(15) as usize,
                        "timeout" => conf.timeout_secs = u64::from(value.clamp(1, 60)),
                        "attempts" => conf.attempts = value.clamp(1, 10),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if conf.nameservers.is_empty() {
        conf.nameservers.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    conf
}

/// The addresses `/etc/hosts` text gives `name` (case-insensitive), in file order.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = canonical(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words
            .next()
            .map(|w| w.split('%').next().unwrap_or(w).parse())
        else {
            continue;
        };
        if words.any(|alias| canonical(alias) == name) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// The names to ask for `name`, in order: as it is when it has at least `ndots` dots or ends
/// with a dot, else each search domain appended and then the name as it is.
pub fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    let dots = name.bytes().filter(|&b| b == b'.').count();
    let mut names = Vec::new();
    if dots < conf.ndots && !name.ends_with('.') {
        names.extend(conf.search.iter().map(|domain| format!("{name}.{domain}")));
    }
    names.push(name.to_string());
    names
}

/// RFC 6724's precedence of a destination (its default policy table): loopback, then global
/// IPv6, then IPv4, then 6to4, Teredo and unique-local IPv6.
pub fn precedence(ip: &IpAddr) -> u8 {
    let v6 = match ip {
        IpAddr::V4(_) => return 35,
        IpAddr::V6(v6) => v6,
    };
    let seg = v6.segments();
    match seg {
        [0, 0, 0, 0, 0, 0, 0, 1] => 50,
        [0, 0, 0, 0, 0, 0xffff, _, _] => 35,
        [0x2002, ..] => 30,
        [0x2001, 0, ..] => 5,
        [first, ..] if first & 0xfe00 == 0xfc00 => 3,
        [0, 0, 0, 0, 0, 0, _, _] | [0x3ffe, ..] => 1,
        [first, ..] if first & 0xffc0 == 0xfec0 => 1,
        _ => 40,
    }
}

/// Orders addresses as the C library does before connecting (RFC 6724, its first and
/// sixth rules): those the system has a route to first, then by [`precedence`]; the
/// order of equals is kept. `usable` says whether a route exists. A list of IPv4 addresses
/// only is left as it is, as musl leaves it.
pub fn sort_by_preference(ips: &mut [IpAddr], usable: impl Fn(&IpAddr) -> bool) {
    if ips.iter().all(IpAddr::is_ipv4) {
        return;
    }
    ips.sort_by_cached_key(|ip| (!usable(ip), std::cmp::Reverse(precedence(ip))));
}

#[cfg(test)]
mod tests;
