//! Who may use the relay, as pure policy: the allowlist, the local tailscaled (LocalAPI
//! whois) and the admission URL, checked after the DERP handshake so a home line does not
//! become a free relay for strangers (docs/protocol.md §3.2).
//!
//! Order, as upstream: mesh peers (checked by the caller) bypass everything; a key on the
//! allowlist is admitted without further questions; otherwise every configured check
//! (`--verify-clients`, then `--verify-client-url`) must say yes. With only an allowlist,
//! unlisted keys are refused; with nothing configured, everybody is admitted.
//!
//! Everything here is pure: the settings, the requests as bytes, response parsing and the
//! verdicts. The I/O (the Unix socket, the TCP/TLS connection, deadlines and check slots)
//! is in `net::admission`, which calls these functions.

use crate::text::Quoted;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::proto::json;
use crate::proto::key::PublicKey;

/// tailscaled's LocalAPI socket on Linux (upstream's default).
pub const DEFAULT_TAILSCALED_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";
/// Most `--allowed-key` entries (kept sorted, looked up by binary search).
pub const MAX_ALLOWED_KEYS: usize = 1024;
/// Most body bytes of an admission URL answer that are looked at (upstream reads 4 KiB).
pub const MAX_ADMISSION_BODY: usize = 4 << 10;
/// Most headers in a response we parse.
const MAX_RESPONSE_HEADERS: usize = 32;
/// Capability version sent to tailscaled in `Tailscale-Cap` (upstream's at the time of
/// the protocol reference; whois answers the same for any recent value).
pub const TAILSCALE_CAP_VERSION: u32 = 145;
/// `Host` header tailscaled expects on its socket.
const TAILSCALED_HOST: &str = "local-tailscaled.sock";
/// Where the system's trusted CA certificates are (OpenWrt's `ca-bundle` package,
/// Debian, Alpine), used for an https:// admission URL.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Longest admission URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why an https:// admission URL is refused in a build without the `https-admission` feature.
pub const HTTPS_ADMISSION_DISABLED: &str = "https:// admission URLs need tinyderp built with \
    the https-admission cargo feature (it adds about 150 KiB); use an http:// URL, for example \
    a controller on the router or reached through the tailnet";

/// The admission settings, validated from the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmitPolicy {
    /// `--allowed-key`: sorted, without duplicates.
    pub allowed_keys: Vec<PublicKey>,
    /// `--verify-clients`: the tailscaled socket to ask (`--socket`, or the default).
    pub tailscaled_socket: Option<PathBuf>,
    /// `--verify-client-url`: where to POST the admission request.
    pub url: Option<AdmissionUrl>,
    /// `--verify-client-url-fail-open`: admit when the URL cannot be reached.
    pub url_fail_open: bool,
    /// `--verify-client-url-ca`: trusted CA certificates (PEM) for an https:// URL.
    pub url_ca_file: Option<PathBuf>,
    /// `--log-refused-keys`: log refused keys in a form ready to paste into the allowlist.
    pub log_refused_keys: bool,
}

impl AdmitPolicy {
    /// True when no check is configured: every client is admitted.
    pub fn is_open(&self) -> bool {
        self.allowed_keys.is_empty() && self.tailscaled_socket.is_none() && self.url.is_none()
    }

    /// True when `key` is on the allowlist.
    pub fn is_allowlisted(&self, key: &PublicKey) -> bool {
        self.allowed_keys
            .binary_search_by(|probe| probe.as_bytes().cmp(key.as_bytes()))
            .is_ok()
    }

    /// One line for the start-up log saying which checks are on.
    pub fn describe(&self) -> String {
        if self.is_open() {
            return String::from("admission: open (every client is admitted; see --allowed-key, --verify-clients, --verify-client-url)");
        }
        let mut parts = Vec::new();
        if !self.allowed_keys.is_empty() {
            parts.push(format!("{} allowed keys", self.allowed_keys.len()));
        }
        if let Some(socket) = &self.tailscaled_socket {
            parts.push(format!("local tailscaled at {}", socket.display()));
        }
        if let Some(url) = &self.url {
            parts.push(format!(
                "admission URL {} (fail-{})",
                url.text,
                if self.url_fail_open { "open" } else { "closed" }
            ));
        }
        format!("admission: {}", parts.join(", "))
    }
}

