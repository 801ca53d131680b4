//! The facts subtree (DESIGN §3.3a–b): the consumer of `sre.domain.facts.v1`, the incident
//! ledger, and the contract every external action (paging, tickets, Grafana annotations)
//! implements.
//!
//! # Layout
//! - [`action`]: [`FactAction`](action::FactAction), what one external system does for a fact,
//!   and the [`ActionError`](action::ActionError) that decides between waiting and
//!   dead-lettering.
//! - [`entry`]: [`IncidentEntry`](entry::IncidentEntry), one incident's ledger entry, and the
//!   per-target [`TargetRecord`](entry::TargetRecord).

pub mod action;
pub mod entry;
