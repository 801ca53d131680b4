//! The embedded log: offsets survive reopening, crash garbage at the end is cut (a torn line,
//! zero bytes with or without a newline) while unreadable lines between records are skipped and
//! counted, one writer holds a directory at a time, segments rotate and are retired, and the
//! writer confirms only after its sync — or fails everything after an error.

use std::io::Write;
use std::time::Duration;

use sre_intents::record::RecordMeta;
use sre_intents::{IntentRecord, IntentType};
use sre_sink::embedded::{
    read_all, read_since, segments, EmbeddedSink, Follower, Log, LogError, LogOptions, Recovery,
    Writer,
};
use sre_sink::stored::StoredRecord;
use sre_sink::{Sink, SinkError};

fn record(n: u32) -> IntentRecord {
    IntentRecord::new(
        RecordMeta {
            topic: "sre.domain.intents.v1",
            kind: IntentType::IngestAlertRequested,
            source: "test",
            key: format!("alert:{n:016x}"),
            idempotency_key: format!("am:{n:016x}:firing:t"),
            correlation_id: "c",
            traceparent: None,
            time: "2026-01-01T00:00:00Z",
        },
        &serde_json::json!({"n": n}),
    )
    .unwrap()
}

#[test]
fn offsets_continue_after_reopen_and_a_torn_line_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.append(&[record(1), record(2)], 1).unwrap(), vec![0, 1]);
    log.sync().unwrap();
    drop(log);

    // A crash mid-write leaves half a line behind.
    let (_, seg) = segments(dir.path()).unwrap().pop().unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"{\"offset\":2,\"tim")
        .unwrap();

    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 2);
    assert_eq!(log.append(&[record(3)], 2).unwrap(), vec![2]);
    log.sync().unwrap();
    let all = read_all(dir.path()).unwrap();
    assert_eq!(all.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(all[2].key, format!("alert:{:016x}", 3));
    assert_eq!(all[2].header("ce_type"), Some("IngestAlertRequested"));
    assert_eq!(all[2].value, serde_json::json!({"n": 3}));
}

#[test]
fn segments_rotate_and_old_ones_are_retired_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 4096,
        retention_age: Duration::from_secs(3600),
        retention_bytes: 8192,
        ..LogOptions::default()
    };
    let mut log = Log::open(dir.path(), opts.clone()).unwrap();
    for n in 0..200 {
        log.append(&[record(n)], 1).unwrap();
        log.sync().unwrap();
    }
    let segs = segments(dir.path()).unwrap();
    assert!(segs.len() >= 2, "rotated: {segs:?}");
    let closed: u64 = segs[..segs.len() - 1]
        .iter()
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(closed <= 8192, "retention by size keeps {closed} bytes");
    // What remains is contiguous and ends at the last record.
    let all = read_all(dir.path()).unwrap();
    assert_eq!(all.last().unwrap().offset, 199);
    assert!(all.windows(2).all(|w| w[1].offset == w[0].offset + 1));
    // Reopening continues after the last record.
    drop(log);
    assert_eq!(Log::open(dir.path(), opts).unwrap().next_offset(), 200);
}

#[test]
fn read_since_skips_older_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(&[record(1)], 1_000).unwrap();
    log.append(&[record(2)], 2_000).unwrap();
    log.sync().unwrap();
    let recent = read_since(dir.path(), 1_500).unwrap().records;
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].timestamp, 2_000);
}

#[tokio::test]
async fn the_writer_confirms_after_sync_and_stops_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let (fatal_tx, fatal_rx) = std::sync::mpsc::channel();
    let (writer, thread) = Writer::spawn(log, move |why| fatal_tx.send(why).unwrap());
    let pending: Vec<_> = (0..50).map(|n| writer.append(vec![record(n)])).collect();
    for (n, rx) in pending.into_iter().enumerate() {
        assert_eq!(rx.await.unwrap().unwrap(), vec![n as u64]);
    }
    assert_eq!(
        read_all(dir.path()).unwrap().len(),
        50,
        "confirmed means on disk"
    );

    drop(writer);
    thread.join().unwrap();
    assert!(
        fatal_rx.try_recv().is_err(),
        "a clean stop is not a failure"
    );
}

