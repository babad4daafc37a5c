//! UPnP IGD, the subset port mapping needs when the upstream router speaks neither PCP
//! nor NAT-PMP: the SSDP M-SEARCH request and the LOCATION of its answer, the `controlURL`
//! of the WAN connection service in the device description, and the SOAP requests
//! `AddPortMapping`, `DeletePortMapping` and `GetExternalIPAddress` with their answers.
//!
//! The XML is scanned, not parsed: only element text by name is needed, and the inputs
//! are bounded by the caller ([`MAX_DESCRIPTION`], [`MAX_SOAP_RESPONSE`]).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// The SSDP multicast group and port.
pub const SSDP_ADDR: (Ipv4Addr, u16) = (Ipv4Addr::new(239, 255, 255, 250), 1900);
/// Largest device description read.
pub const MAX_DESCRIPTION: usize = 64 * 1024;
/// Largest SOAP answer read.
pub const MAX_SOAP_RESPONSE: usize = 16 * 1024;
/// Largest SSDP answer read.
pub const MAX_SSDP_RESPONSE: usize = 2048;
/// The UPnP error code of "only permanent leases supported" (ask again with lease 0).
pub const ONLY_PERMANENT_LEASES: u32 = 725;

/// The M-SEARCH request for an Internet Gateway Device.
pub fn msearch_request() -> &'static [u8] {
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\
ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
}

/// The LOCATION header of an SSDP answer (`HTTP/1.1 200 OK`), if it has one.
pub fn ssdp_location(answer: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(answer).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?;
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return None;
    }
    lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("location")
            .then(|| value.trim())
    })
}

/// An `http://HOST:PORT/PATH` URL with an IPv4 literal host (what gateways announce).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// The host.
    pub ip: IpAddr,
    /// The port (80 when absent).
    pub port: u16,
    /// The path, starting with `/`.
    pub path: String,
}

/// Parses an `http://` URL whose host is an IPv4 address.
pub fn parse_http_url(url: &str) -> Option<HttpUrl> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (rest.get(..at)?, rest.get(at..)?),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    Some(HttpUrl {
        ip: IpAddr::V4(host.parse().ok()?),
        port,
        path: path.to_string(),
    })
}

/// The text of the first `<tag>` element at or after `from` (any namespace prefix), and
/// where it ends.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let mut at = from;
    loop {
        let rest = xml.get(at..)?;
        let open = rest.find('<')?;
        let name_start = at.checked_add(open)?.checked_add(1)?;
        let after = xml.get(name_start..)?;
        let close = after.find('>')?;
        let name = after.get(..close)?;
        let local = name.rsplit(':').next().unwrap_or(name);
        let content_start = name_start.checked_add(close)?.checked_add(1)?;
        if local == tag {
            let content = xml.get(content_start..)?;
            let end = content.find("</")?;
            return Some((content.get(..end)?.trim(), content_start.checked_add(end)?));
        }
        at = content_start;
    }
}

/// The text of the first `<tag>` element (any namespace prefix).
pub fn element_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    element(xml, tag, 0).map(|(text, _)| text)
}

/// The WAN connection service of a device description: (service type, control URL).
pub fn wan_service(description: &str) -> Option<(String, String)> {
    let mut at = 0;
    while let Some((service_type, end)) = element(description, "serviceType", at) {
        at = end;
        let wanted = service_type.starts_with("urn:schemas-upnp-org:service:WANIPConnection:")
            || service_type.starts_with("urn:schemas-upnp-org:service:WANPPPConnection:");
        if wanted {
            let (control, _) = element(description, "controlURL", end)?;
            return Some((service_type.to_string(), control.to_string()));
        }
    }
    None
}

/// A SOAP call: the HTTP request bytes for `action` of `service` at `url`.
pub fn soap_request(url: &HttpUrl, service: &str, action: &str, args: &[(&str, String)]) -> String {
    let mut body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{service}\">"
    );
    for (name, value) in args {
        let _ = write!(body, "<{name}>{value}</{name}>");
    }
    let _ = write!(body, "</u:{action}></s:Body></s:Envelope>\r\n");
    format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
         SOAPAction: \"{service}#{action}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.path,
        url.ip,
        url.port,
        body.len()
    )
}

/// A plain GET for the device description.
pub fn get_request(url: &HttpUrl) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        url.path, url.ip, url.port
    )
}

/// Why an HTTP/SOAP answer is not a success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SoapError {
    /// Not an HTTP answer, or cut short.
    Malformed,
    /// The gateway answered with a UPnP error (code, description).
    Fault(u32, String),
    /// Another HTTP status without a UPnP error.
    Status(u16),
}

