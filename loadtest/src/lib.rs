//! `tunelink-load`: the project's load generator, as a library so that the test suite runs
//! short smoke versions of each scenario. See `tunelink-load --help` and README.md.

pub mod chaos;
pub mod chat;
pub mod connect;
pub mod fixture;
pub mod login;
pub mod report;
pub mod search;
pub mod socket;
