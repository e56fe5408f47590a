//! Integration tests: each test starts the real application on a random port, against its
//! own PostgreSQL database, and talks to it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod admin;
mod auth;
mod blocks;
mod catalogue;
mod chat;
mod cli;
mod compression;
mod connections;
mod costs;
mod delivery;
mod envelope;
mod event_search;
mod events;
mod faults;
mod group_commit;
mod group_roles;
mod hardening;
mod health;
mod limits;
mod load;
mod metrics;
mod musicians;
mod notifications;
mod participations;
mod protocol;
mod prototype;
mod realtime;
mod routing;
mod safety;
mod sessions;
mod strict_inputs;
mod tokens;
mod users;
mod ws;
