//! The `lakeward` binary as a newcomer runs it: `serve` prints a hint that works when pasted,
//! Ctrl-C drains and exits 0, a second run reuses everything; bad configuration and bad
//! policies are reported in full before anything starts.
#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn lakeward() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lakeward"))
}

/// Starts `serve` and returns the child and everything it printed up to the `curl` line.
fn serve(data_dir: &Path) -> (Child, Vec<String>) {
    serve_with(data_dir, None)
}

/// [`serve`] with a configuration file.
fn serve_with(data_dir: &Path, config: Option<&Path>) -> (Child, Vec<String>) {
    let mut args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data_dir.into(),
    ];
    if let Some(config) = config {
        args.extend(["--config".into(), config.into()]);
    }
    spawn_until(&args, |line| line.trim_start().starts_with("curl "))
}

/// Starts `lakeward ARGS` and returns it with everything it printed up to the line `done`
/// accepts.
fn spawn_until(args: &[std::ffi::OsString], done: impl Fn(&str) -> bool) -> (Child, Vec<String>) {
    let mut child = lakeward()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("lakeward starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep reading to the end even after the test stops listening: the server must not find
    // its stdout closed under it (it survives that too, but that is not what these tests test).
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l| done(l)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("lakeward {args:?} printed no expected line; got {lines:?}"),
        }
    }
    (child, lines)
}

