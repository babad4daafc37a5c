//! The WebSocket frame decoder (DERP over WebSocket): client bytes, decoded whole and in
//! pieces of a fuzzer-chosen size through a small bounded buffer, as the network adapter
//! feeds it. Both ways must agree on the payload bytes, the control frames and the
//! violation; a message never exceeds the bound; control payloads stay within 125 bytes.
//! The same bytes are also read as a list of frames to encode as a client would, which
//! must decode back to the same payload with no violation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::websocket::{encode_client_frame, Decoder, Item, Opcode, Violation};

/// Message bound for the target: small, so the fuzzer reaches it.
const MAX_MESSAGE: u64 = 300;

type Outcome = (Vec<u8>, Vec<Item>, Option<Violation>);

fn decode_pieces(stream: &[u8], piece: usize) -> Outcome {
    let mut decoder = Decoder::new(MAX_MESSAGE);
    let mut buf: Vec<u8> = Vec::new();
    let mut data = Vec::new();
    let mut items = Vec::new();
    let mut message = 0u64;
    for chunk in stream.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            if decoder.payload_remaining() > 0 {
                let taken = decoder.unmask(&mut buf);
                assert!(taken <= buf.len());
                if taken == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..taken]);
                buf.drain(..taken);
                continue;
            }
            match decoder.decode(&buf) {
                Ok(Some((item, used))) => {
                    assert!(used > 0 && used <= buf.len());
                    buf.drain(..used);
                    match &item {
                        Item::Data { len, fin } => {
                            message += len;
                            assert!(message <= MAX_MESSAGE, "message bound passed");
                            if *fin {
                                message = 0;
                            }
                        }
                        other => items.push(other.clone()),
                    }
                }
                Ok(None) => break,
                Err(v) => return (data, items, Some(v)),
            }
            // Never more than a head plus a control frame is held while waiting.
        }
        assert!(decoder.payload_remaining() > 0 || buf.len() < 14 + 125 + piece.max(1));
    }
    (data, items, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&piece, stream)) = input.split_first() else {
        return;
    };
    let whole = decode_pieces(stream, stream.len().max(1));
    let pieces = decode_pieces(stream, usize::from(piece % 32) + 1);
    assert_eq!(whole, pieces);

    // Round trip: each 3-byte record (flags, length, mask seed) makes one client frame.
    let mut encoded = Vec::new();
    let mut expected = Vec::new();
    let mut open = false;
    let mut message = 0u64;
    for (i, record) in stream.chunks_exact(3).enumerate() {
        let (flags, len, seed) = (record[0], usize::from(record[1]), record[2]);
        let fin = flags & 1 == 1;
        let opcode = match (flags >> 1) % 3 {
            0 => Opcode::Ping,
            _ if open => Opcode::Continuation,
            _ => Opcode::Binary,
        };
        let len = if opcode == Opcode::Ping {
            len % 126
        } else {
            len
        };
        if opcode != Opcode::Ping {
            if message + len as u64 > MAX_MESSAGE {
                break;
            }
            message = if fin { 0 } else { message + len as u64 };
        }
        let payload: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        let mask = [seed, seed.wrapping_mul(3), seed ^ 0x5a, 7];
        let fin = fin || opcode == Opcode::Ping;
        encode_client_frame(&mut encoded, fin, opcode, mask, &payload);
        if opcode == Opcode::Ping {
            continue;
        }
        open = !fin;
        expected.extend_from_slice(&payload);
    }
    let (data, _, violation) = decode_pieces(&encoded, usize::from(piece % 7) + 1);
    assert_eq!(violation, None);
    assert_eq!(data, expected);
});
