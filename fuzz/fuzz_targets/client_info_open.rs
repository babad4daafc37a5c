//! The server's login step: `open_client_info` with a fixed server key.
//!
//! First byte chooses the mode. Mode 0 feeds the rest as the raw ClientInfo payload (almost
//! never a box that opens: exercises the length and zero-key checks and the failing open).
//! Otherwise the fuzzer supplies a client secret (32 bytes), a nonce (24) and the JSON
//! plaintext; the target seals them properly so the JSON parser behind the box is reached,
//! and checks the result equals parsing the JSON directly. A flipped byte must never open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::handshake::{self, NONCE_LEN};
use tinyderp::proto::key::{SecretKey, KEY_LEN};

/// The server secret: fixed, so every input is reproducible.
const SERVER_SECRET: [u8; KEY_LEN] = [0x42; KEY_LEN];

fuzz_target!(|input: &[u8]| {
    let server = SecretKey::from_bytes(SERVER_SECRET);
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if mode == 0 {
        let _ = handshake::open_client_info(&server, rest);
        return;
    }
    let Some((client_bytes, rest)) = rest.split_first_chunk::<KEY_LEN>() else {
        return;
    };
    let Some((nonce, json)) = rest.split_first_chunk::<NONCE_LEN>() else {
        return;
    };
    let client = SecretKey::from_bytes(*client_bytes);
    let client_public = client.public_key();
    let mut payload = client_public.as_bytes().to_vec();
    payload.extend_from_slice(&handshake::seal(
        &client,
        &server.public_key(),
        *nonce,
        json,
    ));
    let opened = handshake::open_client_info(&server, &payload);
    let direct = handshake::parse_client_info_json(json);
    match (&opened, &direct) {
        (Ok((key, info)), Ok(direct_info)) => {
            assert_eq!(*key, client_public);
            assert_eq!(info, direct_info);
        }
        (Err(_), _) => {}
        (Ok(_), Err(err)) => panic!("box opened to JSON the parser refuses: {err}"),
    }
    // Any single flipped byte after the key must make the box fail to open.
    let flip = usize::from(mode) % (payload.len() - KEY_LEN) + KEY_LEN;
    payload[flip] ^= 0x01;
    if let Ok((key, _)) = handshake::open_client_info(&server, &payload) {
        panic!("tampered box opened for {key:?}");
    }
});
