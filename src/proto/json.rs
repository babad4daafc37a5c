//! A small JSON (RFC 8259) reader and writer, so the router binary does not link serde and
//! serde_json (about 40 KB of generic code and tables on mips_24kc) for the few documents
//! tinyderp reads and writes.
//!
//! It accepts and rejects exactly what serde_json 1.x (default features) does, reading
//! the same way its two modes do: a *value* read ([`parse`], [`Reader::value`]) checks that
//! strings are UTF-8 without lone surrogates and that numbers fit an `f64`, and nests at most
//! [`MAX_DEPTH`] arrays/objects; a *skipped* value ([`check`], [`Reader::skip_value`], what
//! serde's `IgnoredAny` does) checks the grammar only. Numbers keep their source text, so
//! no float parser is linked; [`Number::as_u64`] and [`Number::as_i64`] read integers
//! exactly as serde_json classifies them. Objects keep every member in document order;
//! [`Object::get`] returns the last duplicate, like serde_json's map.
//!
//! The writer ([`to_string`], [`to_string_pretty`], [`quote`]) produces byte for byte what
//! serde_json writes (two-space indent, `": "`, the same escapes). The tests and the
//! `json_differential` fuzz target check all of this against serde_json itself.

use std::fmt;

/// Deepest nesting of arrays and objects a value read accepts: serde_json's recursion
/// limit (128 levels counted from one, the 128th refused), so that the same documents pass.
pub const MAX_DEPTH: usize = 127;
/// Longest JSON text read at all (16 MiB): well above any document tinyderp reads (the
/// largest, `nft -j list ruleset` of a big firewall, is a few hundred KB).
pub const MAX_JSON_LEN: usize = 16 << 20;

/// serde_json's recursion budget: decremented on entering an array or object, an error
/// when it reaches zero.
const RECURSION_BUDGET: usize = MAX_DEPTH + 1;

/// A JSON value as read or to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its text.
    Number(Number),
    /// A string (escapes decoded).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, members in document order.
    Object(Object),
}

/// A JSON number kept as its (valid, in-range) text, so reading one needs no float code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number(String);

/// A JSON object's members in document order (duplicates kept; lookups take the last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object(pub Vec<(String, Value)>);

impl Number {
    /// The number's text as it was read (or written by [`Value::from`]).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value if it is a non-negative integer that fits a `u64` (no fraction or
    /// exponent: serde_json reads `1.0` and `1e2` as floats).
    pub fn as_u64(&self) -> Option<u64> {
        parse_digits(&self.0)
    }

    /// The value if it is an integer in `i64` range; `-0` is a float to serde_json, so not.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0.strip_prefix('-') {
            Some(digits) => {
                let magnitude = parse_digits(digits)?;
                if magnitude == 0 {
                    return None;
                }
                0i64.checked_sub_unsigned(magnitude)
            }
            None => i64::try_from(parse_digits(&self.0)?).ok(),
        }
    }
}

/// Plain decimal digits to a `u64` (`None` for anything else or on overflow).
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u64, |n, b| {
        let digit = b
            .is_ascii_digit()
            .then(|| u64::from(b.wrapping_sub(b'0')))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

impl Object {
    /// The value of member `name`; the last one when the name repeats (serde_json's map).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The members as serde_json's map iterates them: sorted by name (byte order), one per
    /// name (the last duplicate).
    pub fn sorted(&self) -> Vec<(&str, &Value)> {
        let mut members: Vec<(&str, &Value)> = Vec::with_capacity(self.0.len());
        // Later duplicates replace earlier ones; a stable sort keeps document order.
        for (key, value) in &self.0 {
            members.push((key.as_str(), value));
        }
        members.sort_by(|a, b| a.0.cmp(b.0));
        let mut unique: Vec<(&str, &Value)> = Vec::with_capacity(members.len());
        for member in members {
            match unique.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => unique.push(member),
            }
        }
        unique
    }

    /// Go's `encoding/json` lookup as tinyderp did it on serde_json's map: the exact name
    /// if present, else the first name (in byte order) equal to it ignoring ASCII case.
    pub fn get_ignore_ascii_case(&self, name: &str) -> Option<&Value> {
        self.get(name).or_else(|| {
            self.sorted()
                .into_iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
    }
}

impl Value {
    /// Member `name` of an object (the last duplicate), `None` for other values.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.as_object()?.get(name)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    /// The number as a `u64` (see [`Number::as_u64`]).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(number) => number.as_u64(),
            _ => None,
        }
    }

    /// The number as an `i64` (see [`Number::as_i64`]).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(number) => number.as_i64(),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }

    /// An object from `(name, value)` pairs, written in this order.
    pub fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
        Value::Object(Object(
            members
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        ))
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Bool(flag)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Number(Number(n.to_string()))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Number(Number(n.to_string()))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::Array(items)
    }
}

