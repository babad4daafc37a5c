//! The small HTTP router next to DERP: probes, the captive-portal check, robots.txt,
//! the status page and Prometheus metrics. Every response is built whole and the
//! connection is closed after it (clients of these paths open one request per connection).

use crate::text::Quoted;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use crate::proto::http::{self as http_proto, RequestHead};

use super::server::Server;

/// Headers upstream adds to pages a browser may show.
const BROWSER_HEADERS: [(&str, &str); 4] = [
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
    (
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; block-all-mixed-content; object-src 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
];
/// Cache header of the captive-portal answer (must never be cached by a middlebox).
const NO_CACHE: &str = "no-cache, no-store, must-revalidate, no-transform, max-age=0";

/// What the DERP listener does with a request.
pub(crate) enum Route {
    /// Hand the connection to the DERP handler.
    Derp,
    /// Hand the connection to the DERP-over-WebSocket handler.
    WebSocket,
    /// Send these bytes and close.
    Respond(Vec<u8>),
}

/// Routes a request that arrived on the TLS listener.
pub(crate) fn route_https(server: &Server, head: &RequestHead, peer: SocketAddr) -> Route {
    let path = head.path.as_str();
    if head.method.eq_ignore_ascii_case("CONNECT") {
        count(server, "connect");
        return Route::Respond(http_proto::simple_response(
            403,
            "Forbidden",
            &[],
            b"CONNECT not enabled\n",
        ));
    }
    match path {
        "/derp" => {
            let upgrade = head.upgrade.as_deref().unwrap_or("");
            let websocket_derp = upgrade == "websocket"
                && head
                    .websocket_protocol
                    .as_deref()
                    .is_some_and(|p| p.contains("derp"));
            if websocket_derp {
                count(server, "derp_websocket");
                Route::WebSocket
            } else if upgrade == "derp" || upgrade == "websocket" {
                Route::Derp
            } else {
                if !upgrade.is_empty() {
                    log::debug!("{peer}: weird upgrade {}", Quoted(upgrade));
                }
                count(server, "derp_no_upgrade");
                Route::Respond(http_proto::simple_response(
                    426,
                    "Upgrade Required",
                    &[("Content-Type", "text/plain")],
                    b"DERP requires connection upgrade",
                ))
            }
        }
        _ => Route::Respond(respond_common(server, head, peer).unwrap_or_else(|| {
            if path == "/" {
                count(server, "home");
                home_page(server, head, peer)
            } else {
                count(server, "not_found");
                http_proto::simple_response(404, "Not Found", &BROWSER_HEADERS, b"not found\n")
            }
        })),
    }
}

/// Routes a request that arrived on the plain-HTTP port (docs/protocol.md §4.9).
pub(crate) fn route_plain(server: &Server, head: &RequestHead, peer: SocketAddr) -> Vec<u8> {
    if let Some(response) = respond_common(server, head, peer) {
        return response;
    }
    if !(head.method == "GET" || head.method == "HEAD") {
        count(server, "plain_bad_method");
        return http_proto::simple_response(400, "Bad Request", &[], b"Use HTTPS\n");
    }
    count(server, "plain_redirect");
    let host = head
        .host
        .as_deref()
        .map(strip_port)
        .unwrap_or(server.config.derp_map.hostname.as_str());
    let port = server.config.derp_map.derp_port;
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{}:{port}", bracket(host))
    };
    let target = match &head.query {
        Some(query) => format!("https://{authority}{}?{query}", head.path),
        None => format!("https://{authority}{}", head.path),
    };
    http_proto::simple_response(302, "Found", &[("Location", &target)], b"")
}

