//! The JSON module against serde_json itself: the same texts accepted and refused (with the
//! same error message and place), the same trees, the same written bytes.

use super::*;

/// Small deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "1.0",
    "-0.0",
    "0.5",
    "1e400",
    "-1e400",
    "1E+2",
    "1e-2",
    "0e999999",
    "1e308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "17976931348623158e292",
    "179769313486231580000e288",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "9223372036854775807",
    "9223372036854775808",
    "9007199254740993",
    "123456789012345678901234567890",
    "0.000000000000000000000000000001",
    "1e-400",
    "2.5e10",
    "1e99999999999",
    "0e99999999999",
    "1e-99999999999",
    "1.",
    "01",
    "-",
    "-a",
    ".5",
    "1e",
    "1e+",
    "+1",
    "1.5e3.2",
    "00",
    "-01",
    "1.184467440737095516150",
];

const STRINGS: &[&str] = &[
    r#""""#,
    r#""plain""#,
    r#""\"\\\/\b\f\n\r\t""#,
    r#""\u00e9\u0000\u001f""#,
    r#""\ud83d\ude00""#,
    r#""\ud83d""#,
    r#""\ude00""#,
    r#""\ud83d\u0041""#,
    r#""\ud83dx""#,
    r#""\ud83d\n""#,
    r#""\u12""#,
    r#""\uZZZZ""#,
    r#""\x""#,
    "\"tab\there\"",
    "\"nl\nhere\"",
    "\"caf\u{e9} \u{1f600}\"",
    "\"unterminated",
    "\"\\",
    "\"\\u",
];

const TOKENS: &[&str] = &[
    "null", "true", "false", "nul", "tru", "nulll", "[", "]", "{", "}", ",", ":", " ", "\n", "\t",
    "\r", "\"k\"", "\"K\"",
];

/// A random, usually valid JSON text of at most `depth` levels.
fn gen_value(rng: &mut Rng, depth: usize, out: &mut String) {
    let ws = |rng: &mut Rng, out: &mut String| {
        if rng.below(4) == 0 {
            out.push_str(rng.pick(&[" ", "\n", "\t", "\r\n", "  "]));
        }
    };
    ws(rng, out);
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => out.push_str(rng.pick(&["null", "true", "false"])),
        1 => out.push_str(rng.pick(NUMBERS)),
        2 => out.push_str(rng.pick(STRINGS)),
        3 => {
            // A random integer or decimal of random length.
            if rng.below(2) == 0 {
                out.push('-');
            }
            let digits = 1 + rng.below(22);
            for i in 0..digits {
                let digit = rng.below(10) as u8;
                out.push(char::from(if i == 0 && digits > 1 {
                    b'1' + digit % 9
                } else {
                    b'0' + digit
                }));
            }
            if rng.below(3) == 0 {
                out.push('.');
                out.push_str(&rng.below(1000).to_string());
            }
            if rng.below(3) == 0 {
                out.push_str(rng.pick(&["e", "E", "e+", "e-"]));
                out.push_str(&rng.below(400).to_string());
            }
        }
        4 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                gen_value(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                out.push_str(rng.pick(&[
                    "\"a\"",
                    "\"b\"",
                    "\"A\"",
                    "\"allow\"",
                    "\"Allow\"",
                    "\"\\u0061\"",
                    "\"\"",
                ]));
                ws(rng, out);
                out.push(':');
                gen_value(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push('}');
        }
    }
    ws(rng, out);
}

/// A text: a generated value, sometimes damaged by a few random edits.
fn gen_text(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    gen_value(rng, 4, &mut text);
    let mut bytes = text.into_bytes();
    for _ in 0..rng.below(3) {
        if rng.below(2) == 0 {
            continue;
        }
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, rng.below(256) as u8),
            2 => {
                for (i, b) in rng.pick(TOKENS).bytes().enumerate() {
                    bytes.insert(at + i, b);
                }
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// serde_json's tree next to ours: same shape, same strings, same numbers (integers
/// exactly, floats within the rounding serde_json's fast float reading allows).
fn same_tree(ours: &Value, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::String(a), serde_json::Value::String(b)) => a == b,
        (Value::Number(a), serde_json::Value::Number(b)) => {
            if let Some(b) = b.as_u64() {
                a.as_u64() == Some(b) && a.as_i64() == i64::try_from(b).ok()
            } else if let Some(b) = b.as_i64() {
                a.as_i64() == Some(b) && a.as_u64().is_none()
            } else {
                let b = b.as_f64().unwrap();
                let a: f64 = a.as_str().parse().unwrap();
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

/// Our tree holding serde_json's value (map order, its number text), to compare writers.
fn from_serde(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(n) => Value::Number(Number(n.to_string())),
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_serde).collect()),
        serde_json::Value::Object(map) => Value::Object(Object(
            map.iter()
                .map(|(k, v)| (k.clone(), from_serde(v)))
                .collect(),
        )),
    }
}

/// Every check of one text; panics naming the text on the first difference.
fn compare(text: &[u8]) {
    let shown = String::from_utf8_lossy(text);
    // Value reading.
    let ours = parse(text);
    let theirs = serde_json::from_slice::<serde_json::Value>(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            assert!(same_tree(a, b), "{shown:?}: {a:?} vs {b:?}");
            let mine = from_serde(b);
            assert_eq!(
                to_string(&mine),
                serde_json::to_string(b).unwrap(),
                "{shown:?}"
            );
            assert_eq!(
                to_string_pretty(&mine),
                serde_json::to_string_pretty(b).unwrap(),
                "{shown:?}"
            );
            // Our own tree written and read back is the same tree.
            assert_eq!(parse(to_string(a).as_bytes()).as_ref(), Ok(a), "{shown:?}");
            assert_eq!(
                parse(to_string_pretty(a).as_bytes()).as_ref(),
                Ok(a),
                "{shown:?}"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{shown:?}"),
        _ => panic!("{shown:?}: ours {ours:?}, serde_json {theirs:?}"),
    }
    // Grammar-only reading (IgnoredAny).
    let ours = check(text);
    let theirs = serde_json::from_slice::<serde::de::IgnoredAny>(text);
    match (&ours, &theirs) {
        (Ok(()), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "skip {shown:?}"),
        _ => panic!("skip {shown:?}: ours {ours:?}, serde_json {theirs:?}"),
    }
    // Object reading (serde_json's Map): accepted exactly when serde_json accepts.
    let ours = parse_object(text);
    let theirs = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text);
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "object {shown:?}: {ours:?} vs {theirs:?}"
    );
}

