//! What the mesh dialer (`mesh`) shares with the rest of the server: the configured peers,
//! their connection status for the status page and metrics, and the CA roots that verify
//! peers without a pin (read once at start, from `SSL_CERT_FILE` or the system bundle, as
//! Go's derper reads them).

use std::sync::Mutex;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::mesh::MeshPeer;
use crate::relay::MAX_MESH_PEERS;

/// Longest CA bundle read.
const MAX_CA_BUNDLE_LEN: u64 = 4 << 20;
/// Where the system CA bundle is looked for when `SSL_CERT_FILE` is unset (Debian and
/// OpenWrt's ca-bundle, Fedora, Alpine/BSD).
const CA_BUNDLE_PATHS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];
/// Longest last-error text kept per peer.
pub(crate) const MAX_ERROR_LEN: usize = 200;

/// What the status page and metrics show per peer.
#[derive(Debug, Default, Clone)]
pub(crate) struct PeerStatus {
    /// The mesh client is logged in.
    pub connected: bool,
    /// When `connected` last changed.
    pub since: Option<Instant>,
    /// Why the last connection ended or the last dial failed.
    pub last_error: Option<String>,
    /// Dials so far.
    pub dials: u64,
}

/// The configured peers and their status, built once at start.
pub(crate) struct MeshPeers {
    /// Each peer as configured, with its status.
    pub peers: Vec<(MeshPeer, Mutex<PeerStatus>)>,
    /// The system roots, if some peer has no pin (or why they could not be read).
    pub roots: Option<Result<Vec<CertificateDer<'static>>, String>>,
}

impl MeshPeers {
    /// The peers of `config` (at most [`MAX_MESH_PEERS`]; the config check enforces it),
    /// with the system roots read if any peer needs them. A build without the `tls-client`
    /// feature has no dialer (its configuration refuses `--mesh-with`), so it never reads
    /// them, and the CA-bundle parser (certificate DER and PEM, about 35 KB on MIPS) is left
    /// out of the binary.
    pub(crate) fn new(peers: &[MeshPeer]) -> MeshPeers {
        let roots = (cfg!(feature = "tls-client") && peers.iter().any(|peer| peer.pin.is_none()))
            .then(system_roots);
        MeshPeers {
            peers: peers
                .iter()
                .take(MAX_MESH_PEERS)
                .map(|peer| (peer.clone(), Mutex::new(PeerStatus::default())))
                .collect(),
            roots,
        }
    }

    /// The status of peer `index`, locked.
    pub fn status(&self, index: usize) -> Option<std::sync::MutexGuard<'_, PeerStatus>> {
        self.peers.get(index).map(|(_, status)| {
            status
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }
}

/// Reads the CA bundle Go would: `SSL_CERT_FILE`, else the first system bundle found.
fn system_roots() -> Result<Vec<CertificateDer<'static>>, String> {
    use std::io::Read;
    let path = match std::env::var_os("SSL_CERT_FILE") {
        Some(path) => std::path::PathBuf::from(path),
        None => CA_BUNDLE_PATHS
            .iter()
            .map(std::path::PathBuf::from)
            .find(|path| path.exists())
            .ok_or_else(|| {
                "no system CA bundle found (install ca-bundle, set SSL_CERT_FILE, or pin the peer with --mesh-pin)".to_string()
            })?,
    };
    let mut pem = Vec::new();
    std::fs::File::open(&path)
        .and_then(|file| file.take(MAX_CA_BUNDLE_LEN).read_to_end(&mut pem))
        .map_err(|err| format!("cannot read CA bundle {}: {err}", path.display()))?;
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .filter(|cert| webpki::anchor_from_trusted_cert(cert).is_ok())
        .collect();
    if roots.is_empty() {
        return Err(format!("no usable CA certificate in {}", path.display()));
    }
    log::info!(
        "mesh: {} CA roots from {} verify peers without a pin",
        roots.len(),
        path.display()
    );
    Ok(roots)
}