/// Compact JSON, as serde_json's `Display` for its value.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_string(self))
    }
}

/// What went wrong, worded as serde_json words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The text ended inside a value.
    EofWhileParsingValue,
    /// The text ended inside an array.
    EofWhileParsingList,
    /// The text ended inside an object.
    EofWhileParsingObject,
    /// The text ended inside a string.
    EofWhileParsingString,
    /// Something other than `:` after an object key.
    ExpectedColon,
    /// Something other than `,` or `]` after an array element.
    ExpectedListCommaOrEnd,
    /// Something other than `,` or `}` after an object member.
    ExpectedObjectCommaOrEnd,
    /// A misspelt `null`, `true` or `false`.
    ExpectedSomeIdent,
    /// No value where one must start.
    ExpectedSomeValue,
    /// A backslash escape other than the nine JSON has.
    InvalidEscape,
    /// A malformed number (leading zero, no digit after `.`, `e` or `-`).
    InvalidNumber,
    /// A number too large for an `f64`.
    NumberOutOfRange,
    /// A string that is not UTF-8.
    InvalidUnicodeCodePoint,
    /// A raw control character (U+0000 to U+001F) inside a string.
    ControlCharacterWhileParsingString,
    /// An object key that is not a string.
    KeyMustBeAString,
    /// A `\u` high surrogate without its low half (or a low one alone).
    LoneLeadingSurrogateInHexEscape,
    /// `,` right before `]` or `}`.
    TrailingComma,
    /// More than whitespace after the value.
    TrailingCharacters,
    /// A high surrogate escape not followed by another `\u` escape.
    UnexpectedEndOfHexEscape,
    /// Nested deeper than [`MAX_DEPTH`].
    RecursionLimitExceeded,
    /// Longer than [`MAX_JSON_LEN`].
    TooLong,
    /// A value other than the object the caller asked for.
    ExpectedObject,
}

impl ErrorCode {
    fn message(self) -> &'static str {
        match self {
            ErrorCode::EofWhileParsingValue => "EOF while parsing a value",
            ErrorCode::EofWhileParsingList => "EOF while parsing a list",
            ErrorCode::EofWhileParsingObject => "EOF while parsing an object",
            ErrorCode::EofWhileParsingString => "EOF while parsing a string",
            ErrorCode::ExpectedColon => "expected `:`",
            ErrorCode::ExpectedListCommaOrEnd => "expected `,` or `]`",
            ErrorCode::ExpectedObjectCommaOrEnd => "expected `,` or `}`",
            ErrorCode::ExpectedSomeIdent => "expected ident",
            ErrorCode::ExpectedSomeValue => "expected value",
            ErrorCode::InvalidEscape => "invalid escape",
            ErrorCode::InvalidNumber => "invalid number",
            ErrorCode::NumberOutOfRange => "number out of range",
            ErrorCode::InvalidUnicodeCodePoint => "invalid unicode code point",
            ErrorCode::ControlCharacterWhileParsingString => {
                "control character (\\u0000-\\u001F) found while parsing a string"
            }
            ErrorCode::KeyMustBeAString => "key must be a string",
            ErrorCode::LoneLeadingSurrogateInHexEscape => "lone leading surrogate in hex escape",
            ErrorCode::TrailingComma => "trailing comma",
            ErrorCode::TrailingCharacters => "trailing characters",
            ErrorCode::UnexpectedEndOfHexEscape => "unexpected end of hex escape",
            ErrorCode::RecursionLimitExceeded => "recursion limit exceeded",
            ErrorCode::TooLong => "JSON text longer than 16 MiB",
            ErrorCode::ExpectedObject => "expected a JSON object",
        }
    }
}

