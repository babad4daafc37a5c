//! Tests of the pure certificate code: pins, file names, the meta certificate, the resolver
//! and the TLS configuration (with an in-memory rustls client).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::ServerConfig;
use rustls::{CipherSuite, ClientConfig, ClientConnection, ServerConnection, SupportedCipherSuite};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry;

use super::provider::provider;
use super::testdata::{localhost_v4, parse, test_key, EC_SEC1_KEY, HOST};
use super::*;

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
    // P-256 (upstream uses Ed25519): clients read only the CN and the serial.
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    assert_eq!(
        cert.signature_algorithm.algorithm,
        oid_registry::OID_SIG_ECDSA_WITH_SHA256
    );
    let extensions = cert.extensions();
    assert_eq!(extensions.len(), 1);
    assert_eq!(
        extensions[0].oid,
        oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS
    );
    assert!(extensions[0].critical);
    assert_eq!(extensions[0].value, &[0x30, 0x00]);
    let ParsedExtension::BasicConstraints(constraints) = extensions[0].parsed_extension() else {
        panic!("not basic constraints")
    };
    assert!(!constraints.ca);
    assert!(cert.validity().not_before.timestamp() < 946_684_801);
    assert!(cert.validity().not_after.timestamp() > 4_000_000_000);
    // A fresh key each time, as upstream does.
    assert_ne!(meta_cert(&key).unwrap(), der);
}

pub(crate) fn client_config(
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
        .with_custom_certificate_verifier(Arc::new(crate::client::AcceptAnyCert::new(
            // The server's provider has no verification algorithms: use ring's full one.
            rustls::crypto::ring::default_provider(),
        )))
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

pub(crate) fn connect(
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

pub(crate) fn presented(client: &ClientConnection) -> Vec<CertificateDer<'static>> {
    client.peer_certificates().unwrap().to_vec()
}

/// A freshly generated self-signed certificate (no files: that is `net::cert_files`).
fn generated(_tag: &str, names: &[&str]) -> ((), LoadedCert) {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let generated = generate::self_signed(&names, &[localhost_v4()]).unwrap();
    let pin = pin_of(&generated.cert);
    let loaded = LoadedCert {
        chain: vec![generated.cert],
        key: PrivateKeyDer::Pkcs8(generated.key),
        pin,
        generated: true,
        pin_changed: None,
    };
    ((), loaded)
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
    assert_eq!(chacha_first, !aes_is_faster());
    #[cfg(not(feature = "tls12"))]
    assert!(config
        .crypto_provider()
        .cipher_suites
        .iter()
        .all(|suite| suite.tls13().is_some()));
}

/// A client on ring's stock provider offering only `group`, accepting any certificate.
fn stock_ring_client(group: &'static dyn rustls::crypto::SupportedKxGroup) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![group];
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::client::AcceptAnyCert::new(
            rustls::crypto::ring::default_provider(),
        )))
        .with_no_client_auth();
    Arc::new(config)
}

#[test]
fn tls_x25519_through_dalek_interoperates_with_rings() {
    let (_tmp, loaded) = generated("tls-x25519", &[HOST]);
    let resolver = CertResolver::new(loaded, Some(meta_cert(&test_key()).unwrap())).unwrap();
    let config = server_config(resolver).unwrap();
    let name = || ServerName::try_from(HOST).unwrap();

    // Our server (dalek X25519) with ring's own X25519 on the client side: the handshake
    // completes on X25519, so both compute the same secret.
    let (client, server) = connect(
        &config,
        stock_ring_client(rustls::crypto::ring::kx_group::X25519),
        name(),
    );
    assert_eq!(
        client
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(rustls::NamedGroup::X25519)
    );
    let server_group = server.negotiated_key_exchange_group().unwrap();
    assert!(std::ptr::addr_eq(server_group, super::x25519::X25519_GROUP));

    // A client offering only P-256 still gets it (ring's group, unchanged).
    let (client, _server) = connect(
        &config,
        stock_ring_client(rustls::crypto::ring::kx_group::SECP256R1),
        name(),
    );
    assert_eq!(
        client
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(rustls::NamedGroup::secp256r1)
    );

    // The crate's client provider (dalek X25519) against a stock ring server.
    let generated = generate::self_signed(&[HOST.to_string()], &[]).unwrap();
    let stock_server = Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![generated.cert], PrivateKeyDer::Pkcs8(generated.key))
            .unwrap(),
    );
    let mut ours = provider::client_provider();
    ours.kx_groups.truncate(1);
    let our_client = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(ours))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::client::AcceptAnyCert::new(
                rustls::crypto::ring::default_provider(),
            )))
            .with_no_client_auth(),
    );
    let (client, server) = connect(&stock_server, our_client, name());
    assert!(std::ptr::addr_eq(
        client.negotiated_key_exchange_group().unwrap(),
        super::x25519::X25519_GROUP
    ));
    assert_eq!(
        server
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(rustls::NamedGroup::X25519)
    );
}

/// An operator's Ed25519 certificate and key (signed by curve25519-dalek, not ring) still
/// completes handshakes: the client verifies the CertificateVerify signature with ring.
#[test]
fn handshake_with_an_ed25519_certificate() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let leaf = cert.der().clone();
    let loaded = LoadedCert {
        chain: vec![leaf.clone()],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        pin: pin_of(&leaf),
        generated: false,
        pin_changed: None,
    };
    let resolver = CertResolver::new(loaded, Some(meta_cert(&test_key()).unwrap())).unwrap();
    let config = server_config(resolver).unwrap();
    let (client, _server) = connect(
        &config,
        client_config(None, &[]),
        ServerName::try_from(HOST).unwrap(),
    );
    assert_eq!(presented(&client)[0], leaf);
}
