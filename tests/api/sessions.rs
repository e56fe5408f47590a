//! Sessions are checked without a query on the hot path (a short-lived in-process cache),
//! yet a logout, a password change or a role change applies at once on every instance —
//! also while Redis is down, when the cache is bypassed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, User, make_admin, pair_with};

async fn me(app: &TestApp, user: &User) -> u16 {
    app.get("/api/v1/users/me", user.token())
        .await
        .status
        .as_u16()
}

/// Waits (bounded) until `app` reports Redis as `want` in its readiness.
async fn redis_is(app: &TestApp, want: &str) {
    let mut redis = Value::Null;
    for _ in 0..200 {
        redis = app.get("/readyz", None).await.body["data"]["redis"].clone();
        if redis == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis never became {want}: {redis}");
}

#[tokio::test]
async fn a_logout_is_refused_at_once_on_the_other_instance() {
    let (_redis, one, two) = pair_with(|_| {}).await;
    let nina = one.register("nina").await;
    // Checked, and so remembered, on instance two.
    assert_eq!(me(&two, &nina).await, 200);
    assert_eq!(me(&two, &nina).await, 200);
    one.post("/api/v1/auth/logout", nina.token(), json!({}))
        .await
        .ok(200);
    let resp = two.get("/api/v1/users/me", nina.token()).await;
    resp.err(401, "session_revoked");
}

#[tokio::test]
async fn with_redis_down_every_request_checks_the_database() {
    let (mut redis, one, two) = pair_with(|_| {}).await;
    let nina = one.register("nina").await;
    assert_eq!(me(&two, &nina).await, 200);
    redis.stop();
    redis_is(&two, "down").await;
    redis_is(&one, "down").await;
    // The revocation cannot cross instances now: instance two must not trust its cache.
    one.post("/api/v1/auth/logout", nina.token(), json!({}))
        .await
        .ok(200);
    let resp = two.get("/api/v1/users/me", nina.token()).await;
    resp.err(401, "session_revoked");
}

#[tokio::test]
async fn a_demotion_applies_at_once_on_every_instance() {
    let (_redis, one, two) = pair_with(|_| {}).await;
    let (boss, miles) = (one.register("boss").await, one.register("miles").await);
    make_admin(&one, &boss).await;
    let role = |r: &str| json!({"role": r});
    one.put(
        &format!("/api/v1/users/{}/role", miles.id),
        boss.token(),
        role("admin"),
    )
    .await
    .ok(200);
    // An admin-only read on instance two, remembered there with the admin role.
    let admin_only = "/api/v1/notifications";
    let announce = json!({"user_id": boss.id, "title": "t", "body": "b"});
    two.post(admin_only, miles.token(), announce.clone())
        .await
        .ok(201);
    one.put(
        &format!("/api/v1/users/{}/role", miles.id),
        boss.token(),
        role("user"),
    )
    .await
    .ok(200);
    two.post(admin_only, miles.token(), announce)
        .await
        .err(403, "forbidden");
}