#[test]
fn edge_cases_match_serde_json() {
    let mut cases: Vec<String> = Vec::new();
    for item in NUMBERS.iter().chain(STRINGS).chain(TOKENS) {
        cases.push((*item).to_owned());
        cases.push(format!("[{item}]"));
        cases.push(format!("{{\"k\":{item}}}"));
        cases.push(format!(" {item} x"));
        cases.push(format!("[1,{item}"));
    }
    for extra in [
        "",
        " ",
        "[]",
        "{}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
        "{\"a\":1,\"a\":2}",
        "{\"Allow\":true,\"allow\":false}",
        "[\n1,\n2,\n]",
        "\n\n  {\"PrivateKey\": 5,}",
        "{\"a\":[1,{\"b\":null}]}",
    ] {
        cases.push(extra.to_owned());
    }
    for case in &cases {
        compare(case.as_bytes());
    }
    // Invalid UTF-8 inside and outside strings, and a NUL.
    for bytes in [
        &b"\"\xff\""[..],
        b"[\"a\xc3\"]",
        b"{\"\xe2\x82\":1}",
        b"\xef\xbb\xbf{}",
        b"[\"\x00\"]",
        b"{\"x\":\"\xff\"}",
    ] {
        compare(bytes);
    }
}

#[test]
fn nesting_limit_matches_serde_json() {
    for depth in [1, 2, 126, 127, 128, 129, 500] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            compare(text.as_bytes());
            let unclosed = open.repeat(depth);
            compare(unclosed.as_bytes());
        }
    }
    // Skipping has no depth limit, like IgnoredAny (and needs no recursion).
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(check(deep.as_bytes()), Ok(()));
    assert_eq!(
        parse(deep.as_bytes()).unwrap_err().code(),
        ErrorCode::RecursionLimitExceeded
    );
}

#[test]
fn random_texts_match_serde_json() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let text = gen_text(&mut rng);
        compare(&text);
        accepted += usize::from(parse(&text).is_ok());
    }
    // Both sides of the comparison are exercised.
    assert!(
        (4_000..16_000).contains(&accepted),
        "{accepted} of 20000 accepted"
    );
}

#[test]
fn random_bytes_match_serde_json() {
    let mut rng = Rng(42);
    let alphabet = b"{}[],:\"\\ 0123456789-+.eEnulltruefalse\x01\xff\xc3\xa9u";
    for _ in 0..20_000 {
        let len = rng.below(12);
        let text: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        compare(&text);
    }
}

#[test]
fn writer_matches_serde_json_for_every_char() {
    let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
    assert_eq!(quote(&all), serde_json::to_string(&all).unwrap());
    let value = Value::object([
        ("s", Value::from("a\"b\\c\u{7f}\u{1}")),
        ("n", Value::from(u64::MAX)),
        ("i", Value::from(i64::MIN)),
        ("none", Value::from(None::<String>)),
        ("empty", Value::Array(Vec::new())),
        ("obj", Value::Object(Object::default())),
        (
            "list",
            Value::Array(vec![Value::from(true), Value::Null, Value::from(-0i64)]),
        ),
    ]);
    let serde = serde_json::json!({
        "s": "a\"b\\c\u{7f}\u{1}", "n": u64::MAX, "i": i64::MIN, "none": null,
        "empty": [], "obj": {}, "list": [true, null, 0],
    });
    // serde_json's map is sorted; compare member by member through a sorted copy of ours.
    let Value::Object(object) = &value else {
        unreachable!()
    };
    let sorted = Value::Object(Object(
        object
            .sorted()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect(),
    ));
    assert_eq!(to_string(&sorted), serde_json::to_string(&serde).unwrap());
    assert_eq!(
        to_string_pretty(&sorted),
        serde_json::to_string_pretty(&serde).unwrap()
    );
}

#[test]
fn object_lookups_follow_serde_json_map() {
    let object = parse_object(br#"{"allow":false,"Allow":true,"ALLOW":1,"x":1,"x":2}"#).unwrap();
    assert_eq!(object.get("x").and_then(Value::as_u64), Some(2));
    assert_eq!(
        object.get_ignore_ascii_case("Allow"),
        Some(&Value::Bool(true))
    );
    // No exact name: the first in byte order ("ALLOW" < "Allow" < "allow").
    assert_eq!(
        object
            .get_ignore_ascii_case("aLLow")
            .and_then(Value::as_u64),
        Some(1)
    );
    let names: Vec<&str> = object.sorted().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["ALLOW", "Allow", "allow", "x"]);
}

#[test]
fn too_long_is_refused_before_reading() {
    let text = vec![b' '; MAX_JSON_LEN + 1];
    let err = parse(&text).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLong);
    assert_eq!(err.to_string(), "JSON text longer than 16 MiB");
    assert_eq!(MAX_JSON_LEN, 16 << 20, "the message names the bound");
}
