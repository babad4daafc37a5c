//! `--port-mapping`: on a double NAT, ask the upstream gateway (the IPv4 default route's
//! next hop) to forward the DERP (TCP) and STUN (UDP) ports to this router, with PCP
//! first, NAT-PMP when the gateway speaks only that, and UPnP IGD when it speaks neither;
//! renew at half the granted
//! lifetime, delete the mappings on stop, and report what was granted (log line, status
//! page, metrics, and the record `tinyderp check` and `tinyderp derpmap` read from the
//! state directory). The wire formats are pure in [`crate::proto::portmap`] and
//! [`crate::proto::upnp`].
//!
//! The state lives in a process-wide slot: a process runs one server.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::check::portmap::{PortmapRecord, MAX_STATE_FILE_LEN, STATE_FILE};

#[cfg(feature = "port-mapping")]
pub use client::{maintain, release};

static RECORD: Mutex<Option<PortmapRecord>> = Mutex::new(None);
static GRANTED_TOTAL: AtomicU32 = AtomicU32::new(0);
static FAILED_TOTAL: AtomicU32 = AtomicU32::new(0);

fn lock<T>(slot: &'static Mutex<T>) -> std::sync::MutexGuard<'static, T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn record_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_FILE)
}

/// Reads the running relay's record from the state directory (for `check`, `derpmap`).
pub fn read_record(state_dir: &Path) -> Result<PortmapRecord, String> {
    let path = record_path(state_dir);
    match super::statefile::read_bounded(&path, MAX_STATE_FILE_LEN) {
        Ok(Some(bytes)) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(PortmapRecord::from_text)
            .ok_or_else(|| format!("{}: not a port-mapping record", path.display())),
        Ok(None) => Err(format!("{}: too large", path.display())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(format!("no {}", path.display())),
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

/// The public ports the gateway forwards here, for the DERP map: (DERP, STUN).
pub fn mapped_ports() -> Option<(Option<u16>, Option<u16>)> {
    let record = lock(&RECORD);
    let record = record.as_ref().filter(|record| !record.ports.is_empty())?;
    Some((record.external_port("tcp"), record.external_port("udp")))
}

/// HTML for the status page: what is mapped; addresses only for those allowed details.
pub fn status_html(detailed: bool) -> String {
    let record = lock(&RECORD);
    let Some(record) = record.as_ref() else {
        return String::new();
    };
    let mut html = String::from("<h2>Port mapping</h2>\n<p>");
    if detailed {
        html.push_str(&crate::proto::http::escape_html(&record.describe()));
    } else if record.ports.is_empty() {
        html.push_str("No mapping from the upstream gateway.");
    } else {
        let _ = write!(
            html,
            "{} mapping held on the upstream gateway.",
            record.method
        );
    }
    html.push_str("</p>\n");
    html
}

/// Prometheus text: whether each port is mapped and to which external port, and counts.
pub fn render_metrics(out: &mut String) {
    let record = lock(&RECORD);
    let Some(record) = record.as_ref() else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP tinyderp_portmap_external_port External port the upstream gateway forwards here (0 = not mapped).\n\
         # TYPE tinyderp_portmap_external_port gauge"
    );
    for proto in ["tcp", "udp"] {
        let _ = writeln!(
            out,
            "tinyderp_portmap_external_port{{proto=\"{proto}\"}} {}",
            record.external_port(proto).unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tinyderp_portmap_expires_timestamp_seconds Unix time the mappings expire unless renewed (0 = none).\n\
         # TYPE tinyderp_portmap_expires_timestamp_seconds gauge\ntinyderp_portmap_expires_timestamp_seconds {}\n\
         # HELP tinyderp_portmap_granted_total Mapping requests (first or renewal) the gateway granted.\n\
         # TYPE tinyderp_portmap_granted_total counter\ntinyderp_portmap_granted_total {}\n\
         # HELP tinyderp_portmap_failed_total Mapping attempts that got no mapping.\n\
         # TYPE tinyderp_portmap_failed_total counter\ntinyderp_portmap_failed_total {}",
        record.expires_unix,
        GRANTED_TOTAL.load(Ordering::Relaxed),
        FAILED_TOTAL.load(Ordering::Relaxed)
    );
}

/// The PCP, NAT-PMP and UPnP IGD client (the `port-mapping` cargo feature).
#[cfg(feature = "port-mapping")]
mod client {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use smol::net::UdpSocket;

    use super::{lock, record_path, FAILED_TOTAL, GRANTED_TOTAL, RECORD};
    use crate::check::addr::default_gateway_v4;
    use crate::check::portmap::{MappedPort, PortmapRecord};
    use crate::config::Config;
    use crate::proto::portmap::{self as wire, Granted, MapProto, PortmapError};
    use crate::proto::upnp;

    /// Lifetime asked for (RFC 6886 recommends two hours).
    const LIFETIME_SECS: u32 = 7200;
    /// Shortest wait between two renewals, whatever lifetime the gateway grants.
    const MIN_RENEW: Duration = Duration::from_secs(30);
    /// Longest wait between two renewals.
    const MAX_RENEW: Duration = Duration::from_secs(3600);
    /// First wait after a failed attempt; doubled up to [`MAX_RETRY`].
    const FIRST_RETRY: Duration = Duration::from_secs(30);
    /// Longest wait after failed attempts.
    const MAX_RETRY: Duration = Duration::from_secs(15 * 60);
    /// Waits for an answer before sending again (RFC 6886: 250 ms, doubling); the sum is the
    /// deadline of one request.
    const RESEND_WAITS: [Duration; 4] = [
        Duration::from_millis(250),
        Duration::from_millis(500),
        Duration::from_millis(1000),
        Duration::from_millis(2000),
    ];
    /// Deadline for deleting the mappings on stop (one try per mapping).
    const RELEASE_WAIT: Duration = Duration::from_millis(500);
    /// Datagrams read while waiting for one answer (stray or late answers are skipped).
    const MAX_DATAGRAMS_PER_REQUEST: usize = 16;

    /// Which protocol the gateway answered.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Method {
        Pcp,
        NatPmp,
        Upnp,
    }

    impl Method {
        fn name(self) -> &'static str {
            match self {
                Method::Pcp => "PCP",
                Method::NatPmp => "NAT-PMP",
                Method::Upnp => "UPnP IGD",
            }
        }
    }

    /// The gateway's UPnP WAN connection service.
    #[derive(Clone, Debug)]
    struct Igd {
        control: upnp::HttpUrl,
        service: String,
    }

    /// One port we asked for.
    #[derive(Clone, Copy, Debug)]
    struct Want {
        proto: MapProto,
        internal: u16,
        external: u16,
    }

    /// A mapping the gateway holds for us, with what is needed to renew or delete it.
    #[derive(Clone, Copy, Debug)]
    struct Held {
        want: Want,
        granted: Granted,
        nonce: [u8; 12],
    }

    /// What the relay holds now.
    #[derive(Clone)]
    struct Session {
        method: Method,
        gateway: Ipv4Addr,
        client: IpAddr,
        held: Vec<Held>,
        igd: Option<Igd>,
    }

    static SESSION: Mutex<Option<Session>> = Mutex::new(None);

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }

    /// Where the record for `tinyderp check` lives.
    fn wanted(config: &Config) -> Vec<Want> {
        let mut wants = vec![Want {
            proto: MapProto::Tcp,
            internal: config.listen.port(),
            external: config.derp_map.derp_port,
        }];
        if let Some(stun) = config.stun {
            wants.push(Want {
                proto: MapProto::Udp,
                internal: stun.port(),
                external: config.derp_map.stun_port.unwrap_or(stun.port()),
            });
        }
        wants
    }

    /// The mapping task: runs until the server drops it; [`release`] deletes the mappings.
    pub async fn maintain(config: Config) {
        let wants = wanted(&config);
        let mut retry = FIRST_RETRY;
        let mut last_line = String::new();
        loop {
            let outcome = map_all(&wants).await;
            let now = unix_now();
            let (record, wait) = match outcome {
                Ok(session) => {
                    retry = FIRST_RETRY;
                    GRANTED_TOTAL.fetch_add(1, Ordering::Relaxed);
                    let lifetime = session
                        .held
                        .iter()
                        .map(|held| held.granted.lifetime)
                        .min()
                        .unwrap_or(0);
                    let record = record_of(&session, now, lifetime);
                    *lock(&SESSION) = Some(session);
                    let wait =
                        Duration::from_secs(u64::from(lifetime / 2)).clamp(MIN_RENEW, MAX_RENEW);
                    (record, wait)
                }
                Err((gateway, error)) => {
                    FAILED_TOTAL.fetch_add(1, Ordering::Relaxed);
                    let record = PortmapRecord {
                        method: String::new(),
                        gateway,
                        external_ip: None,
                        ports: Vec::new(),
                        error: Some(error),
                        updated_unix: now,
                        expires_unix: 0,
                    };
                    let wait = retry;
                    retry = retry.saturating_mul(2).min(MAX_RETRY);
                    (record, wait)
                }
            };
            let line = format!("port mapping: {}", record.describe());
            if line != last_line {
                if record.ports.is_empty() {
                    log::warn!("{line}");
                } else {
                    log::info!(
                        "{line}, lifetime {}s",
                        record.expires_unix.saturating_sub(now)
                    );
                }
                last_line = line;
            }
            write_record(&config.state_dir, &record);
            *lock(&RECORD) = Some(record);
            smol::Timer::after(wait).await;
        }
    }

    fn record_of(session: &Session, now: u64, lifetime: u32) -> PortmapRecord {
        PortmapRecord {
            method: session.method.name().to_string(),
            gateway: Some(session.gateway),
            external_ip: session
                .held
                .iter()
                .find_map(|held| held.granted.external_ip),
            ports: session
                .held
                .iter()
                .map(|held| MappedPort {
                    proto: held.want.proto.name().to_string(),
                    internal_port: held.want.internal,
                    external_port: held.granted.external_port,
                })
                .collect(),
            error: None,
            updated_unix: now,
            expires_unix: now.saturating_add(u64::from(lifetime)),
        }
    }

    fn write_record(state_dir: &Path, record: &PortmapRecord) {
        let text = record.to_text();
        if let Err(err) =
            crate::net::statefile::write_atomic(&record_path(state_dir), text.as_bytes(), 0o644)
        {
            log::warn!(
                "port mapping: cannot write {}: {err}",
                record_path(state_dir).display()
            );
        }
    }

    fn gateway() -> Result<Ipv4Addr, String> {
        let table = std::fs::read_to_string("/proc/net/route")
            .map_err(|err| format!("/proc/net/route: {err}"))?;
        default_gateway_v4(&table).ok_or_else(|| "no IPv4 default gateway".to_string())
    }

    /// Maps (or renews) every wanted port on the gateway.
    async fn map_all(wants: &[Want]) -> Result<Session, (Option<Ipv4Addr>, String)> {
        let gateway = gateway().map_err(|err| (None, err))?;
        let fail = |err: String| (Some(gateway), err);
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(|err| fail(format!("UDP socket: {err}")))?;
        socket
            .connect(SocketAddr::new(IpAddr::V4(gateway), wire::SERVER_PORT))
            .await
            .map_err(|err| fail(format!("route to {gateway}: {err}")))?;
        let client = socket
            .local_addr()
            .map_err(|err| fail(err.to_string()))?
            .ip();
        let previous = lock(&SESSION).clone();
        let previous =
            previous.filter(|session| session.gateway == gateway && session.client == client);
        let mut method = previous
            .as_ref()
            .map_or(Method::Pcp, |session| session.method);
        let mut igd = previous.as_ref().and_then(|session| session.igd.clone());
        let mut held = Vec::new();
        for want in wants {
            let old = previous
                .as_ref()
                .and_then(|session| {
                    session
                        .held
                        .iter()
                        .find(|h| h.want.proto == want.proto && h.want.internal == want.internal)
                })
                .copied();
            let nonce = match old {
                Some(old) => old.nonce,
                None => new_nonce().map_err(|err| fail(err.to_string()))?,
            };
            // Renew the port the gateway gave last time; else ask for the public port.
            let external = old.map_or(want.external, |old| old.granted.external_port);
            let ask = Want { external, ..*want };
            let mut granted = match method {
                Method::Pcp => match pcp_map(&socket, client, ask, nonce, LIFETIME_SECS).await {
                    Err(Asked::Unsupported) | Err(Asked::NoAnswer(_)) if held.is_empty() => {
                        method = Method::NatPmp;
                        natpmp_map(&socket, ask, LIFETIME_SECS).await
                    }
                    other => other,
                },
                Method::NatPmp => natpmp_map(&socket, ask, LIFETIME_SECS).await,
                Method::Upnp => Err(Asked::Unsupported),
            };
            // Neither PCP nor NAT-PMP: UPnP IGD.
            let fall_to_upnp = matches!(granted, Err(Asked::Unsupported) | Err(Asked::NoAnswer(_)))
                && (held.is_empty() || method == Method::Upnp);
            if fall_to_upnp {
                method = Method::Upnp;
                if igd.is_none() {
                    igd = Some(discover(gateway).await.map_err(&fail)?);
                }
                if let Some(found) = &igd {
                    granted = upnp_map(found, client, ask).await;
                }
            }
            match granted {
                Ok(granted) => held.push(Held {
                    want: *want,
                    granted,
                    nonce,
                }),
                Err(err) => {
                    // Do not leave half of the mappings behind.
                    let session = Session {
                        method,
                        gateway,
                        client,
                        held,
                        igd,
                    };
                    delete_all(&socket, &session).await;
                    return Err(fail(format!(
                        "{} on {gateway}: {err}",
                        describe_method(method)
                    )));
                }
            }
        }
        let external = match (method, &igd) {
            (Method::NatPmp, _) => natpmp_external(&socket).await.ok().map(IpAddr::V4),
            (Method::Upnp, Some(found)) => upnp_external(found).await.ok(),
            _ => None,
        };
        if let Some(ip) = external {
            for one in &mut held {
                one.granted.external_ip = Some(ip);
            }
        }
        Ok(Session {
            method,
            gateway,
            client,
            held,
            igd,
        })
    }

    fn describe_method(method: Method) -> &'static str {
        match method {
            Method::Pcp => "PCP and NAT-PMP",
            Method::NatPmp => "NAT-PMP",
            Method::Upnp => "UPnP IGD",
        }
    }

    /// Deadline for the SSDP answer of the gateway.
    const SSDP_WAIT: Duration = Duration::from_secs(3);
    /// Deadline for one HTTP exchange with the gateway (connect, request, whole answer).
    const HTTP_DEADLINE: Duration = Duration::from_secs(5);
    /// Description for the mappings, as the gateway lists them.
    const MAPPING_DESCRIPTION: &str = "tinyderp";

    /// Finds the gateway's UPnP WAN connection service: SSDP M-SEARCH (multicast, and
    /// unicast to the gateway), then its device description.
    async fn discover(gateway: Ipv4Addr) -> Result<Igd, String> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(|err| format!("UDP socket: {err}"))?;
        let request = upnp::msearch_request();
        let search = async {
            let _ = socket.send_to(request, upnp::SSDP_ADDR).await;
            let _ = socket.send_to(request, (gateway, upnp::SSDP_ADDR.1)).await;
            let mut buf = [0u8; upnp::MAX_SSDP_RESPONSE];
            loop {
                let (len, from) = socket.recv_from(&mut buf).await?;
                if from.ip() != IpAddr::V4(gateway) {
                    continue;
                }
                let location = buf
                    .get(..len)
                    .and_then(upnp::ssdp_location)
                    .and_then(upnp::parse_http_url);
                if let Some(url) = location {
                    return Ok(url);
                }
            }
        };
        let location = crate::net::deadline::with_deadline(SSDP_WAIT, search)
            .await
            .map_err(|err| match err.kind() {
                io::ErrorKind::TimedOut => "no PCP, NAT-PMP or UPnP IGD answer".to_string(),
                _ => format!("SSDP: {err}"),
            })?;
        if location.ip != IpAddr::V4(gateway) {
            return Err(format!(
                "UPnP description at {} is not on the gateway",
                location.ip
            ));
        }
        let get = upnp::get_request(&location);
        let answer = http_exchange(&location, get.as_bytes(), upnp::MAX_DESCRIPTION).await?;
        let (status, body) =
            upnp::http_answer(&answer).map_err(|err| format!("UPnP description: {err}"))?;
        if status != 200 {
            return Err(format!("UPnP description: HTTP status {status}"));
        }
        let (service, control) =
            upnp::wan_service(body).ok_or("UPnP description has no WAN connection service")?;
        let control = if control.starts_with("http://") {
            upnp::parse_http_url(&control)
        } else {
            upnp::parse_http_url(&format!(
                "http://{}:{}{control}",
                location.ip, location.port
            ))
        }
        .filter(|url| url.ip == IpAddr::V4(gateway))
        .ok_or("UPnP control URL is not on the gateway")?;
        Ok(Igd { control, service })
    }

    /// One HTTP request to the gateway, the whole answer read (at most `limit` bytes).
    async fn http_exchange(
        url: &upnp::HttpUrl,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, String> {
        use smol::io::{AsyncReadExt, AsyncWriteExt};
        let work = async {
            let mut stream = smol::net::TcpStream::connect((url.ip, url.port)).await?;
            stream.write_all(request).await?;
            let mut answer = Vec::new();
            let mut limited = stream.take(u64::try_from(limit).unwrap_or(u64::MAX));
            limited.read_to_end(&mut answer).await?;
            Ok(answer)
        };
        crate::net::deadline::with_deadline(HTTP_DEADLINE, work)
            .await
            .map_err(|err| format!("HTTP to {}:{}: {err}", url.ip, url.port))
    }

    async fn soap(igd: &Igd, action: &str, args: &[(&str, String)]) -> Result<String, Asked> {
        let request = upnp::soap_request(&igd.control, &igd.service, action, args);
        let answer = http_exchange(&igd.control, request.as_bytes(), upnp::MAX_SOAP_RESPONSE)
            .await
            .map_err(Asked::NoAnswer)?;
        upnp::soap_answer(&answer)
            .map(str::to_string)
            .map_err(|err| Asked::NoAnswer(format!("{action}: {err}")))
    }

    async fn upnp_map(igd: &Igd, client: IpAddr, want: Want) -> Result<Granted, Asked> {
        let mut lease = LIFETIME_SECS;
        loop {
            let args = [
                ("NewRemoteHost", String::new()),
                ("NewExternalPort", want.external.to_string()),
                ("NewProtocol", want.proto.name().to_ascii_uppercase()),
                ("NewInternalPort", want.internal.to_string()),
                ("NewInternalClient", client.to_string()),
                ("NewEnabled", "1".to_string()),
                ("NewPortMappingDescription", MAPPING_DESCRIPTION.to_string()),
                ("NewLeaseDuration", lease.to_string()),
            ];
            match soap(igd, "AddPortMapping", &args).await {
                Ok(_) => {
                    return Ok(Granted {
                        internal_port: want.internal,
                        external_port: want.external,
                        external_ip: None,
                        // A permanent lease is still renewed on the usual schedule.
                        lifetime: if lease == 0 { LIFETIME_SECS } else { lease },
                    });
                }
                Err(Asked::NoAnswer(why))
                    if lease != 0
                        && why.contains(&format!("UPnP error {}", upnp::ONLY_PERMANENT_LEASES)) =>
                {
                    lease = 0;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn upnp_external(igd: &Igd) -> Result<IpAddr, Asked> {
        let body = soap(igd, "GetExternalIPAddress", &[]).await?;
        upnp::element_text(&body, "NewExternalIPAddress")
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Asked::NoAnswer("no external address in the answer".into()))
    }

    async fn upnp_delete(igd: &Igd, want: Want, external: u16) -> Result<(), Asked> {
        let args = [
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external.to_string()),
            ("NewProtocol", want.proto.name().to_ascii_uppercase()),
        ];
        soap(igd, "DeletePortMapping", &args).await.map(|_| ())
    }

    fn new_nonce() -> Result<[u8; 12], getrandom::Error> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce)?;
        Ok(nonce)
    }

    /// Why a request got no mapping.
    #[derive(Debug)]
    enum Asked {
        /// The gateway speaks the other protocol.
        Unsupported,
        /// Nothing (usable) came back in time.
        NoAnswer(String),
        /// The gateway said no.
        Refused(PortmapError),
    }

    impl std::fmt::Display for Asked {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Asked::Unsupported => f.write_str("protocol not supported by the gateway"),
                Asked::NoAnswer(why) => f.write_str(why),
                Asked::Refused(err) => write!(f, "{err}"),
            }
        }
    }

    /// Sends `request` and waits for an answer `decode` accepts, resending on the RFC 6886
    /// schedule; answers to other requests are skipped.
    async fn exchange<T>(
        socket: &UdpSocket,
        request: &[u8],
        waits: &[Duration],
        decode: impl Fn(&[u8]) -> Result<T, PortmapError>,
    ) -> Result<T, Asked> {
        let mut buf = [0u8; wire::MAX_MESSAGE];
        for wait in waits {
            if let Err(err) = socket.send(request).await {
                return Err(Asked::NoAnswer(format!("send: {err}")));
            }
            let deadline = smol::Timer::after(*wait);
            let mut deadline = std::pin::pin!(deadline);
            for _ in 0..MAX_DATAGRAMS_PER_REQUEST {
                let received =
                    smol::future::or(async { Some(socket.recv(&mut buf).await) }, async {
                        (&mut deadline).await;
                        None
                    })
                    .await;
                let len = match received {
                    None => break,
                    Some(Ok(len)) => len,
                    // ICMP port unreachable: nothing listens on the gateway.
                    Some(Err(err)) => {
                        return Err(Asked::NoAnswer(format!("no PCP/NAT-PMP server ({err})")));
                    }
                };
                match decode(buf.get(..len).unwrap_or_default()) {
                    Ok(value) => return Ok(value),
                    Err(PortmapError::UnsupportedVersion) => return Err(Asked::Unsupported),
                    Err(err @ PortmapError::Refused(_)) => return Err(Asked::Refused(err)),
                    Err(PortmapError::Malformed | PortmapError::NotOurs) => {}
                }
            }
        }
        Err(Asked::NoAnswer("no answer".into()))
    }

    async fn pcp_map(
        socket: &UdpSocket,
        client: IpAddr,
        want: Want,
        nonce: [u8; 12],
        lifetime: u32,
    ) -> Result<Granted, Asked> {
        let request = wire::pcp_map_request(
            nonce,
            want.proto,
            want.internal,
            want.external,
            lifetime,
            client,
        );
        exchange(socket, &request, &RESEND_WAITS, |bytes| {
            wire::pcp_map_response(bytes, nonce, want.proto, want.internal)
        })
        .await
    }

    async fn natpmp_map(socket: &UdpSocket, want: Want, lifetime: u32) -> Result<Granted, Asked> {
        let request = wire::natpmp_map_request(want.proto, want.internal, want.external, lifetime);
        exchange(socket, &request, &RESEND_WAITS, |bytes| {
            wire::natpmp_map_response(bytes, want.proto, want.internal)
        })
        .await
    }

    async fn natpmp_external(socket: &UdpSocket) -> Result<Ipv4Addr, Asked> {
        exchange(
            socket,
            &wire::natpmp_addr_request(),
            &RESEND_WAITS,
            wire::natpmp_addr_response,
        )
        .await
    }

    /// Deletes every mapping of `session` (lifetime 0), one short try each.
    async fn delete_all(socket: &UdpSocket, session: &Session) {
        for held in &session.held {
            let want = held.want;
            let result = match session.method {
                Method::Pcp => {
                    let request = wire::pcp_map_request(
                        held.nonce,
                        want.proto,
                        want.internal,
                        0,
                        0,
                        session.client,
                    );
                    exchange(socket, &request, &[RELEASE_WAIT], |bytes| {
                        wire::pcp_map_response(bytes, held.nonce, want.proto, want.internal)
                    })
                    .await
                }
                Method::NatPmp => {
                    let request = wire::natpmp_map_request(want.proto, want.internal, 0, 0);
                    exchange(socket, &request, &[RELEASE_WAIT], |bytes| {
                        wire::natpmp_map_response(bytes, want.proto, want.internal)
                    })
                    .await
                }
                Method::Upnp => match &session.igd {
                    Some(igd) => upnp_delete(igd, want, held.granted.external_port)
                        .await
                        .map(|()| held.granted),
                    None => Err(Asked::Unsupported),
                },
            };
            match result {
                Ok(_) => log::info!(
                    "port mapping: deleted {} {} on {}",
                    want.proto.name().to_ascii_uppercase(),
                    held.granted.external_port,
                    session.gateway
                ),
                Err(err) => log::warn!(
                    "port mapping: could not delete {} {} on {}: {err}",
                    want.proto.name().to_ascii_uppercase(),
                    held.granted.external_port,
                    session.gateway
                ),
            }
        }
    }

    /// On stop: deletes the mappings the relay holds and its record.
    pub async fn release(config: &Config) {
        if !config.port_mapping {
            return;
        }
        let session = lock(&SESSION).take();
        if let Some(session) = session {
            if let Ok(socket) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
                if socket
                    .connect(SocketAddr::new(
                        IpAddr::V4(session.gateway),
                        wire::SERVER_PORT,
                    ))
                    .await
                    .is_ok()
                {
                    delete_all(&socket, &session).await;
                }
            }
        }
        *lock(&RECORD) = None;
        let _ = std::fs::remove_file(record_path(&config.state_dir));
    }
}
