//! The probes behind `tinyderp check` (and the server's watch on its own reachability):
//! resolve the public name, read the WAN addresses from the interfaces, ask nftables what
//! it does with a new connection from the WAN, and go end to end through the public name
//! with two DERP clients of this crate and a STUN request. Every probe has a deadline;
//! what they see goes to the pure [`crate::check::evaluate`].

use crate::text::DurationText;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::check::addr::{default_route_v4, default_route_v6};
use crate::check::firewall::{judge, Packet};
use crate::check::{
    evaluate, DerpProbe, Observations, OutsideView, PortmapView, Proto, Report, StunProbe, WanView,
};
#[cfg(feature = "tls-client")]
use crate::client::{Client, ClientConfig, ServerMessage, TlsVerify};
use crate::config::Config;
#[cfg(feature = "tls-client")]
use crate::proto::key::SecretKey;
use crate::proto::stun;

/// Deadline for resolving the public name.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for the TCP connection that tells "nothing there" from "DERP broken".
const TCP_TIMEOUT: Duration = Duration::from_secs(4);
/// Deadline for each client's TLS, upgrade and login.
#[cfg(feature = "tls-client")]
const LOGIN_TIMEOUT: Duration = Duration::from_secs(6);
/// Deadline for the relayed packet to arrive at the second client.
#[cfg(feature = "tls-client")]
const RELAY_TIMEOUT: Duration = Duration::from_secs(4);
/// Time to wait for a STUN answer before sending again.
const STUN_WAIT: Duration = Duration::from_millis(700);
/// STUN requests sent before giving up (UDP may be lost).
const STUN_TRIES: usize = 3;
/// Deadline for running `nft -j list ruleset`.
const NFT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes read from `nft -j list ruleset` (fw4's ruleset is about 100 KB as JSON).
const MAX_NFT_OUTPUT: usize = 4 * 1024 * 1024;
/// Most addresses of the name that are probed (a name with more is misconfigured anyway).
const MAX_PROBED_ADDRS: usize = 8;
/// Frames read while waiting for the relayed packet (ServerInfo, peer notices, ...).
#[cfg(feature = "tls-client")]
const MAX_FRAMES_WAITED: usize = 32;
/// Where nft and fw4 live on OpenWrt and Debian.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Runs every probe and evaluates the result (the `tinyderp check` command).
pub fn run_check(config: &Config) -> Report {
    smol::block_on(check(config))
}

/// Runs every probe within its deadline and evaluates what they saw.
pub async fn check(config: &Config) -> Report {
    evaluate(&observe(config).await)
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let what = what.to_string();
    smol::future::or(work, async move {
        smol::Timer::after(limit).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} timed out after {}", DurationText(limit)),
        ))
    })
    .await
}

/// Gathers the observations for one check.
pub async fn observe(config: &Config) -> Observations {
    let map = &config.derp_map;
    let hostname = map.hostname.clone();
    let resolved = resolve(&hostname).await;
    let wan = wan_view(config.wan_interface.as_deref());
    let (firewall, firewall_skipped) = firewall(config, &wan).await;
    let records: Vec<IpAddr> = resolved
        .as_ref()
        .map(|ips| ips.iter().copied().take(MAX_PROBED_ADDRS).collect())
        .unwrap_or_default();
    let pin = super::cert_files::load(&config.cert_source()).map(|loaded| loaded.pin);
    let mesh_key = config
        .mesh_psk_file
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| crate::proto::key::parse_hex_32(text.trim()));
    let admit = &config.admit;
    let admission_restricted = mesh_key.is_none()
        && (!admit.allowed_keys.is_empty()
            || admit.tailscaled_socket.is_some()
            || admit.url.is_some());
    let mut derp = Vec::new();
    let mut stun = Vec::new();
    for ip in &records {
        let addr = SocketAddr::new(*ip, map.derp_port);
        let outcome = match &pin {
            Ok(pin) => derp_probe(addr, &hostname, pin, mesh_key).await,
            Err(err) => DerpProbe::Broken(format!("cannot read our certificate: {err}")),
        };
        derp.push((*ip, outcome));
        if let Some(port) = map.stun_port {
            stun.push((*ip, stun_probe(SocketAddr::new(*ip, port)).await));
        }
    }
    let outside = match &config.check_stun_server {
        Some(server) => Some(OutsideView {
            server: server.clone(),
            seen: outside_stun(server).await,
        }),
        None => None,
    };
    let portmap = if config.port_mapping {
        match super::portmap::read_record(&config.state_dir) {
            Ok(record) => PortmapView::Record(record),
            Err(why) => PortmapView::NoRecord(why),
        }
    } else {
        PortmapView::Off
    };
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    Observations {
        outside,
        portmap,
        now_unix,
        hostname,
        derp_port: map.derp_port,
        stun_port: map.stun_port,
        resolved,
        wan,
        firewall,
        firewall_skipped,
        derp,
        stun,
        admission_restricted,
    }
}

