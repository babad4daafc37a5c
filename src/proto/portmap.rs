//! Port-mapping requests to the upstream gateway: PCP (RFC 6887) MAP and NAT-PMP
//! (RFC 6886), the two small binary UDP protocols a home router on a double NAT can use to
//! ask the router in front of it to forward the DERP and STUN ports.
//!
//! Both run on UDP port 5351 of the gateway; a PCP server answers a NAT-PMP request and a
//! NAT-PMP-only server answers a PCP request with "unsupported version", so a client tries
//! PCP first and falls back. All integers are big-endian.
//!
//! ```text
//! PCP request:   version=2 | opcode | reserved u16 | lifetime u32 | client IP (16, v4-mapped)
//! PCP response:  version=2 | 0x80|opcode | reserved | result u8 | lifetime u32 | epoch u32
//!                | reserved (12)
//! MAP payload:   nonce (12) | protocol u8 | reserved (3) | internal port u16
//!                | external port u16 | external IP (16)
//! NAT-PMP:       version=0 | opcode (0 address, 1 UDP, 2 TCP) | ...
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The UDP port PCP and NAT-PMP servers listen on.
pub const SERVER_PORT: u16 = 5351;
/// PCP version number.
pub const PCP_VERSION: u8 = 2;
/// NAT-PMP version number.
pub const NATPMP_VERSION: u8 = 0;
/// PCP MAP opcode.
pub const PCP_OP_MAP: u8 = 1;
/// Bit set in the opcode of every response.
pub const RESPONSE_BIT: u8 = 0x80;
/// Size of a PCP MAP request and of its response.
pub const PCP_MAP_LEN: usize = 60;
/// Size of a NAT-PMP external-address response.
pub const NATPMP_ADDR_RESPONSE_LEN: usize = 12;
/// Size of a NAT-PMP mapping request and response.
pub const NATPMP_MAP_LEN: usize = 16;
/// Largest datagram either protocol sends (PCP limits messages to 1100 bytes).
pub const MAX_MESSAGE: usize = 1100;
/// PCP result code of success.
pub const RESULT_SUCCESS: u8 = 0;
/// PCP and NAT-PMP result code "unsupported version" (the other protocol is spoken).
pub const RESULT_UNSUPP_VERSION: u8 = 1;

/// Transport protocol of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapProto {
    /// TCP (the DERP port).
    Tcp,
    /// UDP (the STUN port).
    Udp,
}

impl MapProto {
    /// IANA protocol number, as PCP carries it.
    pub fn iana(self) -> u8 {
        match self {
            MapProto::Tcp => 6,
            MapProto::Udp => 17,
        }
    }

    /// NAT-PMP opcode of a mapping request.
    pub fn natpmp_opcode(self) -> u8 {
        match self {
            MapProto::Tcp => 2,
            MapProto::Udp => 1,
        }
    }

    /// Lower-case name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            MapProto::Tcp => "tcp",
            MapProto::Udp => "udp",
        }
    }
}

/// A mapping the gateway granted (or, with lifetime 0, deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// Internal port the mapping forwards to.
    pub internal_port: u16,
    /// Port on the gateway's external address.
    pub external_port: u16,
    /// The external address, when the protocol reports it with the mapping (PCP does).
    pub external_ip: Option<IpAddr>,
    /// Seconds the mapping lives unless renewed.
    pub lifetime: u32,
}

/// Why an answer is not a usable mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortmapError {
    /// Too short, wrong version or opcode, or not a response.
    Malformed,
    /// A response to another request (nonce, protocol or port differs).
    NotOurs,
    /// The server speaks the other protocol (result "unsupported version").
    UnsupportedVersion,
    /// The server refused with this result code.
    Refused(u16),
}

impl std::fmt::Display for PortmapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortmapError::Malformed => f.write_str("malformed answer"),
            PortmapError::NotOurs => f.write_str("answer to another request"),
            PortmapError::UnsupportedVersion => f.write_str("protocol version not supported"),
            PortmapError::Refused(code) => {
                write!(f, "refused (result code {code}: {})", result_name(*code))
            }
        }
    }
}

