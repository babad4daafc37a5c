//! The derper-compatible server key file parser: must not panic, and a key it accepts must
//! round-trip through the file format we write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::keyfile;

fuzz_target!(|bytes: &[u8]| {
    let Ok(secret) = keyfile::parse_key_file(bytes) else {
        return;
    };
    let written = keyfile::key_file_contents(&secret);
    let again = keyfile::parse_key_file(written.as_bytes()).expect("own key file parses");
    assert_eq!(again.as_bytes(), secret.as_bytes());
});
