//! The process's metrics registry and their Prometheus text format (0.0.4), written by
//! hand: a few counters and fixed-bucket histograms made of atomics need no crate. The
//! endpoint that serves them is the REST adapter's (`api/metrics.rs`).
//!
//! The socket's numbers are the hub's atomic counters, read at scrape time; the fan-out lag
//! is one histogram observation per bus message (not per recipient), all atomics. HTTP
//! requests are counted per method, route template (`/api/v1/events/:id`, never the raw
//! path, so ids do not become labels) and status; unmatched paths share one `unmatched`
//! route. Pools are read when scraped.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response,
    http::{Method, StatusCode},
};

/// Latency buckets for HTTP requests, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for the time from publishing a frame to handing it to local sockets, in seconds.
const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram of fixed buckets; observing is a few relaxed atomic adds.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus `+Inf`; not cumulative (summed when written).
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut total = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            total += self.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {total}");
        }
        total += self
            .counts
            .get(self.bounds.len())
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {total}", braces(labels));
    }
}

/// Method and route template.
type RouteKey = (Method, Arc<str>);

struct RouteStats {
    latency: Histogram,
    statuses: Mutex<BTreeMap<u16, u64>>,
}

/// The process's metrics that are not read from elsewhere at scrape time.
pub struct Metrics {
    /// poem's route patterns (`/api/v1/events/:param0`) → the documented paths
    /// (`/api/v1/events/{id}`).
    names: HashMap<String, Arc<str>>,
    routes: RwLock<HashMap<RouteKey, Arc<RouteStats>>>,
    /// Publish → local fan-out, per bus message.
    pub fanout_lag: Histogram,
    /// Client frames read from sockets.
    pub frames_in: AtomicU64,
    /// Messages stored by the message writer, and the transactions that stored them.
    pub messages_stored: AtomicU64,
    pub send_batches: AtomicU64,
    /// How long the message writer's transactions take, from begin to commit.
    pub send_batch_time: Histogram,
    /// Sends refused at once because the writer's queue was full.
    pub sends_overloaded: AtomicU64,
    /// Batches that failed as a whole (their sends were then stored one by one).
    pub send_batch_failures: AtomicU64,
}

/// Numbers read from elsewhere when scraped.
pub struct Scrape {
    pub ws_open: u64,
    pub ws_frames_out: u64,
    pub ws_slow_consumers: u64,
    /// Refusals per rate limit name.
    pub rate_limited: Vec<(&'static str, u64)>,
    pub db_size: u32,
    pub db_idle: u64,
    pub db_max: u32,
    pub redis: Option<deadpool_redis::Status>,
}

impl Metrics {
    /// `names`: route patterns as poem matches them → the documented paths (labels).
    pub fn new(names: HashMap<String, Arc<str>>) -> Self {
        Self {
            names,
            routes: RwLock::new(HashMap::new()),
            fanout_lag: Histogram::new(LAG_BUCKETS),
            frames_in: AtomicU64::new(0),
            messages_stored: AtomicU64::new(0),
            send_batches: AtomicU64::new(0),
            send_batch_time: Histogram::new(LAG_BUCKETS),
            sends_overloaded: AtomicU64::new(0),
            send_batch_failures: AtomicU64::new(0),
        }
    }

