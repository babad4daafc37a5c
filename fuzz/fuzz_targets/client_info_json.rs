//! The ClientInfo JSON parser directly (Go `encoding/json` semantics): must not panic, and
//! whatever it accepts must survive a round trip through our own encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::handshake;

fuzz_target!(|json: &[u8]| {
    let Ok(info) = handshake::parse_client_info_json(json) else {
        return;
    };
    let encoded = handshake::client_info_json(&info);
    let again = handshake::parse_client_info_json(&encoded).expect("own encoding parses");
    assert_eq!(again, info);
});
