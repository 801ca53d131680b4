//! `EmbeddedFacts`: the facts source without Kafka (the laptop default, and tests).
//!
//! It reads `<facts.data_dir>/<facts.topic>/`, a log in the embedded intent log's line format
//! (one partition; `sre-integration facts append` writes it), with a
//! [`Follower`](sre_sink::embedded::Follower), and hands each record to the
//! [`FactHandler`] in order. The committed position (the next offset to handle) is kept in
//! `<facts.data_dir>/<facts.topic>.position`, written atomically (temporary file, fsync,
//! rename, fsync of the directory) after each batch and at stop, and read again at start: a
//! restart resumes after the last handled fact (a fact handled but not yet committed is
//! replayed, which the ledger's revisions make harmless). Dead letters go to the local log
//! `<facts.data_dir>/<dead_letter_topic>/`.
//!
//! Stopping stops taking facts, commits what is done and ends; a fact still waiting is
//! abandoned (and handled again by the next start). The reading task is tied to the actor's
//! state, so a killed actor leaves none behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use sre_sink::embedded::Follower;
use sre_sink::stored::StoredRecord;
use tokio::sync::watch;

use super::dlq::DeadLetters;
use super::handler::{FactHandler, HandlerParts, RawFact};
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

async fn run(
    args: EmbeddedArgs,
    handler: Arc<FactHandler>,
    mut next: u64,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = args.parts.metrics.clone();
    let mut committed = next;
    let mut follower = Some(Follower::new(&args.dir));
    'outer: loop {
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
                let last = scan.records.last().map(|r| r.offset);
                let from = next;
                for r in scan.records.iter().filter(|r| r.offset >= from) {
                    if *stop.borrow() {
                        break 'outer;
                    }
                    let raw = raw_fact(r);
                    tokio::select! {
                        _ = handler.handle(&raw, &|_| {}) => {}
                        _ = stop.wait_for(|s| *s) => break 'outer,
                    }
                    next = r.offset + 1;
                    if let Some(last) = last {
                        metrics.lag(0, last as i64 + 1 - next as i64);
                    }
                }
                commit(&args.position, next, &mut committed).await;
            }
            Err(e) => {
                tracing::warn!(dir = %args.dir.display(), error = %e, "facts log unreadable; trying again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(args.poll_interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    commit(&args.position, next, &mut committed).await;
    tracing::info!(next_offset = next, "embedded facts source stopped");
}
