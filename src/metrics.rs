//! The process's metrics, through the `metrics` facade and a Prometheus recorder of this
//! instance's own (`metrics-exporter-prometheus`, text format 0.0.4; never the global
//! recorder, so that several instances in one process — the tests — keep apart). The
//! endpoint that serves them is the REST adapter's (`api/metrics.rs`).
//!
//! Handles are registered once and kept, so that the hot paths are an atomic add (counters)
//! or a lock-free push (histograms, drained into buckets at each scrape and every few
//! seconds). HTTP requests are counted per method, route template (`/api/v1/events/{id}`,
//! never the raw path, so ids do not become labels) and status; unmatched paths share one
//! `unmatched` route and invented methods one `OTHER` method, so no client can grow a
//! scrape. The socket's numbers, rate limits and pools are read at scrape time; `process_*`
//! (`metrics-process`) and `tunelink_build_info` come with every scrape.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response,
    http::{Method, StatusCode},
};

/// Latency buckets for HTTP requests, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for the time from publishing a frame to handing it to local sockets, and for
/// the message writer's transactions, in seconds.
const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every family: name, type, help. Dashboards rely on these names: keep them.
const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        HTTP_REQUESTS,
        Kind::Counter,
        "HTTP requests by method, route template and status.",
    ),
    (
        HTTP_DURATION,
        Kind::Histogram,
        "HTTP request latency by method and route template.",
    ),
    (
        "tunelink_ws_connections",
        Kind::Gauge,
        "WebSocket connections open on this instance.",
    ),
    (
        "tunelink_ws_frames_in_total",
        Kind::Counter,
        "Frames received from clients.",
    ),
    (
        "tunelink_ws_frames_out_total",
        Kind::Counter,
        "Frames queued to clients' sockets.",
    ),
    (
        "tunelink_ws_slow_consumer_disconnects_total",
        Kind::Counter,
        "Sockets closed because their queue was full (4008).",
    ),
    (
        FANOUT_LAG,
        Kind::Histogram,
        "Time from publishing a frame to handing it to this instance's sockets.",
    ),
    (
        "tunelink_messages_stored_total",
        Kind::Counter,
        "Messages stored by the message writer (REST and socket sends).",
    ),
    (
        "tunelink_message_batches_total",
        Kind::Counter,
        "Transactions of the message writer (group commit: several messages each).",
    ),
    (
        BATCH_TIME,
        Kind::Histogram,
        "Time the message writer takes to store one batch, from begin to commit.",
    ),
    (
        "tunelink_sends_overloaded_total",
        Kind::Counter,
        "Sends refused at once because the message writer's queue was full.",
    ),
    (
        "tunelink_message_batch_failures_total",
        Kind::Counter,
        "Batches of sends that failed as a whole (a deadlock, a bad row) and were stored again send by send.",
    ),
    (
        "tunelink_rate_limited_total",
        Kind::Counter,
        "Requests and frames refused by a rate limit, by limit.",
    ),
    (
        "tunelink_db_pool_connections",
        Kind::Gauge,
        "PostgreSQL pool connections by state.",
    ),
    (
        "tunelink_db_pool_max_connections",
        Kind::Gauge,
        "PostgreSQL pool size limit.",
    ),
    (
        "tunelink_redis_pool_connections",
        Kind::Gauge,
        "Redis pool connections by state.",
    ),
    (
        "tunelink_redis_pool_max_connections",
        Kind::Gauge,
        "Redis pool size limit.",
    ),
    (
        "tunelink_redis_pool_waiting",
        Kind::Gauge,
        "Tasks waiting for a Redis connection.",
    ),
    (
        "tunelink_build_info",
        Kind::Gauge,
        "Always 1; the labels say which build this instance runs.",
    ),
];

const HTTP_REQUESTS: &str = "tunelink_http_requests_total";
const HTTP_DURATION: &str = "tunelink_http_request_duration_seconds";
const FANOUT_LAG: &str = "tunelink_ws_fanout_lag_seconds";
const BATCH_TIME: &str = "tunelink_message_batch_seconds";

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Method and route template.
type RouteKey = (Method, Arc<str>);

/// One route template's handles.
struct RouteStats {
    latency: Histogram,
    statuses: RwLock<HashMap<u16, Counter>>,
}

/// The instance's metrics: its recorder, and the handles the hot paths use.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    /// poem's route patterns (`/api/v1/events/:param0`) → the documented paths
    /// (`/api/v1/events/{id}`).
    names: HashMap<String, Arc<str>>,
    routes: RwLock<HashMap<RouteKey, Arc<RouteStats>>>,
    /// Publish → local fan-out, per bus message (not per recipient).
    pub fanout_lag: Histogram,
    /// Client frames read from sockets.
    pub frames_in: Counter,
    /// Messages stored by the message writer, and the transactions that stored them.
    pub messages_stored: Counter,
    pub send_batches: Counter,
    /// How long the message writer's transactions take, from begin to commit.
    pub send_batch_time: Histogram,
    /// Sends refused at once because the writer's queue was full.
    pub sends_overloaded: Counter,
    /// Batches that failed as a whole (their sends were then stored one by one).
    pub send_batch_failures: Counter,
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

/// Histograms' samples wait in lock-free buffers until drained; drained this often even
/// when nobody scrapes, so that memory stays bounded.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

