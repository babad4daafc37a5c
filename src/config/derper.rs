//! derper's command-line spellings: Go's flag package accepts `-name value`,
//! `-name=value` and `-switch=false`, and derper has one-letter and older names
//! (`-a`, `-c`, `-tcp-keepalive-time`, `-accept-connection-limit`). argh only knows
//! `--name value`, so [`normalize_args`] rewrites a copied derper command line first.

use super::error::{BoolSpelling, ConfigError};
use super::values::{GO_FALSE, GO_TRUE};

/// Whether a known flag takes a value (once or repeatedly) or is a switch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// Takes one value and may be given once.
    Value,
    /// Takes one value and may be given any number of times.
    Repeated,
    /// Takes no value (`=true`/`=false` allowed, as in Go).
    Switch,
    /// A boolean whose default is true, so it must be able to say false: `--x` and
    /// `--x=BOOL` as in Go, and also `--x BOOL` when the next word is a Go boolean (or
    /// empty, an unset UCI option, which keeps the default). Passed to argh as
    /// `--x BOOL`; may be given once.
    Bool,
}

/// Every spelling we accept (without dashes), the `--long` name argh knows it by, and
/// its arity. Includes derper's one-letter flags and its `-tcp-keepalive-time`.
pub(crate) const KNOWN_FLAGS: &[(&str, &str, Arity)] = &[
    ("a", "--addr", Arity::Value),
    ("addr", "--addr", Arity::Value),
    ("stun-port", "--stun-port", Arity::Value),
    ("http-port", "--http-port", Arity::Value),
    ("hostname", "--hostname", Arity::Value),
    ("extra-name", "--extra-name", Arity::Repeated),
    ("extra-ip", "--extra-ip", Arity::Repeated),
    ("state-dir", "--state-dir", Arity::Value),
    ("c", "--server-key", Arity::Value),
    ("server-key", "--server-key", Arity::Value),
    ("certmode", "--certmode", Arity::Value),
    ("certdir", "--certdir", Arity::Value),
    ("tls-cert", "--tls-cert", Arity::Value),
    ("tls-key", "--tls-key", Arity::Value),
    ("no-meta-cert", "--no-meta-cert", Arity::Switch),
    ("region-id", "--region-id", Arity::Value),
    ("region-code", "--region-code", Arity::Value),
    ("region-name", "--region-name", Arity::Value),
    ("node-name", "--node-name", Arity::Value),
    ("public-derp-port", "--public-derp-port", Arity::Value),
    ("public-stun-port", "--public-stun-port", Arity::Value),
    ("public-ipv4", "--public-ipv4", Arity::Value),
    ("public-ipv6", "--public-ipv6", Arity::Value),
    ("wan-interface", "--wan-interface", Arity::Value),
    ("metrics-allow", "--metrics-allow", Arity::Repeated),
    ("tcp-write-timeout", "--tcp-write-timeout", Arity::Value),
    ("tcp-keepalive", "--tcp-keepalive", Arity::Value),
    ("tcp-keepalive-time", "--tcp-keepalive", Arity::Value),
    ("tcp-user-timeout", "--tcp-user-timeout", Arity::Value),
    ("mesh-psk-file", "--mesh-psk-file", Arity::Value),
    ("mesh-with", "--mesh-with", Arity::Repeated),
    ("mesh-pin", "--mesh-pin", Arity::Repeated),
    ("allowed-key", "--allowed-key", Arity::Repeated),
    ("verify-clients", "--verify-clients", Arity::Switch),
    ("socket", "--socket", Arity::Value),
    ("verify-client-url", "--verify-client-url", Arity::Value),
    (
        "verify-client-url-fail-open",
        "--verify-client-url-fail-open",
        Arity::Bool,
    ),
    (
        "verify-client-url-ca",
        "--verify-client-url-ca",
        Arity::Value,
    ),
    ("log-refused-keys", "--log-refused-keys", Arity::Switch),
    ("client-rate", "--client-rate", Arity::Value),
    ("client-burst", "--client-burst", Arity::Value),
    ("rate-config", "--rate-config", Arity::Value),
    ("total-rate", "--total-rate", Arity::Value),
    ("max-clients", "--max-clients", Arity::Value),
    ("accept-rate", "--accept-rate", Arity::Value),
    ("accept-connection-limit", "--accept-rate", Arity::Value),
    ("accept-burst", "--accept-burst", Arity::Value),
    ("accept-connection-burst", "--accept-burst", Arity::Value),
    ("log-level", "--log-level", Arity::Value),
    ("dev", "--dev", Arity::Switch),
    ("version", "--version", Arity::Switch),
    ("h", "--help", Arity::Switch),
    ("help", "--help", Arity::Switch),
    ("port-mapping", "--port-mapping", Arity::Switch),
    ("check-stun-server", "--check-stun-server", Arity::Value),
];

