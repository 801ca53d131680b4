//! Payload of `RecordSLIWindowRequested` (key `slo:<name>`, idempotency key
//! `sli:<name>:<windowEnd>`, so a replay of a window carries the same `ce_id`):
//!
//! ```json
//! {"source":"prometheus","slo":"checkout-availability","service":"checkout","objective":99.9,
//!  "windowStart":"2026-11-28T21:55:00Z","windowEnd":"2026-11-28T22:00:00Z",
//!  "good":9993.0,"total":10000.0,"ratio":0.9993,"errorBudgetConsumed":0.7,"noData":false,
//!  "queries":{"good":"sum(increase(...[300s]))","total":"sum(increase(...[300s]))"}}
//! ```
//!
//! - `ratio` is `good / total`; `errorBudgetConsumed` is the share of this window's error
//!   budget spent: `(1 - ratio) / (1 - objective / 100)` (above 1 when the window missed the
//!   objective).
//! - **No data** (a query returned no series, or `total` is 0) is `noData: true` with `ratio`
//!   and `errorBudgetConsumed` null — never a ratio of 1.0. `good`/`total` are whatever the
//!   queries returned (null for no series).

use serde::Serialize;

/// The queries a window was computed with (`$window` already replaced).
#[derive(Debug, Serialize)]
pub struct SliQueries<'a> {
    /// Good events.
    pub good: &'a str,
    /// All events.
    pub total: &'a str,
}

/// `RecordSLIWindowRequested`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSliWindowRequested<'a> {
    /// Always `prometheus`.
    pub source: &'static str,
    /// SLO name.
    pub slo: &'a str,
    /// Service.
    pub service: &'a str,
    /// Objective, percent.
    pub objective: f64,
    /// Window start (RFC 3339, UTC).
    pub window_start: &'a str,
    /// Window end (RFC 3339, UTC): the tick.
    pub window_end: &'a str,
    /// Good events in the window.
    pub good: Option<f64>,
    /// All events in the window.
    pub total: Option<f64>,
    /// `good / total`.
    pub ratio: Option<f64>,
    /// Share of the window's error budget spent.
    pub error_budget_consumed: Option<f64>,
    /// Whether the window had no data.
    pub no_data: bool,
    /// The queries.
    pub queries: SliQueries<'a>,
}