/// A syntax error with its place: line (from 1) and column (bytes into the line), both 0
/// when the error is about the whole text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    line: usize,
    column: usize,
}

impl Error {
    /// What went wrong.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Line of the error, counted from 1 (0: not about one place).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Column of the error in bytes (serde_json's counting).
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(self.code.message())
        } else {
            write!(
                f,
                "{} at line {} column {}",
                self.code.message(),
                self.line,
                self.column
            )
        }
    }
}

impl std::error::Error for Error {}

/// Reads one whole JSON text (whitespace around it allowed) as a [`Value`].
pub fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let mut reader = Reader::new(bytes)?;
    let value = reader.value()?;
    reader.end()?;
    Ok(value)
}

/// Reads one whole JSON text that must be an object (serde_json's `Map<String, Value>`).
pub fn parse_object(bytes: &[u8]) -> Result<Object, Error> {
    let mut reader = Reader::new(bytes)?;
    match reader.peek_token() {
        Some(b'{') => {}
        Some(_) => return Err(reader.peek_error(ErrorCode::ExpectedObject)),
        None => return Err(reader.peek_error(ErrorCode::EofWhileParsingValue)),
    }
    let Value::Object(object) = reader.value()? else {
        return Err(reader.error(ErrorCode::ExpectedObject));
    };
    reader.end()?;
    Ok(object)
}

/// Checks that `bytes` is one JSON text without keeping it (serde_json's `IgnoredAny`:
/// grammar only, any nesting depth).
pub fn check(bytes: &[u8]) -> Result<(), Error> {
    let mut reader = Reader::new(bytes)?;
    reader.skip_value()?;
    reader.end()
}

