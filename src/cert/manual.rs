//! Operator-supplied certificates (derper's `manual` mode): file names, PEM parsing, and the
//! checks that the key belongs to the leaf and the leaf covers the hostname. Also used to read
//! back the kept self-signed certificate.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

use super::provider::provider;
use super::{CertError, LoadedCert};

/// derper's manual-mode file names: `<certdir>/<base>.crt` and `<certdir>/<base>.key`, where
/// `<base>` is `hostname` with every character outside `[A-Za-z0-9.-]` removed
/// (so `2001:db8::1` becomes `2001db81`), so an existing derper cert directory works as is.
pub fn manual_paths(certdir: &Path, hostname: &str) -> (PathBuf, PathBuf) {
    let base: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    (
        certdir.join(format!("{base}.crt")),
        certdir.join(format!("{base}.key")),
    )
}

/// Fails unless the leaf of `loaded` is valid for `hostname` (a DNS SAN for a name, an IP SAN
/// for an IP literal), as derper requires of manual certificates at start-up. `cert_path` only
/// names the file in the error.
pub fn check_valid_for(
    loaded: &LoadedCert,
    hostname: &str,
    cert_path: &Path,
) -> Result<(), CertError> {
    let leaf = loaded.chain.first().ok_or_else(|| CertError::NoPemItem {
        path: cert_path.to_path_buf(),
        wanted: "CERTIFICATE",
    })?;
    let name = server_name(hostname)?;
    let parsed = ParsedCertificate::try_from(leaf).map_err(|err| CertError::BadCertificate {
        path: cert_path.to_path_buf(),
        detail: err.to_string(),
    })?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|_| CertError::NameMismatch {
        path: cert_path.to_path_buf(),
        hostname: hostname.to_string(),
    })
}

pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, CertError> {
    ServerName::try_from(name.to_string()).map_err(|_| CertError::InvalidName {
        name: name.to_string(),
    })
}

pub(crate) fn parse_chain(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|err| CertError::BadPem {
            path: path.to_path_buf(),
            detail: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoPemItem {
            path: path.to_path_buf(),
            wanted: "CERTIFICATE",
        });
    }
    Ok(chain)
}

pub(crate) fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|err| match err {
        pem::Error::NoItemsFound => CertError::NoPemItem {
            path: path.to_path_buf(),
            wanted: "private key",
        },
        other => CertError::BadPem {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })
}

/// Checks that the key can sign and belongs to the leaf, naming the files on failure.
pub(crate) fn check_pair(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), CertError> {
    let leaf = chain.first().ok_or_else(|| CertError::NoPemItem {
        path: cert_path.to_path_buf(),
        wanted: "CERTIFICATE",
    })?;
    ParsedCertificate::try_from(leaf).map_err(|err| CertError::BadCertificate {
        path: cert_path.to_path_buf(),
        detail: err.to_string(),
    })?;
    CertifiedKey::from_der(chain.to_vec(), key.clone_key(), &provider())
        .map(|_| ())
        .map_err(|err| match err {
            rustls::Error::InconsistentKeys(_) => CertError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
            other => CertError::UnsupportedKey {
                path: key_path.to_path_buf(),
                detail: other.to_string(),
            },
        })
}