/// A parsed `http[s]://host[:port]/path` admission URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionUrl {
    /// `https://`: the controller is reached over TLS, verified against the CA file.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 or 443 when not given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
    /// The URL as given, for logs.
    pub text: String,
}

impl AdmissionUrl {
    /// The scheme's port.
    fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    /// The `Host` header value: the host (bracketed if IPv6) and a non-default port.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl FromStr for AdmissionUrl {
    type Err = String;

    /// Accepts `http://` or `https://`, then `host[:port][/path][?query]`.
    fn from_str(text: &str) -> Result<AdmissionUrl, String> {
        if text.len() > MAX_URL_LEN {
            return Err(format!("is longer than {MAX_URL_LEN} characters"));
        }
        if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(String::from(
                "must not contain spaces or control characters",
            ));
        }
        let lower = text.to_ascii_lowercase();
        let bad = || {
            format!(
                "{} is not an http:// or https:// URL (e.g. http://127.0.0.1:9000/admit)",
                Quoted(text)
            )
        };
        let (tls, scheme_len) = if lower.starts_with("https://") {
            (true, "https://".len())
        } else if lower.starts_with("http://") {
            (false, "http://".len())
        } else {
            return Err(bad());
        };
        let rest = text.get(scheme_len..).ok_or_else(bad)?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => {
                let (authority, target) = rest.split_at(at);
                let target = if target.starts_with('?') {
                    format!("/{target}")
                } else {
                    String::from(target)
                };
                (authority, target)
            }
            None => (rest, String::from("/")),
        };
        let target = target.split('#').next().unwrap_or("/").to_string();
        if authority.contains('@') {
            return Err(format!(
                "{}: user names in the URL are not supported",
                Quoted(text)
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad());
            }
            let port = match after {
                "" => None,
                other => Some(other.strip_prefix(':').ok_or_else(bad)?),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(bad());
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(format!("{}: port must be 1-65535", Quoted(text))),
            },
        };
        Ok(AdmissionUrl {
            tls,
            host: String::from(host),
            port,
            target,
            text: String::from(text),
        })
    }
}

/// Why a client was admitted; the label goes to the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// No check is configured.
    Open,
    /// The key is on the allowlist.
    Allowlist,
    /// Every configured check said yes.
    Checked,
    /// The admission URL could not be reached and fail-open is on.
    FailOpen,
}

impl Admitted {
    /// Metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Admitted::Open => "open",
            Admitted::Allowlist => "allowlist",
            Admitted::Checked => "checked",
            Admitted::FailOpen => "fail_open",
        }
    }
}

/// Why a client was refused: a metrics label and a sentence for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Metrics label: `not_allowlisted`, `tailscaled_unknown`, `tailscaled_error`,
    /// `tailscaled_unreachable`, `url_denied`, `url_status`, `url_bad_answer`,
    /// `url_unreachable`, `busy` (and `max_clients`, set by the net layer).
    pub reason: &'static str,
    /// What happened, for the log line.
    pub detail: String,
}

