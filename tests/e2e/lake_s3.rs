//! The lake on an S3-compatible object store: moto's S3 server on loopback (installed with the
//! pinned Python requirements by `scripts/test`), the runtime configured with an `s3://` lake
//! URL, and statements through the gateway. Proves that samples, managed tables (CTAS, INSERT,
//! DROP) and external tables over existing objects live in the bucket, never on local disk.

use bytes::Bytes;
use http::{Method, StatusCode};
use lakeward_runtime::S3Settings;
use lakeward_tests::{plain_request, plain_send, Client, TestLakeward};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BUCKET: &str = "customer-lake";
const PREFIX: &str = "lakeward";

/// A moto S3 server on a free loopback port, killed when dropped.
struct S3Server {
    endpoint: String,
    _child: tokio::process::Child,
}

impl S3Server {
    async fn start() -> S3Server {
        let python = std::env::var("LAKEWARD_PYTHON").unwrap_or_else(|_| {
            panic!(
                "LAKEWARD_PYTHON is not set: run the suite with scripts/test, which installs moto"
            )
        });
        let moto = Path::new(&python)
            .parent()
            .map(|bin| bin.join("moto_server"))
            .unwrap_or_else(|| PathBuf::from("moto_server"));
        // moto_server takes a fixed port: ask the OS for a free one, then hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", moto.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while plain_request(Method::GET, &format!("{endpoint}/"), &[], None)
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto_server never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        S3Server {
            endpoint,
            _child: child,
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{BUCKET}/{key}", self.endpoint)
    }

    /// The keys under `prefix`, straight from the bucket (S3's ListObjectsV2 XML).
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let url = format!(
            "{}/{BUCKET}?list-type=2&max-keys=1000&prefix={prefix}",
            self.endpoint
        );
        let (status, _, body) = plain_request(Method::GET, &url, &[], None)
            .await
            .expect("list objects");
        assert_eq!(status, StatusCode::OK);
        let xml = String::from_utf8_lossy(&body);
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

async fn sql(client: &Client, token: &str, warehouse: &str, statement: &str) -> Value {
    let reply = client
        .post(
            "/api/2.0/sql/statements",
            token,
            json!({"warehouse_id": warehouse, "statement": statement, "wait_timeout": "50s"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json["status"]["state"], "SUCCEEDED",
        "{statement}: {}",
        reply.text
    );
    reply.json["result"]["data_array"].clone()
}

fn local_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn the_lake_lives_in_an_s3_bucket() {
    let s3 = S3Server::start().await;
    let (status, _, _) =
        plain_request(Method::PUT, &format!("{}/{BUCKET}", s3.endpoint), &[], None)
            .await
            .expect("create bucket");
    assert_eq!(status, StatusCode::OK);
    let endpoint = s3.endpoint.clone();
    let lw = TestLakeward::start_with(move |config| {
        config.runtime.lake_url = Some(format!("s3://{BUCKET}/{PREFIX}"));
        config.runtime.s3 = Some(s3_settings(&endpoint));
        config.runtime.samples_scale_factor = 0.001;
    })
    .await;
    let client = lw.client();
    // The workspace's own area of the lake: everything its statements write lies inside it.
    let area = format!("{PREFIX}/workspaces/{}/", lw.running.default_workspace_id);
    // An existing object the customer already had in the bucket, to define a table over.
    let (status, _, _) = plain_send(
        Method::PUT,
        &s3.url(&format!("{area}raw/cities.csv")),
        &[("content-type", "text/csv")],
        Bytes::from_static(b"id,city\n1,Lisbon\n2,Porto\n3,Faro\n"),
    )
    .await
    .expect("put object");
    assert_eq!(status, StatusCode::OK);

    let token = &lw.admin_token;
    let created = client
        .post(
            "/api/2.0/sql/warehouses",
            token,
            json!({"name": "on-s3", "cluster_size": "2X-Small"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let wh = created.json["id"]
        .as_str()
        .expect("warehouse id")
        .to_owned();

    // The samples are generated into the bucket and read back from it.
    let rows = sql(
        &client,
        token,
        &wh,
        "select count(*) from samples.tpch.region",
    )
    .await;
    assert_eq!(rows, json!([["5"]]));
    let samples = s3.keys(&format!("{PREFIX}/samples/tpch/nation/")).await;
    assert!(
        samples.iter().any(|k| k.ends_with(".parquet")),
        "{samples:?}"
    );

    // A managed table: written as Parquet into the workspace's area of the bucket.
    sql(
        &client,
        token,
        &wh,
        "create table main.default.nations as select n_nationkey, n_name from samples.tpch.nation",
    )
    .await;
    sql(
        &client,
        token,
        &wh,
        "insert into main.default.nations values (100, 'ATLANTIS')",
    )
    .await;
    let rows = sql(
        &client,
        token,
        &wh,
        "select count(*), max(n_name) from main.default.nations",
    )
    .await;
    assert_eq!(rows, json!([["26", "VIETNAM"]]));
    let managed = format!("{area}managed/");
    let written = s3.keys(&managed).await;
    assert!(
        written.iter().filter(|k| k.ends_with(".parquet")).count() >= 2,
        "CTAS and INSERT each wrote Parquet into the bucket: {written:?}"
    );

    // An external table over the object that was already there.
    sql(
        &client,
        token,
        &wh,
        "create table main.default.cities using csv options (header 'true') location 'raw/cities.csv'",
    )
    .await;
    let rows = sql(
        &client,
        token,
        &wh,
        "select city from main.default.cities where id >= 2 order by id",
    )
    .await;
    assert_eq!(rows, json!([["Porto"], ["Faro"]]));

    // DROP of a managed table deletes its objects; DROP of an external one keeps the data.
    sql(&client, token, &wh, "drop table main.default.nations").await;
    sql(&client, token, &wh, "drop table main.default.cities").await;
    let left = s3.keys(&managed).await;
    assert!(left.is_empty(), "managed objects left behind: {left:?}");
    assert_eq!(
        s3.keys(&format!("{area}raw/")).await,
        vec![format!("{area}raw/cities.csv")]
    );

    // Nothing of the lake was written to local disk.
    let local = local_files(&lw.data_dir().join("lake"));
    assert!(
        !local
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet")),
        "{local:?}"
    );
}

fn s3_settings(endpoint: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some("lakeward-test".to_owned()),
        secret_access_key: Some("lakeward-test-secret".to_owned()),
        allow_http: true,
    }
}
