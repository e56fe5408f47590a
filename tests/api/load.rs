//! Short runs of the load tool's scenarios (`tunelink-load`) against real servers: they
//! check correctness — every socket held, nothing lost, duplicated or reordered — never
//! timing. The numbers come from full runs, in BENCHMARKS.md.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tunelink::{config::Secret, load_fixture};
use tunelink_load::{
    chaos::{self, Faults},
    chat, connect,
    fixture::Fixture,
    socket::Servers,
};

use crate::helpers::{OwnRedis, TestApp, free_port, redis_url, spawn_sibling_with, spawn_with};

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
        chaos: chaos::Args::default(),
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

/// Groups of 4 and a couple of direct pairs, in one fixture (as the load tool reads it).
async fn mixed_fixture(app: &TestApp) -> Fixture {
    let mut mixed = fixture(app, 24, 4).await;
    let pairs = fixture(app, 4, 2).await;
    let offset = mixed.users.len();
    mixed.users.extend(pairs.users);
    mixed
        .conversations
        .extend(pairs.conversations.into_iter().map(|mut c| {
            c.members.iter_mut().for_each(|m| *m += offset);
            c
        }));
    mixed
}

/// Chaos: sockets dropped at random and resumed on either instance, Redis stopped and
/// started again, one instance stopped, announcements to one member and to everyone. Every
/// message and every notification must still arrive exactly once, in order.
///
/// Redis comes back only after the last message (conversations are quiet then), so what
/// the other instance published meanwhile comes back only through `resume` on the same
/// socket after `resync_required`, not through a later live frame; the instance is
/// stopped after that, and its clients resume on the other one.
#[tokio::test]
async fn chat_under_chaos_loses_nothing() {
    let redis = OwnRedis::start(free_port()).await;
    let (port, url) = (redis.port, redis.url());
    let app = spawn_with(|s| s.redis_url = Some(Secret::new(url.clone()))).await;
    let sibling = spawn_sibling_with(&app, |s| s.redis_url = Some(Secret::new(url.clone()))).await;
    let fixture = mixed_fixture(&app).await;
    assert_eq!(fixture.admin, Some(0));
    assert_eq!(fixture.conversations.len(), 8);

    let urls = vec![app.base.clone(), sibling.base.clone()];
    let redis = Arc::new(tokio::sync::Mutex::new(Some(redis)));
    let (stopping, starting) = (redis.clone(), redis.clone());
    let faults = Faults {
        redis_stop: Some(Box::new(move || {
            Box::pin(async move {
                if let Some(mut r) = stopping.lock().await.take() {
                    r.stop();
                }
                Ok(())
            })
        })),
        redis_start: Some(Box::new(move || {
            Box::pin(async move {
                *starting.lock().await = Some(OwnRedis::start(port).await);
                Ok(())
            })
        })),
        kill_instance: Some(Box::new(move || {
            Box::pin(async move {
                let mut sibling = sibling;
                sibling.stop().await;
                Ok(())
            })
        })),
    };
    let mut args = chat_args(urls, 20.0, 6);
    args.drain = 10;
    args.chaos = chaos::Args {
        enabled: true,
        chaos_disconnects_per_s: Some(2.0),
        chaos_redis_at: Some(2.0),
        chaos_redis_down: Some(4.5),
        chaos_kill_at: Some(7.0),
        chaos_notifications_per_s: Some(4.0),
        chaos_announce_all_every: Some(3),
        ..chaos::Args::default()
    };
    let results = chat::run_with(&fixture, &args, faults).await.unwrap();
    results.print();
    let chaos = results.chaos.as_ref().unwrap();
    // The chaos happened...
    assert_eq!(chaos.faults.len(), 3, "{:?}", chaos.faults);
    assert!(
        chaos.faults.iter().all(|f| f.error.is_none()),
        "{:?}",
        chaos.faults
    );
    assert!(chaos.disconnects > 0 && chaos.reconnects > 0, "{chaos:?}");
    assert!(chaos.notifications.sent > 0, "{chaos:?}");
    assert_eq!(results.sent, 120);
    // ...and nothing was lost, twinned, duplicated or reordered.
    assert!(results.is_clean(), "{results:#?}");
    assert_eq!(results.acked, 120);
}
