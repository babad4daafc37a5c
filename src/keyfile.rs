//! The server's private key file, kept in upstream derper's JSON format.
//!
//! The DERP server key is the server's identity: clients learn it from the meta certificate or
//! the handshake and cache it. Using derper's exact file format means an operator who moves from
//! derper to tinyderp (or back) keeps the same key file and therefore the same identity.
//!
//! File layout, byte for byte as derper writes it (tab indent, no trailing newline):
//!
//! ```text
//! {
//! <TAB>"PrivateKey": "privkey:<64 lowercase hex digits of the clamped private key>"
//! }
//! ```
//!
//! On read, the member name matches case-insensitively and hex may be either case (as in Go's
//! `encoding/json` and `key.NodePrivate`); the `privkey:` prefix is mandatory.
//!
//! This module is pure (format, parsing, error messages); reading, creating and atomically
//! replacing the file is done by `net::statefile`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::proto::json;
use crate::proto::key::{parse_hex_32, SecretKey, KEY_LEN, PRIVATE_KEY_PREFIX};

/// Largest key file we accept: derper's file is 85 bytes; anything this big is not a key file,
/// and the bound keeps a wrong `-c` path (a log, a disk image) from being read into memory.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// JSON member holding the key, as derper spells it when writing.
pub const PRIVATE_KEY_FIELD: &str = "PrivateKey";

/// Mode of a newly created key file: owner read/write only (it holds a private key).
pub const KEY_FILE_MODE: u32 = 0o600;

/// Mode of directories created for the key file (and the generated certificate).
pub const STATE_DIR_MODE: u32 = 0o700;

/// Result of loading the key file (`net::statefile::load_or_create`): the key, and whether it was generated just now (so the caller
/// can log "new server key" once).
#[derive(Debug)]
pub struct LoadedKey {
    /// The server's private key.
    pub secret: SecretKey,
    /// True when the file did not exist and was created with a fresh key.
    pub created: bool,
}

/// What the program was doing when a key file operation failed (chosen for the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileAction {
    /// Reading an existing file.
    Read,
    /// Creating the directories above the file.
    CreateDir,
    /// Writing a new file.
    Write,
}

impl KeyFileAction {
    fn verb(self) -> &'static str {
        match self {
            KeyFileAction::Read => "read",
            KeyFileAction::CreateDir => "create the directory for",
            KeyFileAction::Write => "write",
        }
    }
}

