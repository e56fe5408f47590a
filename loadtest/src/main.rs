//! `tunelink-load`: the project's load generator. See `tunelink-load --help` and README.md.

mod report;
mod search;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tunelink-load", about = "Load generator for TuneLink")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Event search: `--clients` concurrent clients, each sending `GET /api/v1/events` with a
    /// radius around a random French city and a date window, back to back, for `--duration`.
    Search(search::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Search(args) => search::run(args).await,
    }
}
