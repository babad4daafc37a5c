//! Client side of the frame codec (used by the mesh, the self-check and tests): first byte
//! is the frame type, the rest the payload. Also feeds the payload to the ServerKey check.
//! Re-encodes what the server encoders can produce and checks it parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::frame::{self, ServerFrame, HEADER_LEN};
use tinyderp::proto::handshake;

fuzz_target!(|input: &[u8]| {
    let Some((&frame_type, payload)) = input.split_first() else {
        return;
    };
    let _ = handshake::parse_server_key_payload(payload);
    let Ok(parsed) = frame::parse_server_frame(frame_type, payload) else {
        return;
    };
    let mut again = Vec::new();
    match parsed {
        ServerFrame::RecvPacket { src, ref data } => frame::encode_recv_packet(&mut again, &src, data),
        ServerFrame::Pong(echo) => frame::encode_pong(&mut again, &echo),
        ServerFrame::KeepAlive => frame::encode_keep_alive(&mut again),
        ServerFrame::Health(ref text) => frame::encode_health(&mut again, text),
        _ => return,
    }
    let body = again.get(HEADER_LEN..).unwrap_or(&[]);
    let reparsed = frame::parse_server_frame(frame_type, body).expect("own encoding parses");
    assert_eq!(reparsed, parsed);
});
