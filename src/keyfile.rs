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

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

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

/// Result of [`load_or_create`]: the key, and whether it was generated just now (so the caller
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
    fn new(path: &Path, action: KeyFileAction, problem: KeyFileProblem) -> KeyFileError {
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

/// Loads the server key from `path`, or, when the file does not exist, generates a key and
/// writes it there (creating missing directories with mode 0700) in derper's format.
pub fn load_or_create(path: &Path) -> Result<LoadedKey, KeyFileError> {
    let read_error =
        |problem: KeyFileProblem| KeyFileError::new(path, KeyFileAction::Read, problem);
    match read_bounded(path, MAX_KEY_FILE_LEN) {
        Ok(Some(bytes)) => {
            let secret = parse_key_file(&bytes).map_err(read_error)?;
            Ok(LoadedKey {
                secret,
                created: false,
            })
        }
        Ok(None) => Err(read_error(KeyFileProblem::TooLarge)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => create(path),
        Err(err) => Err(read_error(problem_from_io(err))),
    }
}

/// Reads a whole file if it is at most `limit` bytes long; `Ok(None)` when it is longer.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).map_or(true, |len| len > limit) {
        return Ok(None);
    }
    Ok(Some(bytes))
}

fn create(path: &Path) -> Result<LoadedKey, KeyFileError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).map_err(|err| {
            KeyFileError::new(path, KeyFileAction::CreateDir, problem_from_io(err))
        })?;
    }
    let secret = SecretKey::generate().map_err(|err| {
        KeyFileError::new(
            path,
            KeyFileAction::Write,
            KeyFileProblem::NoRandomness(err),
        )
    })?;
    write_atomic(path, key_file_contents(&secret).as_bytes(), KEY_FILE_MODE)
        .map_err(|err| KeyFileError::new(path, KeyFileAction::Write, problem_from_io(err)))?;
    Ok(LoadedKey {
        secret,
        created: true,
    })
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
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| KeyFileProblem::InvalidJson {
            line: err.line(),
            column: err.column(),
        })?;
    let serde_json::Value::Object(members) = value else {
        return Err(KeyFileProblem::NotAnObject);
    };
    let member = members.get(PRIVATE_KEY_FIELD).or_else(|| {
        members
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(PRIVATE_KEY_FIELD))
            .map(|(_, value)| value)
    });
    let text = match member {
        None | Some(serde_json::Value::Null) => return Err(KeyFileProblem::MissingKey),
        Some(serde_json::Value::String(text)) => text,
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

/// Creates `dir` and any missing parents with mode 0700 (existing ones are left as they are).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(dir)
}

