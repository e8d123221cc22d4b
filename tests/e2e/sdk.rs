//! Acceptance tests driven by the real `databricks-sdk` (pinned in tests/python/requirements.txt)
//! through the gateway's TLS. `scripts/test` installs it and sets `LAKEWARD_PYTHON`.

use lakeward_tests::TestLakeward;
use std::path::Path;

/// Runs one script of tests/python against `lw`; panics with its output when it fails.
pub async fn run_python(lw: &TestLakeward, script: &str, extra_env: &[(&str, String)]) {
    let python = std::env::var("LAKEWARD_PYTHON").unwrap_or_else(|_| {
        panic!("LAKEWARD_PYTHON is not set: run the suite with scripts/test, which installs the pinned databricks-sdk")
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let host = format!("https://127.0.0.1:{}", lw.running.gateway_addr.port());
    let mut command = tokio::process::Command::new(python);
    command
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", lw.data_dir())
        .env("DATABRICKS_HOST", &host)
        .env("DATABRICKS_TOKEN", &lw.admin_token)
        .env("DATABRICKS_ACCOUNT_ID", &lw.running.account_id)
        .env("REQUESTS_CA_BUNDLE", &lw.running.ca_cert)
        .env(
            "EXPECTED_WORKSPACE_ID",
            lw.running.default_workspace_id.to_string(),
        );
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), command.output())
        .await
        .expect("the SDK script finished within 5 minutes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        script.display(),
        output.status
    );
}

#[tokio::test]
async fn gateway_smoke() {
    let lw = TestLakeward::start().await;
    run_python(&lw, "gateway_smoke.py", &[]).await;
}

#[tokio::test]
async fn control_plane() {
    let lw = TestLakeward::start().await;
    run_python(&lw, "control_plane.py", &[]).await;
}

#[tokio::test]
async fn data_plane() {
    let lw = TestLakeward::start().await;
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/tpch/queries");
    run_python(
        &lw,
        "data_plane.py",
        &[
            (
                "LAKEWARD_LAKE",
                lw.data_dir().join("lake").display().to_string(),
            ),
            ("TPCH_QUERIES", queries.display().to_string()),
        ],
    )
    .await;
}
