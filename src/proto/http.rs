//! HTTP/1.1 request heads and the few fixed responses a DERP listener writes itself.
//!
//! The `/derp` upgrade is handled on the raw (TLS) stream: the head is parsed here with a
//! hard size bound, and every byte after it belongs to the DERP stream (in fast-start mode
//! the client's ClientInfo frame usually arrives in the same read as the head).

use std::fmt;

use super::key::PublicKey;

/// Largest request head accepted (request line + headers + blank line), 8 KiB.
pub const MAX_REQUEST_HEAD: usize = 8 << 10;
/// Most header lines accepted in one request head.
pub const MAX_HEADERS: usize = 32;
/// Longest `X-Tailscale-Challenge` value that is echoed back.
pub const MAX_CHALLENGE_LEN: usize = 64;

/// Why a request head was refused; the connection is closed without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// No complete head within [`MAX_REQUEST_HEAD`] bytes.
    TooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Not an HTTP/1.x request head.
    Malformed,
}

impl HttpError {
    /// Short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::TooLarge => "head_too_large",
            HttpError::TooManyHeaders => "too_many_headers",
            HttpError::Malformed => "malformed_head",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http request: {}", self.reason())
    }
}

impl std::error::Error for HttpError {}

/// The parts of a request head the server routes on. Header names are matched
/// case-insensitively; for repeated headers the first value counts (like Go's `Header.Get`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method as sent (`GET`, `HEAD`, `CONNECT`, ...).
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string after `?`, without the `?`.
    pub query: Option<String>,
    /// `Host` header (may include a port).
    pub host: Option<String>,
    /// `Upgrade` header, lower-cased.
    pub upgrade: Option<String>,
    /// `Derp-Fast-Start` is exactly `1`.
    pub fast_start: bool,
    /// `Ideal-Node` header, when present and non-empty.
    pub ideal_node: Option<String>,
    /// `X-Tailscale-Challenge` header (captive-portal check).
    pub tailscale_challenge: Option<String>,
    /// `Sec-WebSocket-Protocol` header.
    pub websocket_protocol: Option<String>,
    /// `Connection` header (the WebSocket handshake needs its `upgrade` token).
    pub connection: Option<String>,
    /// `Sec-WebSocket-Key` header.
    pub websocket_key: Option<String>,
    /// `Sec-WebSocket-Version` header.
    pub websocket_version: Option<String>,
    /// An `X-Forwarded-For` header is present (the client came through a proxy).
    pub has_forwarded_for: bool,
}

/// Parses a request head at the start of `buf`.
///
/// `Ok(None)`: incomplete, read more (an error instead once `buf` holds more than
/// [`MAX_REQUEST_HEAD`] bytes without a complete head). `Ok(Some((head, consumed)))`:
/// `buf[consumed..]` is not part of the head and must be kept by the caller.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let window = buf.get(..MAX_REQUEST_HEAD).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) if buf.len() > MAX_REQUEST_HEAD => {
            return Err(HttpError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(_) => return Err(HttpError::Malformed),
    };
    let target = origin_form(request.path.unwrap_or("/"));
    let target = target.as_str();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    let mut head = RequestHead {
        method: request.method.unwrap_or("").to_owned(),
        path: path.to_owned(),
        query,
        ..RequestHead::default()
    };
    let mut fast_start_seen = false;
    for header in request.headers.iter() {
        let value = || String::from_utf8_lossy(header.value).into_owned();
        let name = header.name;
        let first = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = Some(value());
            }
        };
        if name.eq_ignore_ascii_case("host") {
            first(&mut head.host);
        } else if name.eq_ignore_ascii_case("upgrade") {
            if head.upgrade.is_none() {
                head.upgrade = Some(value().to_ascii_lowercase());
            }
        } else if name.eq_ignore_ascii_case("derp-fast-start") {
            // Only the first value counts, as with Go's Header.Get.
            if !fast_start_seen {
                fast_start_seen = true;
                head.fast_start = header.value == b"1";
            }
        } else if name.eq_ignore_ascii_case("ideal-node") {
            if head.ideal_node.is_none() && !header.value.is_empty() {
                head.ideal_node = Some(value());
            }
        } else if name.eq_ignore_ascii_case("x-tailscale-challenge") {
            first(&mut head.tailscale_challenge);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            first(&mut head.websocket_protocol);
        } else if name.eq_ignore_ascii_case("connection") {
            first(&mut head.connection);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            first(&mut head.websocket_key);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            first(&mut head.websocket_version);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            head.has_forwarded_for = true;
        }
    }
    Ok(Some((head, consumed)))
}

