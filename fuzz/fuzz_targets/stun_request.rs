//! The STUN server's request parser. An accepted request is answered for an address built
//! from the input, and the answer must parse back to the same transaction ID and address.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::stun::{self, RESPONSE_LEN_V6};

fuzz_target!(|message: &[u8]| {
    let Ok(txid) = stun::parse_binding_request(message) else {
        return;
    };
    // The answer's address comes from the transaction ID so both families are reached.
    let port = u16::from_be_bytes([txid[0], txid[1]]);
    let ip = if txid[2] & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(txid[3], txid[4], txid[5], txid[6]))
    } else {
        let mut octets = [0u8; 16];
        octets[..12].copy_from_slice(&txid);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let from = SocketAddr::new(ip, port);
    let mut out = [0u8; RESPONSE_LEN_V6];
    let len = stun::binding_response(&txid, from, &mut out);
    let (back_txid, back_addr) =
        stun::parse_binding_response(&out[..len]).expect("own response parses");
    assert_eq!(back_txid, txid);
    // IPv4-mapped IPv6 addresses are answered as IPv4.
    let expected = match from.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => from,
        },
        IpAddr::V4(_) => from,
    };
    assert_eq!(back_addr, expected);
});
