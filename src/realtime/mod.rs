//! Real time: the WebSocket protocol, the hub that fans frames out to connections, and
//! the connections themselves.

pub mod connection;
pub mod frames;
pub mod hub;
pub mod presence;
pub mod route;
