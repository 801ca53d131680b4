//! Rig parts the actor tests share.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sre_actors::ingest::dedup::{Dedup, DedupArgs, DedupMsg, Window};
use sre_actors::ingest::metrics::IngestMetrics;
use sre_supervision::{ActorSlot, ChildSpec};

/// The shared dedup actor as the program runs it beside the producers (a 5-minute window, no
/// sink to rebuild from), its metrics in `registry`: the child to put in an `ingest`
/// supervisor, and where the producers find it.
pub fn dedup(registry: &mut Registry) -> (ChildSpec, ActorSlot<DedupMsg>) {
    let slot: ActorSlot<DedupMsg> = ActorSlot::default();
    let shared = Arc::new(Window::default());
    let metrics = IngestMetrics::new(registry);
    let published = slot.clone();
    let child = ChildSpec::actor("dedup", move || {
        (
            Dedup,
            DedupArgs {
                window: Duration::from_secs(300),
                max_entries: 100_000,
                claim_lease: Duration::from_secs(60),
                shared: shared.clone(),
                slot: published.clone(),
                rebuild: Arc::new(|_| Ok(Vec::new())),
                metrics: metrics.clone(),
            },
        )
    });
    (child, slot)
}