/// Rewrites Go-style spellings into the `--long value` form argh parses:
/// `-name` -> `--name`, `--name=value` -> `--name value`, `-a`/`-c` -> `--addr`/
/// `--server-key`, `-switch=true` -> `--switch`, `-switch=false` -> nothing. The token
/// after a value flag is passed through untouched, so `--http-port -1` works. A
/// single-value flag given twice is an error. Unknown flags are left as they are for
/// argh to report.
pub fn normalize_args(args: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::with_capacity(args.len());
    let mut seen_once: Vec<&str> = Vec::new();
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        if token == "--" {
            out.push(token.clone());
            out.extend(tokens.by_ref().cloned());
            break;
        }
        let Some(body) = token.strip_prefix("--").or_else(|| token.strip_prefix('-')) else {
            out.push(token.clone());
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(&(_, long, arity)) = KNOWN_FLAGS.iter().find(|(known, _, _)| *known == name)
        else {
            out.push(token.clone());
            continue;
        };
        if arity == Arity::Value || arity == Arity::Bool {
            if seen_once.contains(&long) {
                return Err(ConfigError::GivenTwice { flag: long });
            }
            seen_once.push(long);
        }
        match (arity, inline_value) {
            (Arity::Value | Arity::Repeated, Some(value)) => {
                out.push(String::from(long));
                out.push(String::from(value));
            }
            (Arity::Value | Arity::Repeated, None) => {
                out.push(String::from(long));
                if let Some(value) = tokens.next() {
                    out.push(value.clone());
                }
            }
            (Arity::Switch, None) => out.push(String::from(long)),
            (Arity::Bool, value) => {
                let value = match value {
                    Some(value) => value,
                    None => match tokens.as_slice().first() {
                        // An empty UCI option: leave the default.
                        Some(next) if next.is_empty() => {
                            tokens.next();
                            continue;
                        }
                        Some(next)
                            if GO_TRUE.contains(&next.as_str())
                                || GO_FALSE.contains(&next.as_str()) =>
                        {
                            tokens.next();
                            next.as_str()
                        }
                        _ => "true",
                    },
                };
                if !(GO_TRUE.contains(&value) || GO_FALSE.contains(&value)) {
                    return Err(ConfigError::NotBool {
                        flag: long,
                        value: String::from(value),
                        spelling: BoolSpelling::Explicit,
                    });
                }
                out.push(String::from(long));
                out.push(String::from(value));
            }
            (Arity::Switch, Some(value)) if GO_TRUE.contains(&value) => {
                out.push(String::from(long));
            }
            (Arity::Switch, Some(value)) if GO_FALSE.contains(&value) => {}
            (Arity::Switch, Some(value)) => {
                return Err(ConfigError::NotBool {
                    flag: long,
                    value: String::from(value),
                    spelling: BoolSpelling::Switch,
                });
            }
        }
    }
    Ok(out)
}

/// Indexes of normalized arguments that stand where a flag or a command word may stand:
/// not the value of an option, and not after `--`.
pub(crate) fn flag_positions(normalized: &[String]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut tokens = normalized.iter().enumerate();
    while let Some((index, token)) = tokens.next() {
        if token == "--" {
            break;
        }
        positions.push(index);
        let takes_value = KNOWN_FLAGS
            .iter()
            .any(|(_, long, arity)| long == token && *arity != Arity::Switch);
        if takes_value {
            tokens.next();
        }
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| String::from(*s)).collect()
    }

    #[test]
    fn normalize_table() {
        let table: &[(&[&str], &[&str])] = &[
            (&["-hostname", "x"], &["--hostname", "x"]),
            (&["-certmode=manual"], &["--certmode", "manual"]),
            (&["--certmode=manual"], &["--certmode", "manual"]),
            (&["-a", ":443"], &["--addr", ":443"]),
            (&["-a=:443"], &["--addr", ":443"]),
            (&["-c", "k.json"], &["--server-key", "k.json"]),
            (&["--stun-port", "3478"], &["--stun-port", "3478"]),
            (&["-stun-port=3478"], &["--stun-port", "3478"]),
            (&["-verify-clients"], &["--verify-clients"]),
            (&["-verify-clients=true"], &["--verify-clients"]),
            (&["-verify-clients=false"], &[]),
            (&["--dev=1", "--no-meta-cert=F"], &["--dev"]),
            (&["-http-port=-1"], &["--http-port", "-1"]),
            (&["--http-port", "-1"], &["--http-port", "-1"]),
            (
                &["-stun-port", "-1", "-dev"],
                &["--stun-port", "-1", "--dev"],
            ),
            (&["--mesh-with="], &["--mesh-with", ""]),
            (&["-tcp-keepalive-time=5m"], &["--tcp-keepalive", "5m"]),
            (&["-hostname", "-dev"], &["--hostname", "-dev"]),
            (&["-h"], &["--help"]),
            (&["-help"], &["--help"]),
            (&["-version"], &["--version"]),
            (&["-bogus=1", "x"], &["-bogus=1", "x"]),
            (&["--", "-hostname"], &["--", "-hostname"]),
            (&["--hostname"], &["--hostname"]),
        ];
        for (input, expected) in table {
            assert_eq!(
                normalize_args(&strings(input)).unwrap(),
                strings(expected),
                "{input:?}"
            );
        }
        let err = normalize_args(&strings(&["-verify-clients=yes"]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--verify-clients: \"yes\""), "{err}");
    }
}