impl Refusal {
    /// A refusal with a metrics label and a log sentence.
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

/// The outcome of the admission check.
pub type Verdict = Result<Admitted, Refusal>;

/// The part of the decision that needs no I/O: `Some` verdict when the policy alone
/// decides (open, allowlisted, or allowlist-only and unlisted), `None` when the remote
/// checks (tailscaled, admission URL) must run.
pub fn decide_locally(policy: &AdmitPolicy, key: &PublicKey) -> Option<Verdict> {
    if policy.is_open() {
        return Some(Ok(Admitted::Open));
    }
    if policy.is_allowlisted(key) {
        return Some(Ok(Admitted::Allowlist));
    }
    if policy.tailscaled_socket.is_none() && policy.url.is_none() {
        return Some(Err(Refusal::new(
            "not_allowlisted",
            "not in the allowed keys",
        )));
    }
    None
}

/// The LocalAPI whois request for `key` (HTTP/1.1 over the Unix socket).
///
/// ```text
/// GET /localapi/v0/whois?addr=nodekey%3A<64 hex> HTTP/1.1
/// Host: local-tailscaled.sock
/// Tailscale-Cap: 145
/// Connection: close
/// ```
pub fn whois_request(key: &PublicKey) -> Vec<u8> {
    format!(
        "GET /localapi/v0/whois?addr=nodekey%3A{} HTTP/1.1\r\nHost: {TAILSCALED_HOST}\r\nTailscale-Cap: {TAILSCALE_CAP_VERSION}\r\nUser-Agent: tinyderp\r\nConnection: close\r\n\r\n",
        key.to_hex()
    )
    .into_bytes()
}

/// The admission-controller request: `POST` with `{"NodePublic":"nodekey:…","Source":"ip"}`
/// (upstream's `DERPAdmitClientRequest`; `Source` is empty when unknown).
pub fn admission_request(url: &AdmissionUrl, key: &PublicKey, source: Option<IpAddr>) -> Vec<u8> {
    let source = source.map(|ip| ip.to_string()).unwrap_or_default();
    let body = json::to_string(&json::Value::object([
        ("NodePublic", key.to_string().into()),
        ("Source", source.into()),
    ]));
    format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tinyderp\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.target,
        url.host_header(),
        body.len()
    )
    .into_bytes()
}

/// A parsed HTTP response: status and de-chunked body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Parses a response from `buf`. `Ok(None)` means more bytes are needed; with `at_eof`
/// the body runs to the end of `buf` when neither `Content-Length` nor chunking says
/// otherwise.
pub fn parse_response(buf: &[u8], at_eof: bool) -> Result<Option<Response>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(format!("bad HTTP answer: {err}")),
    };
    let status = response.code.unwrap_or(0);
    let rest = buf.get(head_len..).unwrap_or(&[]);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        return match dechunk(rest)? {
            Some(body) => Ok(Some(Response { status, body })),
            None if at_eof => Err(String::from("chunked answer cut short")),
            None => Ok(None),
        };
    }
    if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {}", Quoted(&length)))?;
        return match rest.get(..length) {
            Some(body) => Ok(Some(Response {
                status,
                body: body.to_vec(),
            })),
            None if at_eof => Err(String::from("answer shorter than its Content-Length")),
            None => Ok(None),
        };
    }
    if at_eof {
        Ok(Some(Response {
            status,
            body: rest.to_vec(),
        }))
    } else {
        Ok(None)
    }
}

/// Decodes a chunked body; `Ok(None)` when the final chunk has not arrived yet.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = rest.get(..line_end).unwrap_or(&[]);
        let size_text = String::from_utf8_lossy(line);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {}", Quoted(size_text)))?;
        let data_start = line_end.saturating_add(2);
        if size == 0 {
            return Ok(Some(body));
        }
        let data_end = data_start
            .checked_add(size)
            .ok_or_else(|| String::from("chunk too large"))?;
        let Some(data) = rest.get(data_start..data_end) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        rest = match rest.get(data_end.saturating_add(2)..) {
            Some(after) => after,
            None => return Ok(None),
        };
    }
}

/// tailscaled's answer to whois: 200 with JSON admits; 404 means "not a peer of mine".
pub fn whois_verdict(response: &Response) -> Result<(), Refusal> {
    match response.status {
        200 => match json::check(&response.body) {
            Ok(_) => Ok(()),
            Err(err) => Err(Refusal::new(
                "tailscaled_error",
                format!("local tailscaled sent unreadable whois JSON: {err}"),
            )),
        },
        404 => Err(Refusal::new(
            "tailscaled_unknown",
            "not found in local tailscaled (not a node of this tailnet, or not visible to it)",
        )),
        400 if String::from_utf8_lossy(&response.body).contains("invalid 'addr' parameter") => {
            Err(Refusal::new(
                "tailscaled_error",
                "local tailscaled is too old to look up node keys (update it)",
            ))
        }
        status => Err(Refusal::new(
            "tailscaled_error",
            format!(
                "local tailscaled answered whois with status {status}: {}",
                snippet(&response.body)
            ),
        )),
    }
}

