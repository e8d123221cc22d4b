//! The single audit writer: a blocking thread fed through a bounded channel, appending JSON
//! lines to `audit-<yyyy-mm-dd>.jsonl`. Group commit: it takes everything queued, writes it,
//! and when any record in the batch needs durability it fsyncs once and acknowledges every
//! waiter of the batch.
//!
//! After a batch that nobody waits for, the writer lingers for [`LINGER`] before it looks at
//! the queue again. Waking a parked thread for every record (a futex wake, a context switch and
//! a `write` per request) cost more than the rest of a read's audit path together; lingering
//! lets records of reads pile up and go out in one write. A mutating request that arrives
//! meanwhile waits at most that long on top of its fsync.
//!
//! The files are reached through [`AuditFiles`], so that tests can watch the durability path
//! itself (a record acknowledged only after its bytes were written and synced): a killed
//! process leaves the page cache behind, so killing one cannot show a missing sync.

use prometheus::IntCounter;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};

/// The most messages handled per batch.
const MAX_BATCH: usize = 4096;
/// How long the writer rests after a batch that needed no fsync.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// What the writer is sent.
pub(crate) enum WriterMsg {
    /// One JSON line for the file of `day`; `ack` wants it durable.
    Record {
        line: Vec<u8>,
        day: String,
        ack: Option<oneshot::Sender<bool>>,
    },
    /// Make everything so far durable.
    Flush(oneshot::Sender<bool>),
}

/// One day's audit file: appended to (through the writer's buffer), and made durable.
pub(crate) trait AuditFile: Write + Send {
    /// Makes everything written so far durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
}

impl AuditFile for File {
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// Where the day files are; shown in logs by its `Display`.
pub(crate) trait AuditFiles: fmt::Display + Send + 'static {
    type File: AuditFile;

    /// Opens the file of `day` (`yyyy-mm-dd`) for appending, creating it if needed.
    fn open(&self, day: &str) -> io::Result<Self::File>;
}

/// The audit directory: `audit-<yyyy-mm-dd>.jsonl`, readable by the gateway's user only.
pub(crate) struct AuditDir(pub PathBuf);

impl AuditFiles for AuditDir {
    type File = File;

    fn open(&self, day: &str) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.0.join(format!("audit-{day}.jsonl")))
    }
}

impl fmt::Display for AuditDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// The writer's state; [`AuditWriter::run`] consumes it.
pub(crate) struct AuditWriter<F: AuditFiles = AuditDir> {
    files: F,
    rx: mpsc::Receiver<WriterMsg>,
    failures: IntCounter,
    file: Option<(String, BufWriter<F::File>)>,
}

impl<F: AuditFiles> AuditWriter<F> {
    pub(crate) fn new(files: F, rx: mpsc::Receiver<WriterMsg>, failures: IntCounter) -> Self {
        AuditWriter {
            files,
            rx,
            failures,
            file: None,
        }
    }

    /// Runs until every sender is gone, then makes the tail durable. Blocking.
    pub(crate) fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            if !self.handle(batch) {
                std::thread::sleep(LINGER);
            }
        }
        if let Err(e) = self.sync() {
            self.failed(&e);
        }
    }

    /// Writes a batch; true when someone waited on it (it was made durable).
    fn handle(&mut self, batch: Vec<WriterMsg>) -> bool {
        let mut waiters = Vec::new();
        let mut ok = true;
        for msg in batch {
            match msg {
                WriterMsg::Record { line, day, ack } => {
                    if let Err(e) = self.append(&day, &line) {
                        self.failed(&e);
                        ok = false;
                    }
                    waiters.extend(ack);
                }
                WriterMsg::Flush(ack) => waiters.push(ack),
            }
        }
        let result = if waiters.is_empty() {
            self.flush()
        } else {
            self.sync()
        };
        if let Err(e) = result {
            self.failed(&e);
            ok = false;
        }
        let waited = !waiters.is_empty();
        for waiter in waiters {
            // The request may have gone away; nothing to tell it then.
            let _ = waiter.send(ok);
        }
        waited
    }

    fn append(&mut self, day: &str, line: &[u8]) -> io::Result<()> {
        let current = matches!(&self.file, Some((d, _)) if d == day);
        if !current {
            // A new day: the old file is finished, make it durable before moving on.
            self.sync()?;
            let file = self.files.open(day)?;
            self.file = Some((day.to_owned(), BufWriter::with_capacity(64 * 1024, file)));
        }
        if let Some((_, writer)) = &mut self.file {
            writer.write_all(line)?;
            writer.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((_, writer)) => writer.flush(),
            None => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((_, writer)) => {
                writer.flush()?;
                writer.get_ref().sync_data()
            }
            None => Ok(()),
        }
    }

    fn failed(&self, e: &io::Error) {
        self.failures.inc();
        tracing::error!(error = %e, dir = %self.files, "audit write failed");
    }
}
