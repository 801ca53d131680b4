//! sre-integration, the program: command line, HTTP surface, telemetry, and the wiring of the
//! supervision tree. The SRE logic lives in `sre-actors`, supervision in `sre-supervision`,
//! configuration in `sre-config`.
//!
//! # Layout
//! - [`cli`]: `run`, `check-config`, `status`.
//! - [`app`]: builds, starts and stops the tree.
//! - [`http`]: operator endpoints and the `HttpServer` actor.
//! - [`telemetry`]: logs and OTLP traces.

pub mod app;
pub mod cli;
pub mod http;
pub mod telemetry;
