//! Real time: the WebSocket adapter. The socket route, its connections (one task each:
//! client frames in, queued frames out, and the sync machine that decides what each one
//! owes its client),
//! presence, and the periodic upkeep against PostgreSQL. Fan-out is the hub's
//! (`crate::hub`).

pub mod connection;
mod incoming;
pub mod presence;
pub mod route;
pub mod sync;
pub mod upkeep;
pub mod writer;