/// Replaces `path` with `contents` so that a crash or power cut leaves either the old file or
/// the complete new one: write a temporary file in the same directory with its final mode,
/// fsync it, rename it over `path`, then fsync the directory so the rename itself is durable.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut nonce = [0u8; 6];
    getrandom::getrandom(&mut nonce).map_err(|err| io::Error::other(err.to_string()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", crate::proto::key::hex_lower(&nonce)));
    let temp_path = dir.join(temp_name);

    let result = write_and_rename(&temp_path, path, contents, mode);
    if result.is_err() {
        // Best effort: the temporary file may not exist (creation failed) or may be unremovable.
        let _ = fs::remove_file(&temp_path);
    }
    result?;
    fs::File::open(dir)?.sync_all()
}

fn write_and_rename(temp_path: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp_path)?;
    // The umask can only narrow `mode`; set it exactly so 0644 certificates stay readable.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp_path, path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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

    const DERPER_HEX: &str = "4899f1cc0ea3b4b2b3e4c6b75b1d0cfb6d3c5e4e2bc0a24a0d1a5d37e8c04d5f";

    /// The exact bytes derper writes (tab indent, no trailing newline).
    fn derper_bytes(hex: &str) -> Vec<u8> {
        format!("{{\n\t\"PrivateKey\": \"privkey:{hex}\"\n}}").into_bytes()
    }

    fn problem_of(bytes: &[u8]) -> KeyFileProblem {
        match parse_key_file(bytes) {
            Ok(_) => panic!("expected an error"),
            Err(problem) => problem,
        }
    }

    #[test]
    fn creates_then_reloads_the_same_key_in_derper_format() {
        let dir = TempDir::new("create");
        let path = dir.0.join("state/sub/derper.key");
        let first = load_or_create(&path).unwrap();
        assert!(first.created);

        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes, derper_bytes(&hex_of(&first.secret)));
        assert_eq!(bytes.last(), Some(&b'}'), "no trailing newline");

        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dir_meta = fs::metadata(dir.0.join("state")).unwrap();
        assert_eq!(dir_meta.mode() & 0o077, 0, "created dirs are private");

        let second = load_or_create(&path).unwrap();
        assert!(!second.created);
        assert_eq!(second.secret.as_bytes(), first.secret.as_bytes());
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "reload leaves the file alone"
        );

        let leftovers: Vec<_> = fs::read_dir(dir.0.join("state/sub"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("derper.key")]);
    }

    fn hex_of(secret: &SecretKey) -> String {
        crate::proto::key::hex_lower(secret.as_bytes())
    }

    #[test]
    fn reads_an_existing_derper_file_unchanged() {
        let dir = TempDir::new("derper");
        let path = dir.0.join("derper.key");
        fs::write(&path, derper_bytes(DERPER_HEX)).unwrap();
        let loaded = load_or_create(&path).unwrap();
        assert!(!loaded.created);
        assert_eq!(hex_of(&loaded.secret), DERPER_HEX);
        assert_eq!(fs::read(&path).unwrap(), derper_bytes(DERPER_HEX));
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
    fn error_messages_name_the_path_and_never_the_key() {
        let dir = TempDir::new("garbage");
        let path = dir.0.join("derper.key");
        // A key with the right digits but a wrong prefix: the message must not echo it.
        let wrong_case = format!("{{\"PrivateKey\": \"PRIVKEY:{DERPER_HEX}\"}}");
        fs::write(&path, &wrong_case).unwrap();
        let err = load_or_create(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("64 hex digits"), "{text}");
        assert!(!text.contains(&DERPER_HEX[..16]), "{text}");
        assert_eq!(
            fs::read(&path).unwrap(),
            wrong_case.as_bytes(),
            "a bad file is never overwritten"
        );

        fs::write(&path, b"{\"PrivateKey\": \"privkey:").unwrap();
        let text = load_or_create(&path).unwrap_err().to_string();
        assert!(
            text.contains("not valid JSON (line 1, column 24)"),
            "{text}"
        );

        fs::write(&path, b"{\"Key\": 1}").unwrap();
        let text = load_or_create(&path).unwrap_err().to_string();
        assert!(text.contains("has no PrivateKey"), "{text}");
        assert!(text.contains("move it away"), "{text}");
    }

    #[test]
    fn a_directory_at_the_key_path_is_reported() {
        let dir = TempDir::new("isdir");
        let err = load_or_create(&dir.0).unwrap_err();
        assert!(
            matches!(err.problem, KeyFileProblem::IsADirectory),
            "{err:?}"
        );
        assert!(err.to_string().contains("is a directory"));
    }

    #[test]
    fn a_file_where_a_directory_is_expected_is_reported() {
        let dir = TempDir::new("notdir");
        let blocker = dir.0.join("etc-tinyderp");
        fs::write(&blocker, b"not a directory").unwrap();
        // Reading below a regular file fails with ENOTDIR.
        let err = load_or_create(&blocker.join("derper.key")).unwrap_err();
        assert!(
            matches!(err.problem, KeyFileProblem::NotADirectory),
            "{err:?}"
        );
        assert_eq!(err.action, KeyFileAction::Read);
        assert!(err.to_string().contains("not a directory"));
        // Deeper paths fail the same way, already at the read.
        let err = load_or_create(&blocker.join("deeper/derper.key")).unwrap_err();
        assert!(
            matches!(err.problem, KeyFileProblem::NotADirectory),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot read"), "{err}");
    }

    #[test]
    fn an_unwritable_directory_is_reported_when_not_root() {
        if nix::unistd::geteuid().is_root() {
            // Root bypasses permission bits; the errno mapping is covered below instead.
            return;
        }
        let dir = TempDir::new("perm");
        let locked = dir.0.join("locked");
        fs::create_dir(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).unwrap();
        let err = load_or_create(&locked.join("derper.key")).unwrap_err();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(
            matches!(err.problem, KeyFileProblem::PermissionDenied),
            "{err:?}"
        );
        assert_eq!(err.action, KeyFileAction::Write);
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

    #[test]
    fn an_oversized_file_is_refused() {
        let dir = TempDir::new("big");
        let path = dir.0.join("derper.key");
        let mut big = derper_bytes(DERPER_HEX);
        big.resize(usize::try_from(MAX_KEY_FILE_LEN).unwrap() + 1, b' ');
        fs::write(&path, &big).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err.problem, KeyFileProblem::TooLarge), "{err:?}");
    }

    /// A tiny tmpfs, when this process may mount one (root in a permissive container).
    struct TinyTmpfs(PathBuf);

    impl TinyTmpfs {
        fn mount(tag: &str, options: &str) -> Option<TinyTmpfs> {
            let dir = TempDir::new(tag);
            let point = dir.0.clone();
            std::mem::forget(dir);
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", options, "tmpfs"])
                .arg(&point)
                .stderr(std::process::Stdio::null())
                .status()
                .ok()?;
            if !status.success() {
                let _ = fs::remove_dir(&point);
                return None;
            }
            Some(TinyTmpfs(point))
        }
    }

    impl Drop for TinyTmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn real_read_only_and_full_filesystems_when_mounting_is_allowed() {
        if let Some(ro) = TinyTmpfs::mount("ro", "ro,size=64k") {
            let err = load_or_create(&ro.0.join("derper.key")).unwrap_err();
            assert!(
                matches!(err.problem, KeyFileProblem::ReadOnlyFilesystem),
                "{err:?}"
            );
        }
        if let Some(full) = TinyTmpfs::mount("full", "size=4k") {
            // Fill the single page, then the key write must fail with ENOSPC.
            let filler = full.0.join("filler");
            let _ = fs::write(&filler, vec![0u8; 8192]);
            let err = load_or_create(&full.0.join("derper.key")).unwrap_err();
            assert!(matches!(err.problem, KeyFileProblem::NoSpace), "{err:?}");
            assert!(!full.0.join("derper.key").exists());
            let names: Vec<_> = fs::read_dir(&full.0)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(
                names,
                vec![std::ffi::OsString::from("filler")],
                "temp removed"
            );
        }
    }
}