    fn record(
        &self,
        method: &Method,
        route: Option<&PathPattern>,
        status: StatusCode,
        took: Duration,
    ) {
        let route: Arc<str> = match route.map(|p| p.0.as_ref()) {
            None | Some("" | "/") => Arc::from("unmatched"),
            Some(pattern) => self
                .names
                .get(pattern)
                .cloned()
                .unwrap_or_else(|| Arc::from(pattern)),
        };
        let key = (method_label(method), route);
        let found = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let stats = match found {
            Some(s) => s,
            None => self
                .routes
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(RouteStats {
                        latency: Histogram::new(HTTP_BUCKETS),
                        statuses: Mutex::new(BTreeMap::new()),
                    })
                })
                .clone(),
        };
        stats.latency.observe(took);
        *stats
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status.as_u16())
            .or_default() += 1;
    }

    /// Every family, in the text format.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let routes: Vec<_> = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut routes = routes;
        routes.sort_by(|a, b| {
            (a.0.1.as_ref(), a.0.0.as_str()).cmp(&(b.0.1.as_ref(), b.0.0.as_str()))
        });

        family(
            &mut out,
            "tunelink_http_requests_total",
            "counter",
            "HTTP requests by method, route template and status.",
        );
        for ((method, route), stats) in &routes {
            let statuses = stats
                .statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "tunelink_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        family(
            &mut out,
            "tunelink_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by method and route template.",
        );
        for ((method, route), stats) in &routes {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            stats
                .latency
                .write(&mut out, "tunelink_http_request_duration_seconds", &labels);
        }

        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
            family(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            &mut out,
            "tunelink_ws_connections",
            "gauge",
            "WebSocket connections open on this instance.",
            scrape.ws_open,
        );
        gauge(
            &mut out,
            "tunelink_ws_frames_in_total",
            "counter",
            "Frames received from clients.",
            self.frames_in.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tunelink_ws_frames_out_total",
            "counter",
            "Frames queued to clients' sockets.",
            scrape.ws_frames_out,
        );
        gauge(
            &mut out,
            "tunelink_ws_slow_consumer_disconnects_total",
            "counter",
            "Sockets closed because their queue was full (4008).",
            scrape.ws_slow_consumers,
        );
        family(
            &mut out,
            "tunelink_ws_fanout_lag_seconds",
            "histogram",
            "Time from publishing a frame to handing it to this instance's sockets.",
        );
        self.fanout_lag
            .write(&mut out, "tunelink_ws_fanout_lag_seconds", "");
        gauge(
            &mut out,
            "tunelink_messages_stored_total",
            "counter",
            "Messages stored by the message writer (REST and socket sends).",
            self.messages_stored.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tunelink_message_batches_total",
            "counter",
            "Transactions of the message writer (group commit: several messages each).",
            self.send_batches.load(Ordering::Relaxed),
        );
        family(
            &mut out,
            "tunelink_message_batch_seconds",
            "histogram",
            "Time the message writer takes to store one batch, from begin to commit.",
        );
        self.send_batch_time
            .write(&mut out, "tunelink_message_batch_seconds", "");
        gauge(
            &mut out,
            "tunelink_sends_overloaded_total",
            "counter",
            "Sends refused at once because the message writer's queue was full.",
            self.sends_overloaded.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tunelink_message_batch_failures_total",
            "counter",
            "Batches of sends that failed as a whole (a deadlock, a bad row) and were stored again send by send.",
            self.send_batch_failures.load(Ordering::Relaxed),
        );

        family(
            &mut out,
            "tunelink_rate_limited_total",
            "counter",
            "Requests and frames refused by a rate limit, by limit.",
        );
        for (limit, n) in &scrape.rate_limited {
            let _ = writeln!(out, "tunelink_rate_limited_total{{limit=\"{limit}\"}} {n}");
        }

        let size = u64::from(scrape.db_size);
        let idle = scrape.db_idle;
        family(
            &mut out,
            "tunelink_db_pool_connections",
            "gauge",
            "PostgreSQL pool connections by state.",
        );
        let _ = writeln!(out, "tunelink_db_pool_connections{{state=\"idle\"}} {idle}");
        let _ = writeln!(
            out,
            "tunelink_db_pool_connections{{state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
        gauge(
            &mut out,
            "tunelink_db_pool_max_connections",
            "gauge",
            "PostgreSQL pool size limit.",
            u64::from(scrape.db_max),
        );

        if let Some(s) = &scrape.redis {
            family(
                &mut out,
                "tunelink_redis_pool_connections",
                "gauge",
                "Redis pool connections by state.",
            );
            let _ = writeln!(
                out,
                "tunelink_redis_pool_connections{{state=\"idle\"}} {}",
                s.available
            );
            let _ = writeln!(
                out,
                "tunelink_redis_pool_connections{{state=\"in_use\"}} {}",
                s.size.saturating_sub(s.available)
            );
            gauge(
                &mut out,
                "tunelink_redis_pool_max_connections",
                "gauge",
                "Redis pool size limit.",
                s.max_size as u64,
            );
            gauge(
                &mut out,
                "tunelink_redis_pool_waiting",
                "gauge",
                "Tasks waiting for a Redis connection.",
                s.waiting as u64,
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The method as a label: HTTP's standard methods as they are, anything else `OTHER` (anyone
/// can invent methods, and each would otherwise be a label value of its own).
fn method_label(method: &Method) -> Method {
    // `OTHER` is a valid token: the default is never used.
    static OTHER: std::sync::LazyLock<Method> =
        std::sync::LazyLock::new(|| Method::from_bytes(b"OTHER").unwrap_or_default());
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(method) {
        method.clone()
    } else {
        OTHER.clone()
    }
}

/// Records every request (the innermost matched route template comes back on the answer).
pub struct Metered(pub Arc<Metrics>);

impl<E: Endpoint> Middleware<E> for Metered {
    type Output = MeteredEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        MeteredEndpoint {
            inner,
            metrics: self.0.clone(),
        }
    }
}

pub struct MeteredEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

impl<E: Endpoint> Endpoint for MeteredEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let started = Instant::now();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let took = started.elapsed();
        match &result {
            Ok(resp) => self
                .metrics
                .record(&method, resp.data(), resp.status(), took),
            Err(err) => self.metrics.record(&method, err.data(), err.status(), took),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"0.01\"} 1\nx_bucket{a=\"b\",le=\"0.1\"} 2\n\
             x_bucket{a=\"b\",le=\"+Inf\"} 3\nx_sum{a=\"b\"} 1.055\nx_count{a=\"b\"} 3\n"
        );
        let mut bare = String::new();
        h.write(&mut bare, "y", "");
        assert!(bare.contains("y_bucket{le=\"+Inf\"} 3\ny_sum 1.055\ny_count 3\n"));
    }
}