#[tokio::test]
async fn a_full_disk_fails_the_batch_and_everything_after_it() {
    // /dev/full accepts opens and fails every write with ENOSPC: a real I/O failure.
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join(format!("{:020}.jsonl", 0));
    std::os::unix::fs::symlink("/dev/full", &seg).unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let (fatal_tx, fatal_rx) = std::sync::mpsc::channel();
    let (writer, thread) = Writer::spawn(log, move |why| fatal_tx.send(why).unwrap());
    let first = writer.append(vec![record(1)]).await.unwrap();
    assert!(
        matches!(first, Err(SinkError::Io(ref why)) if why.contains("No space left")),
        "{first:?}"
    );
    thread.join().unwrap();
    assert!(fatal_rx.recv().unwrap().contains("No space left"));
    let later = writer.append(vec![record(2)]).await.unwrap();
    assert!(matches!(later, Err(SinkError::Closed)), "{later:?}");
}

/// A log holding records 0..n (synced, closed), and its only segment.
fn log_with(dir: &std::path::Path, n: u32) -> std::path::PathBuf {
    let mut log = Log::open(dir, LogOptions::default()).unwrap();
    let records: Vec<_> = (0..n).map(record).collect();
    log.append(&records, 1).unwrap();
    log.sync().unwrap();
    drop(log);
    segments(dir).unwrap().pop().unwrap().1
}

fn append_raw(seg: &std::path::Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(seg)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn offsets(dir: &std::path::Path) -> Vec<u64> {
    read_all(dir).unwrap().iter().map(|r| r.offset).collect()
}

/// Reopens after `garbage` was appended to a log of two records: the garbage is cut, the cut
/// reported, and the next record gets offset 2.
fn reopen_cuts(garbage: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 2);
    let good = std::fs::metadata(&seg).unwrap().len();
    append_raw(&seg, garbage);

    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(
        log.recovery(),
        &Recovery {
            segment: Some(seg.clone()),
            truncated_at: good,
            truncated_bytes: garbage.len() as u64,
            skipped_lines: 0,
        }
    );
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good, "cut on disk");
    assert_eq!(log.next_offset(), 2);
    assert_eq!(log.append(&[record(9)], 2).unwrap(), vec![2]);
    log.sync().unwrap();
    assert_eq!(offsets(dir.path()), [0, 1, 2]);
    let scan = read_since(dir.path(), 0).unwrap();
    assert_eq!(scan.skipped_lines, 0, "nothing unreadable is left");
}

#[test]
fn a_zero_filled_tail_without_newline_is_cut() {
    reopen_cuts(&[0u8; 4096]);
}

#[test]
fn a_zero_filled_tail_ending_in_a_newline_is_cut() {
    let mut garbage = vec![0u8; 3000];
    garbage.push(b'\n');
    reopen_cuts(&garbage);
}

#[test]
fn zero_bytes_then_a_torn_line_are_cut() {
    let mut garbage = vec![0u8; 100];
    garbage.extend_from_slice(b"\n\0\0{\"offset\":2,\"ti");
    reopen_cuts(&garbage);
}

#[test]
fn a_whole_but_unparsable_last_line_is_cut() {
    reopen_cuts(b"not json at all\n\n");
}

/// A record's line as the writer would have written it.
fn stored_line(offset: u64) -> Vec<u8> {
    let record = StoredRecord {
        offset,
        timestamp: 1,
        topic: "sre.domain.intents.v1".into(),
        key: format!("alert:{offset:016x}"),
        headers: [(
            "idempotency_key".to_string(),
            format!("am:{offset:016x}:firing:t"),
        )]
        .into(),
        value: serde_json::json!({"n": offset}),
    };
    let mut line = serde_json::to_vec(&record).unwrap();
    line.push(b'\n');
    line
}

