//! TLS certificates and the rustls server configuration.
//!
//! Two certificate sources: a self-signed certificate generated once and kept (the default on a
//! router, pinned by clients through `CertName = "sha256-raw:<hex>"`), or operator-supplied PEM
//! files (`manual`, as derper names them). Every handshake serves the certificate chain plus the
//! DERP "meta certificate" that tells clients the server's DERP key (derp-protocol.md §1.8), and
//! the chain can be swapped at run time (SIGHUP) without touching established connections.

use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    date_time_ymd, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SupportedCipherSuite};

use crate::keyfile::{create_private_dir, read_bounded, write_atomic, KEY_FILE_MODE};
use crate::proto::frame::PROTOCOL_VERSION;
use crate::proto::key::{hex_lower, PublicKey};

/// File name of the generated certificate inside the self-signed directory.
pub const SELF_SIGNED_CERT_FILE: &str = "tinyderp.crt";
/// File name of the generated certificate's private key (PKCS#8 PEM, mode 0600).
pub const SELF_SIGNED_KEY_FILE: &str = "tinyderp.key";
/// Suffix given to a replaced certificate and key, kept so an operator can go back.
pub const OLD_SUFFIX: &str = ".old";
/// Mode of the generated certificate file: public data, readable by anyone (as derper does).
pub const CERT_FILE_MODE: u32 = 0o644;

/// Prefix of a DERP map `CertName` that pins the leaf certificate (derp-protocol.md §6.4).
pub const PIN_PREFIX: &str = "sha256-raw:";
/// Common Name prefix of the meta certificate; the rest is the DERP key in lowercase hex.
pub const META_CERT_CN_PREFIX: &str = "derpkey";

/// Largest PEM file we read. Certificate chains are a few KiB; the bound keeps a wrong path
/// (a log file, a disk image) from being read into a router's small memory.
pub const MAX_PEM_FILE_LEN: u64 = 1 << 20;

/// Entries in the TLS session-resumption cache. Each is a few hundred bytes; DERP clients hold
/// one long connection, so resumption is rare and a small cache is enough. When it is full,
/// rustls evicts the oldest entry (the drop policy; evictions only cost a full handshake).
pub const SESSION_CACHE_ENTRIES: usize = 64;
/// TLS 1.3 session tickets sent after each handshake (rustls default is 2; one is enough and
/// keeps the cache from filling twice as fast).
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 1;

/// The only ALPN protocol offered: `/derp` is an HTTP/1.1 upgrade and cannot run over HTTP/2
/// (derp-protocol.md §1.9). Tailscale clients send no ALPN at all, which is also accepted.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Validity window of every certificate we generate, as (year, month, day) UTC.
///
/// NotBefore is far in the past because a router boots with its clock at the firmware build
/// date (or 1970) until NTP answers, and a client must accept the certificate at any moment.
/// NotAfter is far in the future because the certificate must never be renewed: renewal would
/// change the pin in every client's DERP map. Clients that pin with `sha256-raw:` check only
/// that "now" lies in the window (their own check, not the platform verifier, so the ~1-year
/// limit Apple applies to publicly trusted certificates does not apply). 2099 needs
/// GeneralizedTime encoding, which every X.509 parser in use reads.
pub const VALID_FROM_YMD: (i32, u8, u8) = (2000, 1, 1);
/// See [`VALID_FROM_YMD`].
pub const VALID_UNTIL_YMD: (i32, u8, u8) = (2099, 12, 31);

/// DER of the basic-constraints extension value `SEQUENCE {}` (cA defaults to FALSE and is
/// omitted in DER), exactly what Go writes for `IsCA: false, BasicConstraintsValid: true`.
const BASIC_CONSTRAINTS_NOT_CA: [u8; 2] = [0x30, 0x00];
/// OID 2.5.29.19, basicConstraints.
const OID_BASIC_CONSTRAINTS: [u64; 4] = [2, 5, 29, 19];

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Generate once into `dir` and keep reusing it while it covers `names` and `ips`.
    SelfSigned {
        /// Directory holding `tinyderp.crt` and `tinyderp.key` (created with mode 0700).
        dir: PathBuf,
        /// DNS names (or IP literals) to put in the SANs; the first is also the CN.
        names: Vec<String>,
        /// IP addresses to put in the SANs.
        ips: Vec<IpAddr>,
    },
    /// Operator-supplied PEM files (see [`manual_paths`]).
    Manual {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key: PKCS#1 RSA, SEC1 EC or PKCS#8.
        key: PathBuf,
    },
}

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

/// A certificate chain with its key, ready to serve.
#[derive(Debug)]
pub struct LoadedCert {
    /// Certificate chain, leaf first (without the meta certificate).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// `sha256-raw:` + lowercase hex SHA-256 of the leaf's DER: the DERP map `CertName`.
    pub pin: String,
    /// True when the certificate was generated by this call.
    pub generated: bool,
    /// Set when an existing self-signed certificate was set aside (kept with `.old`) and a new
    /// one generated: the reason, for a log line saying the pin changed and the DERP map needs
    /// the new `CertName`.
    pub pin_changed: Option<String>,
}

impl Clone for LoadedCert {
    fn clone(&self) -> LoadedCert {
        LoadedCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            pin: self.pin.clone(),
            generated: self.generated,
            pin_changed: self.pin_changed.clone(),
        }
    }
}

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
                "{name:?} is neither a valid DNS name nor an IP address, so it cannot go in a \
                 certificate"
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

/// `sha256-raw:` + lowercase hex SHA-256 of `leaf`'s DER encoding (the whole certificate).
pub fn pin_of(leaf: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    format!("{PIN_PREFIX}{}", hex_lower(digest.as_ref()))
}

/// Loads (or, for self-signed, generates) the serving certificate.
pub fn load(source: &CertSource) -> Result<LoadedCert, CertError> {
    match source {
        CertSource::SelfSigned { dir, names, ips } => load_self_signed(dir, names, ips),
        CertSource::Manual { cert, key } => load_manual(cert, key),
    }
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

fn server_name(name: &str) -> Result<ServerName<'static>, CertError> {
    ServerName::try_from(name.to_string()).map_err(|_| CertError::InvalidName {
        name: name.to_string(),
    })
}

fn io_error(path: &Path, action: &'static str, err: io::Error) -> CertError {
    CertError::Io {
        path: path.to_path_buf(),
        action,
        err,
    }
}

