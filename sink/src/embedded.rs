//! The embedded sink: an append-only, segmented JSON Lines log under
//! `<data_dir>/<topic>/<base-offset>.jsonl`, one [`crate::stored`] line per record.
//!
//! - **Group commit.** The [`Writer`] thread takes every append waiting in its queue, writes them,
//!   calls `fsync` once and only then confirms them all: durability costs one sync per batch,
//!   not per record.
//! - **One writer.** [`Log::open`] takes an exclusive `flock` on `<dir>/LOCK`, held for the
//!   log's lifetime (the writer thread owns the log, so the lock goes when the thread ends). A
//!   second opener waits up to [`LogOptions::lock_wait`] and then fails with
//!   [`LogError::Locked`] naming the directory: two writers never share a segment.
//! - **Recovery.** [`Log::open`] cuts everything after the newest segment's last record that
//!   parses (a torn line, a run of zero bytes: what a crash leaves behind), fsyncs the cut, and
//!   continues at that record's offset + 1, so offsets stay unique and increasing. An
//!   unreadable line *between* records is left in place and skipped: the records after it were
//!   acknowledged. [`Log::recovery`] says what was cut and skipped.
//! - **Readers skip.** [`read_since`], [`read_all`] and [`Follower`] skip (and count) lines that
//!   do not parse instead of failing; a last line without its newline is not a record yet.
//! - **Rotation and retention.** A segment is closed at `segment_bytes`; closed segments older
//!   than `retention_age`, or beyond `retention_bytes` in total, are deleted oldest first.
//! - **Fail-stop.** After a write or sync error the writer confirms nothing more and reports the
//!   failure; its owner reopens the log (which recovers it) instead of trusting a file whose
//!   state the kernel may have dropped.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sre_intents::IntentRecord;
use tokio::sync::{mpsc, oneshot};

use crate::stored::{LineRef, StoredRecord};
use crate::{Durable, OnFatal, Opened, RecentKeys, Sink, SinkError, SinkWriter};

const SUFFIX: &str = ".jsonl";
/// The lock file the writer holds.
pub const LOCK_FILE: &str = "LOCK";
/// Most appends folded into one sync.
const MAX_BATCH: usize = 4096;
/// The longest line a reader buffers; a longer one (a crash's run of zero bytes, say) is
/// skipped without being held in memory.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// How often a waiting opener retries the lock.
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another writer (a previous publisher still finishing, or a second process on the same
    /// `data_dir`) holds the directory's lock.
    #[error("intent log {} is locked by another writer (waited {waited:?} for {LOCK_FILE})", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// How long the opener waited.
        waited: Duration,
    },
    /// Reading, repairing or creating a file failed.
    #[error("intent log {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl From<LogError> for SinkError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Locked { dir, .. } => SinkError::Locked(dir),
            e @ LogError::Io { .. } => SinkError::Io(e.to_string()),
        }
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Rotation and retention.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Close a segment at this size.
    pub segment_bytes: u64,
    /// Delete closed segments older than this.
    pub retention_age: Duration,
    /// Keep at most this many bytes of closed segments.
    pub retention_bytes: u64,
    /// How long [`Log::open`] waits for another writer to release the directory.
    pub lock_wait: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 * 1024 * 1024,
            retention_age: Duration::from_secs(7 * 24 * 3600),
            retention_bytes: 1024 * 1024 * 1024,
            lock_wait: Duration::from_secs(10),
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
    recovery: Recovery,
    /// Holds the directory's `flock` until the log is dropped.
    _lock: File,
}

/// What [`Log::open`] repaired in the newest segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The segment examined (the newest; `None` for a new log).
    pub segment: Option<PathBuf>,
    /// Where the segment now ends (after its last record that parses).
    pub truncated_at: u64,
    /// Bytes cut after that record (a torn line, zero bytes, any unreadable tail).
    pub truncated_bytes: u64,
    /// Unreadable lines left between records, which every reader skips.
    pub skipped_lines: u64,
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

/// One line as a reader sees it.
enum Line<'a> {
    /// A newline-terminated line (the newline excluded) starting at byte `start`; `None` when
    /// longer than [`MAX_LINE`].
    Whole { start: u64, bytes: Option<&'a [u8]> },
    /// Bytes after the last newline: a line being written, or a torn one.
    Partial,
}

