//! The I/O edge of admission: asks the local tailscaled over its Unix socket and the
//! admission URL over TCP (or TLS), every step under a deadline, inside the connection's
//! own task, and bounded by a few check slots. What to ask and how to read the answers is
//! pure and lives in [`crate::admit`].

use std::fmt;
use std::net::IpAddr;
#[cfg(any(test, feature = "https-admission"))]
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[cfg(not(feature = "https-admission"))]
use crate::admit::HTTPS_ADMISSION_DISABLED;
use crate::admit::{
    admission_request, admission_verdict, decide_locally, learn_line, parse_response,
    whois_request, whois_verdict, AdmitPolicy, Admitted, Refusal, RefusedKey, RefusedKeys,
    Response, Verdict,
};
use crate::proto::key::PublicKey;

use super::logging::RateLimitedLog;

/// Deadline for the whole whois exchange with tailscaled (upstream has none; a hung
/// tailscaled must not hold connections forever).
pub const TAILSCALED_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for the whole exchange with the admission URL (upstream's 5 s).
pub const ADMISSION_URL_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes read from tailscaled for one whois answer (head + body); a node with a
/// large capability map stays far below this.
pub const MAX_TAILSCALED_RESPONSE: usize = 256 << 10;
/// Most bytes read from the admission URL for one answer (head + body).
pub const MAX_ADMISSION_RESPONSE: usize = 16 << 10;
/// Largest CA file read (a full system bundle is about 200 KiB).
#[cfg(feature = "https-admission")]
pub const MAX_CA_FILE_LEN: u64 = 2 << 20;
/// Bytes requested per read while collecting a response.
const READ_CHUNK: usize = 4096;
/// Most remote checks (tailscaled or URL) running at once: a burst of strangers must not
/// turn into a burst of requests against tailscaled or the controller.
pub const MAX_PARALLEL_CHECKS: usize = 16;
/// How long a client waits for a free check slot before it is refused as `busy`.
pub const CHECK_SLOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The slots for remote checks, shared by every connection task (see
/// [`MAX_PARALLEL_CHECKS`]).
pub type CheckSlots = smol::lock::Semaphore;

/// Fresh check slots.
pub fn check_slots() -> CheckSlots {
    smol::lock::Semaphore::new(MAX_PARALLEL_CHECKS)
}

/// What admission holds at run time: the check slots, the TLS client for an https://
/// admission URL (built once at start from the CA file) and learn mode's memory. The
/// policy itself stays in the configuration and is passed in.
pub(crate) struct Admission {
    /// Bounds remote checks running at once.
    pub slots: CheckSlots,
    /// TLS client for an https:// URL; `None` for http:// or no URL.
    #[cfg(feature = "https-admission")]
    pub url_tls: Option<futures_rustls::TlsConnector>,
    /// Learn mode's record of refused keys (listed by the status socket).
    refused_keys: Mutex<RefusedKeys>,
}

/// Why admission could not be set up at start.
#[derive(Debug)]
pub enum AdmissionSetupError {
    /// An https:// URL in a build without the `https-admission` feature.
    #[cfg(not(feature = "https-admission"))]
    HttpsDisabled,
    /// The CA file could not be read.
    #[cfg(feature = "https-admission")]
    CaFileRead {
        /// The CA file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[cfg(feature = "https-admission")]
    CaFileEmpty {
        /// The CA file.
        path: PathBuf,
    },
    /// rustls refused the client configuration.
    #[cfg(feature = "https-admission")]
    TlsSetup(rustls::Error),
}

/// What the operator can do about a missing or empty CA file.
#[cfg(feature = "https-admission")]
const CA_HINT: &str = "install the CA bundle (opkg install ca-bundle / apk add ca-bundle) or name a PEM file with --verify-client-url-ca";

impl AdmissionSetupError {
    /// Short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            #[cfg(not(feature = "https-admission"))]
            AdmissionSetupError::HttpsDisabled => "https_disabled",
            #[cfg(feature = "https-admission")]
            AdmissionSetupError::CaFileRead { .. } => "ca_file_read",
            #[cfg(feature = "https-admission")]
            AdmissionSetupError::CaFileEmpty { .. } => "ca_file_empty",
            #[cfg(feature = "https-admission")]
            AdmissionSetupError::TlsSetup(_) => "tls_setup",
        }
    }
}

impl fmt::Display for AdmissionSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(not(feature = "https-admission"))]
            AdmissionSetupError::HttpsDisabled => f.write_str(HTTPS_ADMISSION_DISABLED),
            #[cfg(feature = "https-admission")]
            AdmissionSetupError::CaFileRead { path, err } => {
                write!(
                    f,
                    "cannot read CA file {}: {err} ({CA_HINT})",
                    path.display()
                )
            }
            #[cfg(feature = "https-admission")]
            AdmissionSetupError::CaFileEmpty { path } => write!(
                f,
                "CA file {} holds no usable PEM certificate ({CA_HINT})",
                path.display()
            ),
            #[cfg(feature = "https-admission")]
            AdmissionSetupError::TlsSetup(err) => write!(f, "TLS setup failed: {err}"),
        }
    }
}

