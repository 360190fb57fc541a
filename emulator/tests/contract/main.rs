//! Contract tests: the real Google client crates, pointed at the emulator, observe what they
//! would observe against Google.

mod control;
mod credentials;
mod faults;
mod groups;
mod iam_policies;
mod memberships;
mod support;
mod transitive;
