//! `EmbeddedFacts`: the facts source without Kafka (the laptop default, and tests).
//!
//! It reads `<facts.data_dir>/<facts.topic>/`, a log in the embedded intent log's line format
//! (one partition; `sre-integration facts append` writes it), with a
//! [`Follower`](sre_sink::embedded::Follower), and hands each record to the
//! [`FactHandler`] through the [`lanes`](super::lanes) (up to `facts.concurrency` at once,
//! one incident in order), at most [`HIGH_WATER`] in hand besides those that wait (which the
//! lanes bound). The committed position (the
//! offset after the longest handled prefix) is kept in
//! `<facts.data_dir>/<facts.topic>.position`, written atomically (temporary file, fsync,
//! rename, fsync of the directory) every `poll_interval` and at stop, and read again at start:
//! a restart resumes after the longest handled prefix (a fact handled but not yet committed is
//! replayed, which the ledger's revisions make harmless). Dead letters go to the local log
//! `<facts.data_dir>/<dead_letter_topic>/`.
//!
//! Stopping stops taking facts, commits what is done and ends; a fact still waiting is
//! abandoned (and handled again by the next start). The reading task is tied to the actor's
//! state, so a killed actor leaves none behind.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use sre_sink::embedded::Follower;
use sre_sink::stored::StoredRecord;
use tokio::sync::{mpsc, watch};

use super::consumer::HIGH_WATER;
use super::dlq::DeadLetters;
use super::handler::{FactHandler, HandlerParts, RawFact};
use super::lanes::{self, LaneEvent};
use super::OwnedTask;

/// How long a graceful stop waits for the current fact and the last commit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The actor.
pub struct EmbeddedFacts;

/// Its arguments.
#[derive(Clone)]
pub struct EmbeddedArgs {
    /// The facts log directory.
    pub dir: PathBuf,
    /// The position file.
    pub position: PathBuf,
    /// The dead-letter log directory and its topic name.
    pub dead_letters: (PathBuf, String),
    /// How often new records are looked for.
    pub poll_interval: Duration,
    /// The algorithm's parts.
    pub parts: HandlerParts,
}

/// Private state: the reading task and how to stop it.
pub struct EmbeddedState {
    stop: watch::Sender<bool>,
    task: Option<OwnedTask>,
}

/// The position file's content.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Position {
    /// The next offset to handle.
    pub next_offset: u64,
}

/// Reads the position file (absent: from the start).
pub fn read_position(path: &Path) -> std::io::Result<Position> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Position::default()),
        Err(e) => Err(e),
    }
}

