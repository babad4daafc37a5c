//! What the tasks of one server share, as separate parts so each task is handed (and each
//! function borrows) only what it needs: the relay hub, the uplink limits, the TLS state,
//! admission, telemetry and the server's identity. Built once at start by `run`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cert::CertResolver;
use crate::config::Config;
use crate::proto::key::{PublicKey, SecretKey};

use super::admission::Admission;
use super::hub::SharedHub;
use super::metrics::Telemetry;
use super::pacing::Pacing;

/// Who this server is to DERP clients and mesh peers.
pub(crate) struct Identity {
    /// This server's DERP private key (never logged).
    pub secret: SecretKey,
    /// This server's DERP public key.
    pub public: PublicKey,
    /// The mesh pre-shared key, if one is configured.
    pub mesh_key: Option<[u8; 32]>,
}

/// The TLS side of the DERP listener; the certificate inside the resolver is the only part
/// of the server that changes at run time (SIGHUP).
pub(crate) struct TlsState {
    /// rustls configuration; certificates come from `resolver`.
    pub config: Arc<rustls::ServerConfig>,
    /// Current certificate, swappable on SIGHUP.
    pub resolver: Arc<CertResolver>,
}

/// The parts above, held together for the tasks that hand them on (the accept loop to a
/// connection, a connection to its DERP session).
pub(crate) struct Server {
    /// The validated configuration.
    pub config: Config,
    /// Keys.
    pub identity: Identity,
    /// Certificate and rustls configuration.
    pub tls: TlsState,
    /// The relay and connection handles.
    pub hub: SharedHub,
    /// Counters, the per-connection log and uptime.
    pub telemetry: Telemetry,
    /// Per-client rate and server-wide cap.
    pub pacing: Pacing,
    /// Admission checks and learn mode.
    pub admission: Admission,
    /// Set once a stop was requested: listeners stop accepting.
    pub stopping: AtomicBool,
    /// The relays of `--mesh-with` and their status.
    pub mesh: super::mesh_status::MeshPeers,
}

impl Server {
    /// The DERP map snippets for this server, as text (log, home page, `derpmap`).
    /// With `--port-mapping`, the public ports are the ones the gateway forwards here.
    pub fn derp_map_text(&self) -> String {
        let mut params = self.config.derp_map.clone();
        if let Some((derp, stun)) = super::portmap::mapped_ports() {
            params.derp_port = derp.unwrap_or(params.derp_port);
            params.stun_port = stun.or(params.stun_port);
        }
        crate::derpmap::render_all(&params, &self.tls.resolver.pin())
    }
}