/// Splits a file into lines without holding more than [`MAX_LINE`] bytes of one.
struct Lines<R> {
    reader: R,
    pos: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R, pos: u64) -> Self {
        Lines {
            reader,
            pos,
            buf: Vec::new(),
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let start = self.pos;
        let mut too_long = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok((self.pos > start).then_some(Line::Partial));
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.unwrap_or(available.len());
            if !too_long {
                if self.buf.len() + take > MAX_LINE {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            let consumed = take + usize::from(newline.is_some());
            self.reader.consume(consumed);
            self.pos += consumed as u64;
            if newline.is_some() {
                return Ok(Some(Line::Whole {
                    start,
                    bytes: (!too_long).then_some(&self.buf[..]),
                }));
            }
        }
    }
}

fn parse(bytes: Option<&[u8]>) -> Option<StoredRecord> {
    bytes.and_then(|b| serde_json::from_slice(b).ok())
}

/// Finds the newest segment's last record that parses and cuts everything after it.
fn recover(path: &Path, base: u64) -> io::Result<(Recovery, u64)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    // Read no further than the reported length (a device such as /dev/full never ends).
    let mut lines = Lines::new(
        BufReader::with_capacity(256 * 1024, io::Read::take(&file, len)),
        0,
    );
    let (mut good_end, mut last_offset) = (0u64, None::<u64>);
    let (mut skipped, mut bad_since_good) = (0u64, 0u64);
    let mut first_skipped = None;
    while let Some(line) = lines.next_line()? {
        let Line::Whole { start, bytes } = line else {
            break;
        };
        match parse(bytes) {
            Some(record) => {
                skipped += bad_since_good;
                bad_since_good = 0;
                good_end = lines.pos;
                last_offset = Some(last_offset.map_or(record.offset, |o| o.max(record.offset)));
            }
            None => {
                if bad_since_good == 0 {
                    first_skipped.get_or_insert(start);
                }
                bad_since_good += 1;
            }
        }
    }
    drop(lines);
    // `len` is what metadata reported: a symlinked device reports 0 and is left alone.
    let cut = len.saturating_sub(good_end);
    if cut > 0 {
        tracing::warn!(
            segment = %path.display(),
            offset = good_end,
            bytes = cut,
            "intent log: cutting an unreadable tail after the last record (crash garbage)"
        );
        file.set_len(good_end)?;
        file.sync_all()?;
    }
    if skipped > 0 {
        tracing::warn!(
            segment = %path.display(),
            first_at = first_skipped.unwrap_or(0),
            lines = skipped,
            "intent log: unreadable lines between records are skipped"
        );
    }
    let recovery = Recovery {
        segment: Some(path.to_owned()),
        truncated_at: good_end.min(len),
        truncated_bytes: cut,
        skipped_lines: skipped,
    };
    Ok((recovery, last_offset.map_or(base, |o| base.max(o + 1))))
}

/// Takes `<dir>/LOCK` exclusively, retrying until `wait` has passed.
fn lock(dir: &Path, wait: Duration) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(at(&path))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    dir: dir.to_owned(),
                    waited: wait,
                })
            }
            Err(TryLockError::Error(e)) => return Err(at(&path)(e)),
        }
    }
}

impl Log {
    /// Opens (creating, or recovering) the log in `dir`, holding its lock until dropped.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let lock = lock(dir, opts.lock_wait)?;
        let segs = segments(dir).map_err(at(dir))?;
        let (base, recovery, next_offset) = match segs.last() {
            Some((base, path)) => {
                let (recovery, next) = recover(path, *base).map_err(at(path))?;
                (*base, recovery, next)
            }
            None => (0, Recovery::default(), 0),
        };
        let path = segment_path(dir, base);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(at(&path))?;
        if segs.is_empty() {
            sync_dir(dir).map_err(at(dir))?;
        }
        let mut log = Log {
            dir: dir.to_owned(),
            opts,
            active: BufWriter::with_capacity(256 * 1024, file),
            active_size: recovery.truncated_at,
            next_offset,
            recovery,
            _lock: lock,
        };
        log.apply_retention().map_err(at(dir))?;
        Ok(log)
    }

    /// What opening repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
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

/// What a reader found: the records, and how many lines it could not read.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The records, oldest first.
    pub records: Vec<StoredRecord>,
    /// Newline-terminated lines that do not parse as a record (crash garbage), skipped.
    pub skipped_lines: u64,
}

/// Where a file read ended.
#[derive(Clone, Copy, Debug, Default)]
struct FileEnd {
    /// The position after the last record read (or `from`, if none).
    after_record: u64,
    /// Unreadable lines after that record (counted in the scan already).
    bad_after: u64,
}

