//! The embedded log: offsets survive reopening, a torn last line is cut, segments rotate and
//! are retired, and the writer confirms only after its sync — or fails everything after an error.

use std::io::Write;
use std::time::Duration;

use sre_intents::record::RecordMeta;
use sre_intents::{IntentRecord, IntentType};
use sre_sink::embedded::{read_all, read_since, segments, Log, LogOptions, Writer};
use sre_sink::SinkError;

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
    assert_eq!(Log::open(dir.path(), opts).unwrap().next_offset(), 200);
}

#[test]
fn read_since_skips_older_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append(&[record(1)], 1_000).unwrap();
    log.append(&[record(2)], 2_000).unwrap();
    log.sync().unwrap();
    let recent = read_since(dir.path(), 1_500).unwrap();
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
