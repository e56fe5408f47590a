//! `GET /metrics`: the Prometheus families after some traffic, route templates instead of
//! raw paths, and the optional token.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tunelink::{config::Secret, limits::Rule};
use uuid::Uuid;

use crate::{
    helpers::{TestApp, redis_url, spawn_app, spawn_with, start_conversation},
    ws::Ws,
};

pub async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = app.raw(Method::GET, "/metrics");
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    }
    (status, resp.text().await.unwrap())
}

/// The value of the sample line that starts with `series` (name and labels).
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_cover_http_sockets_fan_out_limits_and_pools() {
    let app = spawn_with(|s| {
        s.redis_url = Some(Secret::new(redis_url()));
        s.rate_limits.messages_per_user = Rule::per_secs(1, 60);
    })
    .await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let missing = Uuid::new_v4();
    for _ in 0..2 {
        app.get(&format!("/api/v1/events/{missing}"), nina.token())
            .await
            .err(404, "not_found");
    }
    app.get("/no/such/route", None)
        .await
        .err(404, "route_not_found");
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    let mut ws = Ws::connect(&app, &miles.access).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    app.post(&path, nina.token(), json!({"body": "hello"}))
        .await
        .ok(201);
    assert!(ws.next_of(&["message.created"]).await.is_some());
    app.post(&path, nina.token(), json!({"body": "again"}))
        .await
        .err(429, "rate_limited");

    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &text,
            r#"tunelink_http_requests_total{method="GET",route="/api/v1/events/{id}",status="404"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"tunelink_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"}"#
        ),
        2.0
    );
    assert!(text.contains(r#"route="unmatched",status="404"}"#));
    assert!(!text.contains(&missing.to_string()), "no ids in labels");
    assert!(!text.contains("/no/such/route"), "no raw paths in labels");
    assert_eq!(
        sample(
            &text,
            r#"tunelink_http_request_duration_seconds_count{method="GET",route="/api/v1/events/{id}"}"#
        ),
        2.0
    );
    assert!(text.contains(
        r#"tunelink_http_request_duration_seconds_bucket{method="GET",route="/api/v1/events/{id}",le="+Inf"} 2"#
    ));

    assert_eq!(sample(&text, "tunelink_ws_connections"), 1.0);
    assert!(sample(&text, "tunelink_ws_frames_in_total") >= 1.0);
    assert!(sample(&text, "tunelink_ws_frames_out_total") >= 1.0);
    assert_eq!(
        sample(&text, "tunelink_ws_slow_consumer_disconnects_total"),
        0.0
    );
    assert!(sample(&text, "tunelink_ws_fanout_lag_seconds_count") >= 1.0);
    assert!(text.contains(r#"tunelink_ws_fanout_lag_seconds_bucket{le="+Inf"}"#));
    assert_eq!(
        sample(&text, r#"tunelink_rate_limited_total{limit="messages"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"tunelink_rate_limited_total{limit="login_ip"}"#),
        0.0
    );
    assert!(sample(&text, r#"tunelink_db_pool_connections{state="idle"}"#) >= 0.0);
    assert!(sample(&text, r#"tunelink_db_pool_connections{state="in_use"}"#) >= 0.0);
    assert_eq!(sample(&text, "tunelink_db_pool_max_connections"), 5.0);
    assert!(sample(&text, r#"tunelink_redis_pool_connections{state="idle"}"#) >= 1.0);
    assert_eq!(sample(&text, "tunelink_redis_pool_max_connections"), 16.0);
    // The process and the build it runs.
    assert!(sample(&text, "process_resident_memory_bytes") > 1e6);
    assert!(sample(&text, "process_open_fds") >= 1.0);
    assert!(sample(&text, "process_start_time_seconds") > 1.7e9);
    assert!(text.contains(&format!(
        "tunelink_build_info{{version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    // Every sample belongs to a family declared with HELP and TYPE.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
            .unwrap_or(name);
        assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
    }

    ws.close().await;
    let mut closed = false;
    for _ in 0..50 {
        let (_, text) = scrape(&app, None).await;
        if sample(&text, "tunelink_ws_connections") == 0.0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the closed socket is no longer counted");
}

#[tokio::test]
async fn metrics_stay_out_of_the_api_document_and_may_want_a_token() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", None).await.body;
    assert!(spec["paths"].get("/metrics").is_none());

    let guarded = spawn_with(|s| s.metrics_token = Some(Secret::new("scrape-me"))).await;
    let (status, _) = scrape(&guarded, None).await;
    assert_eq!(status, 401);
    let refused = guarded.get("/metrics", Some("wrong")).await;
    refused.err(401, "unauthenticated");
    let (status, text) = scrape(&guarded, Some("scrape-me")).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE tunelink_http_requests_total counter"));
}

/// Anyone can invent HTTP methods; each must not become a label value of its own, or one
/// client grows every scrape without bound (issue 14: 40 invented methods took a scrape
/// from 453 to 1,150 lines).
#[tokio::test]
async fn invented_methods_fold_into_one_label() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    let (_, before) = scrape(&app, None).await;
    for i in 0..40 {
        let method = Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let _ = app.raw(method.clone(), "/healthz").send().await.unwrap();
        let _ = app
            .raw(method, &format!("/nowhere/{i}"))
            .send()
            .await
            .unwrap();
    }
    let (_, after) = scrape(&app, None).await;
    assert!(!after.contains("INVENTED"), "{after}");
    assert!(after.contains("method=\"OTHER\""), "{after}");
    let grown = after.lines().count() as i64 - before.lines().count() as i64;
    assert!(grown < 60, "the scrape grew by {grown} lines");
}
