//! Rate limits: each answers 429 in the envelope with `Retry-After` and recovers after its
//! window; the socket refuses frames with `rate_limited` and stays open; sockets per user;
//! two instances sharing limits through Redis; per-instance counting when Redis is down.
//!
//! Windows are 1 s so that waiting one out stays short; no test asserts on timing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tunelink::{
    config::{Secret, Settings},
    limits::{RateLimits, Rule},
};

use crate::{
    helpers::{
        Resp, TestApp, User, redis_url, spawn_app, spawn_sibling_with, spawn_with,
        start_conversation,
    },
    ws::Ws,
};

/// Only the limits a test sets apply.
fn only(set: impl FnOnce(&mut RateLimits)) -> impl FnOnce(&mut Settings) {
    move |s| {
        let mut limits = RateLimits::off();
        set(&mut limits);
        s.rate_limits = limits;
    }
}

fn per_second(max: u32) -> Rule {
    Rule::per_secs(max, 1)
}

/// Asserts a 429 in the envelope and returns its `Retry-After`.
#[track_caller]
fn limited(resp: &Resp) -> u64 {
    resp.err(429, "rate_limited");
    let secs: u64 = resp
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!(secs >= 1, "{secs}");
    secs
}

/// Waits as long as the server said.
async fn wait_out(retry_after: u64) {
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(50)).await;
}

async fn login_from(app: &TestApp, login: &str, password: &str, forwarded_for: &str) -> Resp {
    app.send(
        app.raw(Method::POST, "/api/v1/auth/login")
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"login": login, "password": password})),
    )
    .await
}

#[tokio::test]
async fn logins_are_limited_per_name_whether_the_account_exists_or_not() {
    let app = spawn_with(only(|l| l.login_per_name = per_second(2))).await;
    let nina = app.register("nina").await;
    for name in ["nina", "ghost"] {
        for _ in 0..2 {
            app.login(name, "wrong password")
                .await
                .err(401, "invalid_credentials");
        }
    }
    // The third attempt on each name: the same answer for an account that exists and for
    // one that does not, so the limit tells nothing about which accounts exist.
    let existing = app.login("NINA", &nina.password).await;
    let unknown = app.login("ghost", "wrong password").await;
    let wait = limited(&existing).max(limited(&unknown));
    assert_eq!(existing.body, unknown.body);
    // Another name is not affected.
    app.login("miles", "wrong password")
        .await
        .err(401, "invalid_credentials");

    wait_out(wait).await;
    app.login("nina", &nina.password).await.ok(200);
}

#[tokio::test]
async fn logins_are_limited_per_client_address_behind_a_trusted_proxy() {
    let app = spawn_with(|s| {
        only(|l| l.login_per_ip = per_second(2))(s);
        s.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    // Through the proxy (the test client at 127.0.0.1), the last hop is the client; what a
    // client writes before it proves nothing.
    for first in ["1.1.1.1", "2.2.2.2"] {
        let resp = login_from(
            &app,
            "x",
            "wrong password",
            &format!("{first}, 203.0.113.5"),
        )
        .await;
        resp.err(401, "invalid_credentials");
    }
    let wait = limited(&login_from(&app, "x", "wrong password", "9.9.9.9, 203.0.113.5").await);
    // Another client behind the same proxy has its own count.
    login_from(&app, "x", "wrong password", "203.0.113.6")
        .await
        .err(401, "invalid_credentials");
    wait_out(wait).await;
    login_from(&app, "x", "wrong password", "203.0.113.5")
        .await
        .err(401, "invalid_credentials");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_with(only(|l| l.login_per_ip = per_second(2))).await;
    for client in ["1.1.1.1", "2.2.2.2"] {
        login_from(&app, "x", "wrong password", client)
            .await
            .err(401, "invalid_credentials");
    }
    limited(&login_from(&app, "x", "wrong password", "3.3.3.3").await);
}

#[tokio::test]
async fn registrations_are_limited_per_address_on_both_paths() {
    let app = spawn_with(only(|l| l.register_per_ip = per_second(2))).await;
    app.register("nina").await;
    let form = [
        ("username", "miles"),
        ("email", "miles@example.com"),
        ("password", "password-of-miles"),
    ];
    let prototype = app.raw(Method::POST, "/api/v1/users/register").form(&form);
    app.send(prototype).await.ok(201);
    let refused = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "zoe", "email": "zoe@example.com", "password": "password-of-zoe"}),
        )
        .await;
    let wait = limited(&refused);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 2, "a refused registration creates nothing");
    wait_out(wait).await;
    app.register("zoe").await;
}

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": token}),
    )
    .await
}

