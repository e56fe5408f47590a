//! The `search` scenario: concurrent event searches with a radius and a date window.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::Utc;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use serde_json::Value;

use crate::report::{self, Latency};

/// Where the searches are centred: French cities, as in `tunelink seed`.
const CENTRES: &[(f64, f64)] = &[
    (48.8566, 2.3522),
    (43.2965, 5.3698),
    (45.7640, 4.8357),
    (43.6047, 1.4442),
    (47.2184, -1.5536),
    (48.5734, 7.7521),
    (44.8378, -0.5792),
    (50.6292, 3.0573),
    (48.1173, -1.6778),
    (45.1885, 5.7245),
    (47.3220, 5.0415),
    (45.7772, 3.0870),
    (43.6108, 3.8767),
    (49.4432, 1.0999),
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Log in as this account (a seeded one by default).
    #[arg(long, default_value = "musician000000")]
    login: String,
    #[arg(long, default_value = "tunelink-seed")]
    password: String,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Total requests per second, spread evenly over the clients (open loop: latency counts
    /// from when a request was due, so a slow server cannot hide its backlog). 0: every
    /// client sends back to back (closed loop), which measures the saturation throughput.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of measurement (after a 3 s warm-up).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    #[arg(long, default_value_t = 25.0)]
    radius_km: f64,
    /// Length of the date window, starting between today and 60 days ahead.
    #[arg(long, default_value_t = 7)]
    window_days: i64,
    #[arg(long, default_value = "search-results.json")]
    out: PathBuf,
}

#[derive(Serialize)]
struct Results {
    scenario: &'static str,
    url: String,
    clients: usize,
    /// 0 for closed loop.
    offered_rate_rps: f64,
    duration_s: f64,
    radius_km: f64,
    window_days: i64,
    requests: u64,
    errors: u64,
    throughput_rps: f64,
    mean_results_per_page: f64,
    latency: Latency,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let login: Value = client
        .post(format!("{}/api/v1/auth/login", args.url))
        .json(&serde_json::json!({"login": args.login, "password": args.password}))
        .send()
        .await
        .context("cannot reach the server")?
        .json()
        .await?;
    let Some(token) = login["data"]["access_token"].as_str().map(str::to_owned) else {
        bail!("login failed: {login}");
    };
    let warmup = Duration::from_secs(3);
    let measure = Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..args.clients {
        let (client, token, url) = (client.clone(), token.clone(), args.url.clone());
        let (radius, window) = (args.radius_km, args.window_days);
        let mut pacing = (args.rate > 0.0).then(|| {
            let period = Duration::from_secs_f64(args.clients as f64 / args.rate);
            // Spread the clients' first requests over one period.
            let offset = period.mul_f64(id as f64 / args.clients as f64);
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            interval
        });
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(id as u64);
            let mut hist = report::histogram();
            let (mut errors, mut results) = (0u64, 0u64);
            while started.elapsed() < warmup + measure {
                let due = match pacing.as_mut() {
                    Some(interval) => interval.tick().await.into_std(),
                    None => Instant::now(),
                };
                let (lat, lon) = CENTRES[rng.random_range(0..CENTRES.len())];
                let from = Utc::now() + chrono::Duration::days(rng.random_range(0..60));
                let to = from + chrono::Duration::days(window);
                let query = [
                    ("lat", format!("{:.4}", lat + rng.random_range(-0.05..0.05))),
                    ("lon", format!("{:.4}", lon + rng.random_range(-0.05..0.05))),
                    ("radius_km", radius.to_string()),
                    ("from", from.to_rfc3339()),
                    ("to", to.to_rfc3339()),
                ];
                let resp = client
                    .get(format!("{url}/api/v1/events"))
                    .bearer_auth(&token)
                    .query(&query)
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                        Ok(body) => {
                            if started.elapsed() >= warmup {
                                results += body["data"]["items"]
                                    .as_array()
                                    .map_or(0, |a| a.len() as u64);
                            }
                            true
                        }
                        Err(_) => false,
                    },
                    _ => false,
                };
                if started.elapsed() >= warmup {
                    if ok {
                        report::record(&mut hist, due.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (hist, errors, results)
        }));
    }
    let mut hist = report::histogram();
    let (mut errors, mut results) = (0, 0);
    for task in tasks {
        let (h, e, r) = task.await?;
        hist.add(&h)?;
        errors += e;
        results += r;
    }
    let requests = hist.len();
    let out = Results {
        scenario: "search",
        url: args.url.clone(),
        clients: args.clients,
        offered_rate_rps: args.rate,
        duration_s: measure.as_secs_f64(),
        radius_km: args.radius_km,
        window_days: args.window_days,
        requests,
        errors,
        throughput_rps: requests as f64 / measure.as_secs_f64(),
        mean_results_per_page: if requests > 0 {
            results as f64 / requests as f64
        } else {
            0.0
        },
        latency: report::latency(&hist),
    };
    println!(
        "search: {} clients, offered {} req/s, {:.0} s: {} requests ({:.0}/s), {} errors, \
         {:.1} results/page\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        out.clients,
        if args.rate > 0.0 {
            format!("{:.0}", args.rate)
        } else {
            "max (closed loop)".to_owned()
        },
        out.duration_s,
        out.requests,
        out.throughput_rps,
        out.errors,
        out.mean_results_per_page,
        out.latency.p50_ms,
        out.latency.p90_ms,
        out.latency.p99_ms,
        out.latency.max_ms
    );
    report::write_json(&args.out, &out)
}
