//! The `login` scenario: fixture users log in through the API at a steady rate (argon2 and
//! all), to see what a login burst does to everything else.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::bail;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{
    fixture::Fixture,
    report::{self, Latency},
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Written by `tunelink load-fixture`: its users log in with its password.
    #[arg(long, default_value = "fixture.json")]
    pub fixture: PathBuf,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Logins per second (open loop: latency counts from when a login was due).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    #[arg(long, default_value = "login-results.json")]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub scenario: &'static str,
    pub url: String,
    pub offered_rate_per_s: f64,
    pub duration_s: f64,
    pub attempted: u64,
    /// Answers by HTTP status (`error` when there was none).
    pub statuses: BTreeMap<String, u64>,
    pub latency: Latency,
}

#[derive(Serialize)]
struct Login<'a> {
    login: &'a str,
    password: &'a str,
}

pub async fn main(args: Args) -> anyhow::Result<()> {
    let fixture = Fixture::load(&args.fixture)?;
    let r = run(&fixture, &args).await?;
    println!(
        "login: {} attempted at {:.0}/s for {:.0} s: {:?}\n\
         latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        r.attempted,
        r.offered_rate_per_s,
        r.duration_s,
        r.statuses,
        r.latency.p50_ms,
        r.latency.p90_ms,
        r.latency.p99_ms,
        r.latency.max_ms
    );
    report::write_json(&args.out, &r)
}

pub async fn run(fixture: &Fixture, args: &Args) -> anyhow::Result<Results> {
    if fixture.users.is_empty() || args.rate <= 0.0 {
        bail!("need fixture users and a positive --rate");
    }
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/login", args.url.trim_end_matches('/'));
    let hist = Arc::new(Mutex::new(report::histogram()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let total = (args.rate * args.duration as f64).round() as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let due = Instant::now();
        let user = &fixture.users[i as usize % fixture.users.len()];
        let request = client.post(&url).json(&Login {
            login: &user.username,
            password: &fixture.password,
        });
        let (hist, statuses) = (hist.clone(), statuses.clone());
        tasks.spawn(async move {
            let status = match request.send().await {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_owned(),
            };
            if let Ok(mut h) = hist.lock() {
                report::record(&mut h, due.elapsed());
            }
            if let Ok(mut s) = statuses.lock() {
                *s.entry(status).or_default() += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let latency = hist
        .lock()
        .map(|h| report::latency(&h))
        .map_err(|_| anyhow::anyhow!("poisoned histogram"))?;
    Ok(Results {
        scenario: "login",
        url: args.url.clone(),
        offered_rate_per_s: args.rate,
        duration_s: started.elapsed().as_secs_f64(),
        attempted: total,
        statuses: statuses.lock().map(|s| s.clone()).unwrap_or_default(),
        latency,
    })
}