/// The admission URL's answer: only status 200 with `{"Allow":true}` admits (the key is
/// matched case-insensitively, as Go's JSON decoder does; only the first
/// [`MAX_ADMISSION_BODY`] bytes are read).
pub fn admission_verdict(response: &Response) -> Result<(), Refusal> {
    if response.status != 200 {
        return Err(Refusal::new(
            "url_status",
            format!("admission controller answered status {}", response.status),
        ));
    }
    let body = response
        .body
        .get(..MAX_ADMISSION_BODY)
        .unwrap_or(&response.body);
    let object = json::parse_object(body).map_err(|err| {
        Refusal::new(
            "url_bad_answer",
            format!("admission controller sent unreadable JSON: {err}"),
        )
    })?;
    let allow = object
        .get_ignore_ascii_case("Allow")
        .and_then(json::Value::as_bool)
        .unwrap_or(false);
    if allow {
        Ok(())
    } else {
        Err(Refusal::new("url_denied", "admission controller said no"))
    }
}

/// The start of a body, printable, for a log line.
fn snippet(body: &[u8]) -> String {
    const SNIPPET_LEN: usize = 80;
    let text = String::from_utf8_lossy(body.get(..SNIPPET_LEN).unwrap_or(body));
    text.trim().replace(|c: char| c.is_control(), " ")
}

/// Most refused keys learn mode remembers (and the status socket lists); when a new key
/// comes and the record is full, the key seen least recently is forgotten (counted).
pub const LEARN_MEMORY: usize = 64;
/// The same refused key is logged again after this long.
pub const LEARN_REPEAT: Duration = Duration::from_secs(10 * 60);

/// One node key refused while learn mode was on: what LuCI lists with an Allow button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedKey {
    /// The refused node key.
    pub key: PublicKey,
    /// Where it last connected from, when known.
    pub source: Option<IpAddr>,
    /// The last refusal's metrics label (see [`Refusal::reason`]).
    pub reason: &'static str,
    /// When it was last refused.
    pub last_seen: Instant,
    /// How often it was refused while remembered.
    pub count: u64,
    /// When its learn line was last logged.
    logged: Instant,
}

/// Learn mode's record of refused keys: which were refused, from where, how often and
/// when last, so the status socket can list them, and which were logged recently, so a
/// client that retries every few seconds produces one log line per [`LEARN_REPEAT`], not
/// a flood. Bounded by [`LEARN_MEMORY`] entries; the least recently seen key is forgotten
/// first and counted in [`RefusedKeys::forgotten`].
#[derive(Debug, Default)]
pub struct RefusedKeys {
    /// Least recently seen first.
    recent: std::collections::VecDeque<RefusedKey>,
    /// Keys pushed out of the full record so far.
    forgotten: u64,
}

impl RefusedKeys {
    /// Records that `key` (from `source`) was refused for `reason` at `now`; true if its
    /// learn line should be logged now (first refusal, or [`LEARN_REPEAT`] since the last
    /// line).
    pub fn record(
        &mut self,
        key: &PublicKey,
        source: Option<IpAddr>,
        reason: &'static str,
        now: Instant,
    ) -> bool {
        if let Some(at) = self.recent.iter().position(|entry| entry.key == *key) {
            if let Some(mut entry) = self.recent.remove(at) {
                entry.source = source.or(entry.source);
                entry.reason = reason;
                entry.last_seen = now;
                entry.count = entry.count.saturating_add(1);
                let log = now.saturating_duration_since(entry.logged) >= LEARN_REPEAT;
                if log {
                    entry.logged = now;
                }
                self.recent.push_back(entry);
                return log;
            }
        }
        while self.recent.len() >= LEARN_MEMORY {
            self.recent.pop_front();
            self.forgotten = self.forgotten.saturating_add(1);
        }
        self.recent.push_back(RefusedKey {
            key: *key,
            source,
            reason,
            last_seen: now,
            count: 1,
            logged: now,
        });
        true
    }

