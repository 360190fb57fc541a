//! The control and inspection API under `/emulator/v1/`: seeding, state, request counters,
//! fault rules, reset and the clock. It needs no token.

mod routes;
pub mod types;

pub use routes::routes;