#[tokio::test]
async fn refreshes_are_limited_per_account_and_the_token_stays_usable() {
    let app = spawn_with(only(|l| l.refresh_per_account = per_second(2))).await;
    let nina = app.register("nina").await;
    let mut token = nina.refresh.clone();
    for _ in 0..2 {
        token = refresh(&app, &token).await.ok(200)["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let wait = limited(&refresh(&app, &token).await);
    wait_out(wait).await;
    // Not used up by the refused attempt (and so not "reused" either).
    refresh(&app, &token).await.ok(200);
}

#[tokio::test]
async fn refreshes_are_limited_per_address() {
    let app = spawn_with(only(|l| l.refresh_per_ip = per_second(1))).await;
    refresh(&app, "unknown-token")
        .await
        .err(401, "invalid_refresh_token");
    let wait = limited(&refresh(&app, "unknown-token").await);
    wait_out(wait).await;
    refresh(&app, "unknown-token")
        .await
        .err(401, "invalid_refresh_token");
}

#[tokio::test]
async fn password_changes_are_limited_per_account_and_per_address() {
    let app = spawn_with(only(|l| {
        l.password_per_account = per_second(1);
        l.password_per_ip = per_second(3);
    }))
    .await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let change = |user: &User, current: &str| {
        let body = json!({"current_password": current, "new_password": "a brand new password"});
        let token = user.access.clone();
        let app = &app;
        async move {
            app.put("/api/v1/users/me/password", Some(&token), body)
                .await
        }
    };
    change(&nina, "wrong").await.err(422, "validation_failed");
    let wait = limited(&change(&nina, &nina.password).await);
    // Another account from the same address: its own count, but the address's is shared.
    change(&miles, "wrong").await.err(422, "validation_failed");
    limited(&change(&miles, &miles.password).await);
    wait_out(wait).await;
    change(&nina, &nina.password).await.ok(200);
}

/// The socket still answers (after the `live` pong that `Ws::connect` asked for).
async fn assert_open(ws: &mut Ws) {
    ws.send(json!({"type": "ping", "ref": "still-open"})).await;
    loop {
        let pong = ws.next_of(&["pong"]).await.expect("a pong");
        if pong["ref"] == "still-open" {
            return;
        }
    }
}

async fn rest_send(app: &TestApp, user: &User, conv: &str, body: &str) -> Resp {
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        user.token(),
        json!({"body": body}),
    )
    .await
}

#[tokio::test]
async fn message_sends_share_one_limit_over_rest_and_the_socket() {
    let app = spawn_with(only(|l| l.messages_per_user = per_second(3))).await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    let mut ws = Ws::connect(&app, &nina.access).await;
    rest_send(&app, &nina, &conv, "one").await.ok(201);
    rest_send(&app, &nina, &conv, "two").await.ok(201);
    ws.send_message("r3", &conv, "three", Some("k3")).await;
    assert_eq!(ws.next_of(&["ack"]).await.unwrap()["ref"], "r3");

    // Over the limit on the socket: an error frame with the ref; the socket stays open.
    ws.send_message("r4", &conv, "four", Some("k4")).await;
    let refused = ws.next_of(&["error"]).await.unwrap();
    assert_eq!(
        (refused["ref"].as_str(), refused["code"].as_str()),
        (Some("r4"), Some("rate_limited"))
    );
    let wait = refused["retry_after"].as_u64().expect("retry_after");
    assert!(wait >= 1);
    assert_open(&mut ws).await;
    // And over REST too; miles has his own count.
    limited(&rest_send(&app, &nina, &conv, "five").await);
    rest_send(&app, &miles, &conv, "from miles").await.ok(201);

    wait_out(wait).await;
    ws.send_message("r4-again", &conv, "four", Some("k4")).await;
    let ack = ws.next_of(&["ack"]).await.unwrap();
    assert_eq!(ack["message"]["body"], "four");
    let stored: Vec<String> = sqlx::query_scalar("SELECT body FROM messages ORDER BY seq")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, ["one", "two", "three", "from miles", "four"]);
}