/// Writes the position file atomically and durably.
pub fn write_position(path: &Path, position: &Position) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("position.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(position).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// A stored line as the handler takes it.
pub fn raw_fact(r: &StoredRecord) -> RawFact {
    RawFact {
        partition: 0,
        offset: r.offset as i64,
        key: Some(r.key.clone()),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect(),
        value: serde_json::to_vec(&r.value).expect("a JSON value serializes"),
    }
}

impl Actor for EmbeddedFacts {
    type Msg = ();
    type State = EmbeddedState;
    type Arguments = EmbeddedArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: EmbeddedArgs,
    ) -> Result<EmbeddedState, ActorProcessingErr> {
        let (dlq_dir, dlq_topic) = args.dead_letters.clone();
        let dlq =
            tokio::task::spawn_blocking(move || DeadLetters::local(&dlq_dir, &dlq_topic)).await??;
        let position = read_position(&args.position)
            .map_err(|e| format!("facts position {}: {e}", args.position.display()))?;
        std::fs::create_dir_all(&args.dir)
            .map_err(|e| format!("facts log {}: {e}", args.dir.display()))?;
        tracing::info!(dir = %args.dir.display(), next_offset = position.next_offset, "embedded facts source open");
        let (stop, stopped) = watch::channel(false);
        let handler = Arc::new(FactHandler::new(args.parts.clone(), dlq));
        let task = OwnedTask::spawn(run(args, handler, position.next_offset, stopped));
        Ok(EmbeddedState {
            stop,
            task: Some(task),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut EmbeddedState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.stop.send(true);
        if let Some(task) = state.task.take() {
            if !task.join(STOP_TIMEOUT).await {
                tracing::warn!("embedded facts source did not stop in time");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<()>,
        _msg: (),
        _state: &mut EmbeddedState,
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

async fn commit(path: &Path, next: u64, committed: &mut u64) {
    if next == *committed {
        return;
    }
    let (p, pos) = (path.to_owned(), Position { next_offset: next });
    match tokio::task::spawn_blocking(move || write_position(&p, &pos)).await {
        Ok(Ok(())) => *committed = next,
        Ok(Err(e)) => {
            tracing::error!(path = %path.display(), error = %e, "cannot commit the facts position")
        }
        Err(e) => tracing::error!(error = %e, "facts position writer failed"),
    }
}

/// Records read but not yet handed to the lanes, at most: the log is not read further
/// meanwhile.
const READ_AHEAD: usize = 4096;

async fn run(
    args: EmbeddedArgs,
    handler: Arc<FactHandler>,
    mut next: u64,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = args.parts.metrics.clone();
    let mut committed = next;
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let lanes = OwnedTask::spawn(lanes::run(
        0,
        args.parts.concurrency,
        rx,
        lanes::handler_fn(handler),
        Some(args.parts.board.clone()),
        move |e| {
            let _ = events_tx.send(e);
        },
    ));
    // Read from the log, not yet handed over; the next offset to hand over; how many are in
    // the lanes' hands; the offset after the last record seen.
    let mut queued: VecDeque<RawFact> = VecDeque::new();
    let mut sent = next;
    let mut in_hand = 0usize;
    // Of those, facts that wait (a throttle): they do not count against HIGH_WATER.
    let mut waits = 0usize;
    let mut seen = next;
    let mut follower = Some(Follower::new(&args.dir));
    let mut tick = tokio::time::interval(args.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while in_hand.saturating_sub(waits) < HIGH_WATER {
            let Some(raw) = queued.pop_front() else {
                break;
            };
            sent = raw.offset as u64 + 1;
            in_hand += 1;
            let _ = tx.send(raw);
        }
        tokio::select! {
            biased;
            // (Its `Ref` must not live on in the branches that await.)
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
            Some(e) = events.recv() => {
                match e {
                    LaneEvent::Handled { count, next: n } => {
                        in_hand = in_hand.saturating_sub(count);
                        next = n as u64;
                        metrics.lag(0, seen as i64 - next as i64);
                    }
                    LaneEvent::Waits(n) => waits = n,
                    LaneEvent::Waiting(_) | LaneEvent::Full(_) => {}
                }
            }
            _ = tick.tick() => {
                commit(&args.position, next, &mut committed).await;
                if queued.len() >= READ_AHEAD {
                    continue;
                }
                let mut f = follower.take().expect("follower");
                let polled = tokio::task::spawn_blocking(move || {
                    let r = f.poll();
                    (f, r)
                })
                .await;
                let scan = match polled {
                    Ok((f, r)) => {
                        follower = Some(f);
                        r
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "facts log reader failed");
                        break;
                    }
                };
                match scan {
                    Ok(scan) => {
                        if scan.skipped_lines > 0 {
                            tracing::warn!(
                                lines = scan.skipped_lines,
                                "facts log: unreadable lines skipped"
                            );
                        }
                        let from = sent.max(queued.back().map_or(0, |r| r.offset as u64 + 1));
                        for r in scan.records.iter().filter(|r| r.offset >= from) {
                            queued.push_back(raw_fact(r));
                            seen = seen.max(r.offset + 1);
                        }
                        metrics.lag(0, seen as i64 - next as i64);
                    }
                    Err(e) => {
                        tracing::warn!(dir = %args.dir.display(), error = %e, "facts log unreadable; trying again")
                    }
                }
            }
        }
    }
    // Abandon the facts in hand (the next start handles them again), commit what is done.
    drop(lanes);
    commit(&args.position, next, &mut committed).await;
    tracing::info!(next_offset = next, "embedded facts source stopped");
}
