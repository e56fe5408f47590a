//! The `connect` scenario: open N authenticated sockets at a set rate, hold them, and report
//! the handshake rate, failures, drops and (optionally) the server's memory per socket.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    fixture::Fixture,
    report::{self, Latency, count},
    socket,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub servers: socket::Servers,
    /// First fixture user to connect: several processes can share one fixture.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// How many users to connect (default: all from `--offset`).
    #[arg(long)]
    pub count: Option<usize>,
    /// New sockets per second.
    #[arg(long, default_value_t = 500.0)]
    pub ramp: f64,
    /// Seconds to hold the sockets once all are open.
    #[arg(long, default_value_t = 60)]
    pub hold: u64,
    /// Server process ids whose memory is read before and while the sockets are open.
    #[arg(long = "server-pid", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    #[arg(long, default_value = "connect-results.json")]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub scenario: &'static str,
    pub urls: Vec<String>,
    pub sockets: usize,
    pub connected: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// Sockets the server closed (or lost) while they were held.
    pub dropped: u64,
    pub drops: BTreeMap<String, u64>,
    pub ramp_s: f64,
    pub handshakes_per_s: f64,
    /// TCP connect to `ready`.
    pub handshake: Latency,
    pub hold_s: f64,
    pub open_at_end: u64,
    pub server_memory: Option<ServerMemory>,
}

#[derive(Debug, Serialize)]
pub struct ServerMemory {
    pub rss_before_kib: u64,
    pub rss_with_sockets_kib: u64,
    pub per_socket_kib: f64,
}

#[derive(Default)]
struct Tally {
    connected: AtomicU64,
    failed: AtomicU64,
    open: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    drops: Mutex<BTreeMap<String, u64>>,
}

fn memory(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| socket::rss_kib(p)).sum()
}

/// Reads the fixture, runs, prints the summary and writes the JSON results.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let fixture = Fixture::load(&args.servers.fixture)?;
    let results = run(&fixture, &args).await?;
    println!(
        "connect: {} sockets over {} server(s): {} connected, {} failed {:?}, {} dropped {:?}\n\
         ramp {:.1} s ({:.0} handshakes/s), handshake ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}\n\
         held {:.0} s, {} open at the end",
        results.sockets,
        results.urls.len(),
        results.connected,
        results.failed,
        results.failures,
        results.dropped,
        results.drops,
        results.ramp_s,
        results.handshakes_per_s,
        results.handshake.p50_ms,
        results.handshake.p90_ms,
        results.handshake.p99_ms,
        results.handshake.max_ms,
        results.hold_s,
        results.open_at_end,
    );
    if let Some(m) = &results.server_memory {
        println!(
            "server memory: {} KiB before, {} KiB with the sockets: {:.2} KiB per socket",
            m.rss_before_kib, m.rss_with_sockets_kib, m.per_socket_kib
        );
    }
    report::write_json(&args.out, &results)
}

pub async fn run(fixture: &Fixture, args: &Args) -> anyhow::Result<Results> {
    let available = fixture.users.len().saturating_sub(args.offset);
    let n = args.count.unwrap_or(available);
    if n == 0 || n > available {
        bail!(
            "the fixture has {} users: cannot take {n} from offset {}",
            fixture.users.len(),
            args.offset
        );
    }
    if args.ramp <= 0.0 {
        bail!("--ramp must be positive");
    }
    socket::ensure_fd_room(n)?;
    let endpoints = args.servers.endpoints().await?;
    let tally = Arc::new(Tally::default());
    let handshakes = Arc::new(Mutex::new(report::histogram()));
    let (stop_tx, stop) = watch::channel(false);
    let rss_before = memory(&args.server_pids);

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.ramp));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..n {
        ticker.tick().await;
        let user = &fixture.users[args.offset + i];
        let (target, source) = endpoints.pick(args.offset + i);
        let (target, token) = (target.clone(), user.token.clone());
        let (tally, handshakes, mut stop) = (tally.clone(), handshakes.clone(), stop.clone());
        tasks.spawn(async move {
            let mut ws = match socket::open(&target, source, &token).await {
                Ok((ws, took)) => {
                    if let Ok(mut h) = handshakes.lock() {
                        report::record(&mut h, took);
                    }
                    tally.connected.fetch_add(1, Ordering::Relaxed);
                    tally.open.fetch_add(1, Ordering::Relaxed);
                    ws
                }
                Err(e) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    count(&tally.failures, e.reason);
                    return;
                }
            };
            let dropped = loop {
                tokio::select! {
                    _ = stop.changed() => break None,
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Close(frame))) => {
                            break Some(format!("closed {}", frame.map_or(1005, |f| u16::from(f.code))));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Some(format!("error: {e}")),
                        None => break Some("eof".to_owned()),
                    }
                }
            };
            tally.open.fetch_sub(1, Ordering::Relaxed);
            match dropped {
                Some(reason) => count(&tally.drops, reason),
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
                }
            }
        });
    }
    // Wait for the last handshakes to finish.
    while tally.connected.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < n as u64
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ramp = started.elapsed();
    let connected = tally.connected.load(Ordering::Relaxed);
    println!(
        "{connected} of {n} sockets open after {:.1} s; holding for {} s",
        ramp.as_secs_f64(),
        args.hold
    );

    let hold_started = Instant::now();
    let mut rss_with = None;
    while hold_started.elapsed() < Duration::from_secs(args.hold) {
        let left = Duration::from_secs(args.hold).saturating_sub(hold_started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(10))).await;
        rss_with = memory(&args.server_pids).max(rss_with);
        if !left.is_zero() {
            println!(
                "  {:>3.0} s: {} open",
                hold_started.elapsed().as_secs_f64(),
                tally.open.load(Ordering::Relaxed)
            );
        }
    }
    let hold = hold_started.elapsed();
    let open_at_end = tally.open.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}

    let drops = tally.drops.lock().map(|m| m.clone()).unwrap_or_default();
    let handshake = handshakes
        .lock()
        .map(|h| report::latency(&h))
        .map_err(|_| anyhow::anyhow!("poisoned histogram"))?;
    Ok(Results {
        scenario: "connect",
        urls: endpoints.urls(),
        sockets: n,
        connected,
        failed: tally.failed.load(Ordering::Relaxed),
        failures: tally.failures.lock().map(|m| m.clone()).unwrap_or_default(),
        dropped: drops.values().sum(),
        drops,
        ramp_s: ramp.as_secs_f64(),
        handshakes_per_s: connected as f64 / ramp.as_secs_f64(),
        handshake,
        hold_s: hold.as_secs_f64(),
        open_at_end,
        server_memory: match (rss_before, rss_with) {
            (Some(before), Some(with)) if connected > 0 => Some(ServerMemory {
                rss_before_kib: before,
                rss_with_sockets_kib: with,
                per_socket_kib: with.saturating_sub(before) as f64 / connected as f64,
            }),
            _ => None,
        },
    })
}