#[tokio::test]
async fn typing_is_limited_per_user_on_the_socket() {
    let app = spawn_with(only(|l| l.typing_per_user = per_second(1))).await;
    let (nina, miles, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("zoe").await,
    );
    let with_miles = start_conversation(&app, &nina, &[&miles], None).await;
    let with_zoe = start_conversation(&app, &nina, &[&zoe], None).await;
    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    let mut zoe_ws = Ws::connect(&app, &zoe.access).await;

    nina_ws
        .send(json!({"type": "typing", "conversation_id": with_miles}))
        .await;
    assert_eq!(
        miles_ws.next_of(&["typing"]).await.unwrap()["user_id"],
        nina.id.as_str()
    );
    // A second conversation escapes the per-conversation throttle, not the user's limit.
    nina_ws
        .send(json!({"type": "typing", "conversation_id": with_zoe}))
        .await;
    let refused = nina_ws.next_of(&["error"]).await.unwrap();
    assert_eq!(refused["code"], "rate_limited");
    assert!(refused["ref"].is_null());
    let wait = refused["retry_after"].as_u64().unwrap();
    assert!(
        zoe_ws
            .drain(&["typing"], Duration::from_millis(300))
            .await
            .is_empty()
    );

    wait_out(wait).await;
    nina_ws
        .send(json!({"type": "typing", "conversation_id": with_zoe}))
        .await;
    assert_eq!(
        zoe_ws.next_of(&["typing"]).await.unwrap()["user_id"],
        nina.id.as_str()
    );
}

/// Opens a socket expected to be refused: its error frame, then close code 4029.
async fn refused_socket(app: &TestApp, token: &str) -> Value {
    let mut ws = Ws::open(app, Some(token), None).await;
    let frame = ws.next().await.expect("an error frame");
    assert_eq!(frame["code"], "rate_limited", "{frame}");
    assert_eq!(ws.closed().await, 4029);
    frame
}

