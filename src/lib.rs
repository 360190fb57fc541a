//! jit-groups-controller: just-in-time, time-bound access to Google Cloud through JIT groups.
