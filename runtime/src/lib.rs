//! The data plane: the service that runs SQL for warehouses, notebooks and jobs. It is reached
//! only through the gateway, and serves only calls that carry the gateway's identity assertion
//! for the `lakeward-runtime` audience: going around the gateway gets nothing.
//!
//! It serves the SQL warehouses API (definitions and state live in the control plane, the
//! compute here), the Statement Execution API, and Unity Catalog grants. Query work runs on a
//! runtime of its own (`lakeward-query` threads), never on the threads that serve HTTP, so a
//! heavy query cannot stall readiness checks, polls or cancels.
//!
//! **Architecture Invariant:** no handler runs before the assertion is verified; the verified
//! claims are the only source of the caller's identity.
//!
//! Modules, each importing only those above it in this list (`engine` and `control_client`
//! know no service; the services know no `app`):
//! - `config`, `engine`, `control_client`, `queue`, `results`: what the state is built from;
//! - `scheduler`: compute slots, statements, fair queues, dispatch/cancel/expire;
//! - `error`, `caller`, `text`: leaf types; `state`: the shared state; `http`: the runtime's
//!   extractors and error response over the shared frame (`lakeward-frame`);
//! - `warehouses` (handlers, spec, permissions, lifecycle, upkeep), `statements`, `grants`:
//!   the services;
//! - `app` (the router, the serve loop) and `sweeper` (background steps): the only modules
//!   that know every service.

mod app;
mod caller;
mod config;
pub mod control_client;
pub mod engine;
mod error;
mod grants;
mod http;
pub mod queue;
pub mod results;
mod scheduler;
mod state;
mod statements;
mod sweeper;
mod text;
mod warehouses;

pub use app::{route_table, Runtime, READY_PATH};
pub use config::{Config, S3Settings};
pub use state::RuntimeDeps;

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::assertion::{Audience, MasterSecret};
    use lakeward_common::assertion::{IdentityClaims, IDENTITY_HEADER};

    async fn start(master: &MasterSecret, dir: &std::path::Path) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let runtime = Runtime::new(RuntimeDeps {
            key: master.key_for(Audience::Runtime),
            data_plane_key: master.key_for(Audience::DataPlane),
            // Nothing listens here: the test never gets past the assertion check.
            control_url: "http://127.0.0.1:9".into(),
            data_dir: dir.to_path_buf(),
            config: Config {
                query_threads: Some(1),
                ..Config::default()
            },
        })
        .unwrap();
        tokio::spawn(runtime.serve(listener, std::future::pending()));
        addr
    }

    async fn get_status(
        addr: std::net::SocketAddr,
        path: &str,
        assertion: Option<&str>,
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let header = assertion
            .map(|a| format!("{IDENTITY_HEADER}: {a}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out)
    }

    #[tokio::test]
    async fn refuses_calls_without_a_valid_assertion() {
        let master = MasterSecret::generate();
        let dir = tempfile::tempdir().unwrap();
        let addr = start(&master, dir.path()).await;
        assert_eq!(get_status(addr, READY_PATH, None).await.0, 200);
        let (status, body) = get_status(addr, "/api/2.0/sql/warehouses", None).await;
        assert_eq!(status, 401);
        assert!(body.contains("UNAUTHENTICATED"), "{body}");
        // An assertion for the control plane is not one for the runtime.
        let claims = IdentityClaims::gateway("acct", "r1");
        let for_control = master
            .key_for(Audience::Control)
            .sign(claims.clone())
            .unwrap();
        assert_eq!(
            get_status(addr, "/api/2.0/sql/warehouses", Some(&for_control))
                .await
                .0,
            401
        );
        // Nor is the runtime's own key for calling the control plane.
        let for_data_plane = master
            .key_for(Audience::DataPlane)
            .sign(claims.clone())
            .unwrap();
        assert_eq!(
            get_status(addr, "/api/2.0/sql/warehouses", Some(&for_data_plane))
                .await
                .0,
            401
        );
        let for_runtime = master.key_for(Audience::Runtime).sign(claims).unwrap();
        let (status, body) = get_status(addr, "/api/2.0/no-such-thing", Some(&for_runtime)).await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("ENDPOINT_NOT_FOUND"), "{body}");
    }
}
