//! The certificate files: reading the operator's PEM files, and keeping the self-signed
//! certificate in its state directory (generated once, reused while it covers the configured
//! names, set aside with `.old` when it must be replaced). The decisions are in `cert`; this
//! is the file I/O around them.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustls::pki_types::PrivateKeyDer;

use super::statefile::{create_private_dir, read_bounded, write_atomic};
use crate::cert::manual::{check_pair, parse_chain, parse_key};
use crate::cert::selfsigned::{reuse, wanted_names, Unusable};
use crate::cert::{
    generate, pin_of, CertError, CertSource, LoadedCert, CERT_FILE_MODE, MAX_PEM_FILE_LEN,
    OLD_SUFFIX, SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE,
};
use crate::keyfile::KEY_FILE_MODE;

/// Loads (or, for self-signed, generates) the serving certificate.
pub fn load(source: &CertSource) -> Result<LoadedCert, CertError> {
    match source {
        CertSource::SelfSigned { dir, names, ips } => load_self_signed(dir, names, ips),
        CertSource::Manual { cert, key } => load_manual(cert, key),
    }
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
    let key_read = read_pem_file(&key_path);
    match reuse(&cert_bytes, key_read, &cert_path, &key_path, &wanted) {
        Ok(loaded) => Ok(loaded),
        Err(Unusable::Fail(err)) => Err(err),
        Err(Unusable::Replace(reason)) => {
            set_aside(&cert_path)?;
            set_aside(&key_path)?;
            generate_self_signed(&cert_path, &key_path, names, ips, Some(reason))
        }
    }
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

fn generate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
    ips: &[IpAddr],
    pin_changed: Option<String>,
) -> Result<LoadedCert, CertError> {
    let generated = generate::self_signed(names, ips)?;
    // Key first: if power fails between the two writes, the next start finds no certificate
    // and generates again instead of pairing a new certificate with a stale key.
    write_atomic(key_path, generated.key_pem().as_bytes(), KEY_FILE_MODE)
        .map_err(|err| io_error(key_path, "write", err))?;
    write_atomic(cert_path, generated.cert_pem().as_bytes(), CERT_FILE_MODE)
        .map_err(|err| io_error(cert_path, "write", err))?;
    let pin = pin_of(&generated.cert);
    Ok(LoadedCert {
        chain: vec![generated.cert],
        key: PrivateKeyDer::Pkcs8(generated.key),
        pin,
        generated: true,
        pin_changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::testdata::{
        localhost_v4, parse, self_signed, test_key, EC_CERT, EC_SEC1_KEY, HOST, RSA_CERT,
        RSA_PKCS1_KEY,
    };
    use crate::cert::tests as cert_tests;
    use crate::cert::{check_valid_for, manual_paths, meta_cert, CertResolver};
    use crate::keyfile::tests::TempDir;
    use std::os::unix::fs::MetadataExt;
    use x509_parser::extensions::GeneralName;
    use x509_parser::oid_registry;

    /// A state directory written by the rcgen-based generator this crate used before its own
    /// DER writer (`tinyderp.crt`/`tinyderp.key` for derp.example.net, 203.0.113.9, 127.0.0.1
    /// and ::1), with the pin it had then.
    const RCGEN_FIXTURE: &str = "src/cert/fixtures/rcgen-0.14";
    const RCGEN_FIXTURE_PIN: &str =
        "sha256-raw:b8bad7f9d909ce0502ad0d16b956acb9898638bb095db54a8560f8a3f9bc6a9c";

    #[test]
    fn a_certificate_generated_by_an_older_version_is_kept_with_its_pin() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(RCGEN_FIXTURE);
        let tmp = TempDir::new("cert-upgrade");
        let dir = tmp.0.join("state");
        crate::net::statefile::create_private_dir(&dir).unwrap();
        let mut before = Vec::new();
        for name in [SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE] {
            let bytes = fs::read(fixture.join(name)).unwrap();
            fs::write(dir.join(name), &bytes).unwrap();
            before.push(bytes);
        }
        let ip6: IpAddr = "::1".parse().unwrap();
        let source = self_signed(&dir, &[HOST, "203.0.113.9"], &[localhost_v4(), ip6]);
        for _ in 0..2 {
            let loaded = load(&source).unwrap();
            assert!(!loaded.generated);
            assert_eq!(loaded.pin_changed, None);
            assert_eq!(loaded.pin, RCGEN_FIXTURE_PIN);
            let served = CertResolver::new(loaded, Some(meta_cert(&test_key()).unwrap())).unwrap();
            assert_eq!(served.pin(), RCGEN_FIXTURE_PIN);
            // A handshake serves the kept certificate, signed with the kept key (rustls
            // checks the CertificateVerify signature against the served leaf).
            let config = crate::cert::server_config(served).unwrap();
            let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
            let (client, _server) =
                cert_tests::connect(&config, cert_tests::client_config(None, &[]), name);
            let leaf = &cert_tests::presented(&client)[0];
            assert_eq!(crate::cert::pin_of(leaf), RCGEN_FIXTURE_PIN);
        }
        for (name, bytes) in [SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE]
            .iter()
            .zip(&before)
        {
            assert_eq!(
                &fs::read(dir.join(name)).unwrap(),
                bytes,
                "{name} untouched"
            );
        }
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            [SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE],
            "no .old files"
        );
    }

    #[test]
    fn new_files_have_the_layout_of_the_older_ones() {
        // Same PEM labels and line layout as the files older versions wrote, so tools and
        // scripts that read them keep working.
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(RCGEN_FIXTURE);
        let tmp = TempDir::new("cert-layout");
        load(&self_signed(&tmp.0, &[HOST], &[])).unwrap();
        for name in [SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE] {
            let old = fs::read_to_string(fixture.join(name)).unwrap();
            let new = fs::read_to_string(tmp.0.join(name)).unwrap();
            let shape = |text: &str| -> Vec<(String, usize)> {
                text.lines()
                    .map(|line| {
                        if line.starts_with("-----") {
                            (line.to_string(), 0)
                        } else {
                            (String::new(), line.len().min(64))
                        }
                    })
                    .filter(|(label, len)| !label.is_empty() || *len == 64)
                    .collect()
            };
            let (old_shape, new_shape) = (shape(&old), shape(&new));
            assert_eq!(old_shape.first(), new_shape.first(), "{name}");
            assert_eq!(old_shape.last(), new_shape.last(), "{name}");
            assert!(new.ends_with('\n') && old.ends_with('\n'));
        }
        let old_key = fs::read_to_string(fixture.join(SELF_SIGNED_KEY_FILE)).unwrap();
        let new_key = fs::read_to_string(tmp.0.join(SELF_SIGNED_KEY_FILE)).unwrap();
        assert_eq!(
            old_key.len(),
            new_key.len(),
            "same PKCS#8 encoding of a P-256 key"
        );
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
}
