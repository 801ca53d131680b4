//! Generic supervision for ractor actors; knows nothing of SRE.
//!
//! A [`Supervisor`] starts its children in order, restarts a failed child alone (one-for-one)
//! after an exponential backoff with jitter, parks a child that fails more than
//! `max_restarts` times within `period` and retries it after a cool-down, and stops its
//! children top-down on shutdown. It never stops because a child did — the opposite of
//! ractor's default.
//!
//! # Layout
//! - [`policy`]: backoff and intensity.
//! - [`spec`]: child and supervisor specs (trees nest: a supervisor is a child spec).
//! - [`supervisor`]: the actor.
//! - [`observer`]: typed supervision events, which log, count and update the live tree.
//! - [`readiness`]: started, draining, critical children running, blocking conditions.
//! - [`slot`]: how callers reach an actor across its restarts.

pub mod observer;
pub mod policy;
pub mod readiness;
pub mod slot;
pub mod spec;
pub mod supervisor;

pub use observer::{ChildState, ChildStatus, Observer, SupervisionEvent, SupervisionMetrics};
pub use policy::RestartPolicy;
pub use readiness::{Readiness, ReadinessReport};
pub use slot::ActorSlot;
pub use spec::{ChildSpec, SupervisorSpec};
pub use supervisor::{wait_started, Supervisor, SupervisorMsg};
