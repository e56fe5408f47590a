//! Every answer is in the envelope, including errors raised by the framework itself.

use reqwest::Method;

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn framework_errors_come_in_the_envelope() {
    let app = spawn_app().await;
    // The root says where to go.
    let root = app.get("/", None).await;
    let root = root.ok(200);
    assert_eq!(root["docs"], "/docs");
    assert_eq!(root["openapi"], "/openapi.json");
    app.get("/api/v1/nothing-here", None)
        .await
        .err(404, "route_not_found");
    app.request(Method::DELETE, "/healthz", None, None)
        .await
        .err(405, "method_not_allowed");

    let bad_json = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/json")
                .body("{\"username\": "),
        )
        .await;
    bad_json.err(400, "malformed_request");
    assert_eq!(bad_json.fields(), [("body".into(), "invalid_json".into())]);

    let wrong_type = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    wrong_type.err(415, "unsupported_media_type");

    let missing_field = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/json")
                .body("{\"username\": \"nina\"}"),
        )
        .await;
    missing_field.err(422, "validation_failed");
    assert_eq!(
        missing_field.fields(),
        [
            ("email".into(), "missing".into()),
            ("password".into(), "missing".into())
        ]
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_whether_declared_or_chunked() {
    let app = spawn_with(|s| s.max_body_bytes = 1024).await;
    let big = format!("{{\"username\": \"{}\"}}", "x".repeat(4096));
    let declared = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    declared.err(413, "payload_too_large");

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.as_bytes().chunks(512).map(|c| Ok(c.to_vec())).collect();
    let stream = futures_util::stream::iter(chunks);
    let chunked = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    assert_eq!(chunked.status.as_u16() / 100, 4, "{}", chunked.body);
    assert_eq!(chunked.body["status"], "error");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let resp = app.get("/healthz", None).await;
    let id = resp.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID");
    let resp = app
        .send(
            app.raw(Method::GET, "/nope")
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(resp.headers["x-request-id"], "abc-123");
    let resp = app
        .send(
            app.raw(Method::GET, "/healthz")
                .header("x-request-id", "bad id with spaces"),
        )
        .await;
    assert_ne!(resp.headers["x-request-id"], "bad id with spaces");
}

/// Found by schemathesis: a NUL character reached PostgreSQL, which refuses it in text, and
/// the answer was a 500. Every text input is now answered in the envelope with a 4xx.
#[tokio::test]
async fn nul_characters_in_text_are_client_errors() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let conv = crate::helpers::start_conversation(&app, &nina, &[&miles], None).await;
    let nul = "a\u{0}b";
    let t = nina.token();
    let probes = [
        app.post(
            "/api/v1/auth/login",
            None,
            serde_json::json!({"login": nul, "password": "password-of-nina"}),
        )
        .await,
        app.send(
            app.raw(Method::POST, "/api/v1/auth/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=nina%00&password=password-of-nina"),
        )
        .await,
        app.post(
            "/api/v1/auth/register",
            None,
            serde_json::json!({"username": nul, "email": "x@example.com", "password": "long enough"}),
        )
        .await,
        app.patch("/api/v1/users/me", t, serde_json::json!({"bio": nul}))
            .await,
        app.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            t,
            serde_json::json!({"body": nul}),
        )
        .await,
        app.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            t,
            serde_json::json!({"body": "hi", "client_msg_id": nul}),
        )
        .await,
        app.post(
            "/api/v1/conversations",
            t,
            serde_json::json!({"participant_ids": [miles.id], "title": nul}),
        )
        .await,
        app.post(
            "/api/v1/events",
            t,
            crate::helpers::event_body(nul, 2, 45.0, 4.0),
        )
        .await,
        app.get("/api/v1/users?q=ab%00cd", t).await,
        app.get("/api/v1/events?q=ab%00cd", t).await,
    ];
    for (i, resp) in probes.iter().enumerate() {
        assert!(
            resp.status.is_client_error() || resp.status.is_success(),
            "probe {i}: {} {}",
            resp.status,
            resp.body
        );
        assert!(resp.body["status"].is_string(), "probe {i}: {}", resp.body);
    }
    probes[0].err(401, "invalid_credentials");
    probes[1].err(401, "invalid_credentials");
}
