//! jit-groups-controller: just-in-time, time-bound access to Google Cloud through JIT groups.
//!
//! - [`policy`]: the policy core (names, access lists, constraints, decisions), pure Rust;
//! - [`api`]: the custom resources;
//! - [`google`]: the Google Cloud clients;
//! - [`controller`]: the reconcilers;
//! - [`metrics`], [`server`], [`telemetry`]: what runs beside them.

pub mod api;
pub mod controller;
pub mod google;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod telemetry;
pub mod webhook;