/// Name of a PCP (or NAT-PMP, codes 0..=5) result code.
pub fn result_name(code: u16) -> &'static str {
    match code {
        0 => "success",
        1 => "unsupported version",
        2 => "not authorized",
        3 => "malformed request / network failure",
        4 => "unsupported opcode / out of resources",
        5 => "unsupported opcode / option",
        7 => "malformed option",
        8 => "network failure",
        9 => "no resources",
        10 => "unsupported protocol",
        11 => "user exceeded quota",
        12 => "cannot provide external",
        13 => "address mismatch",
        14 => "excessive remote peers",
        _ => "unknown",
    }
}

fn v6_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn from_v6_bytes(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// A PCP MAP request for `internal_port`; `lifetime` 0 deletes the mapping made with the
/// same nonce. `client` is our address as the gateway sees it (the source of the datagram).
pub fn pcp_map_request(
    nonce: [u8; 12],
    proto: MapProto,
    internal_port: u16,
    suggested_external_port: u16,
    lifetime: u32,
    client: IpAddr,
) -> [u8; PCP_MAP_LEN] {
    let mut out = [0u8; PCP_MAP_LEN];
    let mut at = Writer {
        out: &mut out,
        at: 0,
    };
    at.put(&[PCP_VERSION, PCP_OP_MAP, 0, 0]);
    at.put(&lifetime.to_be_bytes());
    at.put(&v6_bytes(client));
    at.put(&nonce);
    at.put(&[proto.iana(), 0, 0, 0]);
    at.put(&internal_port.to_be_bytes());
    at.put(&suggested_external_port.to_be_bytes());
    // Suggested external address: all zeros (any); for IPv4 the mapped form of 0.0.0.0.
    let any = match client {
        IpAddr::V4(_) => v6_bytes(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        IpAddr::V6(_) => [0u8; 16],
    };
    at.put(&any);
    out
}

/// Decodes a PCP MAP response to the request made with `nonce`, `proto`, `internal_port`.
pub fn pcp_map_response(
    bytes: &[u8],
    nonce: [u8; 12],
    proto: MapProto,
    internal_port: u16,
) -> Result<Granted, PortmapError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    let opcode = r.u8()?;
    let _reserved = r.u8()?;
    let result = r.u8()?;
    if version == NATPMP_VERSION && result == RESULT_UNSUPP_VERSION {
        return Err(PortmapError::UnsupportedVersion);
    }
    // A NAT-PMP server answers an unknown version with its 16-bit result code 1.
    if version == NATPMP_VERSION && opcode & RESPONSE_BIT != 0 {
        return Err(PortmapError::UnsupportedVersion);
    }
    if version != PCP_VERSION || opcode != RESPONSE_BIT | PCP_OP_MAP {
        return Err(PortmapError::Malformed);
    }
    let lifetime = r.u32()?;
    let _epoch = r.u32()?;
    r.skip(12)?;
    if result == RESULT_UNSUPP_VERSION {
        return Err(PortmapError::UnsupportedVersion);
    }
    if result != RESULT_SUCCESS {
        return Err(PortmapError::Refused(u16::from(result)));
    }
    let got_nonce = r.array::<12>()?;
    let got_proto = r.u8()?;
    r.skip(3)?;
    let got_internal = r.u16()?;
    let external_port = r.u16()?;
    let external_ip = from_v6_bytes(r.array::<16>()?);
    if got_nonce != nonce || got_proto != proto.iana() || got_internal != internal_port {
        return Err(PortmapError::NotOurs);
    }
    Ok(Granted {
        internal_port,
        external_port,
        external_ip: Some(external_ip),
        lifetime,
    })
}

/// The NAT-PMP request for the gateway's external IPv4 address.
pub fn natpmp_addr_request() -> [u8; 2] {
    [NATPMP_VERSION, 0]
}

/// Decodes the answer to [`natpmp_addr_request`].
pub fn natpmp_addr_response(bytes: &[u8]) -> Result<Ipv4Addr, PortmapError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    let opcode = r.u8()?;
    if version != NATPMP_VERSION || opcode != RESPONSE_BIT {
        return Err(PortmapError::Malformed);
    }
    let result = r.u16()?;
    if result != 0 {
        return Err(if result == u16::from(RESULT_UNSUPP_VERSION) {
            PortmapError::UnsupportedVersion
        } else {
            PortmapError::Refused(result)
        });
    }
    let _epoch = r.u32()?;
    Ok(Ipv4Addr::from(r.array::<4>()?))
}

