//! jit-groups-controller: just-in-time, time-bound access to Google Cloud through JIT groups.

pub mod google;
pub mod policy;