/// A and AAAA from /etc/hosts or the name servers in /etc/resolv.conf (`net::dns`).
async fn resolve(hostname: &str) -> Result<Vec<IpAddr>, String> {
    let addrs = with_timeout(DNS_TIMEOUT, "DNS lookup", super::dns::lookup(hostname))
        .await
        .map_err(|err| err.to_string())?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in addrs {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok(ips)
}

/// The WAN interface (named, or holding the default route) and every local address.
pub(crate) fn wan_view(named: Option<&str>) -> WanView {
    let interface = named.map(str::to_string).or_else(|| {
        let v4 = std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|text| default_route_v4(&text));
        v4.or_else(|| {
            std::fs::read_to_string("/proc/net/ipv6_route")
                .ok()
                .and_then(|text| default_route_v6(&text))
        })
    });
    let mut view = WanView {
        interface,
        ..WanView::default()
    };
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return view;
    };
    for ifaddr in addrs {
        let Some(address) = ifaddr.address else {
            continue;
        };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !view.local.contains(&ip) {
            view.local.push(ip);
        }
        if view.interface.as_deref() == Some(ifaddr.interface_name.as_str()) {
            match ip {
                IpAddr::V4(v4) => view.v4.push(v4),
                IpAddr::V6(v6) => view.v6.push(v6),
            }
        }
    }
    view
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    SBIN_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// The firewall's verdict on new DERP and STUN connections from the WAN, or why it was
/// skipped.
async fn firewall(
    config: &Config,
    wan: &WanView,
) -> (
    Vec<(Proto, u16, crate::check::FirewallVerdict)>,
    Option<String>,
) {
    let on_openwrt = find_program("fw4").is_some();
    let Some(nft) = find_program("nft") else {
        let why = if on_openwrt {
            "fw4 is installed but nft was not found: skipped"
        } else {
            "not OpenWrt (no fw4, no nft): skipped"
        };
        return (Vec::new(), Some(why.into()));
    };
    let run = super::child::run(&nft, &["-j", "list", "ruleset"], MAX_NFT_OUTPUT);
    let output = match with_timeout(NFT_TIMEOUT, "nft", run).await {
        Ok(output) if output.success() => output,
        Ok(output) => {
            let err = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return (
                Vec::new(),
                Some(format!(
                    "cannot read the firewall (nft: {err}); run the check as root"
                )),
            );
        }
        Err(err) => return (Vec::new(), Some(format!("cannot run nft: {err}"))),
    };
    let ruleset = match crate::proto::json::parse(&output.stdout) {
        Ok(value) => value,
        Err(err) => return (Vec::new(), Some(format!("nft printed no JSON: {err}"))),
    };
    let Some(iifname) = wan.interface.clone() else {
        return (
            Vec::new(),
            Some("no WAN interface (no default route): skipped".into()),
        );
    };
    // IPv4 when the WAN has it, IPv6 when it has a global address: each must be open.
    let mut families = Vec::new();
    if !wan.v4.is_empty() {
        families.push(false);
    }
    if wan
        .v6
        .iter()
        .any(|ip| crate::check::classify_v6(*ip) == crate::check::V6Class::Global)
    {
        families.push(true);
    }
    if families.is_empty() {
        families.push(false);
    }
    let mut ports = vec![(Proto::Tcp, config.listen.port())];
    if let Some(stun) = config.stun {
        ports.push((Proto::Udp, stun.port()));
    }
    let mut verdicts = Vec::new();
    for (proto, port) in ports {
        let mut combined: Option<crate::check::FirewallVerdict> = None;
        for v6 in &families {
            let packet = Packet {
                iifname: iifname.clone(),
                proto,
                dport: port,
                v6: *v6,
            };
            let Some(mut verdict) = judge(&ruleset, &packet) else {
                continue;
            };
            if *v6 && families.len() > 1 {
                verdict.reason = format!("IPv6: {}", verdict.reason);
            }
            combined = Some(match combined {
                None => verdict,
                Some(first) if !first.accepted => first,
                Some(first) => crate::check::FirewallVerdict {
                    uncertain: first.uncertain || verdict.uncertain,
                    ..verdict
                },
            });
        }
        match combined {
            Some(verdict) => verdicts.push((proto, port, verdict)),
            None => {
                let why = if on_openwrt {
                    "fw4 loaded no input filter: nothing blocks the ports"
                } else {
                    "not OpenWrt and no nftables input filter: skipped"
                };
                return (Vec::new(), Some(why.into()));
            }
        }
    }
    (verdicts, None)
}

/// Two clients log in through `addr` (TLS pinned to our certificate) and one relays a
/// packet to the other.
async fn derp_probe(
    addr: SocketAddr,
    hostname: &str,
    pin: &str,
    mesh_key: Option<[u8; 32]>,
) -> DerpProbe {
    let tcp = with_timeout(
        TCP_TIMEOUT,
        "TCP connect",
        smol::net::TcpStream::connect(addr),
    )
    .await;
    match tcp {
        Ok(stream) => drop(stream),
        Err(err) => return DerpProbe::Unreachable(err.to_string()),
    }
    // Without a TLS client only the TCP answer is known. A `#[cfg]`, not `cfg!`: an await
    // left behind an early return stays in the future's state machine, client and all.
    #[cfg(not(feature = "tls-client"))]
    {
        let _ = (hostname, pin, mesh_key);
        DerpProbe::Answered
    }
    #[cfg(feature = "tls-client")]
    match relay_through(addr, hostname, pin, mesh_key).await {
        Ok(()) => DerpProbe::Relayed,
        Err(err) => DerpProbe::Broken(err.to_string()),
    }
}

