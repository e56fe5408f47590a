//! The message writer's group commit (issue 13): concurrent sends from many sockets and
//! REST, on two instances, into the same conversations, give gapless numbers, one message
//! per `client_msg_id`, and each sender's order; a full writer queue refuses at once with
//! `overloaded` and stores nothing. Real servers, real sockets, PostgreSQL and a Redis of
//! each test's own.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use tunelink::{config::SendSettings, limits::RateLimits};

use crate::{
    helpers::{
        TestApp, User, all_pages, pair_unthrottled, spawn_app, spawn_with, start_conversation,
    },
    ws::Ws,
};

const SENDERS: usize = 8;
const EACH: usize = 25;

/// Sends `EACH` messages on a socket, one after another as a client does (each waits for
/// its answer), and returns the acked messages in send order. Every fifth send is sent a
/// second time with the same key, which must answer the first message.
async fn socket_sender(app: &TestApp, user: &User, conv: &str, name: &str) -> Vec<Value> {
    let mut ws = Ws::connect(app, &user.access).await;
    let mut acked = Vec::new();
    for i in 0..EACH {
        let key = format!("{name}-{i}");
        ws.send_message(&key, conv, &format!("{name} {i}"), Some(&key))
            .await;
        let ack = next_answer(&mut ws, &key).await;
        if i % 5 == 0 {
            let again = format!("{key}-again");
            ws.send_message(&again, conv, &format!("{name} {i}"), Some(&key))
                .await;
            let twin = next_answer(&mut ws, &again).await;
            assert_eq!(twin["id"], ack["id"], "a retry answers the first message");
        }
        acked.push(ack);
    }
    acked
}

/// The `ack` for `reference`, skipping live frames.
async fn next_answer(ws: &mut Ws, reference: &str) -> Value {
    loop {
        let frame = ws
            .next_of(&["ack", "error"])
            .await
            .unwrap_or_else(|| panic!("no answer to {reference}"));
        if frame["ref"] == reference {
            assert_eq!(frame["type"], "ack", "{frame}");
            return frame["message"].clone();
        }
    }
}

/// The same over REST; the retry goes to the other instance.
async fn rest_sender(
    app: &TestApp,
    other: &TestApp,
    user: &User,
    conv: &str,
    name: &str,
) -> Vec<Value> {
    let mut acked = Vec::new();
    for i in 0..EACH {
        let key = format!("{name}-{i}");
        let body = json!({"body": format!("{name} {i}"), "client_msg_id": key});
        let path = format!("/api/v1/conversations/{conv}/messages");
        let sent = app.post(&path, user.token(), body.clone()).await;
        let message = sent.ok(201).clone();
        if i % 5 == 0 {
            let again = other.post(&path, user.token(), body).await;
            assert_eq!(
                again.ok(200)["id"],
                message["id"],
                "a retry answers the first"
            );
        }
        acked.push(message);
    }
    acked
}