fn read_required(path: &Path) -> Result<Vec<u8>, CertError> {
    match read_bounded(path, MAX_PEM_FILE_LEN) {
        Ok(Some(bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => Err(CertError::Empty {
            path: path.to_path_buf(),
        }),
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(CertError::TooLarge {
            path: path.to_path_buf(),
        }),
        Err(err) => Err(io_error(path, "read", err)),
    }
}

/// Reads a PEM file: `Ok(None)` when it does not exist.
fn read_pem_file(path: &Path) -> Result<Option<Vec<u8>>, CertError> {
    match read_required(path) {
        Err(CertError::Io { err, .. }) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

fn parse_chain(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
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

fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
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

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Checks that the key can sign and belongs to the leaf, naming the files on failure.
fn check_pair(
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

fn load_manual(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, CertError> {
    let chain = parse_chain(cert_path, &read_required(cert_path)?)?;
    let key = parse_key(key_path, &read_required(key_path)?)?;
    check_pair(&chain, &key, cert_path, key_path)?;
    let pin = chain.first().map(pin_of).unwrap_or_default();
    Ok(LoadedCert {
        chain,
        key,
        pin,
        generated: false,
        pin_changed: None,
    })
}

/// The names a self-signed certificate must cover, validated up front.
fn wanted_names(names: &[String], ips: &[IpAddr]) -> Result<Vec<ServerName<'static>>, CertError> {
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
enum Unusable {
    /// Content problem: set the files aside and generate a new certificate.
    Replace(String),
    /// Access problem (permissions, I/O): stop, changing the pin would not fix it.
    Fail(CertError),
}

fn load_self_signed(dir: &Path, names: &[String], ips: &[IpAddr]) -> Result<LoadedCert, CertError> {
    let wanted = wanted_names(names, ips)?;
    create_private_dir(dir).map_err(|err| io_error(dir, "create the directory", err))?;
    let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
    let key_path = dir.join(SELF_SIGNED_KEY_FILE);

    // A missing certificate means first start (a lone key file is a leftover of an interrupted
    // first start: the key is written before the certificate, and no pin exists yet).
    let Some(cert_bytes) = read_pem_file(&cert_path).or_else(|err| match err {
        CertError::Empty { .. } => Ok(Some(Vec::new())),
        other => Err(other),
    })?
    else {
        return generate_self_signed(&cert_path, &key_path, names, ips, None);
    };
    match reuse_self_signed(&cert_bytes, &cert_path, &key_path, &wanted) {
        Ok(loaded) => Ok(loaded),
        Err(Unusable::Fail(err)) => Err(err),
        Err(Unusable::Replace(reason)) => {
            set_aside(&cert_path)?;
            set_aside(&key_path)?;
            generate_self_signed(&cert_path, &key_path, names, ips, Some(reason))
        }
    }
}

fn reuse_self_signed(
    cert_bytes: &[u8],
    cert_path: &Path,
    key_path: &Path,
    wanted: &[ServerName<'static>],
) -> Result<LoadedCert, Unusable> {
    let chain = parse_chain(cert_path, cert_bytes)
        .map_err(|err| Unusable::Replace(format!("it could not be read back ({err})")))?;
    let key_bytes = match read_pem_file(key_path) {
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

/// Renames `path` to `path.old` (replacing an older `.old`); a missing file is fine.
fn set_aside(path: &Path) -> Result<(), CertError> {
    let mut old = path.as_os_str().to_owned();
    old.push(OLD_SUFFIX);
    match fs::rename(path, PathBuf::from(old)) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(path, "rename (to keep a copy)", err)),
    }
}

fn generation_error(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |err| CertError::Generate {
        what,
        detail: err.to_string(),
    }
}

fn random_serial() -> Result<SerialNumber, CertError> {
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).map_err(|err| CertError::Generate {
        what: "certificate serial number",
        detail: err.to_string(),
    })?;
    // Positive and 16 bytes long: clear the top bit, make the first byte non-zero.
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    Ok(SerialNumber::from_slice(&serial))
}

fn fixed_validity(params: &mut CertificateParams) {
    let (year, month, day) = VALID_FROM_YMD;
    params.not_before = date_time_ymd(year, month, day);
    let (year, month, day) = VALID_UNTIL_YMD;
    params.not_after = date_time_ymd(year, month, day);
}

/// Parameters of the generated serving certificate (ECDSA P-256 key chosen by the caller).
fn self_signed_params(names: &[String], ips: &[IpAddr]) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    fixed_validity(&mut params);
    params.serial_number = Some(random_serial()?);
    let mut sans = Vec::with_capacity(names.len().saturating_add(ips.len()));
    for name in names {
        sans.push(match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|_| CertError::InvalidName { name: name.clone() })?,
            ),
        });
    }
    sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.subject_alt_names = sans;
    let common_name = names
        .first()
        .cloned()
        .or_else(|| ips.first().map(IpAddr::to_string))
        .ok_or(CertError::NoNames)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn generate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
    ips: &[IpAddr],
    pin_changed: Option<String>,
) -> Result<LoadedCert, CertError> {
    let params = self_signed_params(names, ips)?;
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(generation_error("ECDSA P-256 key"))?;
    let cert = params
        .self_signed(&key_pair)
        .map_err(generation_error("self-signed certificate"))?;
    // Key first: if power fails between the two writes, the next start finds no certificate
    // and generates again instead of pairing a new certificate with a stale key.
    write_atomic(key_path, key_pair.serialize_pem().as_bytes(), KEY_FILE_MODE)
        .map_err(|err| io_error(key_path, "write", err))?;
    write_atomic(cert_path, cert.pem().as_bytes(), CERT_FILE_MODE)
        .map_err(|err| io_error(cert_path, "write", err))?;
    let leaf = cert.der().clone();
    let pin = pin_of(&leaf);
    Ok(LoadedCert {
        chain: vec![leaf],
        key: PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
        pin,
        generated: true,
        pin_changed,
    })
}

/// The DERP meta certificate for `server_key` (derp-protocol.md §1.8): a fresh Ed25519 key,
/// self-signed, serial = protocol version 2, subject only `CN=derpkey<64 hex>`, and exactly one
/// extension, critical basic constraints with CA=false.
///
/// Upstream uses start time ± 30 days. A router may start with no idea of the date, so the
/// window is the same fixed wide one as the serving certificate; clients never check the meta
/// certificate's dates, but some platforms want them present and sane.
pub fn meta_cert(server_key: &PublicKey) -> Result<CertificateDer<'static>, CertError> {
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(generation_error("meta certificate Ed25519 key"))?;
    let mut params = CertificateParams::default();
    fixed_validity(&mut params);
    let serial = u8::try_from(PROTOCOL_VERSION).unwrap_or(2);
    params.serial_number = Some(SerialNumber::from_slice(&[serial]));
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::CommonName,
        format!("{META_CERT_CN_PREFIX}{}", server_key.to_hex()),
    );
    params.distinguished_name = subject;
    params.is_ca = IsCa::NoCa;
    let mut basic_constraints = CustomExtension::from_oid_content(
        &OID_BASIC_CONSTRAINTS,
        BASIC_CONSTRAINTS_NOT_CA.to_vec(),
    );
    basic_constraints.set_criticality(true);
    params.custom_extensions = vec![basic_constraints];
    let cert = params
        .self_signed(&key_pair)
        .map_err(generation_error("meta certificate"))?;
    Ok(cert.der().clone())
}

/// What one handshake is served: the ready-to-sign key with chain (+ meta), and its pin.
#[derive(Debug)]
struct Serving {
    certified: Arc<CertifiedKey>,
    pin: String,
    leaf: CertificateDer<'static>,
}

/// Serves the current certificate to every handshake, whatever the SNI (or none): a DERP
/// server on a router is reached by DDNS name, by IP, or by a name only the DERP map knows.
/// `replace` swaps the certificate for later handshakes; a handshake that already picked its
/// certificate, and every established connection, keep the one they had.
#[derive(Debug)]
pub struct CertResolver {
    meta: Option<CertificateDer<'static>>,
    current: RwLock<Arc<Serving>>,
}

impl CertResolver {
    /// Builds a resolver serving `loaded`, with `meta` appended last to the chain when given
    /// (pass `None` to disable the meta certificate).
    pub fn new(
        loaded: LoadedCert,
        meta: Option<CertificateDer<'static>>,
    ) -> Result<Arc<CertResolver>, CertError> {
        let serving = serving(&loaded, meta.as_ref())?;
        Ok(Arc::new(CertResolver {
            meta,
            current: RwLock::new(Arc::new(serving)),
        }))
    }

    /// Serves `loaded` from the next handshake on (SIGHUP reload). On error the old certificate
    /// stays in place.
    pub fn replace(&self, loaded: LoadedCert) -> Result<(), CertError> {
        let serving = Arc::new(serving(&loaded, self.meta.as_ref())?);
        // A poisoned lock only means a panic elsewhere while holding it; the value is a plain
        // Arc swap, never half-written, so keep going.
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = serving;
        Ok(())
    }

    fn serving(&self) -> Arc<Serving> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The current `sha256-raw:` pin (the DERP map `CertName`).
    pub fn pin(&self) -> String {
        self.serving().pin.clone()
    }

    /// The current leaf certificate.
    pub fn leaf_der(&self) -> CertificateDer<'static> {
        self.serving().leaf.clone()
    }
}