    /// The remembered keys, least recently seen first (at most [`LEARN_MEMORY`]).
    pub fn entries(&self) -> impl Iterator<Item = &RefusedKey> {
        self.recent.iter()
    }

    /// How many keys were forgotten because the record was full.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

/// The learn-mode line for a refused key: the key, where it came from, and the lines
/// to paste to allow it.
pub fn learn_line(key: &PublicKey, source: Option<IpAddr>, refusal: &Refusal) -> String {
    let from = source.map_or_else(|| String::from("unknown address"), |ip| ip.to_string());
    format!(
        "refused {key} from {from} ({}); to allow it: uci add_list tinyderp.main.allowed_key='{key}' && uci commit tinyderp && /etc/init.d/tinyderp restart (or --allowed-key {key})",
        refusal.reason
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_slice(&[byte; 32]).unwrap()
    }

    #[test]
    fn urls() {
        let url: AdmissionUrl = "http://127.0.0.1:9000/admit?x=1".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("127.0.0.1", 9000, "/admit?x=1")
        );
        assert_eq!(url.host_header(), "127.0.0.1:9000");
        let url: AdmissionUrl = "HTTP://admit.lan".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("admit.lan", 80, "/")
        );
        assert_eq!(url.host_header(), "admit.lan");
        let url: AdmissionUrl = "http://[::1]:81/a#frag".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("::1", 81, "/a")
        );
        assert_eq!(url.host_header(), "[::1]:81");
        let url: AdmissionUrl = "http://h?q".parse().unwrap();
        assert_eq!(url.target, "/?q");
        let url: AdmissionUrl = "https://admit.example/x".parse().unwrap();
        assert!(url.tls);
        assert_eq!(
            (url.port, url.host_header()),
            (443, String::from("admit.example"))
        );
        let url: AdmissionUrl = "https://admit.example:8443".parse().unwrap();
        assert_eq!(url.host_header(), "admit.example:8443");
        let url: AdmissionUrl = "http://admit.example:443".parse().unwrap();
        assert!(!url.tls);
        assert_eq!(url.host_header(), "admit.example:443");
        for bad in [
            "ftp://x",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:+1/",
            "http://u@h/",
            "http://[zz]/",
            "http://h x/",
            "127.0.0.1:9000",
        ] {
            assert!(bad.parse::<AdmissionUrl>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_bytes() {
        let k = key(0xab);
        let expected = format!(
            "GET /localapi/v0/whois?addr=nodekey%3A{} HTTP/1.1\r\nHost: local-tailscaled.sock\r\nTailscale-Cap: 145\r\nUser-Agent: tinyderp\r\nConnection: close\r\n\r\n",
            "ab".repeat(32)
        );
        assert_eq!(String::from_utf8(whois_request(&k)).unwrap(), expected);

        let url: AdmissionUrl = "http://127.0.0.1:9000/admit".parse().unwrap();
        let request = String::from_utf8(admission_request(
            &url,
            &k,
            Some("2001:db8::5".parse().unwrap()),
        ))
        .unwrap();
        let body = format!(
            "{{\"NodePublic\":\"nodekey:{}\",\"Source\":\"2001:db8::5\"}}",
            "ab".repeat(32)
        );
        assert_eq!(
            request,
            format!("POST /admit HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: tinyderp\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        );
        let unknown = String::from_utf8(admission_request(&url, &k, None)).unwrap();
        assert!(unknown.ends_with("\"Source\":\"\"}"), "{unknown}");
    }

    #[test]
    fn response_framing() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(
            parse_response(plain, false).unwrap(),
            Some(Response {
                status: 200,
                body: b"body".to_vec()
            })
        );
        assert_eq!(
            parse_response(&plain[..plain.len() - 1], false).unwrap(),
            None
        );
        assert!(parse_response(&plain[..plain.len() - 1], true).is_err());
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent", false).unwrap(),
            None
        );

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false).unwrap().unwrap().body,
            b"abc0123456789"
        );
        assert_eq!(parse_response(&chunked[..60], false).unwrap(), None);
        assert!(parse_response(&chunked[..60], true).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false
        )
        .is_err());

        let close = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(close, false).unwrap(), None);
        assert_eq!(
            parse_response(close, true).unwrap(),
            Some(Response {
                status: 404,
                body: b"nope".to_vec()
            })
        );
        assert!(parse_response(b"SSH-2.0-x\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true).is_err());
    }

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn whois_verdicts() {
        assert_eq!(
            whois_verdict(&response(200, r#"{"Node":{"ID":1},"UserProfile":{}}"#)),
            Ok(())
        );
        let table: &[(u16, &str, &str)] = &[
            (200, "not json", "tailscaled_error"),
            (404, "no match for IP:port", "tailscaled_unknown"),
            (400, "invalid 'addr' parameter", "tailscaled_error"),
            (403, "denied", "tailscaled_error"),
            (500, "", "tailscaled_error"),
        ];
        for (status, body, reason) in table {
            assert_eq!(
                whois_verdict(&response(*status, body)).unwrap_err().reason,
                *reason,
                "{status} {body}"
            );
        }
        assert!(whois_verdict(&response(400, "invalid 'addr' parameter"))
            .unwrap_err()
            .detail
            .contains("too old"));
    }

    #[test]
    fn admission_verdicts() {
        for body in [
            r#"{"Allow":true}"#,
            r#"{"allow":true}"#,
            r#"{"ALLOW":true,"x":1}"#,
        ] {
            assert_eq!(admission_verdict(&response(200, body)), Ok(()), "{body}");
        }
        let table: &[(u16, &str, &str)] = &[
            (200, r#"{"Allow":false}"#, "url_denied"),
            (200, r#"{}"#, "url_denied"),
            (200, r#"{"Allow":"true"}"#, "url_denied"),
            (200, r#"{"Allow":false,"allow":true}"#, "url_denied"),
            (200, "yes", "url_bad_answer"),
            (200, "[true]", "url_bad_answer"),
            (403, r#"{"Allow":true}"#, "url_status"),
            (500, "", "url_status"),
        ];
        for (status, body, reason) in table {
            assert_eq!(
                admission_verdict(&response(*status, body))
                    .unwrap_err()
                    .reason,
                *reason,
                "{status} {body}"
            );
        }
        // Only the first 4 KiB are read: a valid answer padded beyond it is unreadable.
        let padded = format!("{{\"Allow\":true{}}}", " ".repeat(MAX_ADMISSION_BODY));
        assert_eq!(
            admission_verdict(&response(200, &padded))
                .unwrap_err()
                .reason,
            "url_bad_answer"
        );
    }

    #[test]
    fn allowlist_and_open_policy() {
        let mut policy = AdmitPolicy::default();
        assert!(policy.is_open());
        assert_eq!(decide_locally(&policy, &key(1)), Some(Ok(Admitted::Open)));
        policy.allowed_keys = vec![key(1), key(3)];
        assert!(!policy.is_open());
        assert!(policy.is_allowlisted(&key(3)));
        assert!(!policy.is_allowlisted(&key(2)));
        assert_eq!(
            decide_locally(&policy, &key(1)),
            Some(Ok(Admitted::Allowlist))
        );
        assert_eq!(
            decide_locally(&policy, &key(2))
                .unwrap()
                .unwrap_err()
                .reason,
            "not_allowlisted"
        );
        assert!(policy.describe().contains("2 allowed keys"));
    }

    #[test]
    fn remote_checks_are_left_to_the_io_edge() {
        let policy = AdmitPolicy {
            allowed_keys: vec![key(1)],
            tailscaled_socket: Some(PathBuf::from("/run/tailscaled.sock")),
            ..AdmitPolicy::default()
        };
        assert_eq!(
            decide_locally(&policy, &key(1)),
            Some(Ok(Admitted::Allowlist))
        );
        assert_eq!(decide_locally(&policy, &key(2)), None);
    }

    /// xorshift64: deterministic noise without a dependency.
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn response_parsers_never_panic_on_noise_or_mangled_answers() {
        let templates: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"Allow\":true}",
            b"HTTP/1.0 404 Not Found\r\n\r\nno match",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..30_000usize {
            let mut bytes = templates[round % templates.len()].to_vec();
            // Flip, cut or extend at random places, so the parsers see near-valid input.
            for _ in 0..(next(&mut seed) % 4) {
                let at = (next(&mut seed) as usize) % bytes.len().max(1);
                match next(&mut seed) % 3 {
                    0 if !bytes.is_empty() => bytes[at] = next(&mut seed) as u8,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at.min(bytes.len()), b"0123456789abcdef\r\n;"[at % 19]),
                }
            }
            for at_eof in [false, true] {
                if let Ok(Some(response)) = parse_response(&bytes, at_eof) {
                    let _ = whois_verdict(&response);
                    let _ = admission_verdict(&response);
                }
            }
        }
    }

    #[test]
    fn learn_memory_is_bounded_and_repeats_after_a_while() {
        let t0 = Instant::now();
        let ip = |last: u8| Some(IpAddr::from([192, 0, 2, last]));
        let mut keys = RefusedKeys::default();
        assert!(keys.record(&key(1), ip(1), "not_allowlisted", t0));
        let later = t0 + Duration::from_secs(60);
        assert!(!keys.record(&key(1), ip(2), "url_denied", later));
        let first: Vec<_> = keys.entries().cloned().collect();
        assert_eq!(first.len(), 1);
        assert_eq!(
            (
                first[0].key,
                first[0].source,
                first[0].reason,
                first[0].count
            ),
            (key(1), ip(2), "url_denied", 2)
        );
        assert_eq!(first[0].last_seen, later);
        // An unknown address keeps the last known one.
        assert!(!keys.record(&key(1), None, "url_denied", later));
        assert_eq!(keys.entries().next().unwrap().source, ip(2));
        assert!(keys.record(&key(1), None, "url_denied", t0 + LEARN_REPEAT));
        // Logged again only LEARN_REPEAT after the last line, not after the last refusal.
        assert!(!keys.record(
            &key(1),
            None,
            "url_denied",
            t0 + LEARN_REPEAT + Duration::from_secs(1)
        ));
        for byte in 2..=(LEARN_MEMORY as u8 + 1) {
            assert!(keys.record(&key(byte), None, "busy", t0 + LEARN_REPEAT));
        }
        // The bound holds, the overflow is counted, and the least recently seen (key 1)
        // went first.
        assert_eq!(keys.entries().count(), LEARN_MEMORY);
        assert_eq!(keys.forgotten(), 1);
        assert!(keys.entries().all(|entry| entry.key != key(1)));
        assert_eq!(keys.entries().next().unwrap().key, key(2));
        // Seeing key 2 again moves it to the back: key 3 is the next to go.
        assert!(!keys.record(&key(2), None, "busy", t0 + LEARN_REPEAT));
        assert!(keys.record(&key(1), None, "busy", t0 + LEARN_REPEAT));
        assert_eq!(keys.forgotten(), 2);
        assert!(keys.entries().any(|entry| entry.key == key(2)));
        assert!(keys.entries().all(|entry| entry.key != key(3)));
        // key(1) had been pushed out, so it was logged again.
        assert_eq!(keys.entries().last().unwrap().count, 1);
        let line = learn_line(
            &key(1),
            Some("203.0.113.5".parse().unwrap()),
            &Refusal::new("url_denied", "x"),
        );
        assert!(
            line.starts_with(&format!(
                "refused nodekey:{} from 203.0.113.5 (url_denied)",
                "01".repeat(32)
            )),
            "{line}"
        );
        assert!(line.contains(&format!("allowed_key='nodekey:{}'", "01".repeat(32))));
    }
}