#[tokio::test]
async fn concurrent_sends_on_two_instances_are_gapless_once_each_and_in_each_senders_order() {
    let (_redis, one, two) = pair_unthrottled().await;

    let mut users = Vec::new();
    for i in 0..SENDERS {
        users.push(one.register(&format!("player{i}")).await);
    }
    // A listener, on each instance, receives every message of the band.
    let listener = one.register("listener").await;
    let mut others: Vec<&User> = users[1..].iter().collect();
    others.push(&listener);
    // Two conversations that share members, so that batches hold several conversations.
    let band = start_conversation(&one, &users[0], &others, Some("Band")).await;
    let duo = start_conversation(&one, &users[0], &others[..3], Some("Duo")).await;
    let mut ears = [
        Ws::connect(&one, &listener.access).await,
        Ws::connect(&two, &listener.access).await,
    ];
    for ear in &mut ears {
        assert_eq!(ear.next_of(&["pong"]).await.expect("pong")["ref"], "live");
    }

    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        // Even senders over sockets, odd ones over REST; alternate instances; the first
        // four also write to the duo at the same time.
        let (app, other) = if i % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        let name = format!("s{i}");
        let (user, band) = (user.clone(), band.clone());
        tasks.push(async move {
            if i % 2 == 0 {
                socket_sender(app, &user, &band, &name).await
            } else {
                rest_sender(app, other, &user, &band, &name).await
            }
        });
    }
    let duo_senders = users[..4].iter().enumerate().map(|(i, user)| {
        let app = if i % 2 == 0 { &two } else { &one };
        let (user, duo) = (user.clone(), duo.clone());
        async move { socket_sender(app, &user, &duo, &format!("d{i}")).await }
    });
    let (band_acks, duo_acks) = tokio::join!(
        futures_util::future::join_all(tasks),
        futures_util::future::join_all(duo_senders)
    );

    for (conv, acks, total) in [
        (&band, &band_acks, SENDERS * EACH),
        (&duo, &duo_acks, 4 * EACH),
    ] {
        // Each sender saw its own messages numbered in the order it sent them.
        for sender in acks {
            let seqs: Vec<i64> = sender.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        }
        // History: 1..=total, no gap, one message per key, the acked ids.
        let history = all_pages(
            &one,
            &format!("/api/v1/conversations/{conv}/messages?limit=100"),
            users[0].token(),
        )
        .await;
        let mut seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
        let mut keys = HashMap::new();
        for m in &history {
            let key = m["client_msg_id"].as_str().unwrap().to_owned();
            assert!(keys.insert(key, m["id"].clone()).is_none(), "a twin: {m}");
        }
        for m in acks.iter().flatten() {
            assert_eq!(keys[m["client_msg_id"].as_str().unwrap()], m["id"]);
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&one.db)
        .await
        .unwrap();
    assert_eq!(stored as usize, SENDERS * EACH + 4 * EACH);
    // The event log holds one frame per number, and its counter agrees.
    let gapless: bool = sqlx::query_scalar(
        "SELECT bool_and(c.last_event_seq = (SELECT count(*) FROM conversation_events e
                                              WHERE e.conversation_id = c.id))
         FROM conversations c",
    )
    .fetch_one(&one.db)
    .await
    .unwrap();
    assert!(gapless);

    // Both listeners received every band message once, in order.
    for ear in &mut ears {
        let mut got = Vec::new();
        while got.len() < SENDERS * EACH {
            let frame = ear.next_of(&["message.created"]).await.expect("a message");
            assert_eq!(frame["conversation_id"], band.as_str());
            got.push(frame["message"]["seq"].as_i64().unwrap());
        }
        assert_eq!(got, (1..=(SENDERS * EACH) as i64).collect::<Vec<_>>());
    }
}

