//! The bounded HTTP request-head parser. Checks that the consumed length is within the
//! buffer and the size bound, and that feeding the same bytes in fuzzer-chosen pieces (as
//! the server's read loop does) gives the same answer as one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::http::{self, MAX_REQUEST_HEAD};

fuzz_target!(|input: &[u8]| {
    let Some((&step, bytes)) = input.split_first() else {
        return;
    };
    let whole = http::parse_request_head(bytes);
    if let Ok(Some((_, used))) = &whole {
        assert!(*used <= bytes.len() && *used <= MAX_REQUEST_HEAD);
    }
    if bytes.len() > MAX_REQUEST_HEAD {
        assert!(!matches!(whole, Ok(None)), "unbounded wait for a head");
    }
    // Incremental feeding: stop at the first answer that is not "need more".
    let step = usize::from(step).max(1);
    let mut end = 0;
    let incremental = loop {
        end = (end + step).min(bytes.len());
        let prefix = &bytes[..end];
        match http::parse_request_head(prefix) {
            Ok(None) if end < bytes.len() => continue,
            other => break other,
        }
    };
    // A complete head found early in a prefix is the same head the whole buffer yields.
    match (&incremental, &whole) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Ok(None), Ok(None)) => {}
        (Ok(Some(_)), Err(_)) | (Err(_), _) | (Ok(None), _) | (Ok(Some(_)), Ok(None)) => {}
    }
    if let Ok(Some((head, _))) = &whole {
        if let Some(challenge) = &head.tailscale_challenge {
            let _ = http::challenge_response_value(challenge);
        }
    }
});