/// Paths served the same on both listeners; `None` if the path is not one of them.
fn respond_common(server: &Server, head: &RequestHead, peer: SocketAddr) -> Option<Vec<u8>> {
    let path = head.path.as_str();
    Some(match path {
        "/derp/probe" | "/derp/latency-check" => {
            count(server, "probe");
            if head.method == "GET" || head.method == "HEAD" {
                http_proto::simple_response(200, "OK", &[("Access-Control-Allow-Origin", "*")], b"")
            } else {
                http_proto::simple_response(405, "Method Not Allowed", &[], b"bogus probe method")
            }
        }
        "/generate_204" => {
            count(server, "generate_204");
            let answer = head
                .tailscale_challenge
                .as_deref()
                .and_then(http_proto::challenge_response_value);
            let mut headers = vec![("Cache-Control", NO_CACHE)];
            if let Some(answer) = answer.as_deref() {
                headers.push(("X-Tailscale-Response", answer));
            }
            http_proto::simple_response(204, "No Content", &headers, b"")
        }
        "/robots.txt" => {
            count(server, "robots");
            let mut headers = BROWSER_HEADERS.to_vec();
            headers.push(("Content-Type", "text/plain; charset=utf-8"));
            http_proto::simple_response(200, "OK", &headers, b"User-agent: *\nDisallow: /\n")
        }
        "/debug/varz" | "/metrics" => {
            count(server, "metrics");
            if !debug_allowed(server, head, peer.ip()) {
                return Some(http_proto::simple_response(
                    403,
                    "Forbidden",
                    &[],
                    b"debug access denied\n",
                ));
            }
            let body = render_metrics(server);
            http_proto::simple_response(
                200,
                "OK",
                &[("Content-Type", "text/plain; version=0.0.4")],
                body.as_bytes(),
            )
        }
        _ => return None,
    })
}

fn count(server: &Server, route: &'static str) {
    server.telemetry.metrics().http_requests.bump(route);
}

/// Loopback (and configured networks) may read metrics, unless a proxy forwarded the request.
fn debug_allowed(server: &Server, head: &RequestHead, ip: IpAddr) -> bool {
    if head.has_forwarded_for {
        return false;
    }
    server.config.metrics_allowed(ip)
}

/// Every counter: the relay's and the I/O edge's, plus uptime and version.
pub(crate) fn render_metrics(server: &Server) -> String {
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP tinyderp_build_info Version of this server.\n# TYPE tinyderp_build_info gauge\ntinyderp_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# HELP tinyderp_uptime_seconds Seconds since start.\n# TYPE tinyderp_uptime_seconds gauge\ntinyderp_uptime_seconds {}",
        server.telemetry.started.elapsed().as_secs()
    );
    server.hub.lock().render_metrics(&mut out);
    server.telemetry.metrics().render(&mut out);
    super::websocket::render_metrics(&mut out);
    super::check_watch::render_metrics(&mut out);
    super::mesh::render_metrics(server, &mut out);
    super::portmap::render_metrics(&mut out);
    out
}

/// The status page: what this server is, how long it has run, how many clients are
/// connected, and the DERP map snippet to paste.
fn home_page(server: &Server, head: &RequestHead, peer: SocketAddr) -> Vec<u8> {
    let stats = server.hub.lock().stats();
    let uptime = server.telemetry.started.elapsed().as_secs();
    let mut page = String::with_capacity(4096);
    let _ = write!(
        page,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tinyderp</title></head><body>\n\
         <h1>tinyderp</h1>\n<p>This is a Tailscale DERP relay (tinyderp {version}).</p>\n\
         <ul><li>Uptime: {days}d {hours}h {minutes}m</li>\n<li>Connected clients: {clients}</li>\n\
         <li>Server key: {key}</li>\n<li>Certificate pin: {pin}</li></ul>\n",
        version = env!("CARGO_PKG_VERSION"),
        days = uptime / 86_400,
        hours = uptime % 86_400 / 3_600,
        minutes = uptime % 3_600 / 60,
        clients = stats.connections,
        key = server.identity.public,
        pin = server.tls.resolver.pin(),
    );
    let detailed = debug_allowed(server, head, peer.ip());
    if detailed {
        page.push_str("<p><a href=\"/debug/varz\">Metrics</a></p>\n");
    }
    page.push_str(&super::check_watch::status_html(detailed));
    page.push_str(&super::mesh::status_html(server, detailed));
    page.push_str(&super::portmap::status_html(detailed));
    let _ = write!(
        page,
        "<h2>DERP map</h2>\n<pre>{}</pre>\n</body></html>\n",
        http_proto::escape_html(&server.derp_map_text())
    );
    let mut headers = BROWSER_HEADERS.to_vec();
    headers.push(("Content-Type", "text/html; charset=utf-8"));
    http_proto::simple_response(200, "OK", &headers, page.as_bytes())
}

/// `host:port` -> `host`, `[v6]:port` -> `v6`; a bare host is returned as is.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("router.example:80"), "router.example");
        assert_eq!(strip_port("router.example"), "router.example");
        assert_eq!(strip_port("[2001:db8::1]:80"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            http_proto::escape_html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
