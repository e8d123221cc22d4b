//! Cedar decisions against the size of the policy set (issue 13's table): the shipped schema
//! and baseline plus N generated policies spread over 100 workspaces, each
//! `permit (principal in Group::"gI", action == Action::"ExecuteStatement",
//! resource == Workspace::"W") when { context.clientIp.isInRange(ip("10.a.b.0/24")) }`,
//! decided for requests that never repeat (so the bundle's memo always misses).
//!
//! Both paths are timed: the oracle (`Evaluation::WholeSet`: every policy evaluated, every
//! check Cedar's own, as before the scope index) and `authorize` (the slice; its memo misses).
//! The allocator is mimalloc, the gateway binary's.
//!
//! Run with `cargo bench -p lakeward-policy --bench cedar` (release). The machine is shared:
//! compare the two columns of one run, not runs.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use lakeward_policy::{
    AuthzRequest, Evaluation, PolicyBundle, PrincipalInput, PrincipalKind, ResourceInput,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

const WORKSPACES: u32 = 100;
const GENERATED: [u32; 4] = [0, 100, 1_000, 10_000];

fn generated_policies(n: u32) -> String {
    let mut text = String::with_capacity(n as usize * 200);
    for i in 0..n {
        let (a, b) = ((i / 256) % 256, i % 256);
        text.push_str(&format!(
            "permit (principal in Lakeward::Group::\"g{i}\", \
             action == Lakeward::Action::\"ExecuteStatement\", \
             resource == Lakeward::Workspace::\"{}\")\n\
             when {{ context.clientIp.isInRange(ip(\"10.{a}.{b}.0/24\")) }};\n",
            workspace_of(i)
        ));
    }
    text
}

fn workspace_of(policy: u32) -> u32 {
    1_000 + policy % WORKSPACES
}

