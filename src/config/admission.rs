//! The admission options: `--allowed-key`, `--verify-clients`, `--socket`,
//! `--verify-client-url` (and its CA file and fail-open switch), `--log-refused-keys`.

use std::path::PathBuf;
use std::str::FromStr;

use super::error::{BoolSpelling, ConfigError, Rule, Unsupported, Want};
use super::values::{bounded_list, given, not_a, parse_go_bool};
use crate::admit::{
    AdmissionUrl, AdmitPolicy, DEFAULT_CA_FILE, DEFAULT_TAILSCALED_SOCKET, MAX_ALLOWED_KEYS,
};
use crate::cli::Flags;
use crate::proto::key::PublicKey;

/// Admission flags: allowlist, local tailscaled, admission URL, learn mode.
pub(super) fn parse_admit(flags: &Flags) -> Result<AdmitPolicy, ConfigError> {
    let mut allowed_keys = bounded_list(
        "--allowed-key",
        &flags.allowed_key,
        MAX_ALLOWED_KEYS,
        parse_allowed_key,
    )?;
    allowed_keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    allowed_keys.dedup();
    let socket = given(&flags.socket).map(PathBuf::from);
    let tailscaled_socket = match (flags.verify_clients, socket) {
        (true, socket) => Some(socket.unwrap_or_else(|| PathBuf::from(DEFAULT_TAILSCALED_SOCKET))),
        (false, Some(_)) => {
            return Err(ConfigError::Combination {
                flag: "--socket",
                rule: Rule::SocketNeedsVerifyClients,
            })
        }
        (false, None) => None,
    };
    let url = match given(&flags.verify_client_url) {
        Some(text) => {
            Some(
                AdmissionUrl::from_str(text).map_err(|problem| ConfigError::BadUrl {
                    flag: "--verify-client-url",
                    problem,
                })?,
            )
        }
        None => None,
    };
    if !cfg!(feature = "https-admission") && url.as_ref().is_some_and(|url| url.tls) {
        return Err(ConfigError::Unsupported {
            flag: "--verify-client-url",
            what: Unsupported::HttpsAdmission,
        });
    }
    let url_fail_open = match given(&flags.verify_client_url_fail_open) {
        None => true,
        Some(text) => parse_go_bool(text).ok_or_else(|| ConfigError::NotBool {
            flag: "--verify-client-url-fail-open",
            value: String::from(text),
            spelling: BoolSpelling::Plain,
        })?,
    };
    let url_ca_file = match (&url, given(&flags.verify_client_url_ca)) {
        (Some(url), ca) if url.tls => Some(PathBuf::from(ca.unwrap_or(DEFAULT_CA_FILE))),
        (_, Some(_)) => {
            return Err(ConfigError::Combination {
                flag: "--verify-client-url-ca",
                rule: Rule::CaNeedsHttpsUrl,
            })
        }
        (_, None) => None,
    };
    Ok(AdmitPolicy {
        allowed_keys,
        tailscaled_socket,
        url,
        url_fail_open,
        url_ca_file,
        log_refused_keys: flags.log_refused_keys,
    })
}

/// `nodekey:<64 hex>` (as tailscale and our learn mode print it), or the bare 64 hex.
fn parse_allowed_key(text: &str) -> Result<PublicKey, ConfigError> {
    let bytes = crate::proto::key::parse_hex_32(
        text.strip_prefix(crate::proto::key::NODE_KEY_PREFIX)
            .unwrap_or(text),
    );
    match bytes.and_then(|b| PublicKey::from_slice(&b)) {
        Some(key) if !key.is_zero() => Ok(key),
        _ => Err(not_a("--allowed-key", text, Want::NodeKey)),
    }
}