/// A NAT-PMP mapping request; `lifetime` 0 (with external port 0) deletes it.
pub fn natpmp_map_request(
    proto: MapProto,
    internal_port: u16,
    suggested_external_port: u16,
    lifetime: u32,
) -> [u8; 12] {
    let mut out = [0u8; 12];
    let mut at = Writer {
        out: &mut out,
        at: 0,
    };
    at.put(&[NATPMP_VERSION, proto.natpmp_opcode(), 0, 0]);
    at.put(&internal_port.to_be_bytes());
    at.put(&suggested_external_port.to_be_bytes());
    at.put(&lifetime.to_be_bytes());
    out
}

/// Decodes the answer to [`natpmp_map_request`] (the external address is not in it).
pub fn natpmp_map_response(
    bytes: &[u8],
    proto: MapProto,
    internal_port: u16,
) -> Result<Granted, PortmapError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    let opcode = r.u8()?;
    if version != NATPMP_VERSION || opcode & RESPONSE_BIT == 0 {
        return Err(PortmapError::Malformed);
    }
    let result = r.u16()?;
    if result == u16::from(RESULT_UNSUPP_VERSION) {
        return Err(PortmapError::UnsupportedVersion);
    }
    if result != 0 {
        return Err(PortmapError::Refused(result));
    }
    if opcode != RESPONSE_BIT | proto.natpmp_opcode() {
        return Err(PortmapError::NotOurs);
    }
    let _epoch = r.u32()?;
    let got_internal = r.u16()?;
    let external_port = r.u16()?;
    let lifetime = r.u32()?;
    if got_internal != internal_port {
        return Err(PortmapError::NotOurs);
    }
    Ok(Granted {
        internal_port,
        external_port,
        external_ip: None,
        lifetime,
    })
}

struct Writer<'a, const N: usize> {
    out: &'a mut [u8; N],
    at: usize,
}