impl Metrics {
    /// `names`: route patterns as poem matches them → the documented paths (labels).
    pub fn new(names: HashMap<String, Arc<str>>) -> Self {
        let recorder = [
            (HTTP_DURATION, HTTP_BUCKETS),
            (FANOUT_LAG, LAG_BUCKETS),
            (BATCH_TIME, LAG_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            // Only an empty bucket list is refused; none of these is empty.
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        })
        .build_recorder();
        for (name, kind, help) in FAMILIES {
            let (name, help) = (KeyName::from(*name), SharedString::from(*help));
            match kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        let metrics = Self {
            handle: recorder.handle(),
            process,
            names,
            routes: RwLock::new(HashMap::new()),
            fanout_lag: histogram(&recorder, FANOUT_LAG, vec![]),
            frames_in: counter(&recorder, "tunelink_ws_frames_in_total", vec![]),
            messages_stored: counter(&recorder, "tunelink_messages_stored_total", vec![]),
            send_batches: counter(&recorder, "tunelink_message_batches_total", vec![]),
            send_batch_time: histogram(&recorder, BATCH_TIME, vec![]),
            sends_overloaded: counter(&recorder, "tunelink_sends_overloaded_total", vec![]),
            send_batch_failures: counter(
                &recorder,
                "tunelink_message_batch_failures_total",
                vec![],
            ),
            recorder,
        };
        metrics
            .gauge(
                "tunelink_build_info",
                vec![
                    Label::new("version", env!("CARGO_PKG_VERSION")),
                    // Set by the Dockerfile and CI (`--build-arg`/env at build time).
                    Label::new(
                        "revision",
                        option_env!("TUNELINK_REVISION").unwrap_or("unknown"),
                    ),
                ],
            )
            .set(1.0);
        metrics
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        counter(&self.recorder, name, labels)
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
        let found = read(&self.routes).get(&key).cloned();
        let stats = match found {
            Some(s) => s,
            None => write(&self.routes)
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(RouteStats {
                        latency: histogram(&self.recorder, HTTP_DURATION, route_labels(&key)),
                        statuses: RwLock::new(HashMap::new()),
                    })
                })
                .clone(),
        };
        stats.latency.record(took);
        let status = status.as_u16();
        let found = read(&stats.statuses).get(&status).cloned();
        let requests = match found {
            Some(c) => c,
            None => write(&stats.statuses)
                .entry(status)
                .or_insert_with(|| {
                    let mut labels = route_labels(&key);
                    labels.push(Label::new("status", status.to_string()));
                    counter(&self.recorder, HTTP_REQUESTS, labels)
                })
                .clone(),
        };
        requests.increment(1);
    }

    /// Drains the histograms' buffers (see [`UPKEEP_EVERY`]).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Every family, in the text format (0.0.4), with the numbers read at scrape time.
    pub fn render(&self, scrape: &Scrape) -> String {
        let set = |name, value: u64| self.gauge(name, vec![]).set(value as f64);
        set("tunelink_ws_connections", scrape.ws_open);
        self.counter("tunelink_ws_frames_out_total", vec![])
            .absolute(scrape.ws_frames_out);
        self.counter("tunelink_ws_slow_consumer_disconnects_total", vec![])
            .absolute(scrape.ws_slow_consumers);
        for (limit, n) in &scrape.rate_limited {
            self.counter(
                "tunelink_rate_limited_total",
                vec![Label::new("limit", *limit)],
            )
            .absolute(*n);
        }
        let pool = |name, idle: u64, size: u64| {
            self.gauge(name, vec![Label::new("state", "idle")])
                .set(idle as f64);
            self.gauge(name, vec![Label::new("state", "in_use")])
                .set(size.saturating_sub(idle) as f64);
        };
        pool(
            "tunelink_db_pool_connections",
            scrape.db_idle,
            u64::from(scrape.db_size),
        );
        set("tunelink_db_pool_max_connections", u64::from(scrape.db_max));
        if let Some(s) = &scrape.redis {
            pool(
                "tunelink_redis_pool_connections",
                s.available as u64,
                s.size as u64,
            );
            set("tunelink_redis_pool_max_connections", s.max_size as u64);
            set("tunelink_redis_pool_waiting", s.waiting as u64);
        }
        metrics::with_local_recorder(&self.recorder, || self.process.collect());
        self.handle.render()
    }
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn counter(recorder: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Counter {
    recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
}

fn histogram(recorder: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Histogram {
    recorder.register_histogram(&Key::from_parts(name, labels), &METADATA)
}

fn route_labels((method, route): &RouteKey) -> Vec<Label> {
    vec![
        Label::new("method", method.as_str().to_owned()),
        Label::new("route", route.to_string()),
    ]
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
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
    fn histograms_are_cumulative_with_sum_and_count_and_families_are_declared() {
        let metrics = Metrics::new(HashMap::new());
        for ms in [5, 50, 1000] {
            metrics.send_batch_time.record(Duration::from_millis(ms));
        }
        let text = metrics.render(&Scrape {
            ws_open: 0,
            ws_frames_out: 0,
            ws_slow_consumers: 0,
            rate_limited: vec![],
            db_size: 0,
            db_idle: 0,
            db_max: 1,
            redis: None,
        });
        for line in [
            "tunelink_message_batch_seconds_bucket{le=\"0.005\"} 1",
            "tunelink_message_batch_seconds_bucket{le=\"0.05\"} 2",
            "tunelink_message_batch_seconds_bucket{le=\"+Inf\"} 3",
            "tunelink_message_batch_seconds_sum 1.055",
            "tunelink_message_batch_seconds_count 3",
            "# TYPE tunelink_message_batch_seconds histogram",
            "# TYPE tunelink_messages_stored_total counter",
            "tunelink_build_info{version=",
            "# TYPE process_resident_memory_bytes gauge",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
