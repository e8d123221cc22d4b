use super::writer::{AuditFile, AuditFiles};
use super::*;
use futures_util::FutureExt as _;
use std::io::{self, Write};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

/// Long enough for any machine; the tests wait on conditions, never for this long.
const DEADLINE: Duration = Duration::from_secs(10);

fn record(request_id: &str) -> AuditRecord<'_> {
    AuditRecord {
        version: "2.0",
        audit_level: "WORKSPACE_LEVEL",
        timestamp: 1_700_000_000_000,
        workspace_id: "1".into(),
        account_id: "a",
        source_ip_address: "127.0.0.1".into(),
        user_agent: None,
        session_id: None,
        user_identity: UserIdentity {
            email: None,
            subject_name: None,
        },
        service_name: "accounts",
        action_name: "x",
        request_id,
        request_params: BTreeMap::new(),
        response: AuditResponse {
            status_code: 200,
            error_message: None,
            result: None,
        },
        decision: "allow",
        determining_policies: &[],
        policy_version: None,
        auth_method: None,
        token_id: None,
        authn_failure_reason: None,
        touched: touched(Some(
            "SelectTable samples.tpch.nation, ModifyTable main.default.t",
        )),
    }
}

#[test]
fn days_are_utc_dates() {
    assert_eq!(day_of(0), "1970-01-01");
    assert_eq!(day_of(1_700_000_000_000), "2023-11-14");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_are_acknowledged_after_reaching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let failures = IntCounter::new("f", "f").unwrap();
    let (sink, writer) =
        AuditSink::channel(AuditDir(dir.path().to_path_buf()), 16, failures.clone());
    let handle = tokio::task::spawn_blocking(move || writer.run());
    let record = record("r");
    assert!(sink.write(&record, true).await);
    let text = std::fs::read_to_string(dir.path().join("audit-2023-11-14.jsonl")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(parsed["sourceIPAddress"], "127.0.0.1");
    assert_eq!(parsed["response"]["statusCode"], 200);
    assert_eq!(
        parsed["touched"],
        serde_json::json!([
            {"action": "SelectTable", "securable": "samples.tpch.nation"},
            {"action": "ModifyTable", "securable": "main.default.t"}
        ])
    );
    assert!(sink.write(&record, false).await);
    assert!(sink.flush().await);
    drop(sink);
    handle.await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("audit-2023-11-14.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert_eq!(failures.get(), 0);
}

/// What reached a fake disk: every byte the writer wrote, and how many of them the last
/// successful sync made durable.
#[derive(Default)]
struct Disk {
    written: Vec<u8>,
    durable: usize,
}

/// Day files on a fake disk whose every sync waits for the test to let it finish (or fail),
/// so the test can look at the acknowledgement while the sync is still under way.
#[derive(Clone)]
struct HeldSyncs {
    disk: Arc<parking_lot::Mutex<Disk>>,
    /// Told when a sync starts.
    started: tokio::sync::mpsc::UnboundedSender<()>,
    /// A sync ends when this says how: `true` succeeds, `false` (or a dropped sender) fails.
    outcome: Arc<parking_lot::Mutex<std_mpsc::Receiver<bool>>>,
}

impl std::fmt::Display for HeldSyncs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a fake disk")
    }
}

impl AuditFiles for HeldSyncs {
    type File = HeldSyncs;

    fn open(&self, _day: &str) -> io::Result<HeldSyncs> {
        Ok(self.clone())
    }
}

impl Write for HeldSyncs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.disk.lock().written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AuditFile for HeldSyncs {
    fn sync_data(&self) -> io::Result<()> {
        let _ = self.started.send(());
        if self.outcome.lock().recv() != Ok(true) {
            return Err(io::Error::other("the disk is gone"));
        }
        let mut disk = self.disk.lock();
        disk.durable = disk.written.len();
        Ok(())
    }
}

/// A sink over [`HeldSyncs`], its writer thread, where syncs start, and how they end.
struct Harness {
    sink: AuditSink,
    disk: Arc<parking_lot::Mutex<Disk>>,
    started: tokio::sync::mpsc::UnboundedReceiver<()>,
    outcome: std_mpsc::Sender<bool>,
    failures: IntCounter,
    writer: std::thread::JoinHandle<()>,
}

fn harness() -> Harness {
    let (started_tx, started) = tokio::sync::mpsc::unbounded_channel();
    let (outcome, outcome_rx) = std_mpsc::channel();
    let files = HeldSyncs {
        disk: Arc::default(),
        started: started_tx,
        outcome: Arc::new(parking_lot::Mutex::new(outcome_rx)),
    };
    let disk = files.disk.clone();
    let failures = IntCounter::new("f", "f").unwrap();
    let (sink, writer) = AuditSink::channel(files, 16, failures.clone());
    Harness {
        sink,
        disk,
        started,
        outcome,
        failures,
        writer: std::thread::spawn(move || writer.run()),
    }
}

impl Harness {
    /// Lets a sync that may still be waiting fail, closes the sink (the writer's last
    /// sender), and waits for the writer to finish.
    fn stop(self) {
        drop(self.outcome);
        drop(self.sink);
        self.writer.join().unwrap();
    }
}

/// Drives a durable write of `record` into `sink` until the writer starts syncing (`started`);
/// fails the test if the write is acknowledged first. Returns the write, still waiting for its
/// acknowledgement.
async fn until_sync_starts<'a>(
    sink: &'a AuditSink,
    started: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    record: &'a AuditRecord<'a>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
    let mut ack = Box::pin(sink.write(record, true));
    tokio::select! {
        acked = &mut ack => panic!("a durable record was acknowledged ({acked}) before any sync"),
        sync = tokio::time::timeout(DEADLINE, started.recv()) => {
            sync.expect("the writer never synced").expect("the writer is gone");
        }
    }
    ack
}

#[tokio::test]
async fn a_durable_record_is_acknowledged_only_after_it_is_written_and_synced() {
    let mut h = harness();
    let record = record("durable-1");
    let mut ack = until_sync_starts(&h.sink, &mut h.started, &record).await;
    // The sync under way must cover the record: its bytes were written before it began.
    let written = String::from_utf8(h.disk.lock().written.clone()).unwrap();
    assert!(written.contains(r#""requestId":"durable-1""#), "{written}");
    // The writer is inside the sync: whatever it acknowledged would already be here.
    assert!(
        ack.as_mut().now_or_never().is_none(),
        "acknowledged while its sync was still under way"
    );

    h.outcome.send(true).unwrap();
    let acked = tokio::time::timeout(DEADLINE, ack).await.unwrap();
    assert!(
        acked,
        "a written and synced record is acknowledged as durable"
    );
    let durable = {
        let disk = h.disk.lock();
        String::from_utf8_lossy(&disk.written[..disk.durable]).into_owned()
    };
    assert!(durable.contains(r#""requestId":"durable-1""#), "{durable}");
    assert_eq!(h.failures.get(), 0);
    h.stop();
}

#[tokio::test]
async fn a_failed_sync_is_not_acknowledged_as_durable() {
    let mut h = harness();
    let record = record("durable-2");
    let ack = until_sync_starts(&h.sink, &mut h.started, &record).await;
    h.outcome.send(false).unwrap();
    // Today the caller is told "not durable" and the failure is counted (what the response
    // then does is the caller's business); it must never hear "durable".
    let acked = tokio::time::timeout(DEADLINE, ack).await.unwrap();
    assert!(
        !acked,
        "a record whose sync failed was acknowledged as durable"
    );
    assert_eq!(h.failures.get(), 1);
    assert_eq!(h.disk.lock().durable, 0);
    h.stop();
}
