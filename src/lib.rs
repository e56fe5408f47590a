//! TuneLink: a real-time, chat-first backend where musicians find each other and play
//! together. The binary (`src/main.rs`) is a thin shell over this library, so that tests
//! start the real application.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod bus;
pub mod catalogue;
pub mod chat;
pub mod cli;
pub mod config;
pub mod connections;
pub mod db;
pub mod domain;
pub mod env;
pub mod envelope;
pub mod error;
pub mod events;
pub mod frames;
pub mod http;
pub mod hub;
pub mod limits;
pub mod load_fixture;
pub mod metrics;
pub mod moderation;
pub mod musicians;
pub mod notifications;
pub mod origins;
pub mod realtime;
pub mod safety;
pub mod seed;
pub mod startup;
pub mod state;
pub mod telemetry;