/// A cursor over one JSON text, for readers that walk an object member by member (the
/// handshake's documents) instead of building a [`Value`].
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    budget: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`; refuses texts longer than [`MAX_JSON_LEN`].
    pub fn new(bytes: &'a [u8]) -> Result<Reader<'a>, Error> {
        if bytes.len() > MAX_JSON_LEN {
            return Err(Error {
                code: ErrorCode::TooLong,
                line: 0,
                column: 0,
            });
        }
        Ok(Reader {
            bytes,
            pos: 0,
            budget: RECURSION_BUDGET,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek();
        if byte.is_some() {
            self.bump();
        }
        byte
    }

    /// Skips whitespace and returns the next byte without taking it.
    pub fn peek_token(&mut self) -> Option<u8> {
        while let Some(byte) = self.peek() {
            if !matches!(byte, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(byte);
            }
            self.bump();
        }
        None
    }

    fn error(&self, code: ErrorCode) -> Error {
        self.error_at(code, self.pos)
    }

    fn peek_error(&self, code: ErrorCode) -> Error {
        self.error_at(code, self.pos.saturating_add(1).min(self.bytes.len()))
    }

    fn error_at(&self, code: ErrorCode, index: usize) -> Error {
        let before = self.bytes.get(..index).unwrap_or(self.bytes);
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline.saturating_add(1));
        let lines = before.iter().filter(|&&b| b == b'\n').count();
        Error {
            code,
            line: lines.saturating_add(1),
            column: index.saturating_sub(line_start),
        }
    }

    /// Nothing but whitespace may follow.
    pub fn end(&mut self) -> Result<(), Error> {
        match self.peek_token() {
            Some(_) => Err(self.peek_error(ErrorCode::TrailingCharacters)),
            None => Ok(()),
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.budget = self.budget.saturating_sub(1);
        if self.budget == 0 {
            return Err(self.peek_error(ErrorCode::RecursionLimitExceeded));
        }
        self.bump();
        Ok(())
    }

    fn leave(&mut self) {
        self.budget = self.budget.saturating_add(1);
    }

    fn ident(&mut self, rest: &[u8]) -> Result<(), Error> {
        for &expected in rest {
            match self.next_byte() {
                None => return Err(self.error(ErrorCode::EofWhileParsingValue)),
                Some(byte) if byte != expected => {
                    return Err(self.error(ErrorCode::ExpectedSomeIdent))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Reads the next value, checking it fully (see the module comment).
    pub fn value(&mut self) -> Result<Value, Error> {
        let Some(byte) = self.peek_token() else {
            return Err(self.peek_error(ErrorCode::EofWhileParsingValue));
        };
        match byte {
            b'n' => {
                self.bump();
                self.ident(b"ull").map(|()| Value::Null)
            }
            b't' => {
                self.bump();
                self.ident(b"rue").map(|()| Value::Bool(true))
            }
            b'f' => {
                self.bump();
                self.ident(b"alse").map(|()| Value::Bool(false))
            }
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            b'"' => {
                self.bump();
                self.string().map(Value::String)
            }
            b'[' => {
                self.enter()?;
                let items = self.array_rest()?;
                self.leave();
                Ok(Value::Array(items))
            }
            b'{' => {
                self.enter()?;
                let mut members = Vec::new();
                let mut first = true;
                while let Some(key) = self.member_key(&mut first)? {
                    let value = self.value()?;
                    members.push((key, value));
                }
                self.leave();
                Ok(Value::Object(Object(members)))
            }
            _ => Err(self.peek_error(ErrorCode::ExpectedSomeValue)),
        }
    }

    fn array_rest(&mut self) -> Result<Vec<Value>, Error> {
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let next = match self.peek_token() {
                Some(b']') => {
                    self.bump();
                    return Ok(items);
                }
                Some(b',') if !first => {
                    self.bump();
                    self.peek_token()
                }
                Some(byte) if first => {
                    first = false;
                    Some(byte)
                }
                Some(_) => return Err(self.peek_error(ErrorCode::ExpectedListCommaOrEnd)),
                None => return Err(self.peek_error(ErrorCode::EofWhileParsingList)),
            };
            match next {
                Some(b']') => return Err(self.peek_error(ErrorCode::TrailingComma)),
                Some(_) => items.push(self.value()?),
                None => return Err(self.peek_error(ErrorCode::EofWhileParsingValue)),
            }
        }
    }

    /// Starts reading the object whose `{` is next (after whitespace).
    pub fn begin_object(&mut self) -> Result<(), Error> {
        match self.peek_token() {
            Some(b'{') => self.enter(),
            Some(_) => Err(self.peek_error(ErrorCode::ExpectedObject)),
            None => Err(self.peek_error(ErrorCode::EofWhileParsingValue)),
        }
    }

    /// The next member's name with its `:` read, or `None` after the closing `}` (taken).
    /// `first` starts true for each object and is kept by the caller.
    pub fn member_key(&mut self, first: &mut bool) -> Result<Option<String>, Error> {
        let next = match self.peek_token() {
            Some(b'}') => {
                self.bump();
                self.leave();
                return Ok(None);
            }
            Some(b',') if !*first => {
                self.bump();
                self.peek_token()
            }
            Some(byte) if *first => {
                *first = false;
                Some(byte)
            }
            Some(_) => return Err(self.peek_error(ErrorCode::ExpectedObjectCommaOrEnd)),
            None => return Err(self.peek_error(ErrorCode::EofWhileParsingObject)),
        };
        match next {
            Some(b'"') => {}
            Some(b'}') => return Err(self.peek_error(ErrorCode::TrailingComma)),
            Some(_) => return Err(self.peek_error(ErrorCode::KeyMustBeAString)),
            None => return Err(self.peek_error(ErrorCode::EofWhileParsingValue)),
        }
        self.bump();
        let key = self.string()?;
        match self.peek_token() {
            Some(b':') => self.bump(),
            Some(_) => return Err(self.peek_error(ErrorCode::ExpectedColon)),
            None => return Err(self.peek_error(ErrorCode::EofWhileParsingObject)),
        }
        Ok(Some(key))
    }

    /// Reads a string after its opening quote: escapes decoded, UTF-8 and surrogate pairs
    /// checked.
    fn string(&mut self) -> Result<String, Error> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(byte) = self.next_byte() else {
                return Err(self.error(ErrorCode::EofWhileParsingString));
            };
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0..=0x1f => return Err(self.error(ErrorCode::ControlCharacterWhileParsingString)),
                _ => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|err| {
            let bad = err
                .as_bytes()
                .len()
                .saturating_sub(err.utf8_error().valid_up_to());
            let mut error = self.error(ErrorCode::InvalidUnicodeCodePoint);
            error.column = error.column.saturating_sub(bad);
            error
        })
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let Some(byte) = self.next_byte() else {
            return Err(self.error(ErrorCode::EofWhileParsingString));
        };
        let plain = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode_escape(out),
            _ => return Err(self.error(ErrorCode::InvalidEscape)),
        };
        out.push(plain);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, Error> {
        let end = self.pos.saturating_add(4);
        let Some(digits) = self.bytes.get(self.pos..end) else {
            self.pos = self.bytes.len();
            return Err(self.error(ErrorCode::EofWhileParsingString));
        };
        self.pos = end;
        let mut n = 0u16;
        for &digit in digits {
            let Some(value) = char::from(digit).to_digit(16) else {
                return Err(self.error(ErrorCode::InvalidEscape));
            };
            n = n.wrapping_shl(4) | u16::try_from(value).unwrap_or(0);
        }
        Ok(n)
    }

    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let high = self.hex4()?;
        if (0xDC00..=0xDFFF).contains(&high) {
            return Err(self.error(ErrorCode::LoneLeadingSurrogateInHexEscape));
        }
        let code = if (0xD800..=0xDBFF).contains(&high) {
            for expected in [b'\\', b'u'] {
                match self.peek() {
                    None => return Err(self.error(ErrorCode::EofWhileParsingString)),
                    Some(byte) => {
                        self.bump();
                        if byte != expected {
                            return Err(self.error(ErrorCode::UnexpectedEndOfHexEscape));
                        }
                    }
                }
            }
            let low = self.hex4()?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(self.error(ErrorCode::LoneLeadingSurrogateInHexEscape));
            }
            let offset = u32::from(high & 0x3ff).wrapping_shl(10) | u32::from(low & 0x3ff);
            offset.saturating_add(0x1_0000)
        } else {
            u32::from(high)
        };
        // Never fails: surrogates were handled above and the pair is at most U+10FFFF.
        let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    /// Reads a number, checking its grammar and that it fits an `f64` the way serde_json's
    /// float reading decides it.
    fn number(&mut self) -> Result<Number, Error> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        self.integer()?;
        let text = self.bytes.get(start..self.pos).unwrap_or_default();
        // The grammar just checked is ASCII.
        Ok(Number(String::from_utf8_lossy(text).into_owned()))
    }

    fn integer(&mut self) -> Result<(), Error> {
        let significand = match self.next_byte() {
            None => return Err(self.error(ErrorCode::EofWhileParsingValue)),
            Some(b'0') => {
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.peek_error(ErrorCode::InvalidNumber));
                }
                0
            }
            Some(first @ b'1'..=b'9') => {
                let mut significand = u64::from(first.wrapping_sub(b'0'));
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    let digit = u64::from(digit.wrapping_sub(b'0'));
                    match significand
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(digit))
                    {
                        Some(next) => significand = next,
                        None => return self.long_integer(significand),
                    }
                    self.bump();
                }
                significand
            }
            Some(_) => return Err(self.error(ErrorCode::InvalidNumber)),
        };
        match self.peek() {
            Some(b'.') => self.decimal(significand, 0),
            Some(b'e' | b'E') => self.exponent(significand, 0),
            _ => Ok(()),
        }
    }

    /// An integer past `u64`: further digits only scale it.
    fn long_integer(&mut self, significand: u64) -> Result<(), Error> {
        let mut exponent = 0i32;
        loop {
            match self.peek() {
                Some(b'0'..=b'9') => {
                    self.bump();
                    exponent = exponent.saturating_add(1);
                }
                Some(b'.') => return self.decimal(significand, exponent),
                Some(b'e' | b'E') => return self.exponent(significand, exponent),
                _ => return self.check_range(significand, exponent),
            }
        }
    }

    fn decimal(&mut self, mut significand: u64, before: i32) -> Result<(), Error> {
        self.bump();
        let mut after = 0i32;
        let mut any_digit = false;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            any_digit = true;
            let digit = u64::from(digit.wrapping_sub(b'0'));
            let Some(next) = significand
                .checked_mul(10)
                .and_then(|n| n.checked_add(digit))
            else {
                // Digits past u64 precision are ignored.
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.bump();
                }
                break;
            };
            self.bump();
            significand = next;
            after = after.saturating_sub(1);
        }
        if !any_digit {
            return Err(match self.peek() {
                Some(_) => self.peek_error(ErrorCode::InvalidNumber),
                None => self.peek_error(ErrorCode::EofWhileParsingValue),
            });
        }
        let exponent = before.saturating_add(after);
        match self.peek() {
            Some(b'e' | b'E') => self.exponent(significand, exponent),
            _ => self.check_range(significand, exponent),
        }
    }

    fn exponent(&mut self, significand: u64, start: i32) -> Result<(), Error> {
        self.bump();
        let positive = match self.peek() {
            Some(b'+') => {
                self.bump();
                true
            }
            Some(b'-') => {
                self.bump();
                false
            }
            _ => true,
        };
        let mut exponent = match self.next_byte() {
            None => return Err(self.error(ErrorCode::EofWhileParsingValue)),
            Some(digit @ b'0'..=b'9') => i32::from(digit.wrapping_sub(b'0')),
            Some(_) => return Err(self.error(ErrorCode::InvalidNumber)),
        };
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            self.bump();
            let digit = i32::from(digit.wrapping_sub(b'0'));
            match exponent.checked_mul(10).and_then(|n| n.checked_add(digit)) {
                Some(next) => exponent = next,
                None => {
                    if significand != 0 && positive {
                        return Err(self.error(ErrorCode::NumberOutOfRange));
                    }
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.bump();
                    }
                    return Ok(());
                }
            }
        }
        let exponent = if positive {
            start.saturating_add(exponent)
        } else {
            start.saturating_sub(exponent)
        };
        self.check_range(significand, exponent)
    }

    /// serde_json's verdict on `significand × 10^exponent`: an error when its `f64`
    /// arithmetic (significand as `f64` times the nearest `f64` to the power of ten)
    /// overflows. Below 10^289 no `u64` significand can overflow.
    #[allow(clippy::arithmetic_side_effects)] // a float product saturates to infinity
    fn check_range(&self, significand: u64, exponent: i32) -> Result<(), Error> {
        /// The `f64` nearest to 10^289 ..= 10^308.
        const POW10_HIGH: [f64; 20] = [
            1e289, 1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, 1e300,
            1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
        ];
        let overflows = match usize::try_from(exponent) {
            Err(_) => false,
            Ok(exponent) => match exponent.checked_sub(289) {
                None => false,
                Some(index) => match POW10_HIGH.get(index) {
                    // The same rounding serde_json does.
                    Some(&power) => (significand as f64 * power).is_infinite(),
                    None => significand != 0,
                },
            },
        };
        if overflows {
            return Err(self.error(ErrorCode::NumberOutOfRange));
        }
        Ok(())
    }

    /// Skips the next value, checking its grammar only (serde_json's `IgnoredAny`: strings
    /// not checked for UTF-8 or surrogates, numbers not for range, nesting unbounded).
    pub fn skip_value(&mut self) -> Result<(), Error> {
        // Open arrays (`[`) and objects (`{`) around the current place, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            let Some(byte) = self.peek_token() else {
                return Err(self.peek_error(ErrorCode::EofWhileParsingValue));
            };
            let opened = match byte {
                b'n' => {
                    self.bump();
                    self.ident(b"ull")?;
                    false
                }
                b't' => {
                    self.bump();
                    self.ident(b"rue")?;
                    false
                }
                b'f' => {
                    self.bump();
                    self.ident(b"alse")?;
                    false
                }
                b'-' | b'0'..=b'9' => {
                    if byte == b'-' {
                        self.bump();
                    }
                    self.skip_number()?;
                    false
                }
                b'"' => {
                    self.bump();
                    self.skip_string()?;
                    false
                }
                b'[' | b'{' => {
                    self.bump();
                    open.push(byte);
                    true
                }
                _ => return Err(self.peek_error(ErrorCode::ExpectedSomeValue)),
            };
            // After a value: close finished containers, then find where the next one starts.
            let mut accept_comma = !opened;
            loop {
                let Some(&frame) = open.last() else {
                    return Ok(());
                };
                match self.peek_token() {
                    Some(b',') if accept_comma => {
                        self.bump();
                        break;
                    }
                    Some(b']') if frame == b'[' => {}
                    Some(b'}') if frame == b'{' => {}
                    Some(_) if accept_comma => {
                        return Err(self.peek_error(if frame == b'[' {
                            ErrorCode::ExpectedListCommaOrEnd
                        } else {
                            ErrorCode::ExpectedObjectCommaOrEnd
                        }))
                    }
                    Some(_) => break,
                    None => {
                        return Err(self.peek_error(if frame == b'[' {
                            ErrorCode::EofWhileParsingList
                        } else {
                            ErrorCode::EofWhileParsingObject
                        }))
                    }
                }
                self.bump();
                open.pop();
                accept_comma = true;
            }
            if open.last() == Some(&b'{') {
                match self.peek_token() {
                    Some(b'"') => self.bump(),
                    Some(_) => return Err(self.peek_error(ErrorCode::KeyMustBeAString)),
                    None => return Err(self.peek_error(ErrorCode::EofWhileParsingObject)),
                }
                self.skip_string()?;
                match self.peek_token() {
                    Some(b':') => self.bump(),
                    Some(_) => return Err(self.peek_error(ErrorCode::ExpectedColon)),
                    None => return Err(self.peek_error(ErrorCode::EofWhileParsingObject)),
                }
            }
        }
    }

    fn skip_digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.bump();
        }
    }

    fn skip_number(&mut self) -> Result<(), Error> {
        match self.next_byte() {
            Some(b'0') => {
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.peek_error(ErrorCode::InvalidNumber));
                }
            }
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error(ErrorCode::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.peek_error(ErrorCode::InvalidNumber));
            }
            self.skip_digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            match self.next_byte() {
                Some(b'0'..=b'9') => self.skip_digits(),
                _ => return Err(self.error(ErrorCode::InvalidNumber)),
            }
        }
        Ok(())
    }

    fn skip_string(&mut self) -> Result<(), Error> {
        loop {
            match self.peek() {
                None => return Err(self.error(ErrorCode::EofWhileParsingString)),
                Some(b'"') => {
                    self.bump();
                    return Ok(());
                }
                Some(b'\\') => {
                    self.bump();
                    match self.next_byte() {
                        None => return Err(self.error(ErrorCode::EofWhileParsingString)),
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        Some(b'u') => {
                            self.hex4()?;
                        }
                        Some(_) => return Err(self.error(ErrorCode::InvalidEscape)),
                    }
                }
                Some(0..=0x1f) => {
                    return Err(self.error(ErrorCode::ControlCharacterWhileParsingString))
                }
                Some(_) => self.bump(),
            }
        }
    }
}

/// Compact JSON text of `value` (serde_json's `to_string`).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None);
    out
}

/// Indented JSON text of `value`: two spaces a level, `": "` after names (serde_json's
/// `to_string_pretty`).
pub fn to_string_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(0));
    out
}

/// `text` as a JSON string literal, quotes included.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    write_string(&mut out, text);
    out
}

fn newline_indent(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// Writes `value`; `indent` is the current level when pretty, `None` when compact.
fn write_value(out: &mut String, value: &Value, indent: Option<usize>) {
    let inner = indent.map(|level| level.saturating_add(1));
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(number.as_str()),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = inner {
                    newline_indent(out, level);
                }
                write_value(out, item, inner);
            }
            if let (Some(level), false) = (indent, items.is_empty()) {
                newline_indent(out, level);
            }
            out.push(']');
        }
        Value::Object(object) => {
            out.push('{');
            for (i, (name, item)) in object.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = inner {
                    newline_indent(out, level);
                }
                write_string(out, name);
                out.push_str(if indent.is_some() { ": " } else { ":" });
                write_value(out, item, inner);
            }
            if let (Some(level), false) = (indent, object.0.is_empty()) {
                newline_indent(out, level);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\0'..='\u{1f}' => {
                let byte = u32::from(ch);
                out.push_str("\\u00");
                for nibble in [byte >> 4, byte & 0xf] {
                    let digit = HEX.get(nibble as usize).copied().unwrap_or(b'0');
                    out.push(char::from(digit));
                }
            }
            _ => out.push(ch),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
