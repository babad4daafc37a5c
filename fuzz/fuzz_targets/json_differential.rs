//! proto/json.rs against serde_json on any bytes: the same texts accepted and refused, with
//! the same error message and place, the same trees, and the same text written back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyderp::proto::json::{self, Value};

/// Same shape, strings and numbers (integers exactly; floats within serde_json's rounding).
fn same_tree(ours: &Value, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::String(a), serde_json::Value::String(b)) => a == b,
        (Value::Number(a), serde_json::Value::Number(b)) => {
            if let Some(b) = b.as_u64() {
                a.as_u64() == Some(b)
            } else if let Some(b) = b.as_i64() {
                a.as_i64() == Some(b) && a.as_u64().is_none()
            } else {
                let (Some(b), Ok(a)) = (b.as_f64(), a.as_str().parse::<f64>()) else {
                    return false;
                };
                a.is_finite()
                    && (a == b || (a - b).abs() <= 1e-15 * a.abs().max(b.abs()))
                    && a.is_sign_negative() == b.is_sign_negative()
            }
        }
        (Value::Array(a), serde_json::Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_tree(a, b))
        }
        (Value::Object(a), serde_json::Value::Object(b)) => {
            let sorted = a.sorted();
            sorted.len() == b.len()
                && sorted
                    .iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| *ka == kb && same_tree(va, vb))
        }
        _ => false,
    }
}

/// Our tree holding serde_json's value (its member order and number text).
fn from_serde(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(n) => json::parse(n.to_string().as_bytes()).expect("number"),
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_serde).collect()),
        serde_json::Value::Object(map) => Value::Object(json::Object(
            map.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect(),
        )),
    }
}

fuzz_target!(|text: &[u8]| {
    let ours = json::parse(text);
    let theirs = serde_json::from_slice::<serde_json::Value>(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            assert!(same_tree(a, b), "{a:?} vs {b:?}");
            let mine = from_serde(b);
            assert_eq!(json::to_string(&mine), serde_json::to_string(b).unwrap());
            assert_eq!(json::to_string_pretty(&mine), serde_json::to_string_pretty(b).unwrap());
            assert_eq!(json::parse(json::to_string_pretty(a).as_bytes()).as_ref(), Ok(a));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("value: ours {ours:?}, serde_json {theirs:?}"),
    }
    let ours = json::check(text);
    let theirs = serde_json::from_slice::<serde::de::IgnoredAny>(text);
    match (&ours, &theirs) {
        (Ok(()), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("skip: ours {ours:?}, serde_json {theirs:?}"),
    }
    let ours = json::parse_object(text);
    let theirs = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text);
    assert_eq!(ours.is_ok(), theirs.is_ok(), "object: {ours:?} vs {theirs:?}");
});