impl std::error::Error for AdmissionSetupError {}

impl Admission {
    /// Prepares admission for `policy`; fails when the CA file of an https:// URL cannot
    /// be read or holds no usable certificate.
    pub fn new(policy: &AdmitPolicy) -> Result<Admission, AdmissionSetupError> {
        #[cfg(feature = "https-admission")]
        let url_tls = match (&policy.url, &policy.url_ca_file) {
            (Some(url), Some(ca_file)) if url.tls => Some(tls_connector(ca_file)?),
            _ => None,
        };
        #[cfg(not(feature = "https-admission"))]
        if policy.url.as_ref().is_some_and(|url| url.tls) {
            return Err(AdmissionSetupError::HttpsDisabled);
        }
        Ok(Admission {
            slots: check_slots(),
            #[cfg(feature = "https-admission")]
            url_tls,
            refused_keys: Mutex::new(RefusedKeys::default()),
        })
    }

    /// Learn mode (`--log-refused-keys`): records the refused key (see [`RefusedKeys`])
    /// and returns its paste-ready line, once per key per [`crate::admit::LEARN_REPEAT`];
    /// `None` when off or logged recently.
    pub fn learn(
        &self,
        policy: &AdmitPolicy,
        key: &PublicKey,
        source: Option<IpAddr>,
        refusal: &Refusal,
    ) -> Option<String> {
        if !policy.log_refused_keys {
            return None;
        }
        let fresh = self
            .refused_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(key, source, refusal.reason, Instant::now());
        fresh.then(|| learn_line(key, source, refusal))
    }

    /// Learn mode's refused keys (least recently seen first) and how many were forgotten
    /// because the record was full.
    pub fn refused_keys(&self) -> (Vec<RefusedKey>, u64) {
        let record = self
            .refused_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (record.entries().cloned().collect(), record.forgotten())
    }
}

