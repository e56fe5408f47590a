//! Cost limits (issue 15, findings 2 and 4): expensive searches and writes that fan out to
//! other people are limited per user (and, for writes, per conversation or event), so that
//! one account can neither starve the database nor flood other people's devices.

use serde_json::json;
use tunelink::{
    config::Settings,
    limits::{RateLimits, Rule},
};

use crate::helpers::{Resp, create_event, event_body, spawn_with, start_conversation};

fn only(set: impl FnOnce(&mut RateLimits)) -> impl FnOnce(&mut Settings) {
    move |s| {
        let mut limits = RateLimits::off();
        set(&mut limits);
        s.rate_limits = limits;
    }
}

#[track_caller]
fn limited(resp: &Resp) {
    resp.err(429, "rate_limited");
    let retry: u64 = resp
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
}

#[tokio::test]
async fn searches_are_limited_per_user_and_others_still_search() {
    let app = spawn_with(only(|l| l.searches_per_user = Rule::per_secs(3, 60))).await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    for path in [
        "/api/v1/users?q=nin",
        "/api/v1/events",
        "/api/v1/users?q=mil",
    ] {
        app.get(path, nina.token()).await.ok(200);
    }
    limited(
        &app.get(
            "/api/v1/events?lat=48.85&lon=2.35&radius_km=500",
            nina.token(),
        )
        .await,
    );
    limited(&app.get("/api/v1/users?q=nin", nina.token()).await);
    app.get("/api/v1/users?q=nin", miles.token()).await.ok(200);
    app.get("/api/v1/events", miles.token()).await.ok(200);
}

#[tokio::test]
async fn renames_edits_and_membership_changes_are_limited_per_conversation_and_user() {
    let app = spawn_with(only(|l| {
        l.changes_per_target = Rule::per_secs(3, 60);
        l.changes_per_user = Rule::per_secs(7, 60);
    }))
    .await;
    let (nina, miles, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("zoe").await,
    );
    let band = start_conversation(&app, &nina, &[&miles], Some("Band")).await;
    let rename = |title: &str| json!({ "title": title });
    for i in 0..3 {
        app.patch(
            &format!("/api/v1/conversations/{band}"),
            nina.token(),
            rename(&format!("Band {i}")),
        )
        .await
        .ok(200);
    }
    // The conversation has had its share: a fourth change, by anyone, waits.
    limited(
        &app.patch(
            &format!("/api/v1/conversations/{band}"),
            miles.token(),
            rename("Band 3"),
        )
        .await,
    );
    limited(
        &app.post(
            &format!("/api/v1/conversations/{band}/participants"),
            nina.token(),
            json!({"user_id": zoe.id}),
        )
        .await,
    );
    // Nothing was half-written: the title is the third one.
    let now = app
        .get(&format!("/api/v1/conversations/{band}"), nina.token())
        .await;
    assert_eq!(now.ok(200)["title"], "Band 2");
    // Nina's own budget (seven changes in all: one start, three renames, the refused
    // addition, another start, one edit) runs out elsewhere too.
    let duo = start_conversation(&app, &nina, &[&zoe], Some("Duo")).await;
    let message = crate::helpers::post_message(&app, &nina, &duo, "draft").await;
    let edit = format!("/api/v1/messages/{}", message["id"].as_str().unwrap());
    app.patch(&edit, nina.token(), json!({"body": "v1"}))
        .await
        .ok(200);
    limited(&app.patch(&edit, nina.token(), json!({"body": "v2"})).await);
    // Reading and sending are not changes.
    crate::helpers::post_message(&app, &nina, &duo, "still talking").await;
}

#[tokio::test]
async fn event_changes_are_limited_per_event() {
    let app = spawn_with(only(|l| l.changes_per_target = Rule::per_secs(2, 60))).await;
    let nina = app.register("nina").await;
    let event = create_event(&app, &nina, event_body("Jam", 3, 48.85, 2.35)).await;
    for title in ["Jam 1", "Jam 2"] {
        app.patch(
            &format!("/api/v1/events/{event}"),
            nina.token(),
            json!({ "title": title }),
        )
        .await
        .ok(200);
    }
    limited(
        &app.patch(
            &format!("/api/v1/events/{event}"),
            nina.token(),
            json!({"title": "Jam 3"}),
        )
        .await,
    );
    let other = create_event(&app, &nina, event_body("Other", 4, 48.85, 2.35)).await;
    app.patch(
        &format!("/api/v1/events/{other}"),
        nina.token(),
        json!({"title": "Other 1"}),
    )
    .await
    .ok(200);
}
