//! Dependencies going away under a running server: Redis down at start-up (single-instance
//! mode, then cross-instance delivery once it is up) and PostgreSQL stopped and started
//! again (fast 503s in the envelope, then recovery with no lost message and no stuck
//! request). Each test owns the servers it stops: the machine's shared ones are never
//! touched.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{
        OwnPostgres, OwnRedis, Resp, TestApp, User, free_port, spawn_on, spawn_sibling_with,
        spawn_with, start_conversation,
    },
    ws::{End, Ws},
};

/// Generous bound for "the request returned": a stuck request fails the test, a slow
/// machine does not.
const NOT_STUCK: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(NOT_STUCK, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {NOT_STUCK:?}"))
}

async fn send(app: &TestApp, by: &User, conv: &str, body: &str, key: &str) -> Resp {
    within(
        "send a message",
        app.post(
            &format!("/api/v1/conversations/{conv}/messages"),
            by.token(),
            json!({"body": body, "client_msg_id": key}),
        ),
    )
    .await
}

async fn bodies(app: &TestApp, by: &User, conv: &str) -> Vec<String> {
    let resp = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?limit=100"),
            by.token(),
        )
        .await;
    let mut items: Vec<Value> = resp.ok(200)["items"].as_array().unwrap().clone();
    items.sort_by_key(|m| m["seq"].as_i64());
    items
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `/readyz` until `redis` reads `want` (the subscriber reconnects with backoff).
async fn wait_redis(app: &TestApp, want: &str) {
    for _ in 0..200 {
        let resp = app.get("/readyz", None).await;
        if resp.status == 200 && resp.body["data"]["redis"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis never became {want} on {}", app.base);
}

/// Message bodies of the `message.created` frames of a resume, up to `resumed`.
async fn resumed_bodies(ws: &mut Ws) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let f = ws.next().await.expect("replay, then resumed");
        match f["type"].as_str().unwrap() {
            "message.created" => out.push(f["message"]["body"].as_str().unwrap().to_owned()),
            "resumed" => return out,
            _ => {}
        }
    }
}

#[tokio::test]
async fn redis_down_at_start_up_then_back() {
    // Nothing listens on this port yet: Redis is configured but down.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let with_redis = |s: &mut tunelink::config::Settings| {
        s.redis_url = Some(tunelink::config::Secret::new(url.clone()))
    };
    let one = within("start-up without Redis", spawn_with(with_redis)).await;
    let two = within(
        "start-up without Redis",
        spawn_sibling_with(&one, with_redis),
    )
    .await;

    // Ready, degraded: the database answers, Redis does not.
    let ready = one.get("/readyz", None).await;
    assert_eq!(ready.ok(200)["redis"], "down");
    assert!(ready.body["message"].as_str().unwrap().contains("degraded"));

    // A single instance works: REST and the socket, live delivery included.
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    let conv = start_conversation(&one, &nina, &[&miles], None).await;
    let mut nina_ws = Ws::connect(&one, &nina.access).await;
    let mut miles_ws = Ws::connect(&one, &miles.access).await;
    let mut miles_on_two = Ws::connect(&two, &miles.access).await;
    nina_ws
        .send_message("r1", &conv, "over the socket", None)
        .await;
    let ack = nina_ws.next_of(&["ack"]).await.expect("ack without Redis");
    assert_eq!(ack["message"]["body"], "over the socket");
    send(&one, &nina, &conv, "over REST", "k1").await.ok(201);
    let live: Vec<Value> = miles_ws
        .drain(&["message.created"], Duration::from_millis(500))
        .await;
    let live: Vec<&str> = live
        .iter()
        .map(|f| f["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        live,
        ["over the socket", "over REST"],
        "live on one instance"
    );

    // Redis comes up: both instances subscribe, and clients of the instance that could
    // not hear the other are told to resync…
    let _redis = OwnRedis::start(port).await;
    wait_redis(&one, "ok").await;
    wait_redis(&two, "ok").await;
    let resync = miles_on_two
        .next_of(&["resync_required"])
        .await
        .expect("told to resync when Redis is back");
    assert!(resync["conversation_id"].is_null());
    // …and resuming on that socket replays what it missed.
    miles_on_two
        .send(json!({"type": "resume", "conversations": {}}))
        .await;
    assert_eq!(
        resumed_bodies(&mut miles_on_two).await,
        ["over the socket", "over REST"]
    );

    // From now on, frames cross instances.
    send(&one, &nina, &conv, "across", "k2").await.ok(201);
    let across = miles_on_two
        .next_of(&["message.created"])
        .await
        .expect("delivered through Redis");
    assert_eq!(across["message"]["body"], "across");
    // Nina's own device got her messages too; the next one is from the other instance.
    let own: Vec<Value> = nina_ws
        .drain(&["message.created"], Duration::from_millis(300))
        .await;
    assert_eq!(own.last().unwrap()["message"]["body"], "across");
    let reply = send(&two, &miles, &conv, "back", "k3").await;
    reply.ok(201);
    let back = nina_ws
        .next_of(&["message.created"])
        .await
        .expect("delivered through Redis the other way");
    assert_eq!(back["message"]["body"], "back");
}