/// A TLS client trusting the PEM certificates in `ca_file` (ring provider, TLS 1.2+).
#[cfg(feature = "https-admission")]
pub fn tls_connector(
    ca_file: &std::path::Path,
) -> Result<futures_rustls::TlsConnector, AdmissionSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use std::io::Read;
    let mut pem = Vec::new();
    std::fs::File::open(ca_file)
        .and_then(|file| file.take(MAX_CA_FILE_LEN).read_to_end(&mut pem))
        .map_err(|err| AdmissionSetupError::CaFileRead {
            path: ca_file.to_path_buf(),
            err,
        })?;
    let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(AdmissionSetupError::CaFileEmpty {
            path: ca_file.to_path_buf(),
        });
    }
    let provider = std::sync::Arc::new(crate::cert::provider::client_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AdmissionSetupError::TlsSetup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(futures_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// Fail-open lines: one per admitted client while the controller is down would flood
/// the router's small log ring, so they share a rate limit.
static FAIL_OPEN_LOG: std::sync::LazyLock<RateLimitedLog> =
    std::sync::LazyLock::new(RateLimitedLog::new);

/// A transport problem talking to tailscaled or the admission URL (as opposed to an
/// answer that says no).
#[derive(Debug)]
struct Unreachable(String);

/// Decides whether a (non-mesh) client with `key`, connecting from `source`, may stay:
/// the policy alone first, then a check slot, then tailscaled and the admission URL, each
/// under its own deadline.
pub(crate) async fn decide(
    policy: &AdmitPolicy,
    context: &Admission,
    key: &PublicKey,
    source: Option<IpAddr>,
) -> Verdict {
    if let Some(verdict) = decide_locally(policy, key) {
        return verdict;
    }
    let slot = smol::future::FutureExt::or(async { Some(context.slots.acquire().await) }, async {
        smol::Timer::after(CHECK_SLOT_TIMEOUT).await;
        None
    })
    .await;
    let Some(_slot) = slot else {
        return Err(Refusal::new(
            "busy",
            format!("{MAX_PARALLEL_CHECKS} admission checks already running"),
        ));
    };
    let mut admitted = Admitted::Checked;
    if let Some(socket) = &policy.tailscaled_socket {
        let request = whois_request(key);
        let exchange = async {
            let stream = smol::net::unix::UnixStream::connect(socket)
                .await
                .map_err(|err| Unreachable(format!("cannot reach {}: {err}", socket.display())))?;
            exchange(stream, &request, MAX_TAILSCALED_RESPONSE).await
        };
        match with_timeout(TAILSCALED_TIMEOUT, exchange).await {
            Ok(response) => whois_verdict(&response)?,
            Err(Unreachable(why)) => {
                return Err(Refusal::new(
                    "tailscaled_unreachable",
                    format!("local tailscaled did not answer: {why}"),
                ))
            }
        }
    }
    if let Some(url) = &policy.url {
        let request = admission_request(url, key, source);
        let exchange = async {
            let addrs = super::dns::resolve(&url.host, url.port)
                .await
                .map_err(|err| Unreachable(format!("cannot resolve: {err}")))?;
            let stream = smol::net::TcpStream::connect(addrs.as_slice())
                .await
                .map_err(|err| Unreachable(format!("cannot connect: {err}")))?;
            #[cfg(not(feature = "https-admission"))]
            {
                let _ = context;
                if url.tls {
                    return Err(Unreachable(HTTPS_ADMISSION_DISABLED.to_string()));
                }
                exchange(stream, &request, MAX_ADMISSION_RESPONSE).await
            }
            #[cfg(feature = "https-admission")]
            match (url.tls, &context.url_tls) {
                (false, _) => exchange(stream, &request, MAX_ADMISSION_RESPONSE).await,
                (true, Some(connector)) => {
                    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                        .map_err(|err| Unreachable(format!("bad TLS name: {err}")))?;
                    let tls = connector
                        .connect(name, stream)
                        .await
                        .map_err(|err| Unreachable(format!("TLS: {err}")))?;
                    exchange(tls, &request, MAX_ADMISSION_RESPONSE).await
                }
                (true, None) => Err(Unreachable(String::from("no TLS client configured"))),
            }
        };
        match with_timeout(ADMISSION_URL_TIMEOUT, exchange).await {
            Ok(response) => admission_verdict(&response)?,
            Err(Unreachable(why)) if policy.url_fail_open => {
                FAIL_OPEN_LOG.log(
                    log::Level::Warn,
                    format_args!(
                        "admission controller {} unreachable ({why}); allowing client {key} (fail-open)",
                        url.text
                    ),
                );
                admitted = Admitted::FailOpen;
            }
            Err(Unreachable(why)) => {
                return Err(Refusal::new(
                    "url_unreachable",
                    format!("admission controller unreachable: {why}"),
                ))
            }
        }
    }
    Ok(admitted)
}

async fn with_timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, Unreachable>>,
) -> Result<T, Unreachable> {
    smol::future::FutureExt::or(fut, async {
        smol::Timer::after(limit).await;
        Err(Unreachable(format!(
            "no answer within {}s",
            limit.as_secs()
        )))
    })
    .await
}

/// Writes `request`, reads the answer until the peer closes (we ask it to), at most
/// `max` bytes, and parses it.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    max: usize,
) -> Result<Response, Unreachable> {
    let io = |err: std::io::Error| Unreachable(err.to_string());
    stream.write_all(request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let read = stream.read(&mut chunk).await.map_err(io)?;
        if read == 0 {
            break;
        }
        if buf.len().saturating_add(read) > max {
            return Err(Unreachable(format!("answer longer than {max} bytes")));
        }
        buf.extend_from_slice(chunk.get(..read).unwrap_or(&[]));
        // A complete Content-Length answer needs no EOF (some servers keep the socket).
        if let Ok(Some(response)) = parse_response(&buf, false) {
            return Ok(response);
        }
    }
    match parse_response(&buf, true) {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(Unreachable(String::from("answer cut short"))),
        Err(why) => Err(Unreachable(why)),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_slice(&[byte; 32]).unwrap()
    }

    /// Runs `decide` for `key` with fresh check slots and no source address.
    fn decide_fresh(policy: &AdmitPolicy, key: &PublicKey) -> Verdict {
        let context = Admission::new(policy).unwrap();
        smol::block_on(decide(policy, &context, key, None))
    }

    #[test]
    fn allowlist_and_open_policy() {
        let mut policy = AdmitPolicy::default();
        assert!(policy.is_open());
        assert_eq!(decide_fresh(&policy, &key(1)), Ok(Admitted::Open));
        policy.allowed_keys = vec![key(1), key(3)];
        assert!(!policy.is_open());
        assert!(policy.is_allowlisted(&key(3)));
        assert!(!policy.is_allowlisted(&key(2)));
        assert_eq!(decide_fresh(&policy, &key(1)), Ok(Admitted::Allowlist));
        assert_eq!(
            decide_fresh(&policy, &key(2)).unwrap_err().reason,
            "not_allowlisted"
        );
        assert!(policy.describe().contains("2 allowed keys"));
    }

    #[test]
    fn missing_socket_refuses_and_allowlist_still_admits() {
        let policy = AdmitPolicy {
            allowed_keys: vec![key(1)],
            tailscaled_socket: Some(PathBuf::from("/nonexistent/tinyderp-test.sock")),
            ..AdmitPolicy::default()
        };
        assert_eq!(decide_fresh(&policy, &key(1)), Ok(Admitted::Allowlist));
        assert_eq!(
            decide_fresh(&policy, &key(2)).unwrap_err().reason,
            "tailscaled_unreachable"
        );
    }

    #[test]
    fn checks_wait_for_a_slot_and_give_up_as_busy() {
        let policy = AdmitPolicy {
            tailscaled_socket: Some(PathBuf::from("/nonexistent/tinyderp-test.sock")),
            allowed_keys: vec![key(1)],
            ..AdmitPolicy::default()
        };
        let mut slots = Admission::new(&policy).unwrap();
        slots.slots = smol::lock::Semaphore::new(0);
        let started = Instant::now();
        let verdict = smol::block_on(decide(&policy, &slots, &key(2), None));
        assert_eq!(verdict.unwrap_err().reason, "busy");
        assert!(started.elapsed() >= CHECK_SLOT_TIMEOUT);
        // The allowlist needs no slot.
        assert_eq!(
            smol::block_on(decide(&policy, &slots, &key(1), None)),
            Ok(Admitted::Allowlist)
        );
    }

    #[test]
    fn learn_mode_logs_each_refused_key_once_and_only_when_on() {
        let refusal = Refusal::new("url_denied", "x");
        let off = AdmitPolicy::default();
        let admission = Admission::new(&off).unwrap();
        assert_eq!(admission.learn(&off, &key(1), None, &refusal), None);
        let on = AdmitPolicy {
            log_refused_keys: true,
            ..AdmitPolicy::default()
        };
        let line = admission.learn(&on, &key(1), None, &refusal).unwrap();
        assert!(line.starts_with("refused nodekey:"), "{line}");
        assert_eq!(admission.learn(&on, &key(1), None, &refusal), None);
        let (keys, forgotten) = admission.refused_keys();
        assert_eq!(forgotten, 0);
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].key, keys[0].count, keys[0].reason),
            (key(1), 2, "url_denied")
        );
    }

    #[test]
    #[cfg(feature = "https-admission")]
    fn ca_file_problems_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = tls_connector(&missing).err().unwrap().to_string();
        assert!(
            err.contains("cannot read CA file") && err.contains("ca-bundle"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = tls_connector(&empty).err().unwrap().to_string();
        assert!(err.contains("holds no usable PEM certificate"), "{err}");
        let good = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec![String::from("localhost")]).unwrap();
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert!(tls_connector(&good).is_ok());
    }
}
