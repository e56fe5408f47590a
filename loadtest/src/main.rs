//! `tunelink-load`: the project's load generator. See `tunelink-load --help` and README.md.

use clap::{Parser, Subcommand};
use tunelink_load::{chat, connect, login, search};

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
    /// Open the fixture's users' sockets at `--ramp` per second, hold them `--hold` seconds;
    /// report handshakes, failures, drops and the server's memory per socket.
    Connect(connect::Args),
    /// Every member of the fixture's conversations on a socket, `--rate` messages per second
    /// for `--duration`; report lost, duplicated and reordered deliveries and latencies.
    Chat(chat::Args),
    /// Fixture users log in through the API at `--rate` per second (argon2 included).
    Login(login::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Search(args) => search::run(args).await,
        Scenario::Connect(args) => connect::main(args).await,
        Scenario::Chat(args) => chat::main(args).await,
        Scenario::Login(args) => login::main(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