/// Reads `path`'s whole lines from byte `from`, adding records appended at or after
/// `since_ms` to `scan`.
fn scan_file(path: &Path, from: u64, since_ms: u64, scan: &mut Scan) -> io::Result<FileEnd> {
    let mut end = FileEnd {
        after_record: from,
        bad_after: 0,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        // Deleted by retention meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(end),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(from))?;
    let mut lines = Lines::new(BufReader::with_capacity(64 * 1024, file), from);
    let (mut skipped, mut first_skipped) = (0u64, None);
    while let Some(line) = lines.next_line()? {
        let Line::Whole { start, bytes } = line else {
            break;
        };
        if bytes.is_some_and(<[u8]>::is_empty) {
            continue;
        }
        match parse(bytes) {
            Some(record) => {
                if record.timestamp >= since_ms {
                    scan.records.push(record);
                }
                end = FileEnd {
                    after_record: lines.pos,
                    bad_after: 0,
                };
            }
            None => {
                skipped += 1;
                end.bad_after += 1;
                first_skipped.get_or_insert(start);
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            segment = %path.display(),
            first_at = first_skipped.unwrap_or(0),
            lines = skipped,
            "intent log: skipped unreadable lines"
        );
        scan.skipped_lines += skipped;
    }
    Ok(end)
}

/// Every record of a log directory, oldest first; unreadable lines are skipped (and logged).
pub fn read_all(dir: &Path) -> io::Result<Vec<StoredRecord>> {
    Ok(read_since(dir, 0)?.records)
}

/// The records appended at or after `since_ms`, oldest first, and how many unreadable lines
/// were skipped. Segments last written before `since_ms` are skipped without being read.
pub fn read_since(dir: &Path, since_ms: u64) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let since = UNIX_EPOCH + Duration::from_millis(since_ms);
    for (_, path) in segments(dir)? {
        let modified = match std::fs::metadata(&path) {
            Ok(m) => m.modified().unwrap_or(SystemTime::now()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if modified < since {
            continue;
        }
        scan_file(&path, 0, since_ms, &mut scan)?;
    }
    Ok(scan)
}

/// Reads a log directory as it grows (`intents tail --follow`): the first [`Follower::poll`]
/// returns every record, later ones what was appended since, across rotations. Each poll
/// resumes after the last record read, so a tail of garbage that recovery later cuts (and
/// overwrites with new records) is read past correctly; records come once each, by offset.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    segment: Option<PathBuf>,
    end: FileEnd,
    last_offset: Option<u64>,
}

impl Follower {
    /// A follower that has read nothing yet.
    pub fn new(dir: &Path) -> Follower {
        Follower {
            dir: dir.to_owned(),
            segment: None,
            end: FileEnd::default(),
            last_offset: None,
        }
    }

    /// The records (and newly met unreadable lines) since the last poll.
    pub fn poll(&mut self) -> io::Result<Scan> {
        let segs = segments(&self.dir)?;
        let start = self
            .segment
            .as_ref()
            .and_then(|cur| segs.iter().position(|(_, p)| p == cur))
            .unwrap_or(0);
        let mut scan = Scan::default();
        for (_, path) in &segs[start..] {
            let (from, seen_bad) = if self.segment.as_ref() == Some(path) {
                (self.end.after_record, self.end.bad_after)
            } else {
                (0, 0)
            };
            let before = scan.skipped_lines;
            self.end = scan_file(path, from, 0, &mut scan)?;
            // Unreadable lines after the last record were reported by the previous poll.
            let met = scan.skipped_lines - before;
            scan.skipped_lines = before + met.saturating_sub(seen_bad);
            self.segment = Some(path.clone());
        }
        let last = self.last_offset;
        scan.records.retain(|r| last.is_none_or(|l| r.offset > l));
        if let Some(r) = scan.records.last() {
            self.last_offset = Some(r.offset);
        }
        Ok(scan)
    }
}

/// The embedded log as a [`Sink`]: opening starts the group-commit [`Writer`]; the recent keys
/// come from [`read_since`].
#[derive(Clone, Debug)]
pub struct EmbeddedSink {
    dir: PathBuf,
    options: LogOptions,
}

impl EmbeddedSink {
    /// The log in `dir` (`<data_dir>/<topic>`).
    pub fn new(dir: PathBuf, options: LogOptions) -> EmbeddedSink {
        EmbeddedSink { dir, options }
    }
}

impl Sink for EmbeddedSink {
    fn label(&self) -> &'static str {
        "embedded"
    }

    fn open(&self, on_fatal: OnFatal) -> Result<Opened, SinkError> {
        let log = Log::open(&self.dir, self.options.clone())?;
        tracing::info!(dir = %log.dir().display(), next_offset = log.next_offset(), "intent log open");
        let recovery = log.recovery().clone();
        let (writer, _thread) = Writer::spawn(log, move |why| on_fatal(why));
        Ok(Opened {
            writer: Box::new(writer),
            recovered_bytes: recovery.truncated_bytes,
            skipped_lines: recovery.skipped_lines,
        })
    }

    fn recent_keys(&self, window: Duration) -> Result<RecentKeys, SinkError> {
        let since = SystemTime::now()
            .checked_sub(window)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let scan = read_since(&self.dir, since)
            .map_err(|e| SinkError::Io(format!("{}: {e}", self.dir.display())))?;
        let keys = scan
            .records
            .into_iter()
            .filter_map(|mut r| {
                r.headers
                    .remove("idempotency_key")
                    .map(|k| (k, r.timestamp))
            })
            .collect();
        Ok(RecentKeys {
            keys,
            skipped_lines: scan.skipped_lines,
        })
    }
}

impl SinkWriter for Writer {
    fn append(&self, records: Vec<IntentRecord>) -> Durable {
        let durable = Writer::append(self, records);
        Box::pin(async move { durable.await.unwrap_or(Err(SinkError::Closed)).map(|_| ()) })
    }

    fn flush(&self, timeout: Duration) -> Durable {
        // An empty append is confirmed after every append queued before it.
        let done = Writer::append(self, Vec::new());
        Box::pin(async move {
            match tokio::time::timeout(timeout, done).await {
                Ok(r) => r.unwrap_or(Err(SinkError::Closed)).map(|_| ()),
                Err(_) => Err(SinkError::Timeout(timeout)),
            }
        })
    }
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
