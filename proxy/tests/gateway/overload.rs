//! Overload: a load generator far beyond the gateway's bounds. Past the bound on requests in
//! flight, requests are shed with 503 and `Retry-After` before any work (nothing forwarded);
//! past the bound on concurrent control-plane lookups, the control plane is not asked. The
//! gateway stays up, and once the load is gone it serves as before.

use crate::harness::*;
use http::StatusCode;
use lakeward_proxy::Config;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `f` on top of per-address caps that all of a test's clients fit under: they all come from
/// 127.0.0.1, and these tests are about the global bounds.
fn configured(f: impl Fn(&mut Config) + Send + Sync + 'static) -> Options {
    Options {
        configure: Some(Box::new(move |config| {
            config.limits.max_connections_per_address = 10_000;
            config.limits.max_handshakes_per_address = 10_000;
            f(config);
        })),
        ..Options::default()
    }
}

/// The mock runtime holds this for 5 s; the gateway gives up at its 1 s upstream timeout
/// (504), so each such request keeps its place in flight for at least a second.
const SLOW: &str = "/api/2.0/sql/statements/slow";

fn assert_shed(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "TEMPORARILY_UNAVAILABLE");
    assert_eq!(reply.headers["retry-after"], "1");
}

#[tokio::test]
async fn past_the_in_flight_bound_requests_are_shed_before_any_work() {
    const BOUND: usize = 4;
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 50;
    let gw = Arc::new(
        TestGateway::start_with(configured(|c| {
            c.overload.max_in_flight_requests = BOUND;
        }))
        .await,
    );
    let lookups_before = gw.model.lock().unwrap().token_lookups;
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        // HTTP/2: the requests of a client share one connection, so the load is requests,
        // not handshakes.
        let client = Arc::new(gw.client(Ipv4Addr::LOCALHOST, true));
        for _ in 0..PER_CLIENT {
            let (client, token) = (client.clone(), gw.tokens.alice.clone());
            load.spawn(async move { client.get("localhost", SLOW, Some(&token)).await });
        }
    }
    let mut shed = 0;
    let mut forwarded = 0;
    while let Some(reply) = load.join_next().await {
        let reply = reply.unwrap();
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_shed(&reply);
            shed += 1;
        } else {
            assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
            forwarded += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(shed > 0, "the load was far beyond the bound");
    assert_eq!(shed + forwarded, CLIENTS * PER_CLIENT);
    // Every admitted request held its place for at least a second, so no more than the
    // bound were admitted per second the load lasted.
    let seconds = elapsed.as_secs() as usize + 1;
    assert!(
        forwarded <= BOUND * seconds,
        "{forwarded} admitted in {elapsed:?} with a bound of {BOUND}"
    );
    let at_upstream = gw
        .runtime
        .received()
        .iter()
        .filter(|r| r.path == SLOW)
        .count();
    assert_eq!(
        at_upstream, forwarded,
        "no shed request reached the upstream"
    );
    let lookups = gw.model.lock().unwrap().token_lookups - lookups_before;
    assert!(
        lookups <= forwarded,
        "a shed request was looked up: {lookups}"
    );
    assert_eq!(
        gw.metric("gateway_load_shed_total{bound=\"in_flight\"}")
            .await,
        Some(shed as f64)
    );

    // The load is gone: the gateway is up and serves again.
    let (status, _) = gw.admin_get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let reply = gw
        .c()
        .get(
            "localhost",
            "/api/2.0/sql/warehouses",
            Some(&gw.tokens.alice),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn past_the_lookup_bound_the_control_plane_is_not_asked() {
    const BOUND: usize = 2;
    const REQUESTS: usize = 40;
    let gw = Arc::new(
        TestGateway::start_with(configured(|c| {
            c.overload.max_control_lookups = BOUND;
        }))
        .await,
    );
    gw.model.lock().unwrap().lookup_delay = Some(Duration::from_millis(300));
    let client = Arc::new(gw.client(Ipv4Addr::LOCALHOST, true));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        // Nobody's token is cached yet: every request needs a lookup.
        let (client, token) = (client.clone(), gw.tokens.bob.clone());
        load.spawn(async move {
            client
                .get("localhost", "/api/2.0/sql/warehouses", Some(&token))
                .await
        });
    }
    let mut shed = 0;
    while let Some(reply) = load.join_next().await {
        let reply = reply.unwrap();
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_shed(&reply);
            shed += 1;
        } else {
            assert_eq!(reply.status, StatusCode::OK);
        }
    }
    let (lookups, most_at_once) = {
        let model = gw.model.lock().unwrap();
        (model.token_lookups, model.max_lookups_in_flight)
    };
    assert!(shed > 0, "the load was far beyond the bound");
    assert!(most_at_once <= BOUND, "{most_at_once} lookups at once");
    assert_eq!(lookups, REQUESTS - shed, "a shed request was looked up");
    assert_eq!(
        gw.metric("gateway_load_shed_total{bound=\"control_lookups\"}")
            .await,
        Some(shed as f64)
    );
    // Shedding is not a failed authentication: the address is not throttled.
    gw.model.lock().unwrap().lookup_delay = None;
    let reply = gw
        .c()
        .get("localhost", "/api/2.0/sql/warehouses", Some(&gw.tokens.bob))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