#[tokio::test]
async fn sockets_open_at_once_are_limited_per_user() {
    let app = spawn_with(only(|l| l.max_connections_per_user = 2)).await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let mut phone = Ws::connect(&app, &nina.access).await;
    let _tablet = Ws::connect(&app, &nina.access).await;
    let refused = refused_socket(&app, &nina.access).await;
    assert!(refused["retry_after"].as_u64().is_some());
    // Another user is not affected; the open sockets still work.
    let _miles = Ws::connect(&app, &miles.access).await;
    assert_open(&mut phone).await;

    // Once one closes, a new one is accepted (the close is counted off asynchronously).
    phone.close().await;
    let mut accepted = None;
    for _ in 0..50 {
        let mut ws = Ws::open(&app, Some(&nina.access), None).await;
        match ws.next().await {
            Some(frame) if frame["type"] == "ready" => {
                accepted = Some(ws);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(accepted.is_some(), "a socket is accepted after one closed");
}

#[tokio::test]
async fn sockets_opened_too_often_are_refused_until_the_window_ends() {
    let app = spawn_with(only(|l| l.connects_per_user = per_second(2))).await;
    let nina = app.register("nina").await;
    for _ in 0..2 {
        let mut ws = Ws::connect(&app, &nina.access).await;
        ws.close().await;
    }
    let refused = refused_socket(&app, &nina.access).await;
    wait_out(refused["retry_after"].as_u64().unwrap()).await;
    Ws::connect(&app, &nina.access).await;
}

fn with_redis(url: String) -> impl FnOnce(&mut Settings) {
    move |s| {
        only(|l| {
            l.login_per_name = Rule::per_secs(3, 1);
            l.messages_per_user = Rule::per_secs(3, 1);
        })(s);
        s.redis_url = Some(Secret::new(url));
    }
}

#[tokio::test]
async fn two_instances_share_limits_through_redis() {
    let one = spawn_with(with_redis(redis_url())).await;
    let two = spawn_sibling_with(&one, with_redis(redis_url())).await;
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    for app in [&one, &two, &one] {
        app.login("nina", "wrong password")
            .await
            .err(401, "invalid_credentials");
    }
    // The fourth attempt, on the instance that saw only one: refused all the same.
    let wait = limited(&two.login("nina", "wrong password").await);

    // Messages too: two on one instance over REST, one on the other over the socket.
    let conv = start_conversation(&one, &nina, &[&miles], None).await;
    rest_send(&one, &nina, &conv, "one").await.ok(201);
    rest_send(&one, &nina, &conv, "two").await.ok(201);
    let mut ws = Ws::connect(&two, &nina.access).await;
    ws.send_message("r3", &conv, "three", None).await;
    assert_eq!(ws.next_of(&["ack", "error"]).await.unwrap()["type"], "ack");
    ws.send_message("r4", &conv, "four", None).await;
    assert_eq!(
        ws.next_of(&["ack", "error"]).await.unwrap()["code"],
        "rate_limited"
    );

    wait_out(wait).await;
    two.login("nina", &nina.password).await.ok(200);
}

#[tokio::test]
async fn without_a_reachable_redis_limits_count_per_instance_and_nothing_fails() {
    let app = spawn_with(with_redis("redis://127.0.0.1:1".into())).await;
    for _ in 0..3 {
        app.login("nina", "wrong password")
            .await
            .err(401, "invalid_credentials");
    }
    limited(&app.login("nina", "wrong password").await);
}

#[tokio::test]
async fn every_limited_operation_documents_429_with_retry_after_and_an_example() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json", None).await.body;
    let operations = [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/register", "post"),
        ("/api/v1/users/register", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/users/me/password", "put"),
        ("/api/v1/conversations/{id}/messages", "post"),
    ];
    for (path, method) in operations {
        let answer = &spec["paths"][path][method]["responses"]["429"];
        assert!(
            answer["headers"]["Retry-After"]["schema"]["type"] == "integer",
            "{path}: {answer}"
        );
        let media = &answer["content"]["application/json; charset=utf-8"]["schema"];
        assert_eq!(media["example"]["error_code"], "rate_limited", "{path}");
        assert_eq!(media["example"]["code"], 429, "{path}");
    }
}

/// Issue 15, finding 8: alternating an account's username and email does not double the
/// guesses; the limit is the account's.
#[tokio::test]
async fn login_guesses_are_counted_per_account_whatever_name_is_typed() {
    let app = spawn_with(only(|l| l.login_per_name = Rule::per_secs(4, 60))).await;
    let nina = app.register("nina").await;
    for login in ["nina", "nina@example.com", "NINA", "nina@example.com"] {
        app.login(login, "wrong password!")
            .await
            .err(401, "invalid_credentials");
    }
    limited(&app.login("nina", &nina.password).await);
    limited(&app.login("nina@example.com", &nina.password).await);
    // Names no account has are still counted, each on its own.
    for _ in 0..4 {
        app.login("ghost", "wrong password!")
            .await
            .err(401, "invalid_credentials");
    }
    limited(&app.login("ghost", "wrong password!").await);
    app.login("ghost2", "wrong password!")
        .await
        .err(401, "invalid_credentials");
}
