//! Real time: the WebSocket protocol and the hub that fans frames out to connections.

pub mod frames;
