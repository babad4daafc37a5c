//! Interop with Tailscale's own Rust DERP client (`ts_derp` from crates.io): two of its
//! clients log in to the real tinyderp binary over TLS and exchange packets through it.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::TestServer;
use ts_derp::{IpUsage, ServerConnInfo, TlsValidationConfig};
use ts_keys::NodeKeyPair;

fn node_for(server: &TestServer) -> ServerConnInfo {
    ServerConnInfo {
        hostname: "localhost".to_string(),
        ipv4: IpUsage::FixedAddr(Ipv4Addr::LOCALHOST),
        ipv6: IpUsage::Disable,
        tls_validation_config: TlsValidationConfig::InsecureForTests,
        https_port: server.derp_addr.port(),
        stun_port: Some(server.stun().port()),
        stun_only: false,
        supports_port_80: false,
    }
}

#[test]
fn two_ts_derp_clients_exchange_packets() {
    // ts_derp pulls rustls with aws-lc-rs into test builds, so rustls cannot pick a
    // process default by itself; tinyderp itself always names ring explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = TestServer::start(&[]);
    let node = node_for(&server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let alice_keys = NodeKeyPair::random();
        let bob_keys = NodeKeyPair::random();
        let alice = match ts_derp::Client::connect([&node], &alice_keys).await {
            Ok(client) => client,
            Err(err) => panic!("alice cannot log in: {err:?}\n{}", server.log()),
        };
        let bob = ts_derp::Client::connect([&node], &bob_keys)
            .await
            .expect("bob logs in");

        for payload in [b"hello bob".to_vec(), vec![0x5a; 1400], vec![7; 60_000]] {
            alice
                .send_one(bob_keys.public, &payload)
                .await
                .expect("alice sends");
            let (from, packet) = tokio::time::timeout(Duration::from_secs(10), bob.recv_one())
                .await
                .expect("bob receives in time")
                .expect("bob receives");
            assert_eq!(from, alice_keys.public);
            assert_eq!(packet.as_ref(), payload.as_slice());
        }

        bob.send_one(alice_keys.public, b"hi alice")
            .await
            .expect("bob sends");
        let (from, packet) = tokio::time::timeout(Duration::from_secs(10), alice.recv_one())
            .await
            .expect("alice receives in time")
            .expect("alice receives");
        assert_eq!(from, bob_keys.public);
        assert_eq!(packet.as_ref(), b"hi alice");
    });
    // Both logins were accepted: no handshake failure was logged.
    assert!(!server.log().contains("login failed"), "{}", server.log());
}