#[test]
fn a_bad_line_between_records_is_skipped_and_the_records_after_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 2);
    // Records 0, 1, a line of garbage, records 2, 3 (acknowledged), garbage at the end.
    append_raw(&seg, b"\0\0\0 garbage\n");
    append_raw(&seg, &stored_line(2));
    append_raw(&seg, &stored_line(3));
    append_raw(&seg, &[0u8; 64]);

    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.recovery().skipped_lines, 1);
    assert_eq!(log.recovery().truncated_bytes, 64);
    // Offsets follow the last record (3), not the line count (5).
    assert_eq!(log.next_offset(), 4);
    assert_eq!(log.append(&[record(4)], 1).unwrap(), vec![4]);
    log.sync().unwrap();
    drop(log);

    let scan = read_since(dir.path(), 0).unwrap();
    assert_eq!(
        scan.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(scan.skipped_lines, 1);
    // The dedup rebuild reads past it too, and says so.
    let recent = EmbeddedSink::new(dir.path().to_owned(), LogOptions::default())
        .recent_keys(Duration::from_secs(365 * 24 * 3600 * 100))
        .unwrap();
    assert_eq!(recent.keys.len(), 5);
    assert_eq!(recent.keys[3].0, format!("am:{:016x}:firing:t", 3));
    assert_eq!(recent.skipped_lines, 1);
}

#[test]
fn readers_skip_and_count_unreadable_lines_and_ignore_a_line_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 1);
    append_raw(&seg, b"{\"offset\":\n");
    append_raw(&seg, &[0u8; 10]);
    append_raw(&seg, b"\n");
    append_raw(&seg, &stored_line(1));
    append_raw(&seg, b"{\"offset\":2,"); // being written

    let scan = read_since(dir.path(), 0).unwrap();
    assert_eq!(scan.records.len(), 2);
    assert_eq!(
        scan.skipped_lines, 2,
        "the partial last line is not counted"
    );

    let mut follower = Follower::new(dir.path());
    let first = follower.poll().unwrap();
    assert_eq!(
        first.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(first.skipped_lines, 2);
    let again = follower.poll().unwrap();
    assert!(again.records.is_empty() && again.skipped_lines == 0);
}

#[test]
fn a_follower_reads_new_records_once_even_after_recovery_cut_what_it_had_read() {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 2);
    append_raw(&seg, b"\0\0\0\n");
    let mut follower = Follower::new(dir.path());
    let first = follower.poll().unwrap();
    assert_eq!(first.records.len(), 2);
    assert_eq!(first.skipped_lines, 1);

    // Reopening cuts the garbage the follower read past; new records take its place.
    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(&[record(2)], 1).unwrap();
    log.sync().unwrap();
    let next = follower.poll().unwrap();
    assert_eq!(
        next.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(next.skipped_lines, 0, "nothing new is unreadable");
}

#[test]
fn a_second_opener_of_a_directory_waits_then_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = Log::open(dir.path(), LogOptions::default()).unwrap();
    let quick = LogOptions {
        lock_wait: Duration::from_millis(30),
        ..LogOptions::default()
    };
    let err = Log::open(dir.path(), quick.clone()).unwrap_err();
    assert!(
        matches!(&err, LogError::Locked { dir: d, .. } if d == dir.path()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    drop(first);
    let mut second = Log::open(dir.path(), quick).unwrap();
    assert_eq!(second.append(&[record(1)], 1).unwrap(), vec![0]);
}

#[tokio::test]
async fn the_lock_is_released_when_the_last_writer_handle_drops_and_a_waiter_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = EmbeddedSink::new(dir.path().to_owned(), LogOptions::default());
    let opened = sink.open(std::sync::Arc::new(|_| {})).unwrap();
    opened.writer.append(vec![record(0)]).await.unwrap();

    // A second opener (a restarted publisher) waits while the first writer is alive.
    let path = dir.path().to_owned();
    let waiter = std::thread::spawn(move || Log::open(&path, LogOptions::default()));
    let more = opened.writer.append(vec![record(1), record(2)]);
    assert!(
        !waiter.is_finished(),
        "the second opener got the lock early"
    );
    // Dropping the writer ends its thread (after confirming what it holds): the lock goes.
    drop(opened);
    more.await.unwrap();
    let mut log = waiter.join().unwrap().unwrap();
    assert_eq!(log.next_offset(), 3, "no offset reused");
    assert_eq!(log.append(&[record(3)], 1).unwrap(), vec![3]);
}
