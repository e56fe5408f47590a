//! Short runs of the load tool's scenarios (`tunelink-load`) against real servers: they
//! check correctness — every socket held, nothing lost, duplicated or reordered — never
//! timing. The numbers come from full runs, in BENCHMARKS.md.

use std::{path::PathBuf, time::Duration};

use tunelink::load_fixture;
use tunelink_load::{chat, connect, fixture::Fixture, socket::Servers};

use crate::helpers::{TestApp, redis_url, spawn_sibling_with, spawn_with};

/// What `tunelink load-fixture` writes, read back as the load tool reads it.
async fn fixture(app: &TestApp, users: usize, group_size: usize) -> Fixture {
    let written = load_fixture::create(
        &app.db,
        "hetic",
        load_fixture::Options {
            users,
            group_size,
            token_ttl: Duration::from_secs(600),
        },
    )
    .await
    .unwrap();
    serde_json::from_slice(&serde_json::to_vec(&written).unwrap()).unwrap()
}

fn chat_args(urls: Vec<String>, rate: f64, duration: u64) -> chat::Args {
    chat::Args {
        servers: Servers {
            fixture: PathBuf::new(),
            urls,
            sources: vec![],
        },
        conversations: None,
        rate,
        duration,
        ramp: 500.0,
        settle: 0,
        drain: 20,
        out: PathBuf::new(),
    }
}

#[tokio::test]
async fn connect_opens_and_holds_every_socket() {
    let app = spawn_with(|_| {}).await;
    let fixture = fixture(&app, 40, 0).await;
    let results = connect::run(
        &fixture,
        &connect::Args {
            servers: Servers {
                fixture: PathBuf::new(),
                urls: vec![app.base.clone()],
                sources: vec!["127.0.0.1".parse().unwrap()],
            },
            offset: 0,
            count: None,
            ramp: 200.0,
            hold: 2,
            server_pids: vec![std::process::id()],
            out: PathBuf::new(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (results.connected, results.failed, results.dropped),
        (40, 0, 0),
        "{results:?}"
    );
    assert_eq!(results.open_at_end, 40);
    assert_eq!(results.handshake.count, 40);
    assert!(results.server_memory.is_some());
}

#[tokio::test]
async fn fixture_accounts_are_real_accounts() {
    let app = spawn_with(|_| {}).await;
    let fixture = fixture(&app, 4, 2).await;
    assert_eq!(fixture.conversations.len(), 2);
    // The minted token is an ordinary one: it opens the account's own profile...
    let me = app
        .get("/api/v1/users/me", Some(&fixture.users[0].token))
        .await;
    assert_eq!(me.ok(200)["username"], fixture.users[0].username.as_str());
    // ...the conversation is there, and the password logs in through the API.
    let conversations = app
        .get("/api/v1/conversations", Some(&fixture.users[1].token))
        .await;
    assert_eq!(conversations.ok(200)["items"].as_array().unwrap().len(), 1);
    app.login(&fixture.users[3].username, &fixture.password)
        .await
        .ok(200);
}

#[tokio::test]
async fn chat_in_groups_over_two_instances_loses_nothing() {
    let app = spawn_with(|s| s.redis_url = Some(tunelink::config::Secret::new(redis_url()))).await;
    let sibling = spawn_sibling_with(&app, |s| {
        s.redis_url = Some(tunelink::config::Secret::new(redis_url()))
    })
    .await;
    let fixture = fixture(&app, 30, 5).await;
    let results = chat::run(
        &fixture,
        &chat_args(vec![app.base.clone(), sibling.base.clone()], 100.0, 3),
    )
    .await
    .unwrap();
    assert!(results.is_clean(), "{results:#?}");
    assert_eq!((results.sent, results.acked), (300, 300));
    assert_eq!(results.expected_deliveries, 300 * 5);
    assert_eq!(results.delivered, 300 * 5);
    assert_eq!(results.persisted.conversations_matching, 6);
}

#[tokio::test]
async fn chat_in_direct_conversations_loses_nothing() {
    let app = spawn_with(|_| {}).await;
    let fixture = fixture(&app, 20, 2).await;
    let results = chat::run(&fixture, &chat_args(vec![app.base.clone()], 100.0, 2))
        .await
        .unwrap();
    assert!(results.is_clean(), "{results:#?}");
    assert_eq!(
        (results.sent, results.acked, results.delivered),
        (200, 200, 400)
    );
}
