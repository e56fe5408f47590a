//! The `chat` scenario: the fixture's conversations, every member on a socket, messages sent
//! at a total rate. Every receiver checks each message it gets against the conversation's
//! message numbers (1, 2, 3… with no gap), so the tool counts exactly what was lost,
//! duplicated or reordered, and measures send → receive and send → ack latency.
//!
//! With `--chaos` the members are [`crate::chaos`] clients: sockets die and resume, faults
//! run, and the same counts must still come out clean.

pub(crate) mod frames;
mod plain;
mod results;
pub(crate) mod shared;
pub(crate) mod track;
mod verify;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};
use uuid::Uuid;

pub use results::Results;
pub use verify::Persisted;

use shared::merged;
pub(crate) use shared::{BODY_PREFIX, Command, Outcome, SHARDS, Send, Shared, now_us};

use crate::{
    chaos::{self, Faults, client::Client, notify},
    fixture::Fixture,
    report::{self, count},
    socket,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub servers: socket::Servers,
    /// Use only the first N conversations of the fixture.
    #[arg(long)]
    pub conversations: Option<usize>,
    /// Messages per second, over all conversations (each member sends in turn).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// New sockets per second while connecting.
    #[arg(long, default_value_t = 1_000.0)]
    pub ramp: f64,
    /// Seconds between the last socket opening and the first message, so that the work of
    /// connecting (presence announcements) is not measured as messaging.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Seconds to wait at the end for acks and deliveries still in flight.
    #[arg(long, default_value_t = 15)]
    pub drain: u64,
    #[arg(long, default_value = "chat-results.json")]
    pub out: PathBuf,
    #[command(flatten)]
    pub chaos: chaos::Args,
}

/// Reads the fixture, runs, prints the summary and writes the JSON results.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let fixture = Fixture::load(&args.servers.fixture)?;
    let r = run(&fixture, &args).await?;
    r.print();
    report::write_json(&args.out, &r)?;
    if !r.is_clean() {
        bail!("the run was not clean: see the counts above");
    }
    Ok(())
}

/// Runs the scenario; with `--chaos`, the faults are the shell commands of the flags.
pub async fn run(fixture: &Fixture, args: &Args) -> anyhow::Result<Results> {
    let faults = if args.chaos.enabled {
        Faults::from_args(&args.chaos)?
    } else {
        Faults::default()
    };
    run_with(fixture, args, faults).await
}

