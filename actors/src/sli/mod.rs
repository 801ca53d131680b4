//! Scheduled SLI windows (spec §4, DESIGN §3.3d): the `sli` subtree.
//!
//! # Layout
//! - [`window`]: ticks, windows, the `$window` placeholder and a window's numbers (pure).
//! - [`scheduler`]: the `SliScheduler` actor (cron → Prometheus → `RecordSLIWindowRequested`).

pub mod scheduler;
pub mod window;