#[cfg(feature = "tls-client")]
fn client_config(
    addr: SocketAddr,
    hostname: &str,
    pin: &str,
    mesh_key: Option<[u8; 32]>,
) -> io::Result<ClientConfig> {
    let secret =
        SecretKey::generate().map_err(|err| io::Error::other(format!("no randomness: {err}")))?;
    let mut cfg = ClientConfig::new(addr, secret);
    cfg.server_name = hostname.to_string();
    cfg.verify = TlsVerify::Pin(pin.to_string());
    cfg.mesh_key = mesh_key;
    cfg.is_prober = true;
    cfg.timeout = LOGIN_TIMEOUT;
    Ok(cfg)
}

#[cfg(feature = "tls-client")]
async fn relay_through(
    addr: SocketAddr,
    hostname: &str,
    pin: &str,
    mesh_key: Option<[u8; 32]>,
) -> io::Result<()> {
    let sender_cfg = client_config(addr, hostname, pin, mesh_key)?;
    let receiver_cfg = client_config(addr, hostname, pin, mesh_key)?;
    let receiver_key = receiver_cfg.secret.public_key();
    let sender_key = sender_cfg.secret.public_key();
    let mut receiver = Client::connect(&receiver_cfg).await?;
    let mut sender = Client::connect(&sender_cfg).await?;
    let mut token = [0u8; 16];
    getrandom::getrandom(&mut token)
        .map_err(|err| io::Error::other(format!("no randomness: {err}")))?;
    let mut payload = b"tinyderp-check ".to_vec();
    payload.extend_from_slice(&token);
    sender.send_packet(&receiver_key, &payload).await?;
    let wait = async {
        for _ in 0..MAX_FRAMES_WAITED {
            if let ServerMessage::RecvPacket { src, data } = receiver.recv().await? {
                if src == sender_key && data == payload {
                    return Ok(());
                }
            }
        }
        Err(io::Error::other("the relayed packet never arrived"))
    };
    let result = with_timeout(RELAY_TIMEOUT, "relayed packet", wait).await;
    let _ = sender.close().await;
    let _ = receiver.close().await;
    result.map_err(|err| io::Error::new(err.kind(), format!("logged in, but {err}")))
}

/// `HOST:PORT` (as `--check-stun-server` validated it) split in two.
fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// One STUN binding request (resent on loss) to `addr`; the mapped address it reports.
/// Our public IPv4 address as the outside STUN server `HOST:PORT` sees it.
async fn outside_stun(server: &str) -> Result<SocketAddr, String> {
    let (host, port) =
        split_host_port(server).ok_or_else(|| format!("{server}: expected HOST:PORT"))?;
    let addrs = with_timeout(
        DNS_TIMEOUT,
        "resolving the STUN server",
        super::dns::resolve(host, port),
    )
    .await
    .map_err(|err| err.to_string())?;
    let addrs: Vec<SocketAddr> = addrs.into_iter().filter(SocketAddr::is_ipv4).collect();
    let addr = addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{server} has no IPv4 address"))?;
    stun_exchange(addr).await.map_err(|err| err.to_string())
}

async fn stun_probe(addr: SocketAddr) -> StunProbe {
    match stun_exchange(addr).await {
        Ok(mapped) => StunProbe::Mapped(mapped),
        Err(err) => StunProbe::NoAnswer(err.to_string()),
    }
}

async fn stun_exchange(addr: SocketAddr) -> io::Result<SocketAddr> {
    let bind: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = smol::net::UdpSocket::bind(bind).await?;
    let mut txid = [0u8; 12];
    getrandom::getrandom(&mut txid)
        .map_err(|err| io::Error::other(format!("no randomness: {err}")))?;
    let request = stun::binding_request(&txid);
    let mut buf = [0u8; 1500];
    for _ in 0..STUN_TRIES {
        socket.send_to(&request, addr).await?;
        let answer = with_timeout(STUN_WAIT, "STUN answer", async {
            loop {
                let (len, from) = socket.recv_from(&mut buf).await?;
                if from != addr {
                    continue;
                }
                let Some(message) = buf.get(..len) else {
                    continue;
                };
                if let Ok((got, mapped)) = stun::parse_binding_response(message) {
                    if got == txid {
                        return Ok(mapped);
                    }
                }
            }
        })
        .await;
        match answer {
            Ok(mapped) => return Ok(mapped),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => continue,
            // ICMP port unreachable shows up as a refused receive.
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer after {STUN_TRIES} tries"),
    ))
}