fn interrupt_and_wait(mut child: Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "lakeward did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_prints_a_working_hint_and_stops_cleanly_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (child, lines) = serve(&data_dir);
    let text = lines.join("\n");
    assert!(text.contains("Bootstrap admin token"), "{text}");
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    assert!(
        text.contains(token.trim()),
        "the token is printed once on first run"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data_dir.join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The pasted curl line answers once the gateway is ready (readiness follows start-up).
    let curl = lines
        .iter()
        .find(|l| l.trim_start().starts_with("curl "))
        .unwrap()
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let output = loop {
        let output = Command::new("sh")
            .args(["-c", &format!("{curl} --silent --show-error --fail")])
            .output()
            .unwrap();
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{curl}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(body.contains("admin@lakeward.local"), "{body}");

    let status = interrupt_and_wait(child);
    assert_eq!(status.code(), Some(0), "Ctrl-C drains and exits 0");

    // A second run reuses the CA, the token and the workspace, and prints no new token.
    let ca = std::fs::read(data_dir.join("ca.pem")).unwrap();
    let (child, lines) = serve(&data_dir);
    let text = lines.join("\n");
    assert!(!text.contains("Bootstrap admin token"), "{text}");
    assert_eq!(std::fs::read(data_dir.join("ca.pem")).unwrap(), ca);
    assert_eq!(interrupt_and_wait(child).code(), Some(0));
}

#[test]
fn check_config_reports_every_problem_and_binds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/lakeward.example.toml");
    let out = lakeward().arg("check-config").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[gateway]\nlisten = \"127.0.0.1:1\"\nbogus_key = 1\n",
    )
    .unwrap();
    let out = lakeward()
        .arg("check-config")
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));

    let invalid = tmp.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        "data_dir = \"\"\n[bootstrap]\nadmin_user_name = \"\"\n",
    )
    .unwrap();
    let out = lakeward()
        .arg("check-config")
        .arg(&invalid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data_dir") && stderr.contains("admin_user_name"),
        "{stderr}"
    );

    // serve refuses the same file before binding anything.
    let out = lakeward()
        .args(["serve", "--config"])
        .arg(&invalid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn policy_validate_and_check() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policies");
    let out = lakeward()
        .args(["policy", "validate"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        tmp.path().join("broken.cedar"),
        "permit (principal, action, resource)\nwhen { principal.nosuch == 1 ;\n",
    )
    .unwrap();
    let out = lakeward()
        .args(["policy", "validate"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.cedar:2:"),
        "file and line are named: {stderr}"
    );

    let entities = tmp.path().join("entities.json");
    std::fs::write(
        &entities,
        r#"[{"uid": {"type": "Lakeward::User", "id": "1"}, "attrs": {"userName": "a@b.c", "active": true}, "parents": []},
            {"uid": {"type": "Lakeward::Account", "id": "a"}, "attrs": {}, "parents": []}]"#,
    )
    .unwrap();
    let out = lakeward()
        .args(["policy", "check", "--entities"])
        .arg(&entities)
        .arg("--policies")
        .arg(&shipped)
        .args([
            "--principal", r#"Lakeward::User::"1""#,
            "--action", r#"Lakeward::Action::"CreateToken""#,
            "--resource", r#"Lakeward::User::"1""#,
            "--context", r#"{"clientIp": {"__extn": {"fn": "ip", "arg": "127.0.0.1"}}, "account": {"__entity": {"type": "Lakeward::Account", "id": "a"}}, "authMethod": "pat", "requestTime": 0}"#,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ALLOW") && stdout.contains("self-service"),
        "{stdout}"
    );
}

/// The value after `prefix` on the first printed line that has it.
fn printed<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {lines:?}"))
        .trim()
}

/// Status code of a GET through the gateway with the admin token, by curl.
fn status_of(base: &str, data_dir: &Path, path: &str) -> String {
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--cacert",
        ])
        .arg(data_dir.join("ca.pem"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!("{base}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metrics(admin: &str) -> String {
    let out = Command::new("curl")
        .args(["--silent", &format!("{admin}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_reloads_policies_and_a_bad_set_keeps_the_last_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    // Polling once an hour: only the signal can make these reloads happen in time.
    let config = tmp.path().join("lakeward.toml");
    std::fs::write(&config, "[gateway]\npolicy_poll_interval_ms = 3600000\n").unwrap();
    let (child, lines) = serve_with(&data_dir, Some(&config));
    let base = printed(&lines, "Lakeward is serving on").to_owned();
    let admin = printed(&lines, "admin:")
        .split("/metrics")
        .next()
        .unwrap()
        .to_owned();
    let pid = child.id().to_string();
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success())
    };
    eventually("readiness", || {
        status_of(&base, &data_dir, "/api/2.0/token/list") == "200"
    });

    // A set that does not parse is refused, counted, and the last good set keeps serving.
    let policies = data_dir.join("policies");
    std::fs::write(
        policies.join("broken.cedar"),
        "permit (principal, action, resource\n",
    )
    .unwrap();
    hup();
    eventually("the reload failure to be counted", || {
        metrics(&admin)
            .lines()
            .any(|l| l.starts_with("gateway_policy_reload_failures_total 1"))
    });
    assert_eq!(status_of(&base, &data_dir, "/api/2.0/token/list"), "200");

    // A good change takes effect on the signal.
    std::fs::remove_file(policies.join("broken.cedar")).unwrap();
    std::fs::write(
        policies.join("no-token-listing.cedar"),
        "@id(\"no-token-listing\")\nforbid (principal, action == Lakeward::Action::\"ListTokens\", resource);\n",
    )
    .unwrap();
    hup();
    eventually("the new policy to deny", || {
        status_of(&base, &data_dir, "/api/2.0/token/list") == "403"
    });
    assert_eq!(
        status_of(&base, &data_dir, "/api/2.0/preview/scim/v2/Me"),
        "200"
    );
    assert_eq!(interrupt_and_wait(child).code(), Some(0));
}

#[test]
fn each_part_runs_alone_and_they_meet_over_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let part = |role: &str, config: &Path, marker: &'static str| {
        let args: Vec<std::ffi::OsString> = vec![
            "serve".into(),
            "--role".into(),
            role.into(),
            "--data-dir".into(),
            data_dir.clone().into(),
            "--config".into(),
            config.into(),
        ];
        spawn_until(&args, move |line| line.starts_with(marker))
    };
    let internal = tmp.path().join("internal.toml");
    std::fs::write(
        &internal,
        "[internal]\ncontrol_listen = \"127.0.0.1:0\"\nruntime_listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (control, lines) = part("control", &internal, "Lakeward control plane listening on ");
    let control_url = printed(&lines, "Lakeward control plane listening on")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let runtime_config = tmp.path().join("runtime.toml");
    std::fs::write(
        &runtime_config,
        format!(
            "[internal]\nruntime_listen = \"127.0.0.1:0\"\n[upstreams]\ncontrol_url = \"{control_url}\"\n"
        ),
    )
    .unwrap();
    let (runtime, lines) = part("runtime", &runtime_config, "Lakeward runtime listening on ");
    let runtime_url = printed(&lines, "Lakeward runtime listening on").to_owned();

    let gateway_config = tmp.path().join("gateway.toml");
    std::fs::write(
        &gateway_config,
        format!(
            "[upstreams]\ncontrol_url = \"{control_url}\"\nruntime_url = \"{runtime_url}\"\n\
             [gateway]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let (gateway, lines) = part("gateway", &gateway_config, "Lakeward gateway serving on ");
    let base = printed(&lines, "Lakeward gateway serving on")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    eventually("the gateway to reach the control plane", || {
        status_of(&base, &data_dir, "/api/2.0/preview/scim/v2/Me") == "200"
    });
    // The runtime answers through the gateway too, with warehouses it keeps in the control
    // plane: gateway → runtime → control, each hop over the network.
    assert_eq!(
        status_of(&base, &data_dir, "/api/2.0/sql/warehouses"),
        "200"
    );
    for child in [gateway, runtime, control] {
        assert_eq!(interrupt_and_wait(child).code(), Some(0));
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (mut child, lines) = serve(&data_dir);
    let base = printed(&lines, "Lakeward is serving on").to_owned();
    eventually("readiness", || {
        status_of(&base, &data_dir, "/api/2.0/token/list") == "200"
    });
    let admin_token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let out = Command::new("curl")
        .args(["--silent", "--fail", "--cacert"])
        .arg(data_dir.join("ca.pem"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", admin_token.trim()))
        .args(["-d", r#"{"comment": "must survive"}"#])
        .arg(format!("{base}/api/2.0/token/create"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["token_value"].as_str().unwrap().to_owned();

    // No drain, no flush: the process is gone the moment the response was acknowledged.
    child.kill().unwrap();
    child.wait().unwrap();

    let (child, lines) = serve(&data_dir);
    let base = printed(&lines, "Lakeward is serving on").to_owned();
    std::fs::write(data_dir.join("admin-token"), &token).unwrap();
    eventually("the token created before kill -9 to work", || {
        status_of(&base, &data_dir, "/api/2.0/preview/scim/v2/Me") == "200"
    });
    // The audit record of the mutating call was durable before its response, too.
    let audit = std::fs::read_dir(data_dir.join("audit"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(audit.contains("generateDbToken"), "{audit}");
    assert_eq!(interrupt_and_wait(child).code(), Some(0));
}

#[test]
fn serve_survives_its_stdout_being_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut child = lakeward()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("lakeward starts");
    // Close the reading end before the hint is printed: every write to stdout then fails.
    drop(child.stdout.take());
    eventually("the admin token to be written", || {
        data_dir.join("admin-token").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve died when its stdout was closed"
    );
    assert_eq!(interrupt_and_wait(child).code(), Some(0));
}
