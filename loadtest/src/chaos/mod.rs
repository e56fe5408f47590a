//! Chaos mode of the `chat` scenario (`tunelink-load chat --chaos`): while messages flow,
//! clients drop their sockets at random and come back with `resume`, Redis is stopped and
//! started again, one server instance is killed, and an administrator sends announcements.
//! Every client keeps its own positions (per conversation event number, notification
//! number) and an outbox of unacknowledged sends retried with the same `client_msg_id`; the
//! run is clean only if no message and no notification was lost, duplicated or reordered.
//!
//! Faults are async hooks ([`Faults`]): the CLI maps its flags to shell commands, the test
//! suite stops in-process servers and its own Redis.

pub(crate) mod client;
pub(crate) mod notify;
mod receive;
mod rest;
mod results;

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;

pub use notify::Notifications;
pub(crate) use results::Counters;
pub use results::Results;

use crate::chat::shared::Command;

/// One fault: run once, at its time.
pub type Hook = Box<dyn FnOnce() -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// The faults a chaos run injects, each optional. Redis needs both hooks.
#[derive(Default)]
pub struct Faults {
    pub redis_stop: Option<Hook>,
    pub redis_start: Option<Hook>,
    pub kill_instance: Option<Hook>,
}

#[derive(clap::Args, Debug, Clone, Default)]
#[group(id = "chaos_args")]
#[command(next_help_heading = "Chaos")]
pub struct Args {
    /// Chaos mode: sockets dropped at random and resumed, outboxes retried, announcements
    /// checked, and the faults below.
    #[arg(long = "chaos")]
    pub enabled: bool,
    /// Sockets dropped by the tool per second, over all clients (0: none). Default 1.
    #[arg(long, requires = "enabled")]
    pub chaos_disconnects_per_s: Option<f64>,
    /// Shell command (`sh -c`) that stops Redis.
    #[arg(long, requires = "enabled")]
    pub chaos_redis_stop_cmd: Option<String>,
    /// Shell command that starts Redis again.
    #[arg(long, requires = "enabled")]
    pub chaos_redis_start_cmd: Option<String>,
    /// Redis' process id, instead of the commands: `kill -9` it when a start command is
    /// given, else freeze it (`kill -STOP`) and thaw it (`kill -CONT`).
    #[arg(long, requires = "enabled")]
    pub chaos_redis_pid: Option<u32>,
    /// Seconds into the sending when Redis stops (default: a third of `--duration`).
    #[arg(long, requires = "enabled")]
    pub chaos_redis_at: Option<f64>,
    /// Seconds Redis stays down. Default 3.
    #[arg(long, requires = "enabled")]
    pub chaos_redis_down: Option<f64>,
    /// Shell command that kills one of the server instances (e.g. `kill -9 <pid>`).
    #[arg(long, requires = "enabled")]
    pub chaos_kill_cmd: Option<String>,
    /// Process id of the instance to kill (`kill -9`), instead of the command.
    #[arg(long, requires = "enabled")]
    pub chaos_kill_pid: Option<u32>,
    /// Seconds into the sending when the instance is killed (default: two thirds of
    /// `--duration`).
    #[arg(long, requires = "enabled")]
    pub chaos_kill_at: Option<f64>,
    /// Announcements per second by the fixture's administrator (0: none). Default 2.
    #[arg(long, requires = "enabled")]
    pub chaos_notifications_per_s: Option<f64>,
    /// Every Nth announcement goes to everyone (`{"all":true}`), the others to one random
    /// member (0: never to everyone). Default 5.
    #[arg(long, requires = "enabled")]
    pub chaos_announce_all_every: Option<u32>,
}

/// [`Args`] with its defaults applied, for a run of `duration` seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub disconnects_per_s: f64,
    pub redis_at: Duration,
    pub redis_down: Duration,
    pub kill_at: Duration,
    pub notifications_per_s: f64,
    pub all_every: u32,
}

fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("{what}: {s} is not a time"))
}

impl Args {
    pub(crate) fn plan(&self, duration: u64) -> anyhow::Result<Plan> {
        let d = duration as f64;
        let plan = Plan {
            disconnects_per_s: self.chaos_disconnects_per_s.unwrap_or(1.0),
            redis_at: seconds(self.chaos_redis_at.unwrap_or(d / 3.0), "--chaos-redis-at")?,
            redis_down: seconds(self.chaos_redis_down.unwrap_or(3.0), "--chaos-redis-down")?,
            kill_at: seconds(
                self.chaos_kill_at.unwrap_or(2.0 * d / 3.0),
                "--chaos-kill-at",
            )?,
            notifications_per_s: self.chaos_notifications_per_s.unwrap_or(2.0),
            all_every: self.chaos_announce_all_every.unwrap_or(5),
        };
        if !(plan.disconnects_per_s >= 0.0 && plan.notifications_per_s >= 0.0) {
            bail!("chaos rates must be 0 or more");
        }
        Ok(plan)
    }
}

/// Runs `sh -c command`; fails unless it exits 0.
async fn shell(command: String) -> anyhow::Result<()> {
    let status = tokio::task::spawn_blocking({
        let command = command.clone();
        move || {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .status()
        }
    })
    .await??;
    if !status.success() {
        bail!("`{command}` exited with {status}");
    }
    Ok(())
}

fn shell_hook(command: String) -> Hook {
    Box::new(move || Box::pin(shell(command)))
}

