//! The stub resolver's answer parser (`tinyderp check`, admission and mesh host names): must
//! not panic on any datagram a DNS server or a spoofer sends, and a well-formed answer the
//! target builds from the fuzzer's addresses must parse back to those addresses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::dns;

fuzz_target!(|message: &[u8]| {
    let id = message.first_chunk::<2>().map_or(0, |id| u16::from_be_bytes(*id));
    for qtype in [dns::TYPE_A, dns::TYPE_AAAA] {
        let _ = dns::parse_answer(message, id, "relay.example.com", qtype);
    }
    // Our own query, answered with the fuzzer's IPv4 addresses (4 bytes each, up to 16).
    let Ok(mut answer) = dns::encode_query(id, "relay.example.com", dns::TYPE_A) else {
        panic!("a valid name must encode");
    };
    let addrs: Vec<Ipv4Addr> =
        message.chunks_exact(4).take(16).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect();
    answer[2] |= 0x80;
    answer[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    for addr in &addrs {
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        answer.extend_from_slice(&addr.octets());
    }
    let parsed = dns::parse_answer(&answer, id, "RELAY.example.com.", dns::TYPE_A);
    let want: Vec<IpAddr> = addrs.into_iter().map(IpAddr::V4).collect();
    assert_eq!(parsed, Ok(want));
});