#[tokio::test]
async fn postgres_restart_under_a_running_server() {
    let pg = OwnPostgres::start();
    let app = spawn_on(&pg.base(), |s| {
        s.database_acquire_timeout = Duration::from_millis(500);
    })
    .await;
    let (nina, miles, eve) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
    );
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    // Eve and Miles each start one with Nina: Nina sees their presence (presence goes only
    // to people one took part in a conversation with; see `safety::presence`).
    start_conversation(&app, &eve, &[&nina], None).await;
    start_conversation(&app, &miles, &[&nina], Some("Duo")).await;
    send(&app, &nina, &conv, "before", "k-before").await.ok(201);
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    let mut eve_ws = Ws::connect(&app, &eve.access).await;
    let instruments = app.get("/api/v1/instruments", None).await;
    instruments.ok(200);

    pg.stop_server();
    // Eve leaves while her going offline cannot be recorded.
    eve_ws.close().await;

    // Requests fail fast with 503 in the envelope, with Retry-After.
    let down = within(
        "list messages while PostgreSQL is down",
        app.get(
            &format!("/api/v1/conversations/{conv}/messages"),
            nina.token(),
        ),
    )
    .await;
    down.err(503, "service_unavailable");
    assert!(
        down.headers.contains_key("retry-after"),
        "{:?}",
        down.headers
    );
    send(&app, &nina, &conv, "during", "k-during")
        .await
        .err(503, "service_unavailable");
    within(
        "log in while PostgreSQL is down",
        app.login("nina", &nina.password),
    )
    .await
    .err(503, "service_unavailable");
    let ready = within("readyz", app.get("/readyz", None)).await;
    ready.err(503, "service_unavailable");
    assert!(ready.headers.contains_key("retry-after"));
    app.get("/healthz", None).await.ok(200);
    // The catalogue is served from memory while its snapshot is fresh.
    let cached = within("catalogue", app.get("/api/v1/instruments", None)).await;
    assert_eq!(cached.ok(200), instruments.ok(200));

    // The open socket stays up; a send over it is refused, not lost silently.
    nina_ws
        .send_message("r-down", &conv, "during (socket)", None)
        .await;
    let refused = within("socket send", nina_ws.next_of(&["error", "ack"]))
        .await
        .expect("an answer to the send");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["ref"], "r-down");
    assert_eq!(refused["code"], "service_unavailable");
    // A new socket cannot be authenticated: "try again later", not "log in again".
    let mut refused_ws = within("socket upgrade", Ws::open(&app, Some(&miles.access), None)).await;
    assert_eq!(within("socket close", refused_ws.closed()).await, 1013);

    pg.start_server();

    // Recovered without restarting the server: the message sent before is there; the one
    // refused during the outage is retried with its key and stored once.
    assert_eq!(bodies(&app, &nina, &conv).await, ["before"]);
    send(&app, &nina, &conv, "during", "k-during").await.ok(201);
    send(&app, &nina, &conv, "during", "k-during").await;
    send(&app, &nina, &conv, "after", "k-after").await.ok(201);
    assert_eq!(
        bodies(&app, &nina, &conv).await,
        ["before", "during", "after"]
    );
    app.login("nina", &nina.password).await.ok(200);
    app.get("/readyz", None).await.ok(200);

    // Presence counts missed during the outage are repaired by the next upkeep round (run
    // here rather than waiting for its 30 s timer; its own last round did not fail, the
    // outage being shorter): Eve is offline, Miles online.
    assert!(tunelink::realtime::upkeep::round(&app.state.hub, &app.db, false).await);
    let mut nina_again = Ws::connect_quiet(&app, &nina.access).await;
    let mut online = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let p = nina_again
            .next_of(&["presence"])
            .await
            .expect("presence snapshot");
        online.insert(
            p["user_id"].as_str().unwrap().to_owned(),
            p["status"].clone(),
        );
    }
    assert_eq!(online[&eve.id], "offline", "{online:?}");
    assert_eq!(online[&miles.id], "online", "{online:?}");

    // The socket that stayed open got the new messages live…
    let live: Vec<String> = miles_ws
        .drain(&["message.created"], Duration::from_millis(500))
        .await
        .iter()
        .map(|f| f["message"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(live, ["during", "after"]);
    // …and a device resuming from scratch gets every message, in order, once each.
    let mut back = Ws::connect_quiet(&app, &miles.access).await;
    back.send(json!({"type": "resume", "conversations": {}}))
        .await;
    let replayed = resumed_bodies(&mut back).await;
    assert_eq!(replayed, ["before", "during", "after"]);
    assert!(matches!(
        back.next_within(Duration::from_millis(200)).await,
        End::Silent | End::Frame(_)
    ));
}