impl Faults {
    /// The faults the command line asks for, as shell commands.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        let redis_stop = match (&args.chaos_redis_stop_cmd, args.chaos_redis_pid) {
            (Some(cmd), _) => Some(cmd.clone()),
            (None, Some(pid)) if args.chaos_redis_start_cmd.is_some() => {
                Some(format!("kill -9 {pid}"))
            }
            (None, Some(pid)) => Some(format!("kill -STOP {pid}")),
            (None, None) => None,
        };
        let redis_start = match (&args.chaos_redis_start_cmd, args.chaos_redis_pid) {
            (Some(cmd), _) => Some(cmd.clone()),
            (None, Some(pid)) => Some(format!("kill -CONT {pid}")),
            (None, None) => None,
        };
        if redis_stop.is_some() != redis_start.is_some() {
            bail!("stopping Redis needs both --chaos-redis-stop-cmd and --chaos-redis-start-cmd");
        }
        let kill = match (&args.chaos_kill_cmd, args.chaos_kill_pid) {
            (Some(_), Some(_)) => bail!("give --chaos-kill-cmd or --chaos-kill-pid, not both"),
            (Some(cmd), None) => Some(cmd.clone()),
            (None, Some(pid)) => Some(format!("kill -9 {pid}")),
            (None, None) => None,
        };
        Ok(Self {
            redis_stop: redis_stop.map(shell_hook),
            redis_start: redis_start.map(shell_hook),
            kill_instance: kill.map(shell_hook),
        })
    }
}

/// A fault as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRun {
    /// `redis_stop`, `redis_start` or `kill_instance`.
    pub fault: &'static str,
    /// Seconds into the sending, as planned and as it started.
    pub planned_at_s: f64,
    pub at_s: f64,
    pub took_s: f64,
    pub error: Option<String>,
}

/// Runs each fault at its time (from `start`, the first message); returns what ran.
pub(crate) async fn run_faults(faults: Faults, plan: Plan, start: Instant) -> Vec<FaultRun> {
    let mut schedule: Vec<(Duration, &'static str, Hook)> = vec![];
    if let (Some(stop), Some(restart)) = (faults.redis_stop, faults.redis_start) {
        schedule.push((plan.redis_at, "redis_stop", stop));
        schedule.push((plan.redis_at + plan.redis_down, "redis_start", restart));
    }
    if let Some(kill) = faults.kill_instance {
        schedule.push((plan.kill_at, "kill_instance", kill));
    }
    schedule.sort_by_key(|(at, ..)| *at);
    let mut runs = vec![];
    for (at, fault, hook) in schedule {
        tokio::time::sleep_until((start + at).into()).await;
        let began = Instant::now();
        println!(
            "  {:>5.1} s: chaos: {fault}",
            began.duration_since(start).as_secs_f64()
        );
        let outcome = hook().await;
        runs.push(FaultRun {
            fault,
            planned_at_s: at.as_secs_f64(),
            at_s: began.duration_since(start).as_secs_f64(),
            took_s: began.elapsed().as_secs_f64(),
            error: outcome.err().map(|e| format!("{e:#}")),
        });
    }
    runs
}

/// Drops a random client's socket, `rate` times a second on average (Poisson), until
/// `until`.
pub(crate) async fn disconnect_at_random(
    clients: Vec<mpsc::Sender<Command>>,
    rate: f64,
    until: Instant,
) {
    if rate <= 0.0 || clients.is_empty() {
        return;
    }
    loop {
        let gap = -(1.0 - rand::random::<f64>()).ln() / rate;
        let at = Instant::now() + Duration::from_secs_f64(gap.min(3600.0));
        if at >= until {
            return;
        }
        tokio::time::sleep_until(at.into()).await;
        let victim = rand::random_range(0..clients.len());
        let _ = clients[victim].try_send(Command::Drop);
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Args, Faults, shell};
    use crate::chat;

    #[derive(Parser)]
    struct Chat {
        #[command(flatten)]
        chat: chat::Args,
    }

    #[test]
    fn chaos_flags_parse_with_the_chat_scenario_and_need_chaos() {
        Chat::command().debug_assert();
        let parsed = Chat::try_parse_from(["chat", "--chaos", "--chaos-kill-pid", "7"]).unwrap();
        assert!(parsed.chat.chaos.enabled);
        assert_eq!(parsed.chat.chaos.chaos_kill_pid, Some(7));
        assert!(Chat::try_parse_from(["chat", "--chaos-kill-pid", "7"]).is_err());
        assert!(!Chat::try_parse_from(["chat"]).unwrap().chat.chaos.enabled);
    }

    fn args() -> Args {
        Args {
            enabled: true,
            ..Args::default()
        }
    }

    #[tokio::test]
    async fn shell_commands_fail_unless_they_exit_0() {
        assert!(shell("true".into()).await.is_ok());
        let err = shell("exit 3".into()).await.unwrap_err();
        assert!(err.to_string().contains("exit 3"), "{err}");
    }

    #[test]
    fn flags_map_to_hooks() {
        let none = Faults::from_args(&args()).unwrap();
        assert!(none.redis_stop.is_none() && none.kill_instance.is_none());
        // A pid alone freezes and thaws; with a start command it is killed.
        let frozen = Faults::from_args(&Args {
            chaos_redis_pid: Some(42),
            chaos_kill_pid: Some(43),
            ..args()
        })
        .unwrap();
        assert!(frozen.redis_stop.is_some() && frozen.redis_start.is_some());
        assert!(frozen.kill_instance.is_some());
        let half = Faults::from_args(&Args {
            chaos_redis_stop_cmd: Some("redis-cli shutdown".into()),
            ..args()
        });
        assert!(half.is_err());
    }

    #[test]
    fn defaults_put_redis_at_a_third_and_the_kill_at_two_thirds() {
        let plan = args().plan(30).unwrap();
        assert_eq!(plan.redis_at.as_secs(), 10);
        assert_eq!(plan.kill_at.as_secs(), 20);
        assert!(
            Args {
                chaos_disconnects_per_s: Some(-1.0),
                ..args()
            }
            .plan(30)
            .is_err()
        );
    }
}