impl std::fmt::Display for SoapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SoapError::Malformed => f.write_str("malformed HTTP answer"),
            SoapError::Fault(code, text) => write!(f, "UPnP error {code} ({text})"),
            SoapError::Status(code) => write!(f, "HTTP status {code}"),
        }
    }
}

/// Splits an HTTP answer into its status and body (the body up to the end of the bytes:
/// the request said `Connection: close`; chunked bodies are taken as they are, the
/// element scan skips the chunk sizes).
pub fn http_answer(bytes: &[u8]) -> Result<(u16, &str), SoapError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SoapError::Malformed)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or(SoapError::Malformed)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(SoapError::Malformed)?;
    Ok((status, body))
}

/// The body of a successful SOAP answer, or the fault it carries.
pub fn soap_answer(bytes: &[u8]) -> Result<&str, SoapError> {
    let (status, body) = http_answer(bytes)?;
    if status == 200 {
        return Ok(body);
    }
    match element_text(body, "errorCode").and_then(|code| code.parse().ok()) {
        Some(code) => Err(SoapError::Fault(
            code,
            element_text(body, "errorDescription")
                .unwrap_or("")
                .to_string(),
        )),
        None => Err(SoapError::Status(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIPTION: &str = "<?xml version=\"1.0\"?><root><device><serviceList>\
        <service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>\
        <controlURL>/ctl/L3F</controlURL></service></serviceList><deviceList><device>\
        <serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>\
        <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>\
        </service></serviceList></device></deviceList></device></root>";

    #[test]
    fn ssdp_and_url() {
        let answer = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLocation: http://192.168.1.1:37401/rootDesc.xml\r\n\r\n";
        let location = ssdp_location(answer);
        assert_eq!(location, Some("http://192.168.1.1:37401/rootDesc.xml"));
        assert_eq!(
            parse_http_url("http://192.168.1.1:37401/rootDesc.xml"),
            Some(HttpUrl {
                ip: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
                port: 37401,
                path: "/rootDesc.xml".into()
            })
        );
        assert_eq!(parse_http_url("https://192.168.1.1/x"), None);
        assert_eq!(
            ssdp_location(b"NOTIFY * HTTP/1.1\r\nLocation: x\r\n\r\n"),
            None
        );
    }

    #[test]
    fn finds_the_wan_service_and_answers() {
        assert_eq!(
            wan_service(DESCRIPTION),
            Some((
                "urn:schemas-upnp-org:service:WANIPConnection:2".into(),
                "/ctl/IPConn".into()
            ))
        );
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<s:Envelope><s:Body><u:GetExternalIPAddressResponse><NewExternalIPAddress>11.0.0.10</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>";
        let body = soap_answer(ok).unwrap_or_default();
        assert_eq!(
            element_text(body, "NewExternalIPAddress"),
            Some("11.0.0.10")
        );
        let fault = b"HTTP/1.1 500 Internal Server Error\r\n\r\n<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>725</errorCode><errorDescription>OnlyPermanentLeasesSupported</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>";
        assert_eq!(
            soap_answer(fault),
            Err(SoapError::Fault(725, "OnlyPermanentLeasesSupported".into()))
        );
        let url =
            parse_http_url("http://192.168.1.1:5000/ctl/IPConn").unwrap_or_else(|| unreachable!());
        let request = soap_request(
            &url,
            "urn:schemas-upnp-org:service:WANIPConnection:2",
            "GetExternalIPAddress",
            &[],
        );
        assert!(request.starts_with("POST /ctl/IPConn HTTP/1.1\r\nHost: 192.168.1.1:5000\r\n"));
        assert!(request.contains(
            "SOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:2#GetExternalIPAddress\""
        ));
        let body = request.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert!(request.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn junk_never_panics() {
        let mut seed = 0x9e37_79b9u32;
        let alphabet = b"<>/: \r\nabcHTTP/1.1 200serviceTypecontrolURLerrorCode0123456789";
        for _ in 0..3000 {
            let len = (seed % 120) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    alphabet[(seed >> 16) as usize % alphabet.len()]
                })
                .collect();
            let _ = ssdp_location(&bytes);
            let _ = soap_answer(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = wan_service(text);
                let _ = parse_http_url(text);
            }
        }
        for cut in 0..DESCRIPTION.len() {
            if let Some(text) = DESCRIPTION.get(..cut) {
                let _ = wan_service(text);
            }
        }
    }
}
