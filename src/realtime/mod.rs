//! Real time: the WebSocket adapter. The socket route, its connections (a reader and a
//! writer each, with the sync machine that decides what each one owes its client),
//! presence, and the periodic upkeep against PostgreSQL. Fan-out is the hub's
//! (`crate::hub`).

pub mod connection;
pub mod presence;
pub mod route;
pub mod sync;
pub mod upkeep;
pub mod writer;
