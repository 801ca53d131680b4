//! The embedded sink: an append-only, segmented JSON Lines log under
//! `<data_dir>/<topic>/<base-offset>.jsonl`, one [`crate::stored`] line per record.
//!
//! - **Group commit.** The [`Writer`] thread takes every append waiting in its queue, writes them,
//!   calls `fsync` once and only then confirms them all: durability costs one sync per batch,
//!   not per record.
//! - **Recovery.** [`Log::open`] truncates a torn last line (a crash mid-write) and continues
//!   with the next offset, so a line is either whole and confirmed-or-not, or gone.
//! - **Rotation and retention.** A segment is closed at `segment_bytes`; closed segments older
//!   than `retention_age`, or beyond `retention_bytes` in total, are deleted oldest first.
//! - **Fail-stop.** After a write or sync error the writer confirms nothing more and reports the
//!   failure; its owner reopens the log (which recovers it) instead of trusting a file whose
//!   state the kernel may have dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sre_intents::IntentRecord;
use tokio::sync::{mpsc, oneshot};

use crate::stored::{LineRef, StoredRecord};
use crate::SinkError;

const SUFFIX: &str = ".jsonl";
/// Most appends folded into one sync.
const MAX_BATCH: usize = 4096;

/// Rotation and retention.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Close a segment at this size.
    pub segment_bytes: u64,
    /// Delete closed segments older than this.
    pub retention_age: Duration,
    /// Keep at most this many bytes of closed segments.
    pub retention_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 * 1024 * 1024,
            retention_age: Duration::from_secs(7 * 24 * 3600),
            retention_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// The open log: the active segment and where the next record goes.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    opts: LogOptions,
    active: BufWriter<File>,
    active_size: u64,
    next_offset: u64,
}

/// The segments of a log directory, oldest first: (base offset, path).
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(base) = base {
            out.push((base, path));
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Cuts a torn last line; returns (whole lines, size after cutting).
fn recover(path: &Path) -> io::Result<(u64, u64)> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut f).take(len).read_to_end(&mut bytes)?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        tracing::warn!(path = %path.display(), torn_bytes = bytes.len() - whole, "cutting a torn last line");
        f.set_len(whole as u64)?;
        f.sync_all()?;
    }
    let lines = bytes[..whole].iter().filter(|b| **b == b'\n').count() as u64;
    Ok((lines, whole as u64))
}

impl Log {
    /// Opens (creating, or recovering) the log in `dir`.
    pub fn open(dir: &Path, opts: LogOptions) -> io::Result<Log> {
        std::fs::create_dir_all(dir)?;
        let segs = segments(dir)?;
        let (base, lines, size) = match segs.last() {
            Some((base, path)) => {
                let (lines, size) = recover(path)?;
                (*base, lines, size)
            }
            None => (0, 0, 0),
        };
        let path = segment_path(dir, base);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if segs.is_empty() {
            sync_dir(dir)?;
        }
        let mut log = Log {
            dir: dir.to_owned(),
            opts,
            active: BufWriter::with_capacity(256 * 1024, file),
            active_size: size,
            next_offset: base + lines,
        };
        log.apply_retention()?;
        Ok(log)
    }

    /// The offset the next record gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Buffers records (not yet durable: call [`Log::sync`]); returns their offsets.
    pub fn append(&mut self, records: &[IntentRecord], timestamp_ms: u64) -> io::Result<Vec<u64>> {
        let mut offsets = Vec::with_capacity(records.len());
        for r in records {
            let offset = self.next_offset;
            let mut line = serde_json::to_vec(&LineRef::new(r, offset, timestamp_ms))
                .map_err(io::Error::other)?;
            line.push(b'\n');
            self.active.write_all(&line)?;
            self.active_size += line.len() as u64;
            self.next_offset += 1;
            offsets.push(offset);
        }
        Ok(offsets)
    }

