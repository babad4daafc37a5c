//! The STUN client's response parser (used by the self-check and tests): must not panic on
//! any datagram, and the request it builds must be accepted by the server-side parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::stun;

fuzz_target!(|message: &[u8]| {
    let _ = stun::parse_binding_response(message);
    if let Some(txid) = message.first_chunk::<12>() {
        let request = stun::binding_request(txid);
        assert_eq!(stun::parse_binding_request(&request), Ok(*txid));
    }
});
