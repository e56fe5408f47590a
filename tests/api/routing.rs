//! Fan-out between instances (issue 13): a delivery reaches the instances that hold one of
//! its users and no other, and an instance that gains a user's connection after a message
//! was committed still has it (from PostgreSQL). Three real instances, a Redis of the
//! test's own.

use std::time::Duration;

use tunelink::{config::Secret, limits::RateLimits};

use crate::{
    helpers::{
        OwnRedis, TestApp, free_port, post_message, redis_up, spawn_sibling_with, spawn_with,
        start_conversation,
    },
    ws::Ws,
};

/// Bus messages of deliveries this instance has received (one lag observation each).
async fn deliveries_received(app: &TestApp) -> u64 {
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tunelink_ws_fanout_lag_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the fan-out lag metric")
}

#[tokio::test]
async fn deliveries_reach_only_the_instances_that_hold_a_recipient() {
    let redis = OwnRedis::start(free_port()).await;
    let url = redis.url();
    let with_redis = |s: &mut tunelink::config::Settings| {
        s.redis_url = Some(Secret::new(url.clone()));
        s.rate_limits = RateLimits::off();
    };
    let one = spawn_with(with_redis).await;
    let two = spawn_sibling_with(&one, with_redis).await;
    let three = spawn_sibling_with(&one, with_redis).await;
    for app in [&one, &two, &three] {
        redis_up(app).await;
    }
    let (nina, miles, stranger) = (
        one.register("nina").await,
        one.register("miles").await,
        one.register("stranger").await,
    );
    let conv = start_conversation(&one, &nina, &[&miles], Some("Duo")).await;
    let mut on_two = Ws::connect(&two, &miles.access).await;
    assert_eq!(on_two.next_of(&["pong"]).await.unwrap()["ref"], "live");
    // Someone unrelated is connected to the third instance.
    let mut on_three = Ws::connect(&three, &stranger.access).await;
    assert_eq!(on_three.next_of(&["pong"]).await.unwrap()["ref"], "live");

    let before = deliveries_received(&three).await;
    for i in 0..5 {
        post_message(&one, &nina, &conv, &format!("take {i}")).await;
    }
    for i in 0..5 {
        let frame = on_two
            .next_of(&["message.created"])
            .await
            .expect("a message");
        assert_eq!(frame["message"]["body"], format!("take {i}"));
    }
    // Instance two got them through Redis; instance three got none of them.
    assert!(deliveries_received(&two).await >= 5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deliveries_received(&three).await, before);

    // Once Miles also connects to the third instance, it receives his frames, and what
    // was committed before his connection is his to resume (nothing is missed).
    let mut late = Ws::connect_quiet(&three, &miles.access).await;
    late.send(serde_json::json!({"type": "resume", "conversations": {conv.clone(): 0}}))
        .await;
    let resumed = late.next_of(&["resumed"]).await.expect("resumed");
    assert!(resumed["replayed"].as_u64().unwrap() >= 5, "{resumed}");
    post_message(&one, &nina, &conv, "take 5").await;
    let frame = late.next_of(&["message.created"]).await.expect("live");
    if frame["message"]["body"] != "take 5" {
        // The replayed ones come first.
        let mut last = frame;
        while last["message"]["body"] != "take 5" {
            last = late.next_of(&["message.created"]).await.expect("live");
        }
    }
    assert!(deliveries_received(&three).await > before);
}
