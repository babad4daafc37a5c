//! Host name lookups without the C library's resolver: `/etc/hosts`, then the name servers of
//! `/etc/resolv.conf` over UDP, A and AAAA asked at once (`proto::dns` holds the codec).
//!
//! Names are looked up for `tinyderp check` (the relay's own name, the outside STUN server),
//! an admission URL's host and a mesh peer. On the routers this replaces musl's
//! `getaddrinfo`, which with its address sort cost about 22 KB of flash.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use smol::future::FutureExt;
use smol::net::UdpSocket;

use crate::proto::dns::{self, DnsError, ResolvConf, MAX_UDP_ANSWER, TYPE_A, TYPE_AAAA};

/// Where the name servers and search domains are read from.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Names the system knows without asking DNS.
const HOSTS: &str = "/etc/hosts";
/// Largest resolv.conf or hosts file read; the rest is ignored.
const MAX_FILE: u64 = 64 * 1024;
/// The DNS port.
const DNS_PORT: u16 = 53;

/// The addresses of `host` with `port`, in the order to try them ([`lookup`]).
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let ips = lookup(host).await?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// The addresses of `host`: an IP literal as it is, else `/etc/hosts`, else DNS; ordered as
/// the C library orders them (routable first, then global IPv6 before IPv4: RFC 6724).
pub(crate) async fn lookup(host: &str) -> io::Result<Vec<IpAddr>> {
    let conf = dns::parse_resolv_conf(&read_small(RESOLV_CONF));
    lookup_with(host, &conf, &read_small(HOSTS), DNS_PORT).await
}

/// A file's text, or nothing when it is missing or unreadable (as the C library treats it).
fn read_small(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(MAX_FILE).read_to_string(&mut text);
    }
    text
}