/// xorshift: a fixed pseudo-random sequence, so runs compare like with like.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// Distinct requests (a new caller, address and group set each time): half of them in a
/// workspace and from an address one of their groups' policies permits.
fn requests(generated: u32, count: u32) -> Vec<AuthzRequest> {
    let mut rng = Rng(0x9e37_79b9);
    (0..count)
        .map(|i| {
            // Three distinct groups whatever the set's size, so that every row decides
            // requests of one shape; the first is a generated policy's group when there are any.
            let span = generated.max(1_000);
            let mut groups: Vec<u32> = Vec::with_capacity(3);
            while groups.len() < 3 {
                let g = rng.next()
                    % if groups.is_empty() {
                        generated.max(1)
                    } else {
                        span
                    };
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
            let matching = i % 2 == 0 && generated > 0;
            let (workspace, ip) = if matching {
                let g = groups[0];
                let ip = Ipv4Addr::new(
                    10,
                    ((g / 256) % 256) as u8,
                    (g % 256) as u8,
                    (i % 250) as u8,
                );
                (workspace_of(g), ip)
            } else {
                (
                    1_000 + rng.next() % WORKSPACES,
                    Ipv4Addr::from(rng.next() | 0x0100_0000),
                )
            };
            AuthzRequest {
                principal: PrincipalInput {
                    kind: PrincipalKind::User,
                    id: format!("u{i}"),
                    user_name: format!("user{i}@example.com"),
                    active: true,
                    groups: groups
                        .iter()
                        .map(|g| (format!("g{g}"), format!("group {g}")))
                        .collect(),
                    workspace_admin: i % 7 == 0,
                    account_admin: false,
                    member_of_workspace: Some(i64::from(workspace)),
                },
                action: "ExecuteStatement".into(),
                resource: ResourceInput::Workspace,
                client_ip: IpAddr::V4(ip),
                workspace: Some((i64::from(workspace), format!("ws{workspace}"))),
                account_id: "acct".into(),
                auth_method: "pat".into(),
                token_id: Some(format!("t{i}")),
                request_time_unix: 1_700_000_000 + i64::from(i),
            }
        })
        .collect()
}

struct Row {
    policies: usize,
    load: Duration,
    whole: (Duration, Duration),
    sliced: (Duration, Duration),
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Times each decision of `requests`, after `warm_up` (requests never asked again, so the
/// memo cannot answer the timed ones).
fn time_each(
    warm_up: &[AuthzRequest],
    requests: &[AuthzRequest],
    samples: &mut Vec<Duration>,
    mut decide: impl FnMut(&AuthzRequest) -> bool,
) {
    for r in warm_up {
        black_box(decide(r));
    }
    for r in requests {
        let start = Instant::now();
        black_box(decide(black_box(r)));
        samples.push(start.elapsed());
    }
}

/// One row's bundle, requests and samples.
struct Subject {
    generated: u32,
    bundle: PolicyBundle,
    load: Duration,
    whole_requests: Vec<AuthzRequest>,
    sliced_requests: Vec<AuthzRequest>,
    whole_samples: Vec<Duration>,
    sliced_samples: Vec<Duration>,
}

/// Round `round`'s share of `all`: its first eleventh warms up in round 0, and the rest is
/// timed in `ROUNDS` chunks.
fn per_round(all: &[AuthzRequest], round: usize) -> (&[AuthzRequest], &[AuthzRequest]) {
    let warm_up = all.len() / 11;
    let chunk = (all.len() - warm_up) / ROUNDS;
    let start = warm_up + round * chunk;
    let warm = if round == 0 { &all[..warm_up] } else { &[] };
    (warm, &all[start..start + chunk])
}

/// The rows are timed in turns, a slice of each row's requests per round, so that the load
/// other work puts on the machine falls on every row alike and the ratios stay fair.
const ROUNDS: usize = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies");
    let schema = std::fs::read_to_string(deploy.join("lakeward.cedarschema"))?;
    let baseline = std::fs::read_to_string(deploy.join("baseline.cedar"))?;
    let mut subjects = Vec::new();
    for generated in GENERATED {
        let text = generated_policies(generated);
        let sources = [
            ("baseline.cedar", baseline.as_str()),
            ("generated.cedar", text.as_str()),
        ];
        let mut load_times = Vec::new();
        let mut bundle = None;
        for _ in 0..if generated >= 10_000 { 3 } else { 9 } {
            let start = Instant::now();
            let loaded = PolicyBundle::from_sources(("lakeward.cedarschema", &schema), &sources)
                .map_err(|e| format!("{e:?}"))?;
            load_times.push(start.elapsed());
            bundle = Some(loaded);
        }
        // The oracle costs up to tens of milliseconds a decision: fewer samples.
        let whole_count = match generated {
            10_000 => 200,
            1_000 => 1_000,
            _ => 10_000,
        };
        subjects.push(Subject {
            generated,
            bundle: bundle.ok_or("no load")?,
            load: percentiles(load_times).0,
            whole_requests: requests(generated, whole_count + whole_count / 10),
            sliced_requests: requests(generated, 22_000),
            whole_samples: Vec::new(),
            sliced_samples: Vec::new(),
        });
    }
    for round in 0..ROUNDS {
        for s in &mut subjects {
            let bundle = &s.bundle;
            let (warm_up, timed) = per_round(&s.whole_requests, round);
            time_each(warm_up, timed, &mut s.whole_samples, |r| {
                bundle.authorize_uncached(r, Evaluation::WholeSet).allowed
            });
            let (warm_up, timed) = per_round(&s.sliced_requests, round);
            time_each(warm_up, timed, &mut s.sliced_samples, |r| {
                bundle.authorize(r).allowed
            });
        }
    }
    let mut rows = Vec::new();
    for s in subjects {
        let allowed = s
            .sliced_requests
            .iter()
            .take(100)
            .filter(|r| s.bundle.authorize(r).allowed)
            .count();
        if allowed == 0 {
            return Err(format!(
                "no request was allowed at {} generated policies: the benchmark would time \
                 denials only",
                s.generated
            )
            .into());
        }
        rows.push(Row {
            policies: s.bundle.policy_count(),
            load: s.load,
            whole: percentiles(s.whole_samples),
            sliced: percentiles(s.sliced_samples),
        });
    }
    print_table(&rows);
    Ok(())
}

fn us(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 1_000.0 {
        format!("{:.1} ms", micros / 1e3)
    } else {
        format!("{micros:.1} µs")
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(rows: &[Row]) {
    println!(
        "| policies | load (parse + validate + index) | uncached decision, whole set (oracle): p50 | p99 | uncached decision, sliced (`authorize`): p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} ms | {} | {} | {} | {} |",
            thousands(r.policies),
            r.load.as_secs_f64() * 1e3,
            us(r.whole.0),
            us(r.whole.1),
            us(r.sliced.0),
            us(r.sliced.1)
        );
    }
    let (Some(small), Some(large)) = (rows.first(), rows.last()) else {
        return;
    };
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let ratio = large.sliced.0.as_secs_f64() / small.sliced.0.as_secs_f64().max(1e-12);
    println!();
    println!(
        "{}: sliced p50 at {} policies within 2x of at {} ({ratio:.2}x)",
        verdict(ratio <= 2.0),
        thousands(large.policies),
        small.policies
    );
    println!(
        "{}: sliced p50 at {} policies <= 20 µs ({})",
        verdict(large.sliced.0 <= Duration::from_micros(20)),
        thousands(large.policies),
        us(large.sliced.0)
    );
    println!(
        "{}: sliced p50 at {} policies <= 10 µs ({})",
        verdict(small.sliced.0 <= Duration::from_micros(10)),
        small.policies,
        us(small.sliced.0)
    );
    println!(
        "{}: load of {} policies < 1 s ({:.0} ms)",
        verdict(large.load < Duration::from_secs(1)),
        thousands(large.policies),
        large.load.as_secs_f64() * 1e3
    );
}