/// Why the key file could not be used; each has its own message with the fix.
#[derive(Debug)]
pub enum KeyFileProblem {
    /// EACCES / EPERM.
    PermissionDenied,
    /// EROFS.
    ReadOnlyFilesystem,
    /// ENOSPC / EDQUOT.
    NoSpace,
    /// The path names a directory.
    IsADirectory,
    /// A component above the file is not a directory.
    NotADirectory,
    /// The file is larger than [`MAX_KEY_FILE_LEN`].
    TooLarge,
    /// Any other I/O error.
    Io(io::Error),
    /// The content is not JSON; position of the syntax error (1-based).
    InvalidJson {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// Valid JSON, but not an object.
    NotAnObject,
    /// No `PrivateKey` member (or it is `null`).
    MissingKey,
    /// `PrivateKey` is `privkey:` followed by 64 zeros.
    ZeroKey,
    /// `PrivateKey` is not `privkey:` + 64 hex digits.
    MalformedKey,
    /// The operating system's random generator failed while making a new key.
    NoRandomness(getrandom::Error),
}

/// A key file failure: the path, what was being done, and why. Never contains key material.
#[derive(Debug)]
pub struct KeyFileError {
    /// The key file's path.
    pub path: PathBuf,
    /// What was being done.
    pub action: KeyFileAction,
    /// Why it failed.
    pub problem: KeyFileProblem,
}

impl KeyFileError {
    /// A failure of `action` on the key file at `path`.
    pub fn new(path: &Path, action: KeyFileAction, problem: KeyFileProblem) -> KeyFileError {
        KeyFileError {
            path: path.to_path_buf(),
            action,
            problem,
        }
    }
}

const EXPECTED_SHAPE: &str = r#"{"PrivateKey": "privkey:<64 hex digits>"}"#;
const REGENERATE_HINT: &str =
    "or move it away to have a new key generated (that changes the server's public key)";

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let verb = self.action.verb();
        match &self.problem {
            KeyFileProblem::PermissionDenied => write!(
                f,
                "cannot {verb} server key file {path}: permission denied; run tinyderp as the \
                 user that owns it, or fix the owner and mode of the file (0600) and of its \
                 directory"
            ),
            KeyFileProblem::ReadOnlyFilesystem => write!(
                f,
                "cannot {verb} server key file {path}: the filesystem is read-only; point the \
                 key file (-c) at a writable place such as /etc/tinyderp/"
            ),
            KeyFileProblem::NoSpace => write!(
                f,
                "cannot {verb} server key file {path}: no space left on the device; free some \
                 space on that filesystem (df -h) and start again"
            ),
            KeyFileProblem::IsADirectory => write!(
                f,
                "server key file {path} is a directory; give -c the path of a file inside it, \
                 e.g. {path}/derper.key"
            ),
            KeyFileProblem::NotADirectory => write!(
                f,
                "cannot {verb} server key file {path}: a part of that path is a file, not a \
                 directory; fix the -c path or move that file away"
            ),
            KeyFileProblem::TooLarge => write!(
                f,
                "server key file {path} is larger than {MAX_KEY_FILE_LEN} bytes, so it is not a \
                 key file; check the -c path"
            ),
            KeyFileProblem::Io(err) => {
                write!(f, "cannot {verb} server key file {path}: {err}")
            }
            KeyFileProblem::InvalidJson { line, column } => write!(
                f,
                "server key file {path} is not valid JSON (line {line}, column {column}); it \
                 must look like {EXPECTED_SHAPE}; fix it, {REGENERATE_HINT}"
            ),
            KeyFileProblem::NotAnObject => write!(
                f,
                "server key file {path} is not a JSON object; it must look like \
                 {EXPECTED_SHAPE}; fix it, {REGENERATE_HINT}"
            ),
            KeyFileProblem::MissingKey => write!(
                f,
                "server key file {path} has no PrivateKey; it must look like {EXPECTED_SHAPE}; \
                 fix it, {REGENERATE_HINT}"
            ),
            KeyFileProblem::ZeroKey => write!(
                f,
                "server key file {path} holds an all-zero PrivateKey, which is not a usable \
                 key; {REGENERATE_HINT}"
            ),
            KeyFileProblem::MalformedKey => write!(
                f,
                "server key file {path}: PrivateKey is not \"privkey:\" followed by 64 hex \
                 digits; fix it, {REGENERATE_HINT}"
            ),
            KeyFileProblem::NoRandomness(err) => write!(
                f,
                "cannot create server key file {path}: the system random generator failed \
                 ({err})"
            ),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// Maps an I/O error to the problem whose message names the fix. Errno-based, so it is exact
/// on every libc (musl included).
pub fn problem_from_io(err: io::Error) -> KeyFileProblem {
    let Some(code) = err.raw_os_error() else {
        return KeyFileProblem::Io(err);
    };
    match Errno::from_raw(code) {
        Errno::EACCES | Errno::EPERM => KeyFileProblem::PermissionDenied,
        Errno::EROFS => KeyFileProblem::ReadOnlyFilesystem,
        Errno::ENOSPC | Errno::EDQUOT => KeyFileProblem::NoSpace,
        Errno::EISDIR => KeyFileProblem::IsADirectory,
        Errno::ENOTDIR => KeyFileProblem::NotADirectory,
        _ => KeyFileProblem::Io(err),
    }
}

/// The file text derper writes for `secret` (Go's `json.MarshalIndent(cfg, "", "\t")`).
pub fn key_file_contents(secret: &SecretKey) -> String {
    format!(
        "{{\n\t\"{PRIVATE_KEY_FIELD}\": \"{}\"\n}}",
        secret.to_text()
    )
}

/// Parses a key file's bytes. The error never includes any of the file's text.
pub fn parse_key_file(bytes: &[u8]) -> Result<SecretKey, KeyFileProblem> {
    let value = json::parse(bytes).map_err(|err| KeyFileProblem::InvalidJson {
        line: err.line(),
        column: err.column(),
    })?;
    let json::Value::Object(members) = value else {
        return Err(KeyFileProblem::NotAnObject);
    };
    let text = match members.get_ignore_ascii_case(PRIVATE_KEY_FIELD) {
        None | Some(json::Value::Null) => return Err(KeyFileProblem::MissingKey),
        Some(json::Value::String(text)) => text,
        Some(_) => return Err(KeyFileProblem::MalformedKey),
    };
    let hex = text
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(KeyFileProblem::MalformedKey)?;
    let raw = parse_hex_32(hex).ok_or(KeyFileProblem::MalformedKey)?;
    if raw == [0u8; KEY_LEN] {
        return Err(KeyFileProblem::ZeroKey);
    }
    Ok(SecretKey::from_bytes(raw))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nix::errno::Errno;
    use std::fs;

    /// A fresh empty directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            let mut nonce = [0u8; 8];
            getrandom::getrandom(&mut nonce).unwrap();
            let path = std::env::temp_dir().join(format!(
                "tinyderp-keyfile-{tag}-{}",
                crate::proto::key::hex_lower(&nonce)
            ));
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) const DERPER_HEX: &str =
        "4899f1cc0ea3b4b2b3e4c6b75b1d0cfb6d3c5e4e2bc0a24a0d1a5d37e8c04d5f";

    /// The exact bytes derper writes (tab indent, no trailing newline).
    pub(crate) fn derper_bytes(hex: &str) -> Vec<u8> {
        format!("{{\n\t\"PrivateKey\": \"privkey:{hex}\"\n}}").into_bytes()
    }

    pub(crate) fn problem_of(bytes: &[u8]) -> KeyFileProblem {
        match parse_key_file(bytes) {
            Ok(_) => panic!("expected an error"),
            Err(problem) => problem,
        }
    }

    pub(crate) fn hex_of(secret: &SecretKey) -> String {
        crate::proto::key::hex_lower(secret.as_bytes())
    }

    #[test]
    fn accepts_upper_hex_any_member_case_and_other_whitespace() {
        let upper = format!(
            "  {{\"privatekey\":\"privkey:{}\"}}\n",
            DERPER_HEX.to_uppercase()
        );
        let secret = parse_key_file(upper.as_bytes()).unwrap();
        assert_eq!(hex_of(&secret), DERPER_HEX);
        let mixed = format!("{{\"PRIVATEKEY\": \"privkey:{DERPER_HEX}\", \"Other\": 1}}");
        assert_eq!(
            hex_of(&parse_key_file(mixed.as_bytes()).unwrap()),
            DERPER_HEX
        );
    }

    #[test]
    fn rejects_bad_contents_with_the_right_problem() {
        assert!(matches!(
            problem_of(b"{\"PrivateKey\": "),
            KeyFileProblem::InvalidJson { line: 1, .. }
        ));
        assert!(matches!(
            problem_of(b"not json"),
            KeyFileProblem::InvalidJson { .. }
        ));
        assert!(matches!(
            problem_of(b""),
            KeyFileProblem::InvalidJson { .. }
        ));
        assert!(matches!(problem_of(b"[1]"), KeyFileProblem::NotAnObject));
        assert!(matches!(problem_of(b"{}"), KeyFileProblem::MissingKey));
        assert!(matches!(
            problem_of(b"{\"PublicKey\": \"x\"}"),
            KeyFileProblem::MissingKey
        ));
        assert!(matches!(
            problem_of(b"{\"PrivateKey\": null}"),
            KeyFileProblem::MissingKey
        ));
        let zero = derper_bytes(&"0".repeat(64));
        assert!(matches!(problem_of(&zero), KeyFileProblem::ZeroKey));
        let no_prefix = format!("{{\"PrivateKey\": \"{DERPER_HEX}\"}}");
        assert!(matches!(
            problem_of(no_prefix.as_bytes()),
            KeyFileProblem::MalformedKey
        ));
        let wrong_prefix = format!("{{\"PrivateKey\": \"nodekey:{DERPER_HEX}\"}}");
        assert!(matches!(
            problem_of(wrong_prefix.as_bytes()),
            KeyFileProblem::MalformedKey
        ));
        let short = derper_bytes(&DERPER_HEX[..62]);
        assert!(matches!(problem_of(&short), KeyFileProblem::MalformedKey));
        let not_hex = derper_bytes(&format!("{}zz", &DERPER_HEX[..62]));
        assert!(matches!(problem_of(&not_hex), KeyFileProblem::MalformedKey));
        assert!(matches!(
            problem_of(b"{\"PrivateKey\": 42}"),
            KeyFileProblem::MalformedKey
        ));
    }

    #[test]
    fn errno_mapping_and_messages() {
        let table: [(Errno, &str); 7] = [
            (Errno::EACCES, "permission denied"),
            (Errno::EPERM, "permission denied"),
            (Errno::EROFS, "read-only"),
            (Errno::ENOSPC, "no space left"),
            (Errno::EDQUOT, "no space left"),
            (Errno::EISDIR, "is a directory"),
            (Errno::ENOTDIR, "not a directory"),
        ];
        for (errno, words) in table {
            let problem = problem_from_io(io::Error::from_raw_os_error(errno as i32));
            let err = KeyFileError::new(
                Path::new("/etc/tinyderp/derper.key"),
                KeyFileAction::Write,
                problem,
            );
            let text = err.to_string();
            assert!(text.contains(words), "{errno}: {text}");
            assert!(text.contains("/etc/tinyderp/derper.key"), "{errno}: {text}");
        }
        let other = problem_from_io(io::Error::from_raw_os_error(Errno::EIO as i32));
        assert!(matches!(other, KeyFileProblem::Io(_)));
        let synthetic = problem_from_io(io::Error::other("boom"));
        assert!(matches!(synthetic, KeyFileProblem::Io(_)));
    }
}