/// [`lookup`] with the configuration, the hosts text and the servers' port given.
pub(crate) async fn lookup_with(
    host: &str,
    conf: &ResolvConf,
    hosts: &str,
    port: u16,
) -> io::Result<Vec<IpAddr>> {
    let literal = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut known = dns::hosts_lookup(hosts, host);
    if !known.is_empty() {
        dns::sort_by_preference(&mut known, routable);
        return Ok(known);
    }
    for name in dns::candidates(host, conf) {
        match ask(&name, conf, port).await {
            Ok(mut ips) if !ips.is_empty() => {
                dns::sort_by_preference(&mut ips, routable);
                return Ok(ips);
            }
            Ok(_) | Err(Asked::Dns(DnsError::NoSuchName)) => continue,
            Err(Asked::Dns(err)) => {
                return Err(io::Error::other(format!("{host}: {err}")));
            }
            Err(Asked::Io(err)) => {
                return Err(io::Error::new(err.kind(), format!("{host}: {err}")));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{host}: no such host name (no A or AAAA record)"),
    ))
}

/// True when the system has a route to `ip`: a UDP socket connects to it (nothing is sent).
fn routable(ip: &IpAddr) -> bool {
    let local: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    std::net::UdpSocket::bind(local).is_ok_and(|socket| socket.connect((*ip, 9)).is_ok())
}

/// Why one name got no addresses.
enum Asked {
    Dns(DnsError),
    Io(io::Error),
}

/// Binds the socket queries go out on: dual-stack when a server is IPv6 (IPv4 servers are
/// then reached as mapped addresses), else IPv4 only, also when the kernel has no IPv6.
async fn bind(conf: &ResolvConf) -> io::Result<UdpSocket> {
    if conf.nameservers.iter().any(IpAddr::is_ipv6) {
        if let Ok(socket) = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await {
            return Ok(socket);
        }
    }
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await
}

/// Asks every name server for `name`'s A and AAAA records, resending `attempts` times within
/// the timeout; the first answer to each question wins, as in musl.
async fn ask(name: &str, conf: &ResolvConf, port: u16) -> Result<Vec<IpAddr>, Asked> {
    let socket = bind(conf).await.map_err(Asked::Io)?;
    let dual = socket.local_addr().map_err(Asked::Io)?.is_ipv6();
    let servers: Vec<SocketAddr> = conf
        .nameservers
        .iter()
        .filter(|ip| dual || ip.is_ipv4())
        .map(|&ip| match ip {
            IpAddr::V4(v4) if dual => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port),
            ip => SocketAddr::new(ip, port),
        })
        .collect();
    if servers.is_empty() {
        return Err(Asked::Io(io::Error::other(
            "no usable name server in /etc/resolv.conf (IPv6 servers only, and no IPv6)",
        )));
    }
    let mut id_bytes = [0u8; 4];
    getrandom::getrandom(&mut id_bytes)
        .map_err(|err| Asked::Io(io::Error::other(err.to_string())))?;
    let types = [TYPE_A, TYPE_AAAA];
    let ids = [
        u16::from_be_bytes([id_bytes[0], id_bytes[1]]),
        u16::from_be_bytes([id_bytes[2], id_bytes[3]]),
    ];
    let mut queries = Vec::with_capacity(2);
    for (id, qtype) in ids.into_iter().zip(types) {
        queries.push(dns::encode_query(id, name, qtype).map_err(Asked::Dns)?);
    }
    // Per question: its answer once one came, and how many servers failed it.
    let mut answers: [Option<Result<Vec<IpAddr>, DnsError>>; 2] = [None, None];
    let mut failures = [0usize; 2];
    let total = Duration::from_secs(conf.timeout_secs);
    let interval = total / conf.attempts.max(1);
    let started = Instant::now();
    let mut buf = [0u8; MAX_UDP_ANSWER];
    'attempts: while started.elapsed() < total {
        for (query, answer) in queries.iter().zip(&answers) {
            if answer.is_none() {
                for server in &servers {
                    // A server that cannot be reached just does not answer.
                    let _ = socket.send_to(query, server).await;
                }
            }
        }
        let resend_at = Instant::now() + interval;
        loop {
            if answers.iter().all(Option::is_some) {
                break 'attempts;
            }
            let now = Instant::now();
            let Some(left) = resend_at.checked_duration_since(now) else {
                break;
            };
            let received = socket
                .recv_from(&mut buf)
                .or(async {
                    smol::Timer::after(left).await;
                    Err(io::ErrorKind::TimedOut.into())
                })
                .await;
            let (len, from) = match received {
                Ok(got) => got,
                Err(err) if err.kind() == io::ErrorKind::TimedOut => break,
                // ICMP port unreachable from one server: wait for the others.
                Err(_) => continue,
            };
            if !servers.contains(&from) {
                continue;
            }
            let msg = buf.get(..len).unwrap_or_default();
            for (slot, ((&id, qtype), answer)) in
                ids.iter().zip(types).zip(&mut answers).enumerate()
            {
                if answer.is_some() {
                    continue;
                }
                match dns::parse_answer(msg, id, name, qtype) {
                    Err(DnsError::Mismatch) => {}
                    Err(DnsError::Server(code)) => {
                        if let Some(count) = failures.get_mut(slot) {
                            *count = count.saturating_add(1);
                            if *count >= servers.len() {
                                *answer = Some(Err(DnsError::Server(code)));
                            }
                        }
                    }
                    result => *answer = Some(result),
                }
            }
        }
    }
    let mut ips = Vec::new();
    let mut error = None;
    let mut unanswered = false;
    for answer in answers {
        match answer {
            Some(Ok(found)) => ips.extend(found),
            Some(Err(err)) => {
                error.get_or_insert(err);
            }
            None => unanswered = true,
        }
    }
    if !ips.is_empty() {
        return Ok(ips);
    }
    if let Some(err) = error {
        return Err(Asked::Dns(err));
    }
    if unanswered {
        let listed: Vec<String> = conf.nameservers.iter().map(IpAddr::to_string).collect();
        return Err(Asked::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from the name server(s) {} within {} s",
                listed.join(", "),
                conf.timeout_secs
            ),
        )));
    }
    // The name exists, with no address of either family.
    Ok(Vec::new())
}

#[cfg(test)]
mod tests;
