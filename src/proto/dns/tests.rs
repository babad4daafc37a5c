//! The DNS codec against hand-built answers (compression, CNAME chains, every failure) and
//! the resolv.conf and hosts readers against the files OpenWrt and Debian write.

use super::*;

/// A response to `encode_query(id, name, qtype)` with `flags` and the given answer records
/// (each already encoded after the question, which sits at offset 12).
fn response(id: u16, name: &str, qtype: u16, flags: u16, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut msg = encode_query(id, name, qtype).unwrap();
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    msg[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for answer in answers {
        msg.extend_from_slice(answer);
    }
    msg
}

/// A record owned by the name at `owner` (a compression pointer offset).
fn record(owner_ptr: u16, rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = (0xc000 | owner_ptr).to_be_bytes().to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&300u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// `name` as uncompressed wire labels.
fn labels(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

#[test]
fn a_query_is_laid_out_as_rfc_1035_says() {
    let query = encode_query(0xbeef, "relay.example.com.", TYPE_AAAA).unwrap();
    let mut want = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    want.extend_from_slice(b"\x05relay\x07example\x03com\x00");
    want.extend_from_slice(&[0, 28, 0, 1]);
    assert_eq!(query, want);
}

#[test]
fn names_that_are_not_dns_names_are_refused_before_sending() {
    let long_label = "a".repeat(64);
    let long_name = ["abcdefghi"; 26].join(".");
    for bad in [
        "",
        ".",
        "a..b",
        ".a",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        assert_eq!(
            encode_query(1, bad, TYPE_A),
            Err(DnsError::BadName),
            "{bad:?}"
        );
    }
    assert!(encode_query(1, &"a".repeat(63), TYPE_A).is_ok());
}

#[test]
fn addresses_are_read_in_the_order_given() {
    let msg = response(
        7,
        "relay.example.com",
        TYPE_A,
        0x8180,
        &[
            record(12, TYPE_A, &[192, 0, 2, 1]),
            record(12, TYPE_A, &[192, 0, 2, 2]),
        ],
    );
    let ips = parse_answer(&msg, 7, "Relay.Example.COM.", TYPE_A).unwrap();
    assert_eq!(
        ips,
        [
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "192.0.2.2".parse().unwrap()
        ]
    );
    let v6 = response(
        8,
        "relay.example.com",
        TYPE_AAAA,
        0x8180,
        &[record(
            12,
            TYPE_AAAA,
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
        )],
    );
    assert_eq!(
        parse_answer(&v6, 8, "relay.example.com", TYPE_AAAA).unwrap(),
        ["2001:db8::1".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn cname_chains_are_followed_in_any_record_order() {
    // relay.example.com -> edge.example.net (uncompressed) -> its A record, listed first.
    let query_len = encode_query(1, "relay.example.com", TYPE_A).unwrap().len();
    let target = labels("edge.example.net");
    let mut cname = record(12, TYPE_CNAME, &target);
    // The A record's owner points at the CNAME's rdata (after the 12-byte record header).
    let a_owner = (query_len + 12) as u16;
    let a = record(a_owner, TYPE_A, &[198, 51, 100, 7]);
    let mut msg = response(1, "relay.example.com", TYPE_A, 0x8180, &[]);
    msg[6..8].copy_from_slice(&2u16.to_be_bytes());
    msg.append(&mut cname);
    msg.extend_from_slice(&a);
    assert_eq!(
        parse_answer(&msg, 1, "relay.example.com", TYPE_A).unwrap(),
        ["198.51.100.7".parse::<IpAddr>().unwrap()]
    );
    // A record for some other name is not an address of the asked one.
    let stray = response(
        2,
        "relay.example.com",
        TYPE_A,
        0x8180,
        &[{
            let mut r = labels("other.example.com");
            r.extend_from_slice(&record(0, TYPE_A, &[192, 0, 2, 9])[2..]);
            r
        }],
    );
    assert_eq!(
        parse_answer(&stray, 2, "relay.example.com", TYPE_A).unwrap(),
        Vec::<IpAddr>::new()
    );
}

#[test]
fn answers_to_other_questions_and_failures_are_told_apart() {
    let ok = response(
        5,
        "a.example",
        TYPE_A,
        0x8180,
        &[record(12, TYPE_A, &[192, 0, 2, 1])],
    );
    assert_eq!(
        parse_answer(&ok, 6, "a.example", TYPE_A),
        Err(DnsError::Mismatch)
    );
    assert_eq!(
        parse_answer(&ok, 5, "b.example", TYPE_A),
        Err(DnsError::Mismatch)
    );
    assert_eq!(
        parse_answer(&ok, 5, "a.example", TYPE_AAAA),
        Err(DnsError::Mismatch)
    );
    let query = encode_query(5, "a.example", TYPE_A).unwrap();
    assert_eq!(
        parse_answer(&query, 5, "a.example", TYPE_A),
        Err(DnsError::Mismatch)
    );
    let nx = response(5, "a.example", TYPE_A, 0x8183, &[]);
    assert_eq!(
        parse_answer(&nx, 5, "a.example", TYPE_A),
        Err(DnsError::NoSuchName)
    );
    let servfail = response(5, "a.example", TYPE_A, 0x8182, &[]);
    assert_eq!(
        parse_answer(&servfail, 5, "a.example", TYPE_A),
        Err(DnsError::Server(2))
    );
    assert!(DnsError::Server(2).to_string().contains("SERVFAIL"));
    let truncated = response(5, "a.example", TYPE_A, 0x8380, &[]);
    assert_eq!(
        parse_answer(&truncated, 5, "a.example", TYPE_A),
        Err(DnsError::Truncated)
    );
    let nodata = response(5, "a.example", TYPE_A, 0x8180, &[]);
    assert_eq!(parse_answer(&nodata, 5, "a.example", TYPE_A), Ok(vec![]));
}

#[test]
fn hostile_answers_are_refused_without_panicking() {
    // A pointer to itself, a pointer forwards, a label over 63, an A record of 5 bytes.
    let looped = response(
        1,
        "a.example",
        TYPE_A,
        0x8180,
        &[record(23, TYPE_A, &[1, 2, 3, 4])],
    );
    let at = looped.len() - 16;
    let mut self_ptr = looped.clone();
    self_ptr[at..at + 2].copy_from_slice(&(0xc000u16 | at as u16).to_be_bytes());
    assert_eq!(
        parse_answer(&self_ptr, 1, "a.example", TYPE_A),
        Err(DnsError::Malformed)
    );
    let mut forward = looped.clone();
    forward[at..at + 2].copy_from_slice(&0xc0ffu16.to_be_bytes());
    assert_eq!(
        parse_answer(&forward, 1, "a.example", TYPE_A),
        Err(DnsError::Malformed)
    );
    let wide = response(
        1,
        "a.example",
        TYPE_A,
        0x8180,
        &[record(12, TYPE_A, &[1, 2, 3, 4, 5])],
    );
    assert_eq!(
        parse_answer(&wide, 1, "a.example", TYPE_A),
        Err(DnsError::Malformed)
    );
    let mut long_label = encode_query(1, "a.example", TYPE_A).unwrap();
    long_label[12] = 64;
    assert!(parse_answer(&long_label, 1, "a.example", TYPE_A).is_err());
    // Every prefix of a good answer, and pseudo-random bytes after a good header.
    let good = response(
        1,
        "a.example",
        TYPE_A,
        0x8180,
        &[record(12, TYPE_A, &[1, 2, 3, 4])],
    );
    for len in 0..good.len() {
        assert!(
            parse_answer(&good[..len], 1, "a.example", TYPE_A).is_err(),
            "prefix {len}"
        );
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut msg = good[..12].to_vec();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 80) as usize;
        for i in 0..len {
            msg.push((seed >> (i % 56)) as u8 ^ i as u8);
        }
        let _ = parse_answer(&msg, 1, "a.example", TYPE_A);
    }
}

#[test]
fn resolv_conf_as_openwrt_and_debian_write_it() {
    let openwrt = "search lan\nnameserver 127.0.0.1\nnameserver ::1\n";
    let conf = parse_resolv_conf(openwrt);
    assert_eq!(
        conf.nameservers,
        [
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(conf.search, ["lan"]);
    assert_eq!((conf.ndots, conf.timeout_secs, conf.attempts), (1, 5, 2));
    let busy = "# generated\ndomain example.org\nnameserver 10.0.0.1 # first\n; comment\n\
        nameserver fe80::1%eth0\nnameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver bogus\n\
        search a.example B.example.\noptions ndots:2 timeout:3 attempts:4 rotate\n";
    let conf = parse_resolv_conf(busy);
    assert_eq!(conf.nameservers.len(), MAX_NAMESERVERS);
    assert_eq!(conf.nameservers[1], "fe80::1".parse::<IpAddr>().unwrap());
    assert_eq!(conf.search, ["a.example", "b.example"]);
    assert_eq!((conf.ndots, conf.timeout_secs, conf.attempts), (2, 3, 4));
    assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    let silly = parse_resolv_conf("options timeout:0 attempts:99 ndots:99\n");
    assert_eq!(
        (silly.ndots, silly.timeout_secs, silly.attempts),
        (15, 1, 10)
    );
}

#[test]
fn hosts_lines_match_names_and_aliases_case_insensitively() {
    let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
        # 192.0.2.1 commented\n192.0.2.5\tRouter.lan router # the box\nnot-an-ip router\n\
        192.0.2.5 router\n";
    assert_eq!(
        hosts_lookup(hosts, "LOCALHOST"),
        [
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(
        hosts_lookup(hosts, "router."),
        ["192.0.2.5".parse::<IpAddr>().unwrap()]
    );
    assert!(hosts_lookup(hosts, "commented").is_empty());
}

#[test]
fn search_domains_come_first_for_short_names_only() {
    let conf = parse_resolv_conf("search lan home.arpa\n");
    assert_eq!(
        candidates("router", &conf),
        ["router.lan", "router.home.arpa", "router"]
    );
    assert_eq!(
        candidates("relay.example.com", &conf),
        ["relay.example.com"]
    );
    assert_eq!(candidates("router.", &conf), ["router."]);
    let deep = parse_resolv_conf("search lan\noptions ndots:3\n");
    assert_eq!(candidates("a.b", &deep), ["a.b.lan", "a.b"]);
}

#[test]
fn addresses_are_ordered_as_rfc_6724_and_musl_order_them() {
    let mut mixed = ips_of(&[
        "192.0.2.1",
        "fd00::1",
        "2001:db8::1",
        "2002::1",
        "::1",
        "192.0.2.2",
    ]);
    sort_by_preference(&mut mixed, |_| true);
    assert_eq!(
        mixed,
        ips_of(&[
            "::1",
            "2001:db8::1",
            "192.0.2.1",
            "192.0.2.2",
            "2002::1",
            "fd00::1"
        ])
    );
    // Without a route to IPv6, IPv4 comes first; equals keep their order.
    let mut no_v6 = ips_of(&["2001:db8::1", "192.0.2.1", "2001:db8::2"]);
    sort_by_preference(&mut no_v6, |ip| ip.is_ipv4());
    assert_eq!(no_v6, ips_of(&["192.0.2.1", "2001:db8::1", "2001:db8::2"]));
    // IPv4 only: left as the server gave it, and no route is asked for.
    let mut v4 = ips_of(&["192.0.2.9", "192.0.2.1"]);
    sort_by_preference(&mut v4, |_| panic!("no route check for IPv4 only"));
    assert_eq!(v4, ips_of(&["192.0.2.9", "192.0.2.1"]));
    assert_eq!(precedence(&"2001::1".parse().unwrap()), 5);
    assert_eq!(precedence(&"::ffff:192.0.2.1".parse().unwrap()), 35);
}

fn ips_of(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}
