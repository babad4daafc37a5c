//! Typed errors of the I/O edge: why the server could not start ([`RunError`]), each with
//! the sentence the operator reads and a short stable label for logs and metrics.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cert::CertError;
use crate::keyfile::KeyFileError;

use super::admission::AdmissionSetupError;
use super::pacing::RateConfigError;

/// A start-up failure; `main` prints it (already phrased for the operator) and exits 1.
#[derive(Debug)]
pub enum RunError {
    /// The server key file could not be read or created.
    ServerKey(KeyFileError),
    /// The mesh key file could not be read.
    MeshKeyRead {
        /// The `--mesh-psk-file` path.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The mesh key file does not hold 64 hex digits.
    MeshKeyFormat {
        /// The `--mesh-psk-file` path.
        path: PathBuf,
    },
    /// The certificate could not be loaded, generated or used.
    Certificate(CertError),
    /// The admission URL's TLS client could not be set up.
    Admission(AdmissionSetupError),
    /// The `--rate-config` file could not be read or parsed.
    RateConfig(RateConfigError),
    /// A listener could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        err: nix::Error,
    },
    /// A bound socket could not be handed to the runtime.
    Register {
        /// The address asked for.
        addr: SocketAddr,
        /// True for the STUN (UDP) socket.
        udp: bool,
        /// Why.
        err: std::io::Error,
    },
    /// A worker thread could not be started.
    WorkerThread(std::io::Error),
    /// The signal handlers could not be installed.
    Signals(std::io::Error),
}

impl RunError {
    /// Short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RunError::ServerKey(_) => "server_key",
            RunError::MeshKeyRead { .. } => "mesh_key_read",
            RunError::MeshKeyFormat { .. } => "mesh_key_format",
            RunError::Certificate(_) => "certificate",
            RunError::Admission(_) => "admission",
            RunError::RateConfig(_) => "rate_config",
            RunError::Bind { .. } => "bind",
            RunError::Register { .. } => "register",
            RunError::WorkerThread(_) => "worker_thread",
            RunError::Signals(_) => "signals",
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::ServerKey(err) => write!(f, "{err}"),
            RunError::MeshKeyRead { path, err } => {
                write!(f, "cannot read mesh key file {}: {err}", path.display())
            }
            RunError::MeshKeyFormat { path } => write!(
                f,
                "mesh key file {} must hold exactly 64 hex digits (generate one with: openssl rand -hex 32)",
                path.display()
            ),
            RunError::Certificate(err) => write!(f, "{err}"),
            RunError::Admission(err) => write!(f, "--verify-client-url: {err}"),
            RunError::RateConfig(err) => write!(f, "{err}"),
            RunError::Bind { addr, err } => {
                let hint = match err {
                    nix::Error::EADDRINUSE => {
                        " (another program uses this port: pick another with -a/--stun-port/--http-port)"
                    }
                    nix::Error::EACCES => " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
                    nix::Error::EADDRNOTAVAIL => " (this machine has no such address)",
                    _ => "",
                };
                write!(f, "cannot listen on {addr}: {err}{hint}")
            }
            RunError::Register {
                addr,
                udp: false,
                err,
            } => write!(f, "cannot listen on {addr}: {err}"),
            RunError::Register {
                addr,
                udp: true,
                err,
            } => write!(f, "cannot use udp {addr}: {err}"),
            RunError::WorkerThread(err) => write!(f, "cannot start worker thread: {err}"),
            RunError::Signals(err) => write!(f, "cannot install signal handlers: {err}"),
        }
    }
}

impl std::error::Error for RunError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_keep_their_hints_and_labels() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let err = RunError::Bind {
            addr,
            err: nix::Error::EACCES,
        };
        assert_eq!(err.label(), "bind");
        assert!(
            err.to_string()
                .starts_with("cannot listen on 127.0.0.1:80: ")
                && err
                    .to_string()
                    .ends_with("need root or CAP_NET_BIND_SERVICE)"),
            "{err}"
        );
        let err = RunError::MeshKeyFormat {
            path: PathBuf::from("/etc/tinyderp/mesh.key"),
        };
        assert_eq!(err.label(), "mesh_key_format");
        assert!(err.to_string().contains("openssl rand -hex 32"), "{err}");
    }
}