fn serving(
    loaded: &LoadedCert,
    meta: Option<&CertificateDer<'static>>,
) -> Result<Serving, CertError> {
    let leaf = loaded
        .chain
        .first()
        .cloned()
        .ok_or_else(|| CertError::Tls {
            detail: "the certificate chain is empty".to_string(),
        })?;
    let mut chain = loaded.chain.clone();
    chain.extend(meta.cloned());
    let certified =
        CertifiedKey::from_der(chain, loaded.key.clone_key(), &provider()).map_err(|err| {
            CertError::Tls {
                detail: format!("the certificate and key cannot be served: {err}"),
            }
        })?;
    Ok(Serving {
        certified: Arc::new(certified),
        pin: pin_of(&leaf),
        leaf,
    })
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.serving().certified.clone())
    }
}

/// True when the CPU has AES instructions that make AES-GCM faster than ChaCha20-Poly1305
/// (on x86 GCM also needs carry-less multiply, which ring uses alongside AES-NI; Rust's
/// aarch64 `aes` feature already includes PMULL). MIPS and 32-bit ARM routers have neither.
pub fn cpu_has_aes() -> bool {
    cpu_has_aes_impl()
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn cpu_has_aes_impl() -> bool {
    std::is_x86_feature_detected!("aes") && std::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn cpu_has_aes_impl() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn cpu_has_aes_impl() -> bool {
    false
}

fn is_chacha(suite: &SupportedCipherSuite) -> bool {
    matches!(
        suite.suite(),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// The server's cipher suites in preference order: AES-GCM first when `prefer_aes`, else
/// ChaCha20-Poly1305 first (several times faster in software on MIPS/ARM routers). With
/// `ignore_client_order` the server's first suite the client also offers wins.
pub fn cipher_suites(prefer_aes: bool) -> Vec<SupportedCipherSuite> {
    let all = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    let (chacha, mut others): (Vec<_>, Vec<_>) = all.iter().copied().partition(is_chacha);
    // AES-128-GCM before AES-256-GCM, as Go orders them: fewer rounds, about 5 % fewer
    // instructions per relayed byte (measured with bench/), and the same security margin
    // for a relay whose payloads are end-to-end encrypted by WireGuard anyway.
    others.sort_by_key(|suite| format!("{:?}", suite.suite()).contains("AES_256"));
    if prefer_aes {
        others.into_iter().chain(chacha).collect()
    } else {
        chacha.into_iter().chain(others).collect()
    }
}

/// The TLS versions served: 1.3 only, unless the `tls12` feature adds 1.2 for old clients.
#[cfg(not(feature = "tls12"))]
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
/// The TLS versions served: 1.3 only, unless the `tls12` feature adds 1.2 for old clients.
#[cfg(feature = "tls12")]
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The rustls server configuration for DERP, cipher order chosen by [`cpu_has_aes`].
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, CertError> {
    server_config_with_order(resolver, cpu_has_aes())
}

/// [`server_config`] with the cipher order given explicitly (tests, or an operator override).
pub fn server_config_with_order(
    resolver: Arc<CertResolver>,
    prefer_aes: bool,
) -> Result<Arc<ServerConfig>, CertError> {
    let mut provider = provider();
    provider.cipher_suites = cipher_suites(prefer_aes);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|err| CertError::Tls {
            detail: err.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config.ignore_client_order = true;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::tests::TempDir;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::UnixTime;
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConnection};
    use std::net::Ipv4Addr;
    use std::os::unix::fs::MetadataExt;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::oid_registry;

    // Fixtures made once with the openssl CLI: an RSA-2048 certificate for derp.example.com with
    // its PKCS#1 key, and a P-256 certificate for the IP 192.0.2.7 with its SEC1 key.
    const RSA_CERT: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDNjCCAh6gAwIBAgIUSjufu9NXJcCYmnOViaKByC2vBiowDQYJKoZIhvcNAQEL\n\
BQAwGzEZMBcGA1UEAwwQZGVycC5leGFtcGxlLmNvbTAgFw0yNjExMjIxMDIzMzla\n\
GA8yMTI2MTAyOTEwMjMzOVowGzEZMBcGA1UEAwwQZGVycC5leGFtcGxlLmNvbTCC\n\
ASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAMowDY+FCzpfdA2SV/TPyMsM\n\
ciwJNO9FsJysRJV7zcfgvfMuZ3H0rqG/qp6to16IRxe+9f3cDRM/sXmmHqIlLagT\n\
5+r1T675YED3mGP5eT9GtrRcGzgu27XnkDbig0LkmccdxIfOH30SyhpWSjH7S3xn\n\
2Ko4FGKZ3iLuyQLMRtWAqsGCx6flU37Wdz+5sU3Nu7OIOjpg6yeGkWkUD/da6m48\n\
+qjIa/w7bOXglnZUaInQXRUYAIsRA+cRW/lThJ1kRasGV7A8wUHOix7198JYkBKT\n\
bRyh71ho6y0XQCWk7nRpL6glt0RREnPkEgRTZvwP7h5uTZhjb9u4GPPoUDVd/cEC\n\
AwEAAaNwMG4wHQYDVR0OBBYEFGjb1bHSqRaAfAUMMYwSLZxOgROIMB8GA1UdIwQY\n\
MBaAFGjb1bHSqRaAfAUMMYwSLZxOgROIMA8GA1UdEwEB/wQFMAMBAf8wGwYDVR0R\n\
BBQwEoIQZGVycC5leGFtcGxlLmNvbTANBgkqhkiG9w0BAQsFAAOCAQEAj/wKNpw7\n\
8YbNrjVkJjQcgE7faP6IRPU+cxk6KxhK07mNvl/MA2h1hv3ehwqr1XHWpdXsshm5\n\
T9LTHfc7HWbFC+QsHUmhtSOkcgCZsztAgE1qny9GuzSZwD20wIVSM+5rDe9Y0y+Y\n\
ST/vZKK3udn5mYqdPLOdtR468wSnvVhT1HfA2P7Foe6RDuurxIO/CDAbVl+ugNQA\n\
RNOs+h7yZN0zHsWpsVO/VCnPkYp81UvtUMDZa/f9g+aORPfszKlGVsN7lFF/+8t6\n\
vRyR4xEBR4XjWlG9Tu56+8goaqLvndqwM7Z7vD3LxIJoqF4V1NyHUj8XdvORoZqr\n\
0lqjNRmIrtehDg==\n\
-----END CERTIFICATE-----\n\
";
    const RSA_PKCS1_KEY: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEpAIBAAKCAQEAyjANj4ULOl90DZJX9M/IywxyLAk070WwnKxElXvNx+C98y5n\n\
cfSuob+qnq2jXohHF771/dwNEz+xeaYeoiUtqBPn6vVPrvlgQPeYY/l5P0a2tFwb\n\
OC7bteeQNuKDQuSZxx3Eh84ffRLKGlZKMftLfGfYqjgUYpneIu7JAsxG1YCqwYLH\n\
p+VTftZ3P7mxTc27s4g6OmDrJ4aRaRQP91rqbjz6qMhr/Dts5eCWdlRoidBdFRgA\n\
ixED5xFb+VOEnWRFqwZXsDzBQc6LHvX3wliQEpNtHKHvWGjrLRdAJaTudGkvqCW3\n\
RFESc+QSBFNm/A/uHm5NmGNv27gY8+hQNV39wQIDAQABAoIBAAK4QpfFj3kFoNsa\n\
4XCDXV0v3xb3uRImkuw0nAfnvlpRNrTp+6MVNRvWEck90YwGE3C+v/KI2Ssts5Pi\n\
Qm4Qx8xc7Np6BMxNgfg1wcNx2b9FEqmamz92T+cimjZxdcMQA1U3RwttoCT6UaTT\n\
jX7JIC2S/F+OeWW50fq7JryRJhBypcFKGI7lACpctRgG6WV7Yn78B9XLHAu9l5Op\n\
kYHj/6gkSmFEmKQfGzGE+GeV4tPmDfm2j07aZ/1monz2cIi+3jafVb74odFcKYrY\n\
CEqarvZO8mDIuhH0Wew4nAXwGJW1A4BpG4zYh/j/7EB5AkarJuGlFAwldXMyav5G\n\
WtYYaXECgYEA8/haryt4W0jwLpQBfhkehAJtHki7dJ/4vLdoBhp/JSZFKGoSnV1D\n\
JB+3SBU7cX+93ZJ8YYIAbpI1TmewQqR4qfFcfIjguSlThoE+FuBBSkoEqSI+pRYQ\n\
cigVlowony9InPKgSD8FcVgFltU9EIHS2bIpUOjv2ns+9CJ+oLcRHlkCgYEA1ChG\n\
/lRumQDqrTi/v4SB7HJyfsyQxW/riJZVYaTcSgs4ThPu95MpXW15KQxjvZTEGyb7\n\
DjTHQgW3nhSfgf9J8o26fqY4pDqnt6+gwOBz4vtURWY2OcaEvnMHi2K2jL50v7FN\n\
mBNU1EfSBLApNpq8AzpoQvdeZ9ym33TZCmxL/akCgYBuGrKKhbrOr889piw6RYnh\n\
F9s5JKf9DUlLmhZHUuP41xm1EJIQFQv9HJcx3+sw4O7GNZsOwoYBYNjP5rnEicev\n\
Iq+TwI5y4jTA6kkkN9cfeOI7lqnhBWEss+xyQhT/Km7B7jnqAQ8qxQfYt6nUblLD\n\
TsWYr1e4KZESyxKM47HFGQKBgQDRzcr3NDPzJw7sopQtJzL8yukjL9VzCo0YE+L3\n\
nvsiVhomTFwjhOqBNAN/bnssPfP5DgF0OQlb5x+AOtDK09UjArmNCYA2GLNHWW1V\n\
kCHKM9VQlBXH6OPZGxQ46TOx157I+uPLIkLfcu7kJ/l5wGdxoc79endnqrNzg7An\n\
OJWlkQKBgQCoezWFGoSNLT6aJZolCxgtgh27/AbLl6mxjEQ1sii40P5qhgYLr55V\n\
KTrfIYlkNtKotmh7X/DSmWN/kUtAqQaS/A3ZtIg8yGvt9JBJP6L/BMrW4Ap7sP+d\n\
RUhd7R8kReyKm4ma3xkSHxgtliR2Ml/mj+EVq2c5SGbcfIC67VEAuA==\n\
-----END RSA PRIVATE KEY-----\n\
";
    const EC_CERT: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBkDCCATagAwIBAgIUTsvABErIxbfY1sq3ZSnLbe6KqJEwCgYIKoZIzj0EAwIw\n\
FDESMBAGA1UEAwwJMTkyLjAuMi43MCAXDTI2MTEyMjEwMjMzOVoYDzIxMjYxMDI5\n\
MTAyMzM5WjAUMRIwEAYDVQQDDAkxOTIuMC4yLjcwWTATBgcqhkjOPQIBBggqhkjO\n\
PQMBBwNCAATAGRgh/3L4tdO3XKMikaOMDTBY5YNRFO2EQp+NFVS6yZUbe3diWxzP\n\
Nm+cimDJsCxCHGtF9gqCzb3QgYkSBrXlo2QwYjAdBgNVHQ4EFgQUnLA90G6YQa1w\n\
NX0fTyZPA5KPai8wHwYDVR0jBBgwFoAUnLA90G6YQa1wNX0fTyZPA5KPai8wDwYD\n\
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwTAAAIHMAoGCCqGSM49BAMCA0gAMEUC\n\
IQDUEMfFKLmNsqLgBrTowIeFP9wqjTdaHyNpBWDDLCluAAIgUlRsxIYXfh+lLDkX\n\
XxxrLJpvOhP1lSeSyMkTeSDX3GY=\n\
-----END CERTIFICATE-----\n\
";
    const EC_SEC1_KEY: &str = "\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEINLiFtOQHrmG8ckXieS4FZV/0CyzuLL8R5KBYrlv0688oAoGCCqGSM49\n\
AwEHoUQDQgAEwBkYIf9y+LXTt1yjIpGjjA0wWOWDURTthEKfjRVUusmVG3t3Ylsc\n\
zzZvnIpgybAsQhxrRfYKgs290IGJEga15Q==\n\
-----END EC PRIVATE KEY-----\n\
";

    const HOST: &str = "derp.example.net";

    fn self_signed(dir: &Path, names: &[&str], ips: &[IpAddr]) -> CertSource {
        CertSource::SelfSigned {
            dir: dir.to_path_buf(),
            names: names.iter().map(|name| name.to_string()).collect(),
            ips: ips.to_vec(),
        }
    }

    fn localhost_v4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    fn parse<'a>(der: &'a CertificateDer<'_>) -> x509_parser::certificate::X509Certificate<'a> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert!(rest.is_empty());
        cert
    }

    fn test_key() -> PublicKey {
        PublicKey(core::array::from_fn(|i| u8::try_from(i).unwrap() * 7))
    }

    #[test]
    fn pin_is_sha256_raw_of_the_der() {
        // FIPS 180-2 test vector: SHA-256("abc").
        let pin = pin_of(&CertificateDer::from(b"abc".to_vec()));
        assert_eq!(
            pin,
            "sha256-raw:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn manual_paths_follow_derper_sanitising() {
        let table = [
            ("derp.example.com", "derp.example.com"),
            ("2001:db8::1", "2001db81"),
            ("203.0.113.10", "203.0.113.10"),
            ("my_host name/../x", "myhostname..x"),
            ("Café-1.example", "Caf-1.example"),
        ];
        for (hostname, base) in table {
            let (cert, key) = manual_paths(Path::new("/etc/tinyderp/certs"), hostname);
            assert_eq!(
                cert,
                PathBuf::from(format!("/etc/tinyderp/certs/{base}.crt"))
            );
            assert_eq!(
                key,
                PathBuf::from(format!("/etc/tinyderp/certs/{base}.key"))
            );
        }
    }

    #[test]
    fn self_signed_is_generated_once_and_reused_with_the_same_pin() {
        let tmp = TempDir::new("cert-gen");
        let dir = tmp.0.join("state");
        let source = self_signed(&dir, &[HOST], &[localhost_v4()]);
        let first = load(&source).unwrap();
        assert!(first.generated);
        assert_eq!(first.pin_changed, None);
        assert_eq!(first.chain.len(), 1);
        assert_eq!(first.pin, pin_of(&first.chain[0]));
        let hex = first.pin.strip_prefix("sha256-raw:").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));

        let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
        let key_path = dir.join(SELF_SIGNED_KEY_FILE);
        assert_eq!(fs::metadata(&key_path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&cert_path).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o077, 0);
        let key_pem = fs::read_to_string(&key_path).unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let cert_pem = fs::read(&cert_path).unwrap();

        let second = load(&source).unwrap();
        assert!(!second.generated);
        assert_eq!(second.pin, first.pin);
        assert_eq!(second.chain, first.chain);
        assert_eq!(second.key.secret_der(), first.key.secret_der());
        assert_eq!(fs::read(&cert_path).unwrap(), cert_pem, "files untouched");

        // Fewer names than the certificate covers still reuse it.
        let fewer = load(&self_signed(&dir, &[HOST], &[])).unwrap();
        assert_eq!(fewer.pin, first.pin);
        assert!(!fewer.generated);
    }

    #[test]
    fn self_signed_certificate_fields() {
        let tmp = TempDir::new("cert-fields");
        let ip6: IpAddr = "2001:db8::7".parse().unwrap();
        let source = self_signed(&tmp.0, &[HOST, "203.0.113.9"], &[localhost_v4(), ip6]);
        let loaded = load(&source).unwrap();
        let cert = parse(&loaded.chain[0]);

        let cns: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap())
            .collect();
        assert_eq!(cns, vec![HOST]);
        assert_eq!(cert.subject(), cert.issuer());
        assert_eq!(cert.validity().not_before.timestamp(), 946_684_800); // 2000-01-01
        assert_eq!(cert.validity().not_after.timestamp(), 4_102_358_400); // 2099-12-31
        assert_eq!(cert.raw_serial().len(), 16);
        assert!(cert.raw_serial()[0] & 0x80 == 0);

        let spki = cert.public_key();
        assert_eq!(
            spki.algorithm.algorithm,
            oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap();
        assert_eq!(curve, oid_registry::OID_EC_P256);

        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in &sans.value.general_names {
            match name {
                GeneralName::DNSName(name) => dns.push(name.to_string()),
                GeneralName::IPAddress(bytes) => ips.push(bytes.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        assert_eq!(dns, vec![HOST.to_string()]);
        assert_eq!(
            ips,
            vec![vec![203, 0, 113, 9], vec![127, 0, 0, 1], {
                let IpAddr::V6(v6) = ip6 else { unreachable!() };
                v6.octets().to_vec()
            }]
        );

        let key_usage = cert.key_usage().unwrap().unwrap();
        assert!(key_usage.critical);
        assert!(key_usage.value.digital_signature());
        assert!(!key_usage.value.key_cert_sign());
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth);
        assert!(!eku.value.client_auth);
        let constraints = cert.basic_constraints().unwrap().unwrap();
        assert!(!constraints.value.ca);
    }

    #[test]
    fn self_signed_is_replaced_when_names_change_and_the_old_one_kept() {
        let tmp = TempDir::new("cert-names");
        let first = load(&self_signed(&tmp.0, &[HOST], &[])).unwrap();
        let old_pem = fs::read(tmp.0.join(SELF_SIGNED_CERT_FILE)).unwrap();
        let old_key = fs::read(tmp.0.join(SELF_SIGNED_KEY_FILE)).unwrap();

        let second = load(&self_signed(&tmp.0, &[HOST, "new.example.net"], &[])).unwrap();
        assert!(second.generated);
        assert_ne!(second.pin, first.pin);
        let reason = second.pin_changed.clone().unwrap();
        assert!(
            reason.contains("does not cover new.example.net"),
            "{reason}"
        );
        assert_eq!(fs::read(tmp.0.join("tinyderp.crt.old")).unwrap(), old_pem);
        assert_eq!(fs::read(tmp.0.join("tinyderp.key.old")).unwrap(), old_key);

        let third = load(&self_signed(&tmp.0, &[HOST], &[localhost_v4()])).unwrap();
        assert!(third.generated);
        assert!(third
            .pin_changed
            .unwrap()
            .contains("does not cover 127.0.0.1"));

        let stable = load(&self_signed(&tmp.0, &[HOST], &[localhost_v4()])).unwrap();
        assert_eq!(stable.pin, third.pin);
        assert_eq!(stable.pin_changed, None);
    }

    #[test]
    fn self_signed_with_a_lost_or_foreign_key_is_replaced() {
        let tmp = TempDir::new("cert-lostkey");
        let source = self_signed(&tmp.0, &[HOST], &[]);
        let first = load(&source).unwrap();
        let key_path = tmp.0.join(SELF_SIGNED_KEY_FILE);

        fs::remove_file(&key_path).unwrap();
        let second = load(&source).unwrap();
        assert!(second.generated);
        assert!(second.pin_changed.unwrap().contains("is missing"));
        assert_ne!(second.pin, first.pin);

        // A key that belongs to another certificate.
        fs::write(&key_path, EC_SEC1_KEY).unwrap();
        let third = load(&source).unwrap();
        assert!(third.generated);
        assert!(third.pin_changed.unwrap().contains("does not belong"));

        // A garbled certificate file.
        fs::write(tmp.0.join(SELF_SIGNED_CERT_FILE), b"garbage").unwrap();
        let fourth = load(&source).unwrap();
        assert!(fourth.generated);
        assert!(fourth
            .pin_changed
            .unwrap()
            .contains("could not be read back"));

        // Only a leftover key (cert never written): plain first start, no pin change.
        fs::remove_file(tmp.0.join(SELF_SIGNED_CERT_FILE)).unwrap();
        let fifth = load(&source).unwrap();
        assert!(fifth.generated);
        assert_eq!(fifth.pin_changed, None);
    }

    #[test]
    fn self_signed_refuses_bad_names() {
        let tmp = TempDir::new("cert-badname");
        let err = load(&self_signed(&tmp.0, &[], &[])).unwrap_err();
        assert!(matches!(err, CertError::NoNames));
        let err = load(&self_signed(&tmp.0, &["not a name"], &[])).unwrap_err();
        assert!(
            err.to_string().contains("\"not a name\" is neither"),
            "{err}"
        );
        // Only an IP: the CN is the IP.
        let loaded = load(&self_signed(&tmp.0, &[], &[localhost_v4()])).unwrap();
        let cert = parse(&loaded.chain[0]);
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "127.0.0.1");
    }

    #[test]
    fn self_signed_dir_problems_are_errors_not_new_pins() {
        let tmp = TempDir::new("cert-dir");
        let blocker = tmp.0.join("state");
        fs::write(&blocker, b"a file where the directory should be").unwrap();
        let err = load(&self_signed(&blocker, &[HOST], &[])).unwrap_err();
        assert!(matches!(err, CertError::Io { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot create the directory {}",
                blocker.display()
            )),
            "{text}"
        );

        // An unreadable key (here: a directory in its place) stops start-up instead of
        // silently replacing the certificate.
        let dir = tmp.0.join("ok");
        let first = load(&self_signed(&dir, &[HOST], &[])).unwrap();
        let key_path = dir.join(SELF_SIGNED_KEY_FILE);
        fs::remove_file(&key_path).unwrap();
        fs::create_dir(&key_path).unwrap();
        let err = load(&self_signed(&dir, &[HOST], &[])).unwrap_err();
        assert!(
            err.to_string().contains(&key_path.display().to_string()),
            "{err}"
        );
        assert_eq!(
            pin_of(
                &parse_chain(&dir, &fs::read(dir.join(SELF_SIGNED_CERT_FILE)).unwrap()).unwrap()[0]
            ),
            first.pin,
            "certificate left in place"
        );
    }

    #[test]
    fn meta_cert_matches_upstream_layout() {
        let key = test_key();
        let der = meta_cert(&key).unwrap();
        let cert = parse(&der);
        assert_eq!(cert.raw_serial(), &[2]);
        assert_eq!(cert.subject(), cert.issuer());
        let attributes: Vec<_> = cert.subject().iter_attributes().collect();
        assert_eq!(attributes.len(), 1);
        assert_eq!(
            attributes[0].attr_type(),
            &oid_registry::OID_X509_COMMON_NAME
        );
        assert_eq!(
            attributes[0].as_str().unwrap(),
            format!("derpkey{}", key.to_hex())
        );
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            oid_registry::OID_SIG_ED25519
        );
        assert_eq!(
            cert.signature_algorithm.algorithm,
            oid_registry::OID_SIG_ED25519
        );
        let extensions = cert.extensions();
        assert_eq!(extensions.len(), 1);
        assert_eq!(
            extensions[0].oid,
            oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS
        );
        assert!(extensions[0].critical);
        assert_eq!(extensions[0].value, &[0x30, 0x00]);
        let ParsedExtension::BasicConstraints(constraints) = extensions[0].parsed_extension()
        else {
            panic!("not basic constraints")
        };
        assert!(!constraints.ca);
        assert!(cert.validity().not_before.timestamp() < 946_684_801);
        assert!(cert.validity().not_after.timestamp() > 4_000_000_000);
        // A fresh key each time, as upstream does.
        assert_ne!(meta_cert(&key).unwrap(), der);
    }

    fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (cert_path, key_path) = manual_paths(dir, HOST);
        fs::write(&cert_path, cert).unwrap();
        fs::write(&key_path, key).unwrap();
        (cert_path, key_path)
    }

    fn manual(paths: &(PathBuf, PathBuf)) -> Result<LoadedCert, CertError> {
        load(&CertSource::Manual {
            cert: paths.0.clone(),
            key: paths.1.clone(),
        })
    }

    #[test]
    fn manual_mode_loads_pkcs1_sec1_and_pkcs8_keys() {
        let tmp = TempDir::new("cert-manual");
        let rsa = write_pair(&tmp.0, RSA_CERT, RSA_PKCS1_KEY);
        let loaded = manual(&rsa).unwrap();
        assert!(!loaded.generated);
        assert_eq!(loaded.chain.len(), 1);
        assert_eq!(loaded.pin, pin_of(&loaded.chain[0]));
        assert!(matches!(loaded.key, PrivateKeyDer::Pkcs1(_)));
        check_valid_for(&loaded, "derp.example.com", &rsa.0).unwrap();
        check_valid_for(&loaded, "DERP.example.com", &rsa.0).unwrap();
        let err = check_valid_for(&loaded, "other.example.com", &rsa.0).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not valid for other.example.com"),
            "{err}"
        );
        assert!(err.to_string().contains(&rsa.0.display().to_string()));

        let ec = write_pair(&tmp.0, EC_CERT, EC_SEC1_KEY);
        let loaded = manual(&ec).unwrap();
        assert!(matches!(loaded.key, PrivateKeyDer::Sec1(_)));
        check_valid_for(&loaded, "192.0.2.7", &ec.0).unwrap();
        assert!(check_valid_for(&loaded, "192.0.2.8", &ec.0).is_err());

        // PKCS#8 with an intermediate after the leaf: the chain keeps its order.
        let generated = load(&self_signed(&tmp.0.join("gen"), &[HOST], &[])).unwrap();
        let leaf_pem = fs::read_to_string(tmp.0.join("gen").join(SELF_SIGNED_CERT_FILE)).unwrap();
        let key_pem = fs::read_to_string(tmp.0.join("gen").join(SELF_SIGNED_KEY_FILE)).unwrap();
        let with_intermediate = write_pair(&tmp.0, &format!("{leaf_pem}{EC_CERT}"), &key_pem);
        let loaded = manual(&with_intermediate).unwrap();
        assert!(matches!(loaded.key, PrivateKeyDer::Pkcs8(_)));
        assert_eq!(loaded.chain.len(), 2);
        assert_eq!(loaded.chain[0], generated.chain[0]);
        assert_eq!(loaded.pin, generated.pin);
    }

    fn manual_error(tmp: &TempDir, cert: Option<&str>, key: Option<&str>) -> (CertError, String) {
        let paths = manual_paths(&tmp.0, HOST);
        let _ = fs::remove_file(&paths.0);
        let _ = fs::remove_file(&paths.1);
        if let Some(cert) = cert {
            fs::write(&paths.0, cert).unwrap();
        }
        if let Some(key) = key {
            fs::write(&paths.1, key).unwrap();
        }
        let err = manual(&paths).unwrap_err();
        let text = err.to_string();
        (err, text)
    }

    #[test]
    fn manual_mode_errors_name_the_file_and_the_problem() {
        let tmp = TempDir::new("cert-errors");
        let (cert_path, key_path) = manual_paths(&tmp.0, HOST);
        let cert_name = cert_path.display().to_string();
        let key_name = key_path.display().to_string();

        let (err, text) = manual_error(&tmp, None, Some(RSA_PKCS1_KEY));
        assert!(matches!(err, CertError::Io { .. }));
        assert!(
            text.starts_with(&format!("cannot read {cert_name}")),
            "{text}"
        );
        assert!(text.contains("check the path"), "{text}");

        let (_, text) = manual_error(&tmp, Some(RSA_CERT), None);
        assert!(
            text.starts_with(&format!("cannot read {key_name}")),
            "{text}"
        );

        let (err, text) = manual_error(&tmp, Some(" \n"), Some(RSA_PKCS1_KEY));
        assert!(matches!(err, CertError::Empty { .. }));
        assert!(
            text.contains(&cert_name) && text.contains("is empty"),
            "{text}"
        );

        let (err, text) = manual_error(&tmp, Some("hello, not pem"), Some(RSA_PKCS1_KEY));
        assert!(matches!(err, CertError::NoPemItem { .. }));
        assert!(
            text.contains(&cert_name) && text.contains("no PEM CERTIFICATE"),
            "{text}"
        );

        let truncated = &RSA_CERT[..RSA_CERT.len() - 30];
        let (err, text) = manual_error(&tmp, Some(truncated), Some(RSA_PKCS1_KEY));
        assert!(matches!(err, CertError::BadPem { .. }), "{err:?}");
        assert!(
            text.contains(&cert_name) && text.contains("not valid PEM"),
            "{text}"
        );

        let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let (err, text) = manual_error(&tmp, Some(not_x509), Some(RSA_PKCS1_KEY));
        assert!(matches!(err, CertError::BadCertificate { .. }), "{err:?}");
        assert!(text.contains(&cert_name), "{text}");

        let (err, text) = manual_error(&tmp, Some(RSA_CERT), Some(RSA_CERT));
        assert!(matches!(err, CertError::NoPemItem { .. }));
        assert!(
            text.contains(&key_name) && text.contains("no PEM private key"),
            "{text}"
        );

        let (err, text) = manual_error(&tmp, Some(RSA_CERT), Some(EC_SEC1_KEY));
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
        assert!(
            text.contains(&key_name) && text.contains(&cert_name),
            "{text}"
        );
        assert!(text.contains("does not belong"), "{text}");

        let bad_key = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";
        let (err, text) = manual_error(&tmp, Some(RSA_CERT), Some(bad_key));
        assert!(matches!(err, CertError::UnsupportedKey { .. }), "{err:?}");
        assert!(text.contains(&key_name), "{text}");
        assert!(
            !text.contains("aGVsbG8"),
            "no key material in messages: {text}"
        );

        let dir_as_cert = tmp.0.join("a-dir.crt");
        fs::create_dir(&dir_as_cert).unwrap();
        let err = manual(&(dir_as_cert.clone(), key_path.clone())).unwrap_err();
        assert!(err.to_string().contains(&dir_as_cert.display().to_string()));
    }

    /// Accepts any certificate (the tests look at what was presented), but checks signatures.
    #[derive(Debug)]
    struct AcceptAnyCert(CryptoProvider);

    impl ServerCertVerifier for AcceptAnyCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn client_config(
        suites: Option<Vec<SupportedCipherSuite>>,
        alpn: &[&[u8]],
    ) -> Arc<ClientConfig> {
        let mut provider = provider();
        if let Some(suites) = suites {
            provider.cipher_suites = suites;
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(super::provider())))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Moves bytes between the two ends until neither has anything to send.
    fn pump(client: &mut ClientConnection, server: &mut ServerConnection) {
        for _ in 0..16 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            let mut reader = wire.as_slice();
            while !reader.is_empty() {
                server.read_tls(&mut reader).unwrap();
                server.process_new_packets().unwrap();
            }
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            if wire.is_empty() && !client.is_handshaking() && !server.is_handshaking() {
                return;
            }
            let mut reader = wire.as_slice();
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
                client.process_new_packets().unwrap();
            }
        }
        panic!("handshake did not finish");
    }

    fn connect(
        server_config: &Arc<ServerConfig>,
        client_config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> (ClientConnection, ServerConnection) {
        let mut client = ClientConnection::new(client_config, name).unwrap();
        let mut server = ServerConnection::new(server_config.clone()).unwrap();
        pump(&mut client, &mut server);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        (client, server)
    }

    fn presented(client: &ClientConnection) -> Vec<CertificateDer<'static>> {
        client.peer_certificates().unwrap().to_vec()
    }

    fn generated(tag: &str, names: &[&str]) -> (TempDir, LoadedCert) {
        let tmp = TempDir::new(tag);
        let loaded = load(&self_signed(&tmp.0, names, &[localhost_v4()])).unwrap();
        (tmp, loaded)
    }

    #[test]
    fn handshake_with_and_without_sni_serves_leaf_then_meta() {
        let (_tmp, loaded) = generated("tls-sni", &[HOST]);
        let leaf = loaded.chain[0].clone();
        let meta = meta_cert(&test_key()).unwrap();
        let resolver = CertResolver::new(loaded, Some(meta.clone())).unwrap();
        let config = server_config(resolver.clone()).unwrap();

        // An IP server name: rustls sends no SNI, as Go clients do for IP HostNames.
        let no_sni = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let (client, server) = connect(&config, client_config(None, &[]), no_sni);
        assert_eq!(server.server_name(), None);
        assert_eq!(presented(&client), vec![leaf.clone(), meta.clone()]);
        assert_eq!(
            client.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(client.alpn_protocol(), None);

        let random = ServerName::try_from("q7x2.not-the-hostname.example").unwrap();
        let (client, server) = connect(&config, client_config(None, &[b"h2", b"http/1.1"]), random);
        assert_eq!(server.server_name(), Some("q7x2.not-the-hostname.example"));
        assert_eq!(presented(&client), vec![leaf.clone(), meta]);
        assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(resolver.leaf_der(), leaf);
        assert_eq!(resolver.pin(), pin_of(&leaf));
    }

    #[test]
    fn handshake_without_meta_serves_only_the_chain() {
        let (_tmp, loaded) = generated("tls-nometa", &[HOST]);
        let leaf = loaded.chain[0].clone();
        let resolver = CertResolver::new(loaded, None).unwrap();
        let config = server_config(resolver).unwrap();
        let (client, _server) = connect(
            &config,
            client_config(None, &[]),
            ServerName::try_from(HOST).unwrap(),
        );
        assert_eq!(presented(&client), vec![leaf]);
    }

    #[test]
    fn replace_swaps_the_leaf_for_new_handshakes_only() {
        let (_tmp_a, first) = generated("tls-replace-a", &[HOST]);
        let (_tmp_b, second) = generated("tls-replace-b", &[HOST]);
        let (first_leaf, second_leaf) = (first.chain[0].clone(), second.chain[0].clone());
        let second_pin = second.pin.clone();
        let meta = meta_cert(&test_key()).unwrap();
        let resolver = CertResolver::new(first, Some(meta.clone())).unwrap();
        let config = server_config(resolver.clone()).unwrap();

        // A handshake whose ClientHello the server has already processed keeps the old leaf.
        let name = ServerName::try_from(HOST).unwrap();
        let mut in_flight_client = ClientConnection::new(client_config(None, &[]), name).unwrap();
        let mut in_flight_server = ServerConnection::new(config.clone()).unwrap();
        let mut hello = Vec::new();
        in_flight_client.write_tls(&mut hello).unwrap();
        in_flight_server.read_tls(&mut hello.as_slice()).unwrap();
        in_flight_server.process_new_packets().unwrap();

        resolver.replace(second).unwrap();
        assert_eq!(resolver.pin(), second_pin);
        assert_eq!(resolver.leaf_der(), second_leaf);

        pump(&mut in_flight_client, &mut in_flight_server);
        assert_eq!(presented(&in_flight_client), vec![first_leaf, meta.clone()]);

        let (client, _server) = connect(
            &config,
            client_config(None, &[]),
            ServerName::try_from(HOST).unwrap(),
        );
        assert_eq!(presented(&client), vec![second_leaf, meta]);
    }

    #[test]
    fn replace_with_a_broken_cert_keeps_the_old_one() {
        let (_tmp, loaded) = generated("tls-replace-bad", &[HOST]);
        let pin = loaded.pin.clone();
        let mut broken = loaded.clone();
        broken.key = PrivateKeyDer::from_pem_slice(EC_SEC1_KEY.as_bytes()).unwrap();
        let resolver = CertResolver::new(loaded, None).unwrap();
        assert!(resolver.replace(broken).is_err());
        assert_eq!(resolver.pin(), pin);
    }

    #[test]
    fn cipher_order_follows_aes_support() {
        use rustls::crypto::ring::cipher_suite::{
            TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256,
        };
        assert_eq!(
            cipher_suites(false)[0].suite(),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
        assert_eq!(
            cipher_suites(true)[0].suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            "AES-128 first, as Go"
        );
        assert_eq!(
            cipher_suites(false)[1].suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            cipher_suites(true).len(),
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.len()
        );

        let (_tmp, loaded) = generated("tls-ciphers", &[HOST]);
        let resolver = CertResolver::new(loaded, None).unwrap();
        let client_orders = [
            vec![TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256],
            vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256],
        ];
        for client_order in client_orders {
            for (prefer_aes, expected) in [
                (true, CipherSuite::TLS13_AES_128_GCM_SHA256),
                (false, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
            ] {
                let config = server_config_with_order(resolver.clone(), prefer_aes).unwrap();
                let (client, _server) = connect(
                    &config,
                    client_config(Some(client_order.clone()), &[]),
                    ServerName::try_from(HOST).unwrap(),
                );
                let chosen = client.negotiated_cipher_suite().unwrap().suite();
                assert_eq!(chosen, expected, "prefer_aes={prefer_aes}");
            }
        }
    }

    #[test]
    fn server_config_settings() {
        let (_tmp, loaded) = generated("tls-config", &[HOST]);
        let resolver = CertResolver::new(loaded, None).unwrap();
        let config = server_config(resolver).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(config.ignore_client_order);
        assert_eq!(config.send_tls13_tickets, TLS13_TICKETS_PER_HANDSHAKE);
        let first = config.crypto_provider().cipher_suites[0].suite();
        let chacha_first = first == CipherSuite::TLS13_CHACHA20_POLY1305_SHA256;
        assert_eq!(chacha_first, !cpu_has_aes());
        #[cfg(not(feature = "tls12"))]
        assert!(config
            .crypto_provider()
            .cipher_suites
            .iter()
            .all(|suite| suite.tls13().is_some()));
    }
}