impl<const N: usize> Writer<'_, N> {
    /// Copies `bytes` at the cursor; the callers' layouts fit their arrays exactly.
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at.saturating_add(bytes.len());
        if let Some(slot) = self.out.get_mut(self.at..end) {
            slot.copy_from_slice(bytes);
        }
        self.at = end;
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], PortmapError> {
        let end = self.at.checked_add(len).ok_or(PortmapError::Malformed)?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(PortmapError::Malformed)?;
        self.at = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PortmapError> {
        self.take(N)?
            .try_into()
            .map_err(|_| PortmapError::Malformed)
    }
    fn skip(&mut self, len: usize) -> Result<(), PortmapError> {
        self.take(len).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, PortmapError> {
        Ok(u8::from_be_bytes(self.array::<1>()?))
    }
    fn u16(&mut self) -> Result<u16, PortmapError> {
        Ok(u16::from_be_bytes(self.array::<2>()?))
    }
    fn u32(&mut self) -> Result<u32, PortmapError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    fn pcp_answer(result: u8, proto: u8, internal: u16, external: u16) -> Vec<u8> {
        let mut out = vec![2, 0x81, 0, result];
        out.extend_from_slice(&7200u32.to_be_bytes());
        out.extend_from_slice(&99u32.to_be_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&NONCE);
        out.extend_from_slice(&[proto, 0, 0, 0]);
        out.extend_from_slice(&internal.to_be_bytes());
        out.extend_from_slice(&external.to_be_bytes());
        out.extend_from_slice(&Ipv4Addr::new(203, 0, 113, 10).to_ipv6_mapped().octets());
        out
    }

    #[test]
    fn pcp_request_layout() {
        let req = pcp_map_request(
            NONCE,
            MapProto::Tcp,
            8443,
            8443,
            7200,
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
        );
        assert_eq!(&req[..4], &[2, 1, 0, 0]);
        assert_eq!(&req[4..8], &7200u32.to_be_bytes());
        assert_eq!(
            &req[8..24],
            &Ipv4Addr::new(192, 168, 1, 2).to_ipv6_mapped().octets()
        );
        assert_eq!(&req[24..36], &NONCE);
        assert_eq!(req[36], 6);
        assert_eq!(&req[40..42], &8443u16.to_be_bytes());
        assert_eq!(&req[42..44], &8443u16.to_be_bytes());
        assert_eq!(
            &req[44..60],
            &Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets()
        );
    }

    #[test]
    fn pcp_response_decodes() {
        let granted = pcp_map_response(&pcp_answer(0, 6, 8443, 18443), NONCE, MapProto::Tcp, 8443);
        assert_eq!(
            granted,
            Ok(Granted {
                internal_port: 8443,
                external_port: 18443,
                external_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10))),
                lifetime: 7200,
            })
        );
        assert_eq!(
            pcp_map_response(&pcp_answer(0, 17, 8443, 1), NONCE, MapProto::Tcp, 8443),
            Err(PortmapError::NotOurs)
        );
        assert_eq!(
            pcp_map_response(&pcp_answer(2, 6, 8443, 0), NONCE, MapProto::Tcp, 8443),
            Err(PortmapError::Refused(2))
        );
        // A NAT-PMP-only gateway: version 0, opcode 0x81, result 1.
        assert_eq!(
            pcp_map_response(&[0, 0x81, 0, 1, 0, 0, 0, 0], NONCE, MapProto::Tcp, 8443),
            Err(PortmapError::UnsupportedVersion)
        );
    }

    #[test]
    fn natpmp_round_trip() {
        assert_eq!(
            natpmp_map_request(MapProto::Udp, 3478, 3478, 7200),
            [0, 1, 0, 0, 0x0d, 0x96, 0x0d, 0x96, 0, 0, 0x1c, 0x20]
        );
        let mut answer = vec![0, 0x82, 0, 0, 0, 0, 0, 5];
        answer.extend_from_slice(&8443u16.to_be_bytes());
        answer.extend_from_slice(&8444u16.to_be_bytes());
        answer.extend_from_slice(&3600u32.to_be_bytes());
        assert_eq!(
            natpmp_map_response(&answer, MapProto::Tcp, 8443),
            Ok(Granted {
                internal_port: 8443,
                external_port: 8444,
                external_ip: None,
                lifetime: 3600
            })
        );
        assert_eq!(
            natpmp_map_response(&answer, MapProto::Udp, 8443),
            Err(PortmapError::NotOurs)
        );
        assert_eq!(
            natpmp_addr_response(&[0, 0x80, 0, 0, 0, 0, 0, 1, 203, 0, 113, 10]),
            Ok(Ipv4Addr::new(203, 0, 113, 10))
        );
        assert_eq!(
            natpmp_addr_response(&[0, 0x80, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(PortmapError::Refused(3))
        );
    }

    #[test]
    fn truncated_and_junk_never_panic() {
        let full = pcp_answer(0, 6, 8443, 8443);
        for len in 0..full.len() {
            assert!(pcp_map_response(&full[..len], NONCE, MapProto::Tcp, 8443).is_err());
            let _ = natpmp_map_response(&full[..len], MapProto::Tcp, 8443);
            let _ = natpmp_addr_response(&full[..len]);
        }
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (seed % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = pcp_map_response(&bytes, NONCE, MapProto::Udp, 3478);
            let _ = natpmp_map_response(&bytes, MapProto::Udp, 3478);
            let _ = natpmp_addr_response(&bytes);
        }
    }
}
