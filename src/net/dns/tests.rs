//! The resolver against a real DNS server (dnsmasq on 127.0.0.1, started per test) and
//! against the C library's resolver for names in /etc/hosts.

use super::*;
use std::net::ToSocketAddrs;
use std::process::{Child, Command, Stdio};

/// dnsmasq answering for `example.test` and `lan` on a free 127.0.0.1 port; killed on drop.
struct Dnsmasq {
    child: Child,
    port: u16,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (dnsmasq options). Fails, never skips, when dnsmasq is
    /// missing: the point is to check against it (scripts/test-all.sh installs dnsmasq-base).
    fn start(records: &[&str]) -> Dnsmasq {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let user = if nix::unistd::geteuid().is_root() {
            "--user=root"
        } else {
            "--user="
        };
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--local=/example.test/",
                "--local=/lan/",
                user,
            ])
            .arg(format!("--port={port}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq is needed for this test (apt-get install dnsmasq-base)");
        let server = Dnsmasq { child, port };
        // Ready once it answers a query for its own records.
        let query = dns::encode_query(1, "ready.example.test", TYPE_A).unwrap();
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        for _ in 0..100 {
            let _ = probe.send_to(&query, ("127.0.0.1", port));
            let mut buf = [0u8; 512];
            if probe.recv(&mut buf).is_ok() {
                return server;
            }
        }
        panic!("dnsmasq did not answer on 127.0.0.1:{port}");
    }

    fn conf(&self, search: &[&str]) -> ResolvConf {
        ResolvConf {
            nameservers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            search: search.iter().map(|s| s.to_string()).collect(),
            timeout_secs: 2,
            ..ResolvConf::default()
        }
    }
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

#[test]
fn dnsmasq_records_are_found_with_aliases_and_search_domains() {
    let server = Dnsmasq::start(&[
        "--host-record=relay.example.test,192.0.2.10,2001:db8::10",
        "--host-record=v4only.example.test,192.0.2.11",
        "--host-record=router.lan,192.0.2.1",
        "--cname=alias.example.test,relay.example.test",
    ]);
    smol::block_on(async {
        // Where both families come back, their order depends on this machine's routes
        // (RFC 6724), so those lists are compared sorted.
        let conf = server.conf(&["lan"]);
        let port = server.port;
        let mut both = lookup_with("relay.example.test", &conf, "", port)
            .await
            .unwrap();
        both.sort();
        assert_eq!(both, ips(&["192.0.2.10", "2001:db8::10"]));
        let mut alias = lookup_with("ALIAS.example.test.", &conf, "", port)
            .await
            .unwrap();
        alias.sort();
        assert_eq!(alias, ips(&["192.0.2.10", "2001:db8::10"]));
        let v4 = lookup_with("v4only.example.test", &conf, "", port)
            .await
            .unwrap();
        assert_eq!(v4, ips(&["192.0.2.11"]));
        let short = lookup_with("router", &conf, "", port).await.unwrap();
        assert_eq!(short, ips(&["192.0.2.1"]));
        let missing = lookup_with("nothere.example.test", &conf, "", port)
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound, "{missing}");
        assert!(
            missing.to_string().contains("nothere.example.test"),
            "{missing}"
        );
        // The hosts file wins over DNS, and literals need neither.
        let hosts = "192.0.2.99 relay.example.test\n";
        let pinned = lookup_with("relay.example.test", &conf, hosts, port)
            .await
            .unwrap();
        assert_eq!(pinned, ips(&["192.0.2.99"]));
        let literal = lookup_with("[2001:db8::1]", &conf, "", port).await.unwrap();
        assert_eq!(literal, ips(&["2001:db8::1"]));
        let with_port = resolve("127.0.0.1", 443).await.unwrap();
        assert_eq!(with_port, [SocketAddr::from(([127, 0, 0, 1], 443))]);
    });
}

#[test]
fn a_silent_server_times_out_within_the_configured_time() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let conf = ResolvConf {
        nameservers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        timeout_secs: 1,
        ..ResolvConf::default()
    };
    let started = Instant::now();
    let err = smol::block_on(lookup_with("relay.example.test", &conf, "", port)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Both questions were sent, and resent once (attempts 2).
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let mut count = 0;
    while silent.recv(&mut buf).is_ok() {
        count += 1;
    }
    assert_eq!(count, 4);
}

#[test]
fn stray_and_malformed_datagrams_do_not_end_the_wait() {
    let fake = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    let conf = ResolvConf {
        nameservers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        timeout_secs: 2,
        ..ResolvConf::default()
    };
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            let (len, from) = fake.recv_from(&mut buf).unwrap();
            let query = buf[..len].to_vec();
            // Garbage, then an answer with the wrong id, then the right one.
            fake.send_to(b"\x00\x01garbage", from).unwrap();
            let mut wrong = query.clone();
            wrong[0] ^= 0xff;
            wrong[2] |= 0x80;
            fake.send_to(&wrong, from).unwrap();
            let mut right = query.clone();
            right[2] |= 0x80;
            let qtype = u16::from_be_bytes([query[len - 4], query[len - 3]]);
            if qtype == TYPE_A {
                right[7] = 1;
                right.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
            }
            fake.send_to(&right, from).unwrap();
        }
    });
    let found = smol::block_on(lookup_with("relay.example.test", &conf, "", port)).unwrap();
    assert_eq!(found, ips(&["192.0.2.77"]));
    server.join().unwrap();
}

#[test]
fn names_in_the_hosts_file_match_the_c_library_in_order() {
    let mut compared = 0;
    for name in ["localhost", "ip6-localhost"] {
        let text = std::fs::read_to_string(HOSTS).unwrap_or_default();
        if dns::hosts_lookup(&text, name).is_empty() {
            continue;
        }
        let ours = smol::block_on(lookup(name)).unwrap();
        // The C library lists each address once per socket type: keep the first of each.
        let mut libc: Vec<IpAddr> = Vec::new();
        for addr in (name, 0u16).to_socket_addrs().unwrap() {
            if !libc.contains(&addr.ip()) {
                libc.push(addr.ip());
            }
        }
        // Same addresses in the same order (loopback: both routable, ::1 first).
        assert_eq!(ours, libc, "{name}");
        compared += 1;
    }
    assert!(
        compared > 0,
        "/etc/hosts names neither localhost nor ip6-localhost"
    );
}
