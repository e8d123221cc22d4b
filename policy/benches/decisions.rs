//! What a decision costs per request, side by side with a baseline:
//! - IP access lists: 1,000 entries against a single entry (the bar: no measurable difference);
//! - a Cedar decision with the shipped baseline policies.
//!
//! Run with `cargo bench -p lakeward-policy --bench decisions`.

use lakeward_policy::{
    AuthzRequest, IpAccessPolicy, ListKind, PolicyBundle, PrincipalInput, PrincipalKind,
    ResourceInput,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

fn per_call(iterations: u32, mut f: impl FnMut(u32)) -> Duration {
    for i in 0..iterations / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    start.elapsed() / iterations
}

fn addresses() -> Vec<IpAddr> {
    // A fixed pseudo-random spread (xorshift), so runs compare like with like.
    let mut x: u32 = 0x9e37_79b9;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            IpAddr::V4(Ipv4Addr::from(x))
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let probes = addresses();
    let one = vec!["10.0.0.0/8".to_owned()];
    let thousand: Vec<String> = (0..1000u32)
        .map(|i| format!("{}.{}.{}.0/24", 11 + i / 250, i % 250, (i * 7) % 250))
        .collect();
    let small = IpAccessPolicy::compile([(ListKind::Block, one.as_slice())])?;
    let large = IpAccessPolicy::compile([
        (ListKind::Block, &thousand[..500]),
        (ListKind::Allow, &thousand[500..]),
    ])?;
    let n = 2_000_000;
    let baseline = per_call(n, |i| {
        black_box(small.verdict(black_box(probes[i as usize % probes.len()])));
    });
    let big = per_call(n, |i| {
        black_box(large.verdict(black_box(probes[i as usize % probes.len()])));
    });
    println!(
        "ip access list, 1 entry:       {:>8.1} ns/request",
        baseline.as_secs_f64() * 1e9
    );
    println!(
        "ip access list, 1,000 entries: {:>8.1} ns/request",
        big.as_secs_f64() * 1e9
    );
    println!(
        "ratio 1,000/1: {:.2}x ({:.1} ns more per request)",
        big.as_secs_f64() / baseline.as_secs_f64().max(1e-12),
        (big.as_secs_f64() - baseline.as_secs_f64()) * 1e9
    );

    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies");
    let bundle = PolicyBundle::load_dir(&policies).map_err(|errors| format!("{errors:?}"))?;
    let request = AuthzRequest {
        principal: PrincipalInput {
            kind: PrincipalKind::User,
            id: "42".into(),
            user_name: "alice@example.com".into(),
            active: true,
            groups: vec![("7".into(), "admins".into()), ("8".into(), "users".into())],
            workspace_admin: true,
            account_admin: false,
            member_of_workspace: Some(1234),
        },
        action: "ListIpAccessLists".into(),
        resource: ResourceInput::Workspace,
        client_ip: "127.0.0.1".parse()?,
        workspace: Some((1234, "default".into())),
        account_id: "acct".into(),
        auth_method: "pat".into(),
        token_id: Some("t1".into()),
        request_time_unix: 1_700_000_000,
    };
    assert!(
        bundle.authorize(&request).allowed,
        "the benchmark request must be allowed"
    );
    let decision = per_call(20_000, |_| {
        black_box(bundle.authorize(black_box(&request)));
    });
    println!(
        "cedar decision (baseline policies): {:>8.1} us/request",
        decision.as_secs_f64() * 1e6
    );
    Ok(())
}
