//! Why a certificate could not be loaded, generated or served.

use crate::text::Quoted;
use std::fmt;
use std::io;
use std::path::PathBuf;

use super::MAX_PEM_FILE_LEN;

/// Why a certificate could not be loaded, generated or served. Messages name the file and the
/// fix; none contains key material.
#[derive(Debug)]
pub enum CertError {
    /// A file could not be read or written, or a directory created.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The underlying error.
        err: io::Error,
    },
    /// The file is larger than [`MAX_PEM_FILE_LEN`].
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is empty.
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file has no PEM block of the needed kind.
    NoPemItem {
        /// The file.
        path: PathBuf,
        /// What was looked for ("CERTIFICATE", "private key").
        wanted: &'static str,
    },
    /// The file's PEM is broken.
    BadPem {
        /// The file.
        path: PathBuf,
        /// The parser's description.
        detail: String,
    },
    /// The leaf certificate cannot be parsed as an X.509 end-entity certificate.
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// The parser's description.
        detail: String,
    },
    /// The private key is of a type rustls cannot sign with.
    UnsupportedKey {
        /// The key file.
        path: PathBuf,
        /// The provider's description.
        detail: String,
    },
    /// The private key does not belong to the leaf certificate.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The leaf certificate is not valid for the configured hostname.
    NameMismatch {
        /// The certificate file.
        path: PathBuf,
        /// The hostname it was checked against.
        hostname: String,
    },
    /// A configured name is neither a DNS name nor an IP address.
    InvalidName {
        /// The name.
        name: String,
    },
    /// Self-signed mode was given no name and no IP to certify.
    NoNames,
    /// Generating a key or certificate failed.
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The generator's description.
        detail: String,
    },
    /// Building the TLS configuration or the served key failed.
    Tls {
        /// The library's description.
        detail: String,
    },
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Io { path, action, err } => {
                write!(f, "cannot {action} {}: {err}", path.display())?;
                match err.raw_os_error().map(nix::errno::Errno::from_raw) {
                    Some(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => write!(
                        f,
                        "; run tinyderp as a user allowed to access it, or fix its owner and mode"
                    ),
                    Some(nix::errno::Errno::EROFS) => {
                        write!(f, "; use a certificate directory on a writable filesystem")
                    }
                    Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT) => {
                        write!(f, "; free some space on that filesystem")
                    }
                    _ if err.kind() == io::ErrorKind::NotFound => {
                        write!(f, "; check the path (certdir and hostname decide the name)")
                    }
                    _ => Ok(()),
                }
            }
            CertError::TooLarge { path } => write!(
                f,
                "{} is larger than {MAX_PEM_FILE_LEN} bytes, so it is not a PEM certificate or \
                 key; check the path",
                path.display()
            ),
            CertError::Empty { path } => write!(
                f,
                "{} is empty; it must hold PEM data (-----BEGIN ...-----)",
                path.display()
            ),
            CertError::NoPemItem { path, wanted } => write!(
                f,
                "{} holds no PEM {wanted} block; it must be PEM text (-----BEGIN ...-----), not \
                 DER or another format",
                path.display()
            ),
            CertError::BadPem { path, detail } => {
                write!(f, "{} is not valid PEM: {detail}", path.display())
            }
            CertError::BadCertificate { path, detail } => write!(
                f,
                "the first certificate in {} cannot be used as a server certificate: {detail}",
                path.display()
            ),
            CertError::UnsupportedKey { path, detail } => write!(
                f,
                "the private key in {} cannot be used (RSA, ECDSA P-256/P-384 and Ed25519 are \
                 supported): {detail}",
                path.display()
            ),
            CertError::KeyMismatch { cert, key } => write!(
                f,
                "the private key in {} does not belong to the first certificate in {}; put the \
                 leaf certificate first and use its matching key",
                key.display(),
                cert.display()
            ),
            CertError::NameMismatch { path, hostname } => write!(
                f,
                "the certificate in {} is not valid for {hostname}: it needs a DNS (or IP) \
                 subject alternative name for it; use a certificate issued for that name or \
                 change the hostname",
                path.display()
            ),
            CertError::InvalidName { name } => write!(
                f,
                "{} is neither a valid DNS name nor an IP address, so it cannot go in a \
                 certificate",
                Quoted(name)
            ),
            CertError::NoNames => write!(
                f,
                "a self-signed certificate needs at least one hostname or IP address"
            ),
            CertError::Generate { what, detail } => {
                write!(f, "cannot generate the {what}: {detail}")
            }
            CertError::Tls { detail } => write!(f, "TLS setup failed: {detail}"),
        }
    }
}

impl std::error::Error for CertError {}
