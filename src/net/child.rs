//! Runs a helper program and collects what it prints: `tinyderp check` reads the firewall
//! with `nft -j list ruleset`.
//!
//! `posix_spawn` with two pipes instead of `std::process`, whose command builder, environment
//! map and fork fallback cost about 20 KB of flash on MIPS for this one call.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};
use smol::io::AsyncReadExt;
use smol::Async;

/// What a finished program left behind.
#[derive(Debug)]
pub(crate) struct Output {
    /// Its exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// What it wrote to standard output.
    pub stdout: Vec<u8>,
    /// What it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// True when the program exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Kills and reaps the child when the caller stops waiting (a deadline passed, or reading
/// failed), so no process is left running or unreaped.
struct Reaper(Option<Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Runs `program` with `args`, standard input from /dev/null and an empty environment, and
/// returns its exit and output. More than `limit` bytes on either stream is an error (the
/// program is killed). The caller puts a deadline on it; dropping the future kills it.
pub(crate) async fn run(program: &Path, args: &[&str], limit: usize) -> io::Result<Output> {
    let (pid, out_read, err_read) = spawn(program, args)?;
    let mut reaper = Reaper(Some(pid));
    let (stdout, stderr) =
        smol::future::zip(read_capped(out_read, limit), read_capped(err_read, limit)).await;
    let (stdout, stderr) = (stdout?, stderr?);
    reaper.0 = None;
    // Both pipes are closed, so the program has exited or is about to.
    let status = smol::unblock(move || waitpid(pid, None)).await?;
    let code = match status {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    };
    Ok(Output {
        code,
        stdout,
        stderr,
    })
}

/// Starts the program; its pid and the read ends of its standard output and error. (The
/// spawn attribute objects hold raw pointers, so they stay out of the async function.)
fn spawn(program: &Path, args: &[&str]) -> io::Result<(Pid, OwnedFd, OwnedFd)> {
    let to_c = |bytes: &[u8]| {
        CString::new(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in an argument"))
    };
    let path = to_c(program.as_os_str().as_bytes())?;
    let mut argv = vec![path.clone()];
    for arg in args {
        argv.push(to_c(arg.as_bytes())?);
    }
    let (out_read, out_write) = pipe2(OFlag::O_CLOEXEC)?;
    let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC)?;
    let null = File::open("/dev/null")?;
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(null.as_raw_fd(), 0)?;
    actions.add_dup2(out_write.as_raw_fd(), 1)?;
    actions.add_dup2(err_write.as_raw_fd(), 2)?;
    // The relay ignores SIGPIPE; the program gets the default back, as a shell would give it.
    let mut attr = PosixSpawnAttr::init()?;
    let mut defaults = SigSet::empty();
    defaults.add(Signal::SIGPIPE);
    attr.set_sigdefault(&defaults)?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF)?;
    let no_env: [CString; 0] = [];
    let pid = posix_spawn(path.as_c_str(), &actions, &attr, &argv, &no_env).map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!("{}: {}", program.display(), errno.desc()),
        )
    })?;
    // Our copies of the write ends close here, or the reads would never see the end.
    Ok((pid, out_read, err_read))
}

/// Reads a pipe to its end, failing once it holds more than `limit` bytes.
async fn read_capped(fd: OwnedFd, limit: usize) -> io::Result<Vec<u8>> {
    let mut pipe = Async::new(File::from(fd))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(out);
        }
        if out.len().saturating_add(n) > limit {
            return Err(io::Error::other(format!("printed more than {limit} bytes")));
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn sh(script: &str, limit: usize) -> io::Result<Output> {
        smol::block_on(run(Path::new("/bin/sh"), &["-c", script], limit))
    }

    #[test]
    fn output_and_exit_code_are_collected_like_std_process() {
        let script = "echo out; echo err >&2; printf '%s' \"$HOME\"; read x; echo \"[$x]\"; exit 3";
        let ours = sh(script, 1024).unwrap();
        let std = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(ours.code, std.status.code());
        assert_eq!(ours.code, Some(3));
        assert!(!ours.success());
        assert_eq!(ours.stdout, std.stdout);
        assert_eq!(ours.stdout, b"out\n[]\n");
        assert_eq!(ours.stderr, std.stderr);
        assert!(sh("exit 0", 16).unwrap().success());
        assert_eq!(sh("kill -9 $$", 16).unwrap().code, None);
    }

    #[test]
    fn too_much_output_and_missing_programs_are_errors() {
        let err = sh("head -c 100000 /dev/zero", 65536).unwrap_err();
        assert!(err.to_string().contains("more than 65536 bytes"), "{err}");
        let big = sh("head -c 100000 /dev/zero >&2", 200_000).unwrap();
        assert_eq!(big.stderr.len(), 100_000);
        let missing = smol::block_on(run(Path::new("/nonexistent/nft"), &[], 16)).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound, "{missing}");
        assert!(
            missing.to_string().contains("/nonexistent/nft"),
            "{missing}"
        );
    }

    #[test]
    fn a_program_abandoned_at_a_deadline_is_killed_and_reaped() {
        let started = Instant::now();
        let pid_file = std::env::temp_dir().join(format!("tinyderp-child-{}", std::process::id()));
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let ran = smol::block_on(async {
            let args = ["-c", script.as_str()];
            let work = run(Path::new("/bin/sh"), &args, 16);
            smol::future::or(async { Some(work.await) }, async {
                smol::Timer::after(Duration::from_millis(300)).await;
                None
            })
            .await
        });
        assert!(ran.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&pid_file);
        // Reaped: the pid no longer names a process (not even a zombie).
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
    }
}