/// Runs the scenario with these faults (chaos mode must be on for any to run).
pub async fn run_with(fixture: &Fixture, args: &Args, faults: Faults) -> anyhow::Result<Results> {
    let conversations = &fixture.conversations[..args
        .conversations
        .unwrap_or(usize::MAX)
        .min(fixture.conversations.len())];
    if conversations.is_empty() {
        bail!("the fixture has no conversations: write one with --group-size 2 or more");
    }
    if args.rate <= 0.0 || args.ramp <= 0.0 {
        bail!("--rate and --ramp must be positive");
    }
    let plan = match args.chaos.enabled {
        true => Some(args.chaos.plan(args.duration)?),
        false if faults.redis_stop.is_some() || faults.kill_instance.is_some() => {
            bail!("faults run in chaos mode only (--chaos)")
        }
        false => None,
    };
    let admin = match plan {
        Some(p) if p.notifications_per_s > 0.0 => match fixture.admin {
            Some(a) if a < fixture.users.len() => Some(fixture.users[a].token.clone()),
            _ => bail!(
                "chaos announcements need the fixture's administrator: write a new fixture \
                 with `tunelink load-fixture`, or pass --chaos-notifications-per-s 0"
            ),
        },
        _ => None,
    };
    // Every member of the chosen conversations gets one socket.
    let mut participants: Vec<usize> = conversations
        .iter()
        .flat_map(|c| c.members.iter().copied())
        .collect();
    participants.sort_unstable();
    participants.dedup();
    let slot: HashMap<usize, usize> = participants
        .iter()
        .enumerate()
        .map(|(slot, &user)| (user, slot))
        .collect();
    socket::ensure_fd_room(participants.len())?;
    let endpoints = Arc::new(args.servers.endpoints().await?);
    let shared = Arc::new(Shared::new(conversations));
    let counters = Arc::new(chaos::Counters {
        notifications: notify::Counters::new(participants.len()),
        ..chaos::Counters::default()
    });
    // Tags this run's `client_msg_id`s (chaos mode), so that a fixture can be reused.
    let run_tag = format!("{:08x}", rand::random::<u32>());

    // Connect everyone; members of a conversation are consecutive, so round robin over the
    // servers spreads each conversation over all of them.
    let (stop_tx, stop) = watch::channel(false);
    let mut senders = Vec::with_capacity(participants.len());
    let mut tasks = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.ramp));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let connecting = Instant::now();
    for (i, &user) in participants.iter().enumerate() {
        ticker.tick().await;
        let (tx, rx) = mpsc::channel(256);
        senders.push(tx);
        let token = fixture.users[user].token.clone();
        let (shared, stop, endpoints) = (shared.clone(), stop.clone(), endpoints.clone());
        if plan.is_some() {
            let (counters, run_tag) = (counters.clone(), run_tag.clone());
            tasks.spawn(async move {
                let client = Client::new(i, &token, &run_tag, &shared, &counters, &endpoints);
                Some(client.run(rx, stop).await)
            });
            continue;
        }
        tasks.spawn(async move {
            let (target, source) = endpoints.pick(i);
            match socket::open(target, source, &token).await {
                Ok((ws, _)) => {
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                    Some(plain::participant(i, ws, &shared, rx, stop).await)
                }
                Err(e) => {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    count(&shared.connect_failures, e.reason);
                    None
                }
            }
        });
    }
    let opened = || shared.connected.load(Ordering::Relaxed);
    while opened() + shared.failed.load(Ordering::Relaxed) < participants.len() as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Chaos clients take their notification number from their first `resumed`.
    let baselined = Instant::now() + Duration::from_secs(15);
    while plan.is_some()
        && counters.baselined.load(Ordering::Relaxed) < opened()
        && Instant::now() < baselined
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{} of {} members connected in {:.1} s; sending {:.0} messages/s for {} s after {} s{}",
        opened(),
        participants.len(),
        connecting.elapsed().as_secs_f64(),
        args.rate,
        args.duration,
        args.settle,
        if plan.is_some() {
            ", in chaos mode"
        } else {
            ""
        }
    );

    tokio::time::sleep(Duration::from_secs(args.settle)).await;

    // Chaos: faults, random disconnects and announcements, during the sending.
    let sending = Instant::now();
    let until = sending + Duration::from_secs(args.duration);
    let mut background = JoinSet::new();
    let faults_run = plan.map(|plan| {
        let disconnects = (senders.clone(), plan.disconnects_per_s);
        background.spawn(chaos::disconnect_at_random(
            disconnects.0,
            disconnects.1,
            until,
        ));
        if let Some(admin) = admin {
            let users: Vec<Uuid> = participants.iter().map(|&u| fixture.users[u].id).collect();
            let (endpoints, counters) = (endpoints.clone(), counters.clone());
            background.spawn(async move {
                let (rate, every) = (plan.notifications_per_s, plan.all_every);
                let n = &counters.notifications;
                notify::announce(&endpoints, &admin, &users, rate, every, until, n).await;
            });
        }
        tokio::spawn(chaos::run_faults(faults, plan, sending))
    });

    // Send: open loop, each conversation in turn, each member of it in turn.
    let total = (args.rate * args.duration as f64).round() as u64;
    let mut turns = vec![0usize; conversations.len()];
    let (mut issued, mut not_sent, mut next) = (0u64, 0u64, 0usize);
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while issued < total {
        tick.tick().await;
        let due = ((sending.elapsed().as_secs_f64() * args.rate) as u64).min(total);
        let due_us = now_us();
        while issued < due {
            let c = &conversations[next];
            let member = c.members[turns[next] % c.members.len()];
            turns[next] += 1;
            let send = Send {
                conversation: next,
                due_us,
            };
            if senders[slot[&member]]
                .try_send(Command::Send(send))
                .is_err()
            {
                not_sent += 1;
            }
            next = (next + 1) % conversations.len();
            issued += 1;
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            println!(
                "  {:>3.0} s: sent {}, acked {}, delivered {}",
                sending.elapsed().as_secs_f64(),
                shared.sent.load(Ordering::Relaxed),
                shared.acked.load(Ordering::Relaxed),
                shared.delivered.load(Ordering::Relaxed)
            );
        }
    }
    let duration = sending.elapsed();
    while background.join_next().await.is_some() {}
    let faults_run = match faults_run {
        Some(handle) => handle.await.unwrap_or_default(),
        None => vec![],
    };

    // Drain: wait for the acks, then for every delivery of what was acked.
    let drain_until = Instant::now() + Duration::from_secs(args.drain);
    let expected = || -> u64 {
        conversations
            .iter()
            .enumerate()
            .map(|(i, c)| {
                u64::try_from(shared.last_acked[i].load(Ordering::Relaxed)).unwrap_or(0)
                    * c.members.len() as u64
            })
            .sum()
    };
    while Instant::now() < drain_until {
        let sent = shared.sent.load(Ordering::Relaxed);
        let settled = if plan.is_some() {
            let n = &counters.notifications;
            counters.outstanding.load(Ordering::Relaxed) <= 0
                && sent + not_sent >= issued
                && n.delivered.load(Ordering::Relaxed) >= n.expected_total()
        } else {
            // Answered for good: a refused send that will be sent again is not.
            let answered =
                shared.acked.load(Ordering::Relaxed) + shared.given_up.load(Ordering::Relaxed);
            sent + not_sent + shared.write_failed.load(Ordering::Relaxed) >= issued
                && answered >= sent
        };
        if settled && shared.delivered.load(Ordering::Relaxed) >= expected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let mut outcomes = vec![];
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(outcome)) = done {
            outcomes.push(outcome);
        }
    }

    let last: Vec<i64> = shared
        .last_acked
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let t = results::tally(&outcomes, conversations, &last, &slot);
    let persisted = verify::verify(fixture, conversations, &last, &endpoints).await;
    let chaos = plan.map(|_| {
        let by_slot: HashMap<usize, &Outcome> = outcomes.iter().map(|o| (o.slot, o)).collect();
        let seen = (0..participants.len()).map(|s| {
            let seen = by_slot.get(&s).and_then(|o| o.notifications.as_ref());
            (s, seen)
        });
        let n = notify::Notifications::tally(&counters.notifications, seen);
        chaos::Results::from_counters(&counters, faults_run, n)
    });
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let map = |m: &Mutex<BTreeMap<String, u64>>| m.lock().map(|m| m.clone()).unwrap_or_default();
    Ok(Results {
        scenario: "chat",
        urls: endpoints.urls(),
        conversations: conversations.len(),
        participants: participants.len(),
        connected: opened(),
        connect_failures: map(&shared.connect_failures),
        offered_rate_per_s: args.rate,
        duration_s: duration.as_secs_f64(),
        not_sent,
        sent: shared.sent.load(Ordering::Relaxed),
        acked: shared.acked.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
        send_errors: map(&shared.send_errors),
        unacked: t.unacked,
        expected_deliveries: conversations
            .iter()
            .zip(&last)
            .map(|(c, &l)| u64::try_from(l).unwrap_or(0) * c.members.len() as u64)
            .sum(),
        delivered,
        lost: t.lost,
        duplicated: t.duplicated,
        reordered: t.reordered,
        deliveries_per_s: delivered as f64 / duration.as_secs_f64(),
        dropped: map(&shared.dropped),
        resync_required: shared.resyncs.load(Ordering::Relaxed),
        delivery: merged(&shared.delivery),
        ack: merged(&shared.ack),
        answer: merged(&shared.answer),
        retried: shared.retried.load(Ordering::Relaxed),
        persisted,
        chaos,
    })
}