    /// Makes everything appended durable, then rotates if the segment is full.
    pub fn sync(&mut self) -> io::Result<()> {
        self.active.flush()?;
        self.active.get_ref().sync_data()?;
        if self.active_size >= self.opts.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let path = segment_path(&self.dir, self.next_offset);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.dir)?;
        self.active = BufWriter::with_capacity(256 * 1024, file);
        self.active_size = 0;
        tracing::info!(segment = %path.display(), "rotated to a new segment");
        self.apply_retention()
    }

    /// Deletes closed segments past the age limit, then the oldest beyond the size limit.
    fn apply_retention(&mut self) -> io::Result<()> {
        let mut closed = segments(&self.dir)?;
        closed.pop(); // the active segment is never deleted
        let now = SystemTime::now();
        let mut kept = Vec::new();
        for (base, path) in closed {
            let meta = std::fs::metadata(&path)?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age > self.opts.retention_age {
                tracing::info!(segment = %path.display(), "deleting segment past retention age");
                std::fs::remove_file(&path)?;
            } else {
                kept.push((base, path, meta.len()));
            }
        }
        let mut total: u64 = kept.iter().map(|(_, _, len)| len).sum();
        for (_, path, len) in kept {
            if total <= self.opts.retention_bytes {
                break;
            }
            tracing::info!(segment = %path.display(), "deleting segment beyond retention size");
            std::fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}

/// Every record of a log directory, oldest first. A line that does not parse is an error.
pub fn read_all(dir: &Path) -> io::Result<Vec<StoredRecord>> {
    read_since(dir, 0)
}

/// The records appended at or after `since_ms`, oldest first. Segments last written before
/// `since_ms` are skipped without being read.
pub fn read_since(dir: &Path, since_ms: u64) -> io::Result<Vec<StoredRecord>> {
    let mut out = Vec::new();
    let since = UNIX_EPOCH + Duration::from_millis(since_ms);
    for (_, path) in segments(dir)? {
        let modified = std::fs::metadata(&path)?
            .modified()
            .unwrap_or(SystemTime::now());
        if modified < since {
            continue;
        }
        let reader = BufReader::new(File::open(&path)?);
        for line in reader.lines() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            let record: StoredRecord = match serde_json::from_str(&line) {
                Ok(r) => r,
                // A torn last line of a segment being written right now: not a record yet.
                Err(e) if e.is_eof() => break,
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    ))
                }
            };
            if record.timestamp >= since_ms {
                out.push(record);
            }
        }
    }
    Ok(out)
}

/// Follows the newest segment from `position` (bytes), returning new whole lines and the new
/// position; moves on to a newer segment when one appears.
pub fn follow(
    dir: &Path,
    segment: &mut Option<PathBuf>,
    position: &mut u64,
) -> io::Result<Vec<StoredRecord>> {
    let segs = segments(dir)?;
    let Some((_, newest)) = segs.last() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if segment.as_ref() != Some(newest) {
        // Finish the old one first, then start the new one from its beginning.
        if let Some(old) = segment.take() {
            out.extend(read_from(&old, position)?);
        }
        *segment = Some(newest.clone());
        *position = 0;
    }
    out.extend(read_from(newest, position)?);
    Ok(out)
}

fn read_from(path: &Path, position: &mut u64) -> io::Result<Vec<StoredRecord>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(*position))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    *position += whole as u64;
    bytes[..whole]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
        .collect()
}

/// An append waiting for its sync.
struct Job {
    records: Vec<IntentRecord>,
    reply: oneshot::Sender<Result<Vec<u64>, SinkError>>,
}

/// The group-commit writer: a dedicated thread that owns the [`Log`]. Cheap to clone; the
/// thread ends (after confirming what it already took) when every clone is dropped.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer thread. `on_fatal` is called once if a write or sync fails; the writer
    /// then fails every pending and later append.
    pub fn spawn(
        log: Log,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = std::thread::Builder::new()
            .name("intent-log-writer".into())
            .spawn(move || run(log, rx, on_fatal))
            .expect("spawn the log writer thread");
        (Writer { tx }, handle)
    }

    /// Appends records; the receiver resolves once they are durable (or failed).
    pub fn append(
        &self,
        records: Vec<IntentRecord>,
    ) -> oneshot::Receiver<Result<Vec<u64>, SinkError>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { records, reply }) {
            let _ = job.reply.send(Err(SinkError::Closed));
        }
        rx
    }
}

fn run(mut log: Log, mut rx: mpsc::UnboundedReceiver<Job>, on_fatal: impl FnOnce(String)) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let ts = now_ms();
        let mut offsets = Vec::with_capacity(batch.len());
        let mut result = Ok(());
        for job in &batch {
            match log.append(&job.records, ts) {
                Ok(o) => offsets.push(o),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result.and_then(|()| log.sync());
        match result {
            Ok(()) => {
                for (job, o) in batch.drain(..).zip(offsets) {
                    let _ = job.reply.send(Ok(o));
                }
            }
            Err(e) => {
                let reason = format!("{}: {e}", log.dir().display());
                tracing::error!(error = %reason, "intent log write failed; the writer stops");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(SinkError::Io(reason.clone())));
                }
                rx.close();
                while let Ok(job) = rx.try_recv() {
                    let _ = job.reply.send(Err(SinkError::Closed));
                }
                on_fatal(reason);
                return;
            }
        }
    }
}
