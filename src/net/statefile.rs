//! State files on disk: bounded reads, private directories, atomic replace, and the server
//! key's load-or-create. The key file's format and messages are pure and live in
//! [`crate::keyfile`]; this is their I/O edge.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::keyfile::{
    key_file_contents, parse_key_file, problem_from_io, KeyFileAction, KeyFileError,
    KeyFileProblem, LoadedKey, KEY_FILE_MODE, MAX_KEY_FILE_LEN, STATE_DIR_MODE,
};
use crate::proto::key::SecretKey;

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
mod tests {
    use super::*;
    use crate::keyfile::tests::{derper_bytes, hex_of, TempDir, DERPER_HEX};
    use crate::keyfile::KeyFileProblem;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

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
