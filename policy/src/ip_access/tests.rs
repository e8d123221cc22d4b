use super::*;

fn policy(allow: &[&str], block: &[&str]) -> IpAccessPolicy {
    let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
    let block: Vec<String> = block.iter().map(|s| (*s).to_owned()).collect();
    let mut lists = Vec::new();
    if !allow.is_empty() {
        lists.push((ListKind::Allow, allow.as_slice()));
    }
    if !block.is_empty() {
        lists.push((ListKind::Block, block.as_slice()));
    }
    IpAccessPolicy::compile(lists).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn parses_addresses_and_cidrs() {
    let net = parse_entry("10.0.0.0/16").unwrap();
    assert_eq!(
        (net.network(), net.prefix_len()),
        (Ipv4Addr::new(10, 0, 0, 0), 16)
    );
    assert_eq!(parse_entry("1.2.3.4").unwrap().to_string(), "1.2.3.4/32");
    assert_eq!(parse_entry("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
    assert_eq!(
        "192.168.1.1/32".parse::<Ipv4Net>().unwrap().prefix_len(),
        32
    );
}

#[test]
fn host_bits_are_cleared() {
    assert_eq!(
        parse_entry("10.0.0.1/16").unwrap().to_string(),
        "10.0.0.0/16"
    );
    assert_eq!(
        parse_entry("255.255.255.255/0").unwrap().to_string(),
        "0.0.0.0/0"
    );
}

#[test]
fn rejects_what_is_not_an_ipv4_entry() {
    for bad in [
        "",
        "garbage",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.4/33",
        "1.2.3.4/",
        "1.2.3.4/+8",
        "1.2.3.4/-1",
        "1.2.3.4/8/9",
        "1.2.3.4/008",
        " 1.2.3.4",
        "1.2.3.4 ",
        "01.2.3.4",
        "/8",
    ] {
        assert!(
            matches!(parse_entry(bad), Err(PolicyError::InvalidIpEntry { .. })),
            "accepted `{bad}`"
        );
    }
    let err = parse_entry("2001:db8::/32").unwrap_err().to_string();
    assert!(err.contains("IPv4"), "{err}");
    assert!(
        err.starts_with("invalid ip access list entry `2001:db8::/32`"),
        "{err}"
    );
}

#[test]
fn empty_policy_allows_everything() {
    let p = policy(&[], &[]);
    assert!(p.is_empty());
    assert_eq!(p.verdict(ip("8.8.8.8")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("2001:db8::1")), IpVerdict::Allowed);
}

#[test]
fn block_beats_allow() {
    let p = policy(&["10.0.0.0/8"], &["10.1.0.0/16"]);
    assert_eq!(p.verdict(ip("10.2.3.4")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("10.1.3.4")), IpVerdict::Blocked);
    assert_eq!(p.verdict(ip("11.0.0.1")), IpVerdict::Blocked);
}

#[test]
fn without_allow_list_only_blocked_addresses_are_blocked() {
    let p = policy(&[], &["1.2.3.4"]);
    assert!(!p.is_empty());
    assert_eq!(p.verdict(ip("1.2.3.4")), IpVerdict::Blocked);
    assert_eq!(p.verdict(ip("1.2.3.5")), IpVerdict::Allowed);
    // IPv6 matches no entry, and there is no allow list to miss.
    assert_eq!(p.verdict(ip("2001:db8::1")), IpVerdict::Allowed);
}

#[test]
fn with_allow_list_non_matching_addresses_are_blocked() {
    let p = policy(&["192.168.0.0/24", "10.0.0.1"], &[]);
    assert_eq!(p.verdict(ip("192.168.0.255")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("192.168.1.0")), IpVerdict::Blocked);
    assert_eq!(p.verdict(ip("10.0.0.1")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("10.0.0.2")), IpVerdict::Blocked);
    assert_eq!(p.verdict(ip("2001:db8::1")), IpVerdict::Blocked);
}

#[test]
fn ipv4_mapped_ipv6_counts_as_ipv4() {
    let p = policy(&["10.0.0.0/8"], &["10.9.0.0/16"]);
    assert_eq!(p.verdict(ip("::ffff:10.1.2.3")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("::ffff:10.9.2.3")), IpVerdict::Blocked);
    assert_eq!(p.verdict(ip("::ffff:11.1.2.3")), IpVerdict::Blocked);
}

#[test]
fn slash_zero_and_slash_32() {
    let everything = policy(&["0.0.0.0/0"], &[]);
    for a in ["0.0.0.0", "255.255.255.255", "127.0.0.1"] {
        assert_eq!(everything.verdict(ip(a)), IpVerdict::Allowed, "{a}");
    }
    let block_all = policy(&[], &["0.0.0.0/0"]);
    assert_eq!(block_all.verdict(ip("255.255.255.255")), IpVerdict::Blocked);
    let one = policy(&["255.255.255.255/32"], &[]);
    assert_eq!(one.verdict(ip("255.255.255.255")), IpVerdict::Allowed);
    assert_eq!(one.verdict(ip("255.255.255.254")), IpVerdict::Blocked);
    let zero = policy(&["0.0.0.0/32"], &[]);
    assert_eq!(zero.verdict(ip("0.0.0.0")), IpVerdict::Allowed);
    assert_eq!(zero.verdict(ip("0.0.0.1")), IpVerdict::Blocked);
}

#[test]
fn overlapping_and_adjacent_ranges_merge() {
    assert_eq!(
        merge(vec![(5, 10), (0, 3), (4, 4), (8, 20), (22, 30)]),
        [(0, 20), (22, 30)]
    );
    assert_eq!(merge(vec![(0, u32::MAX), (7, 9)]), [(0, u32::MAX)]);
    assert_eq!(
        merge(vec![(u32::MAX, u32::MAX), (0, u32::MAX - 1)]),
        [(0, u32::MAX)]
    );
    // Two adjacent /25s become one /24-sized range; a covered /32 disappears.
    let p = policy(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.7"], &[]);
    assert_eq!(p.allow, [(0x0a00_0000, 0x0a00_00ff)]);
    assert_eq!(p.verdict(ip("10.0.0.127")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("10.0.0.128")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("10.0.1.0")), IpVerdict::Blocked);
}

#[test]
fn compile_reports_the_bad_entry() {
    let lists = [vec!["10.0.0.0/8".to_owned(), "nope".to_owned()]];
    let err = IpAccessPolicy::compile([(ListKind::Allow, lists[0].as_slice())]).unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
}

/// Deterministic xorshift64, so failures reproduce without a proptest dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn compiled_matcher_agrees_with_a_linear_scan() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut allowed, mut blocked) = (0u32, 0u32);
    for round in 0..200 {
        // Addresses drawn from a small pool of /16s so ranges overlap and addresses hit them.
        let pick = |rng: &mut XorShift| -> u32 {
            let r = rng.next();
            ((r as u32) & 0x0003_ffff) | 0x0a00_0000
        };
        let entries = |rng: &mut XorShift, n: u64| -> Vec<String> {
            (0..rng.next() % n)
                .map(|_| {
                    let addr = Ipv4Addr::from(pick(rng));
                    let prefix = 16 + rng.next() % 17;
                    if prefix == 32 && rng.next().is_multiple_of(2) {
                        addr.to_string()
                    } else {
                        format!("{addr}/{prefix}")
                    }
                })
                .collect()
        };
        let allow = entries(&mut rng, if round % 4 == 0 { 1 } else { 40 });
        let block = entries(&mut rng, 20);
        let compiled = IpAccessPolicy::compile([
            (ListKind::Allow, allow.as_slice()),
            (ListKind::Block, block.as_slice()),
        ])
        .unwrap();
        let nets = |list: &[String]| -> Vec<Ipv4Net> {
            list.iter().map(|e| parse_entry(e).unwrap()).collect()
        };
        let (allow_nets, block_nets) = (nets(&allow), nets(&block));
        for _ in 0..500 {
            let addr = Ipv4Addr::from(pick(&mut rng));
            let naive = if block_nets.iter().any(|n| n.contains(&addr))
                || (!allow_nets.is_empty() && !allow_nets.iter().any(|n| n.contains(&addr)))
            {
                IpVerdict::Blocked
            } else {
                IpVerdict::Allowed
            };
            assert_eq!(
                compiled.verdict(IpAddr::V4(addr)),
                naive,
                "{addr} allow={allow:?} block={block:?}"
            );
            match naive {
                IpVerdict::Allowed => allowed += 1,
                IpVerdict::Blocked => blocked += 1,
            }
        }
    }
    // The generator must exercise both outcomes, or the comparison proves little.
    assert!(
        allowed > 10_000 && blocked > 10_000,
        "allowed={allowed} blocked={blocked}"
    );
}

#[test]
fn a_thousand_entries_compile_to_sorted_disjoint_ranges() {
    let entries: Vec<String> = (0..1000u32)
        .map(|i| format!("{}/24", Ipv4Addr::from(i << 9)))
        .collect();
    let p = IpAccessPolicy::compile([(ListKind::Allow, entries.as_slice())]).unwrap();
    assert_eq!(p.allow.len(), 1000);
    assert!(p.allow.windows(2).all(|w| w[0].1 + 1 < w[1].0));
    assert_eq!(p.verdict(ip("0.0.2.5")), IpVerdict::Allowed);
    assert_eq!(p.verdict(ip("0.0.1.5")), IpVerdict::Blocked);
}
