//! An emulator of the Google Cloud REST APIs that jit-groups-controller calls, served on
//! loopback with Google's paths, JSON field names, status codes and error bodies, so that the
//! real client crates (`google-cloudidentity1`, `google-cloudresourcemanager3`,
//! `google-iamcredentials1`) work against it when their hub's base URL points at it.
//!
//! - Cloud Identity groups and memberships, with expiring memberships, nested groups and
//!   transitive membership queries;
//! - Resource Manager v3 `getIamPolicy` / `setIamPolicy` on projects, folders and
//!   organizations, with etags and conditions;
//! - IAM Credentials `generateAccessToken`;
//! - a control API under `/emulator/v1/` to seed the world, inspect it, count requests,
//!   inject faults and move the clock.
//!
//! Start one with [`Emulator::start`] and drive it with [`ControlClient`]; the binary
//! `gcp-emulator` serves the same on a fixed address.

mod app;
mod client;
mod clock;
mod cloudidentity;
mod control;
mod encoding;
mod error;
mod extract;
mod faults;
mod iamcredentials;
mod methods;
mod resourcemanager;
mod server;
mod state;

pub use client::{ControlClient, ControlError};
pub use control::types::{
    ClockAdvance, ClockState, CustomerSeed, FaultRule, GroupSeed, GroupSnapshot, MemberSeed,
    MembershipSnapshot, RequestCounts, ResourceSeed, Seed, ServiceAccountSeed, SettingsSeed,
    StateSnapshot, TokenSnapshot,
};
pub use error::{ApiError, Code};
pub use methods::Method;
pub use server::{Emulator, EmulatorError, run};
pub use state::policy::{Binding, Expr, Policy};
pub use state::seed::SeedError;
