//! Server side of the frame codec: a fuzzer-chosen frame header goes through
//! `plan_client_payload`, and the bytes the plan says to read go through
//! `parse_client_frame`. Checks that the plan never asks to buffer more than one packet
//! and that every parsed frame respects the wire limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::frame::{
    self, ClientFrame, FrameHeader, PayloadPlan, HEADER_LEN, MAX_PACKET_SIZE,
};

/// Largest payload a client frame may make the server buffer: ForwardPacket's two keys
/// plus one packet.
const MAX_BUFFERED: usize = 64 + MAX_PACKET_SIZE;

fuzz_target!(|input: &[u8]| {
    let Some((header, payload)) = input.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    let header = FrameHeader::decode(*header);
    assert_eq!(FrameHeader::decode(header.encode()), header);
    match frame::plan_client_payload(header) {
        Ok(PayloadPlan::Read(len)) => {
            assert!(len <= MAX_BUFFERED, "plan reads {len} bytes");
            assert_eq!(len as u64, u64::from(header.len));
            let body = payload.get(..len).unwrap_or(payload);
            check_parsed(header.frame_type, body);
        }
        Ok(PayloadPlan::Skip(len)) => assert_eq!(len, u64::from(header.len)),
        Err(_) => {}
    }
    // The parser must also be safe on payloads the plan would have refused.
    check_parsed(header.frame_type, payload);
});

fn check_parsed(frame_type: u8, payload: &[u8]) {
    match frame::parse_client_frame(frame_type, payload) {
        Ok(ClientFrame::SendPacket { data, .. }) => {
            assert!(data.len() <= MAX_PACKET_SIZE);
            assert_eq!(data.len() + 32, payload.len());
        }
        Ok(ClientFrame::ForwardPacket { data, .. }) => {
            assert!(data.len() <= MAX_PACKET_SIZE);
            assert_eq!(data.len() + 64, payload.len());
        }
        Ok(_) | Err(_) => {}
    }
}
