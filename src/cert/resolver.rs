//! The certificate served to each handshake, whatever the SNI, swapped on reload (SIGHUP)
//! for later handshakes only.

use std::sync::{Arc, RwLock};

use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::provider::provider;
use super::{pin_of, CertError, LoadedCert};

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
