//! The kept self-signed certificate: which names it must cover, and whether an existing one
//! can be served again (same pin) or must be set aside and replaced.

use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::ServerName;
use rustls::server::ParsedCertificate;

use super::manual::{check_pair, parse_chain, parse_key, server_name};
use super::{pin_of, CertError, LoadedCert};

/// The names a self-signed certificate must cover, validated up front.
pub(crate) fn wanted_names(
    names: &[String],
    ips: &[IpAddr],
) -> Result<Vec<ServerName<'static>>, CertError> {
    let mut wanted = Vec::with_capacity(names.len().saturating_add(ips.len()));
    for name in names {
        wanted.push(server_name(name)?);
    }
    wanted.extend(ips.iter().map(|ip| ServerName::IpAddress((*ip).into())));
    if wanted.is_empty() {
        return Err(CertError::NoNames);
    }
    Ok(wanted)
}

/// Why an existing self-signed certificate cannot be reused.
pub(crate) enum Unusable {
    /// Content problem: set the files aside and generate a new certificate.
    Replace(String),
    /// Access problem (permissions, I/O): stop, changing the pin would not fix it.
    Fail(CertError),
}

/// Decides whether the existing certificate (`cert_bytes`, read from `cert_path`) and key
/// (the result of reading `key_path`: `Ok(None)` when missing) can be served for `wanted`.
pub(crate) fn reuse(
    cert_bytes: &[u8],
    key_read: Result<Option<Vec<u8>>, CertError>,
    cert_path: &Path,
    key_path: &Path,
    wanted: &[ServerName<'static>],
) -> Result<LoadedCert, Unusable> {
    let chain = parse_chain(cert_path, cert_bytes)
        .map_err(|err| Unusable::Replace(format!("it could not be read back ({err})")))?;
    let key_bytes = match key_read {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(Unusable::Replace(format!(
                "its key file {} is missing",
                key_path.display()
            )))
        }
        Err(err @ (CertError::Empty { .. } | CertError::TooLarge { .. })) => {
            return Err(Unusable::Replace(err.to_string()))
        }
        Err(err) => return Err(Unusable::Fail(err)),
    };
    let key = parse_key(key_path, &key_bytes).map_err(|err| Unusable::Replace(err.to_string()))?;
    check_pair(&chain, &key, cert_path, key_path)
        .map_err(|err| Unusable::Replace(err.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| Unusable::Replace("it holds no certificate".to_string()))?;
    let parsed =
        ParsedCertificate::try_from(leaf).map_err(|err| Unusable::Replace(err.to_string()))?;
    for name in wanted {
        if rustls::client::verify_server_name(&parsed, name).is_err() {
            return Err(Unusable::Replace(format!(
                "it does not cover {}",
                name.to_str()
            )));
        }
    }
    let pin = pin_of(leaf);
    Ok(LoadedCert {
        chain,
        key,
        pin,
        generated: false,
        pin_changed: None,
    })
}
