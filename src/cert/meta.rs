//! The DERP meta certificate: appended to every handshake's chain so clients learn the
//! server's DERP key without a round trip.

use rustls::pki_types::CertificateDer;

use super::{generate, CertError, META_CERT_CN_PREFIX};
use crate::proto::frame::PROTOCOL_VERSION;
use crate::proto::key::PublicKey;

/// The DERP meta certificate for `server_key` (docs/protocol.md §1.8; shape in
/// [`generate::meta`]): serial = protocol version 2, subject only `CN=derpkey<64 hex>`.
///
/// Upstream uses start time ± 30 days. A router may start with no idea of the date, so the
/// window is the same fixed wide one as the serving certificate; clients never check the meta
/// certificate's dates, but some platforms want them present and sane.
pub fn meta_cert(server_key: &PublicKey) -> Result<CertificateDer<'static>, CertError> {
    let serial = u8::try_from(PROTOCOL_VERSION).unwrap_or(2);
    generate::meta(
        &format!("{META_CERT_CN_PREFIX}{}", server_key.to_hex()),
        serial,
    )
}