/// The 101 response to a non-fast-start `/derp` upgrade (exactly as derper writes it).
pub fn derp_switching_protocols(server: &PublicKey) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: DERP\r\n\
         Connection: Upgrade\r\n\
         Derp-Version: 2\r\n\
         Derp-Public-Key: {}\r\n\
         \r\n",
        server.to_hex()
    )
    .into_bytes()
}

/// Reduces an absolute-form request target (`https://host:port/derp?x`, which HTTP/1.1
/// servers must accept and hyper-based clients such as Tailscale's Rust `ts_derp` send)
/// to its origin form (`/derp?x`). Other targets are returned unchanged.
fn origin_form(target: &str) -> String {
    let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    else {
        return target.to_owned();
    };
    match rest.find(['/', '?']).and_then(|at| rest.get(at..)) {
        Some(tail) if tail.starts_with('/') => tail.to_owned(),
        Some(query) => format!("/{query}"),
        None => "/".to_owned(),
    }
}

/// A complete response that ends the connection: status line, the given headers,
/// `Content-Length` (not for 204/304, which have no body), `Connection: close`, body.
pub fn simple_response(
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    let bodyless = status == 204 || status == 304;
    if !bodyless {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    if !bodyless {
        out.extend_from_slice(body);
    }
    out
}

/// The `X-Tailscale-Response` value for a captive-portal challenge: `response <challenge>`
/// when the challenge is non-empty, at most 64 bytes and only `[A-Za-z0-9._:-]`.
pub fn challenge_response_value(challenge: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if challenge.is_empty()
        || challenge.len() > MAX_CHALLENGE_LEN
        || !challenge.chars().all(allowed)
    {
        return None;
    }
    Some(format!("response {challenge}"))
}

/// Escapes text for an HTML page (the status page shows user-set names and snippets).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::noise::noise;

    /// Bytes of Go's `http.Request.Write` for the request derphttp builds (Go 1.26),
    /// fast-start variant with an Ideal-Node header.
    const GO_FAST_START: &[u8] = b"GET /derp HTTP/1.1\r\nHost: derp.example.com:8443\r\n\
User-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\
Ideal-Node: 900a\r\nUpgrade: DERP\r\n\r\n";

    #[test]
    fn go_fast_start_request_with_glued_frame() {
        let mut stream = GO_FAST_START.to_vec();
        let frame = [0x02, 0x00, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef];
        stream.extend_from_slice(&frame);
        let (head, consumed) = parse_request_head(&stream).unwrap().unwrap();
        assert_eq!(consumed, GO_FAST_START.len());
        assert_eq!(&stream[consumed..], &frame);
        assert_eq!(
            head,
            RequestHead {
                method: "GET".into(),
                path: "/derp".into(),
                query: None,
                host: Some("derp.example.com:8443".into()),
                upgrade: Some("derp".into()),
                fast_start: true,
                ideal_node: Some("900a".into()),
                tailscale_challenge: None,
                websocket_protocol: None,
                connection: Some("Upgrade".into()),
                websocket_key: None,
                websocket_version: None,
                has_forwarded_for: false,
            }
        );
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for cut in 0..GO_FAST_START.len() {
            assert_eq!(
                parse_request_head(&GO_FAST_START[..cut]),
                Ok(None),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn header_names_are_case_insensitive_and_first_value_wins() {
        let raw = b"HEAD /generate_204?t=1700000000 HTTP/1.1\r\nhOsT: 198.51.100.7\r\n\
x-tailscale-challenge: ts_198.51.100.7\r\nUPGRADE: WebSocket\r\nupgrade: derp\r\n\
sec-websocket-protocol: derp\r\nDERP-FAST-START: 2\r\nDerp-Fast-Start: 1\r\n\
Ideal-Node: \r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
        let (head, consumed) = parse_request_head(raw).unwrap().unwrap();
        assert_eq!(consumed, raw.len());
        assert_eq!(head.method, "HEAD");
        assert_eq!(head.path, "/generate_204");
        let absolute = b"POST https://127.0.0.1:8443/derp HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: DERP\r\nconnection: Upgrade\r\n\r\n";
        let (head2, _) = parse_request_head(absolute).unwrap().unwrap();
        assert_eq!(
            head2.path, "/derp",
            "absolute-form target (hyper clients) is reduced to its path"
        );
        assert_eq!(head2.method, "POST");
        for (target, want) in [
            ("http://h/a/b?c=d", "/a/b?c=d"),
            ("https://h:1", "/"),
            ("https://h?x=1", "/?x=1"),
            ("/plain", "/plain"),
            ("*", "*"),
        ] {
            assert_eq!(origin_form(target), want, "{target}");
        }
        assert_eq!(head.query.as_deref(), Some("t=1700000000"));
        assert_eq!(head.host.as_deref(), Some("198.51.100.7"));
        assert_eq!(head.tailscale_challenge.as_deref(), Some("ts_198.51.100.7"));
        assert_eq!(head.upgrade.as_deref(), Some("websocket"));
        assert_eq!(head.websocket_protocol.as_deref(), Some("derp"));
        assert!(!head.fast_start, "first Derp-Fast-Start value was 2");
        assert_eq!(head.ideal_node, None, "empty Ideal-Node is ignored");
        assert!(head.has_forwarded_for);
    }

    #[test]
    fn slow_path_request_without_extras() {
        let raw = b"GET /derp HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n\r\n";
        let (head, _) = parse_request_head(raw).unwrap().unwrap();
        assert!(!head.fast_start);
        assert_eq!(head.ideal_node, None);
        assert!(!head.has_forwarded_for);
        let no_upgrade = b"GET /derp HTTP/1.1\r\n\r\n";
        let (head, _) = parse_request_head(no_upgrade).unwrap().unwrap();
        assert_eq!(head.upgrade, None);
        assert_eq!(head.host, None);
    }

    #[test]
    fn oversize_and_garbage() {
        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_REQUEST_HEAD, b'a');
        assert_eq!(
            parse_request_head(&big),
            Ok(None),
            "exactly at the bound: keep reading"
        );
        big.push(b'a');
        assert_eq!(parse_request_head(&big), Err(HttpError::TooLarge));
        // A complete head that only ends past the bound is refused too.
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request_head(&big), Err(HttpError::TooLarge));

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request_head(&many), Err(HttpError::TooManyHeaders));

        assert_eq!(
            parse_request_head(b"\x16\x03\x01\x02\x00"),
            Err(HttpError::Malformed)
        );
        assert_eq!(
            parse_request_head(b"GET / HTTP/9.9\r\n\r\n"),
            Err(HttpError::Malformed)
        );
        assert_eq!(
            parse_request_head(b"G\x00T / HTTP/1.1\r\n\r\n"),
            Err(HttpError::Malformed)
        );
    }

    #[test]
    fn switching_protocols_exact_bytes() {
        let key = PublicKey([0xab; 32]);
        let expected = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\
Derp-Version: 2\r\nDerp-Public-Key: {}\r\n\r\n",
            "ab".repeat(32)
        );
        assert_eq!(derp_switching_protocols(&key), expected.into_bytes());
    }

    #[test]
    fn simple_responses() {
        assert_eq!(
            simple_response(
                426,
                "Upgrade Required",
                &[("Content-Type", "text/plain; charset=utf-8")],
                b"DERP requires connection upgrade"
            ),
            b"HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 32\r\nConnection: close\r\n\r\nDERP requires connection upgrade"
                .to_vec()
        );
        assert_eq!(
            simple_response(
                204,
                "No Content",
                &[("X-Tailscale-Response", "response a")],
                b"x"
            ),
            b"HTTP/1.1 204 No Content\r\nX-Tailscale-Response: response a\r\n\
Connection: close\r\n\r\n"
                .to_vec()
        );
        assert_eq!(
            simple_response(200, "OK", &[], b""),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn challenge_rule() {
        assert_eq!(
            challenge_response_value("ts_198.51.100.7").as_deref(),
            Some("response ts_198.51.100.7")
        );
        assert_eq!(
            challenge_response_value("AZaz09._:-").as_deref(),
            Some("response AZaz09._:-")
        );
        let max = "a".repeat(64);
        assert_eq!(
            challenge_response_value(&max),
            Some(format!("response {max}"))
        );
        assert_eq!(challenge_response_value(&"a".repeat(65)), None);
        assert_eq!(challenge_response_value(""), None);
        for bad in ["a b", "a/b", "a\r\nX: y", "é", "a+b", "a,b"] {
            assert_eq!(challenge_response_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parser_never_panics_on_noise() {
        let mut seed = 0x0bad_cafe_dead_beef;
        for round in 0..5_000usize {
            let mut bytes = GO_FAST_START[..round % GO_FAST_START.len()].to_vec();
            bytes.extend(noise(&mut seed, round % 64));
            let _ = parse_request_head(&bytes);
        }
    }
}