/// Holds a conversation's row lock from outside, so the writer waits on its batch.
async fn hold_lock(app: &TestApp, conv: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM conversations WHERE id = $1::uuid FOR UPDATE")
        .bind(conv)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// POSTs from a task of its own; the status.
async fn post_status(url: String, token: String, body: Value) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_full_writer_refuses_sends_at_once_with_a_retry_delay_and_stores_nothing() {
    let app = spawn_with(|s| {
        s.rate_limits = RateLimits::off();
        s.sends = SendSettings { batch: 1, queue: 1 };
    })
    .await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = start_conversation(&app, &nina, &[&miles], Some("Duo")).await;
    let path = format!("/api/v1/conversations/{conv}/messages");

    let lock = hold_lock(&app, &conv).await;
    // The first send is taken by the writer, which waits for the lock; the second fills
    // the queue; the third finds it full.
    let first = tokio::spawn(post_status(
        format!("{}{path}", app.base),
        nina.access.clone(),
        json!({"body": "one", "client_msg_id": "k1"}),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn(post_status(
        format!("{}{path}", app.base),
        nina.access.clone(),
        json!({"body": "two", "client_msg_id": "k2"}),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = app
        .post(
            &path,
            nina.token(),
            json!({"body": "three", "client_msg_id": "k3"}),
        )
        .await;
    refused.err(503, "overloaded");
    assert_eq!(refused.headers["retry-after"], "1");

    // On the socket: an error frame with the send's ref, the code and the delay.
    let mut ws = Ws::connect(&app, &miles.access).await;
    ws.send_message("m1", &conv, "from the socket", Some("m1"))
        .await;
    let answer = ws.next_of(&["ack", "error"]).await.expect("an answer");
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["ref"], "m1");
    assert_eq!(answer["code"], "overloaded");
    assert_eq!(answer["retry_after"], 1);
    // Typing is shed as well while messages queue up.
    ws.send(json!({"type": "typing", "conversation_id": conv}))
        .await;
    let shed = ws.next_of(&["error"]).await.expect("typing refused");
    assert_eq!(shed["code"], "overloaded");

    lock.rollback().await.unwrap();
    assert_eq!(first.await.unwrap(), 201);
    assert_eq!(second.await.unwrap(), 201);
    let keys: Vec<String> = sqlx::query_scalar("SELECT client_msg_id FROM messages ORDER BY seq")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, ["k1", "k2"], "refused sends are not stored");

    // Once the queue drains, the same keys are accepted as a client retries them.
    let retried = app
        .post(
            &path,
            nina.token(),
            json!({"body": "three", "client_msg_id": "k3"}),
        )
        .await;
    assert_eq!(retried.ok(201)["seq"], 3);
    ws.send_message("m1b", &conv, "from the socket", Some("m1"))
        .await;
    let ack = ws.next_of(&["ack"]).await.expect("ack");
    assert_eq!(ack["message"]["seq"], 4);
}

#[tokio::test]
async fn a_bad_key_is_refused_before_the_batch_and_names_its_field() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let bad = app
        .post(
            &path,
            nina.token(),
            json!({"body": "hello", "client_msg_id": "a\u{0}b"}),
        )
        .await;
    bad.err(422, "validation_failed");
    assert_eq!(bad.fields()[0].0, "client_msg_id");
    // The writer still serves everybody else.
    let fine = app
        .post(&path, miles.token(), json!({"body": "still here"}))
        .await;
    assert_eq!(fine.ok(201)["seq"], 1);
}

/// Announcements to everyone lock every account while batches of sends insert messages
/// whose authors' rows the foreign key check locks too. Both must lock only what they
/// change (`FOR NO KEY UPDATE`, which a foreign key check does not wait for): with
/// `FOR UPDATE`, two writers on two instances deadlocked under load, PostgreSQL killed one,
/// an announcement answered 500 and a batch of sends had to be stored again one by one.
#[tokio::test]
async fn announcements_to_everyone_never_deadlock_with_batches_of_sends() {
    let app = spawn_with(|s| s.rate_limits = RateLimits::off()).await;
    let boss = app.register("boss").await;
    crate::helpers::make_admin(&app, &boss).await;
    let mut senders = Vec::new();
    for i in 0..12 {
        senders.push(app.register(&format!("sender{i}")).await);
    }
    // A crowd, so that an announcement's locks take a while to sweep every account.
    sqlx::query("INSERT INTO users (username) SELECT 'crowd' || g FROM generate_series(1, 5000) g")
        .execute(&app.db)
        .await
        .unwrap();
    let others: Vec<&User> = senders.iter().collect();
    let conv = start_conversation(&app, &boss, &others, Some("Busy")).await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    const ROUNDS: usize = 30;
    let (app, path) = (&app, &path);
    let announcing = async {
        let mut answers = Vec::new();
        for i in 0..ROUNDS {
            let body = json!({"all": true, "title": format!("News {i}"), "body": "Read me."});
            answers.push(
                app.post("/api/v1/notifications", boss.token(), body)
                    .await
                    .status,
            );
        }
        answers
    };
    let sending = futures_util::future::join_all(senders.iter().map(|user| async move {
        let mut answers = Vec::new();
        for i in 0..ROUNDS {
            let body = json!({"body": format!("{} {i}", user.email)});
            answers.push(app.post(path, user.token(), body).await.status);
        }
        answers
    }));
    let (announced, sent) = tokio::join!(announcing, sending);
    assert!(
        announced.iter().all(|s| *s == 201),
        "every announcement stored: {announced:?}"
    );
    for answers in sent {
        assert!(
            answers.iter().all(|s| *s == 201),
            "every send stored: {answers:?}"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, (12 * ROUNDS) as i64);
    let (_, metrics) = crate::metrics::scrape(app, None).await;
    let failed = crate::metrics::sample(&metrics, "tunelink_message_batch_failures_total");
    assert_eq!(
        failed, 0.0,
        "no batch failed (PostgreSQL found no deadlock)"
    );
}
