//! The socket: authentication, live delivery to every device, acks, resume, revocation,
//! expiry, slow consumers, and fan-out across instances through Redis.

use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::post_message as rest_send,
    helpers::{
        OwnRedis, TestApp, User, free_port, redis_url, spawn_app, spawn_sibling_with, spawn_with,
        start_conversation,
    },
    ws::{End, Ws},
};

async fn conversation(app: &TestApp, by: &User, with: &[&User]) -> String {
    start_conversation(app, by, with, (with.len() > 1).then_some("Band")).await
}

const MESSAGES: &[&str] = &["message.created", "message.edited", "message.deleted"];

#[tokio::test]
async fn authentication_by_header_or_first_frame() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let mut ws = Ws::connect(&app, &nina.access).await;
    assert!(ws.seen[0]["protocol"] == 1 && ws.seen[0]["user_id"] == nina.id.as_str());

    let mut browser = Ws::open(&app, None, None).await;
    browser
        .send(json!({"type": "auth", "token": nina.access}))
        .await;
    assert_eq!(browser.next().await.unwrap()["type"], "ready");
    browser.send(json!({"type": "ping", "ref": "p1"})).await;
    assert_eq!(
        browser.next().await.unwrap(),
        json!({"type": "pong", "ref": "p1"})
    );
    browser.send(json!({"type": "dance"})).await;
    assert_eq!(browser.next().await.unwrap()["code"], "invalid_frame");

    let mut anonymous = Ws::open(&app, None, None).await;
    anonymous.send(json!({"type": "ping"})).await;
    assert_eq!(anonymous.closed().await, 4001);
    let mut forged = Ws::open(&app, Some("not-a-token"), None).await;
    assert_eq!(forged.next().await.unwrap()["code"], "invalid_token");
    assert_eq!(forged.closed().await, 4001);
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next_of(&["pong"]).await.unwrap()["ref"], "live");
    assert_eq!(
        ws.next_of(&["pong"]).await.unwrap(),
        json!({"type": "pong"})
    );
}

#[tokio::test]
async fn a_message_reaches_every_device_of_every_member_exactly_once() {
    let app = spawn_app().await;
    let (nina, miles, eve) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
    );
    let conv = conversation(&app, &nina, &[&miles]).await;
    let miles_tablet = app.login("miles", &miles.password).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut nina_phone = Ws::connect(&app, &nina.access).await;
    let mut miles_phone = Ws::connect(&app, &miles.access).await;
    let mut miles_tab = Ws::connect(&app, &miles_tablet).await;
    let mut outsider = Ws::connect(&app, &eve.access).await;

    // Over the socket: an ack to the sender, the message to every device (the sender's too).
    nina_phone
        .send_message("r1", &conv, "over the socket", Some("k1"))
        .await;
    let ack = nina_phone.next_of(&["ack"]).await.unwrap();
    assert_eq!(
        (ack["ref"].as_str(), ack["message"]["seq"].as_i64()),
        (Some("r1"), Some(1))
    );
    // Over REST.
    rest_send(&app, &miles, &conv, "over REST").await;
    // A retry of the first: the same message, no twin.
    nina_phone
        .send_message("r2", &conv, "over the socket", Some("k1"))
        .await;
    let again = nina_phone.next_of(&["ack"]).await.unwrap();
    assert_eq!(again["message"]["id"], ack["message"]["id"]);

    for device in [&mut nina_phone, &mut miles_phone, &mut miles_tab] {
        let got = device.drain(MESSAGES, Duration::from_millis(500)).await;
        let bodies: Vec<&str> = got
            .iter()
            .map(|f| f["message"]["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, ["over the socket", "over REST"]);
    }
    assert!(
        outsider
            .drain(MESSAGES, Duration::from_millis(300))
            .await
            .is_empty(),
        "non-members get nothing"
    );

    // Not a member: refused, and nothing is stored.
    outsider.send_message("x", &conv, "let me in", None).await;
    let refused = outsider.next_of(&["error"]).await.unwrap();
    assert_eq!(
        (refused["ref"].as_str(), refused["code"].as_str()),
        (Some("x"), Some("not_found"))
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn every_change_is_pushed_typing_and_read_markers_included() {
    let app = spawn_app().await;
    let (nina, miles, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("zoe").await,
    );
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    let mut zoe_ws = Ws::connect(&app, &zoe.access).await;
    let conv = conversation(&app, &nina, &[&miles]).await;
    assert_eq!(
        miles_ws.next_of(&["conversation.created"]).await.unwrap()["conversation_id"],
        conv.as_str()
    );

    let m = rest_send(&app, &nina, &conv, "draft").await;
    let id = m["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/messages/{id}"),
        nina.token(),
        json!({"body": "final"}),
    )
    .await
    .ok(200);
    app.delete(&format!("/api/v1/messages/{id}"), nina.token())
        .await
        .ok(200);
    let kinds: Vec<String> = miles_ws
        .drain(MESSAGES, Duration::from_millis(400))
        .await
        .iter()
        .map(|f| f["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["message.created", "message.edited", "message.deleted"]
    );

    rest_send(&app, &miles, &conv, "my turn").await;
    app.post(
        &format!("/api/v1/conversations/{conv}/read"),
        nina.token(),
        json!({"seq": 2}),
    )
    .await
    .ok(200);
    let read = miles_ws.next_of(&["read.updated"]).await.unwrap();
    assert_eq!(
        (read["user_id"].as_str(), read["last_read_seq"].as_i64()),
        (Some(nina.id.as_str()), Some(2))
    );

    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    for _ in 0..3 {
        miles_ws
            .send(json!({"type": "typing", "conversation_id": conv}))
            .await;
    }
    // Rate-limited: one typing per 2 s and conversation gets through.
    let typing = nina_ws.drain(&["typing"], Duration::from_millis(500)).await;
    assert_eq!(typing.len(), 1);
    assert_eq!(typing[0]["user_id"], miles.id.as_str());
    assert!(
        zoe_ws
            .drain(
                &["typing", "read.updated", "message.created"],
                Duration::from_millis(200)
            )
            .await
            .is_empty()
    );

    // Over the socket: read markers too.
    rest_send(&app, &nina, &conv, "and mine").await;
    miles_ws
        .send(json!({"type": "read", "conversation_id": conv, "seq": 3}))
        .await;
    let read = nina_ws.next_of(&["read.updated"]).await.unwrap();
    assert_eq!(read["user_id"], miles.id.as_str());
}

#[tokio::test]
async fn resuming_replays_exactly_what_was_missed_in_order() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = conversation(&app, &nina, &[&miles]).await;
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    for i in 1..=3 {
        rest_send(&app, &nina, &conv, &format!("before {i}")).await;
    }
    let seen = miles_ws.drain(MESSAGES, Duration::from_millis(400)).await;
    let last_seq = seen.last().unwrap()["seq"].as_i64().unwrap();
    miles_ws.close().await;

    for i in 1..=5 {
        rest_send(&app, &nina, &conv, &format!("missed {i}")).await;
    }
    let mut back = Ws::connect_quiet(&app, &miles.access).await;
    back.send(json!({"type": "resume", "conversations": {conv.clone(): last_seq}}))
        .await;
    rest_send(&app, &nina, &conv, "live after resume").await;
    let mut bodies = Vec::new();
    let mut seqs = Vec::new();
    loop {
        let f = back.next().await.expect("frames until resumed");
        match f["type"].as_str().unwrap() {
            "message.created" => {
                bodies.push(f["message"]["body"].as_str().unwrap().to_owned());
                seqs.push(f["seq"].as_i64().unwrap());
            }
            "resumed" => break,
            _ => {}
        }
    }
    for f in back.drain(MESSAGES, Duration::from_millis(400)).await {
        bodies.push(f["message"]["body"].as_str().unwrap().to_owned());
        seqs.push(f["seq"].as_i64().unwrap());
    }
    assert_eq!(
        bodies,
        [
            "missed 1",
            "missed 2",
            "missed 3",
            "missed 4",
            "missed 5",
            "live after resume"
        ]
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no duplicate: {seqs:?}"
    );
    assert_eq!(seqs[0], last_seq + 1);
}

#[tokio::test]
async fn logout_and_expiry_end_the_socket() {
    let app = spawn_with(|s| s.access_token_ttl = Duration::from_secs(3)).await;
    let nina = app.register("nina").await;
    let mut ws = Ws::connect(&app, &nina.access).await;
    assert_eq!(ws.closed().await, 4003, "the access token expired");

    let fresh = app.login("nina", &nina.password).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = Ws::connect(&app, &fresh).await;
    app.post("/api/v1/auth/logout", Some(&fresh), json!({}))
        .await
        .ok(200);
    assert_eq!(ws.closed().await, 4004, "the session was revoked");
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_while_others_keep_receiving() {
    // This test floods on purpose (3,000 messages in seconds): far over any sane limit.
    let app = spawn_with(|s| s.rate_limits.messages_per_user = tunelink::limits::Rule::OFF).await;
    let (nina, miles, slow) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("slowpoke").await,
    );
    let conv = {
        let resp = app
            .post(
                "/api/v1/conversations",
                nina.token(),
                json!({"participant_ids": [miles.id, slow.id], "title": "Flood"}),
            )
            .await;
        resp.body["data"]["id"].as_str().unwrap().to_owned()
    };
    let mut fast = Ws::connect(&app, &miles.access).await;
    // A tiny receive buffer, and this client never reads: the server's queue fills up.
    let mut stalled = Ws::open(&app, Some(&slow.access), Some(2048)).await;
    // Enough data (about 12 MB) to fill the kernel's socket buffers (up to 4 MiB to send
    // on loopback, `tcp_wmem`), tungstenite's write buffer (1 MiB) and then the queue
    // (256 frames of 4 KB): 6 MB was borderline.
    let total = 3000;
    let reader = tokio::spawn(async move {
        let got = fast
            .drain(&["message.created"], Duration::from_secs(3))
            .await;
        got.len()
    });
    let body = "x".repeat(4000);
    let path = format!("/api/v1/conversations/{conv}/messages");
    for chunk in (0..total).collect::<Vec<_>>().chunks(20) {
        futures_util::future::join_all(
            chunk
                .iter()
                .map(|_| app.post(&path, nina.token(), json!({"body": body}))),
        )
        .await;
    }
    assert_eq!(
        reader.await.unwrap(),
        total,
        "the fast client got every message"
    );
    assert_eq!(
        stalled.closed().await,
        4008,
        "the slow one was disconnected"
    );
}

#[tokio::test]
async fn across_two_instances_through_redis_exactly_once_and_revocations_too() {
    let with_redis = |s: &mut tunelink::config::Settings| {
        s.redis_url = Some(tunelink::config::Secret::new(redis_url()))
    };
    let one = spawn_with(with_redis).await;
    let two = spawn_sibling_with(&one, with_redis).await;
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    let conv = conversation(&one, &nina, &[&miles]).await;
    let mut on_one = Ws::connect(&one, &nina.access).await;
    let mut on_two = Ws::connect(&two, &miles.access).await;
    let tablet = one.login("miles", &miles.password).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tablet_on_one = Ws::connect(&one, &tablet).await;
    for i in 0..20 {
        on_one
            .send_message(&format!("r{i}"), &conv, &format!("m{i}"), None)
            .await;
    }
    for device in [&mut on_two, &mut tablet_on_one] {
        let got = device
            .drain(&["message.created"], Duration::from_millis(800))
            .await;
        let bodies: Vec<String> = got
            .iter()
            .map(|f| f["message"]["body"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            bodies,
            (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "in order, once each"
        );
    }
    // Logging out on instance one ends the socket held by instance two.
    let mut phone_on_two = Ws::connect(&two, &tablet).await;
    one.post("/api/v1/auth/logout", Some(&tablet), json!({}))
        .await
        .ok(200);
    assert_eq!(phone_on_two.closed().await, 4004);
    assert!(matches!(
        on_two.next_within(Duration::from_millis(200)).await,
        End::Silent | End::Frame(_)
    ));
}

#[tokio::test]
async fn presence_of_the_people_you_talk_with() {
    let app = spawn_app().await;
    let (nina, miles, eve) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
    );
    let conv = conversation(&app, &nina, &[&miles]).await;
    // Both take part (Nina started it, Miles answers): each sees the other's presence.
    rest_send(&app, &miles, &conv, "hi").await;
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    let mut eve_ws = Ws::connect(&app, &eve.access).await;
    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    let snapshot = nina_ws.next_of(&["presence"]).await.unwrap();
    assert_eq!(
        (snapshot["user_id"].as_str(), snapshot["status"].as_str()),
        (Some(miles.id.as_str()), Some("online"))
    );
    // Miles first heard (in his own snapshot) that Nina was offline, then that she came online.
    let heard: Vec<String> = miles_ws
        .drain(&["presence"], Duration::from_millis(500))
        .await
        .iter()
        .map(|f| f["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        heard.last().map(String::as_str),
        Some("online"),
        "{heard:?}"
    );

    // A second device does not announce anything, nor does reconnecting in a loop.
    let mut second = Ws::connect(&app, &nina.access).await;
    second.close().await;
    for _ in 0..3 {
        let mut flap = Ws::connect(&app, &nina.access).await;
        flap.close().await;
    }
    assert!(
        miles_ws
            .drain(&["presence"], Duration::from_millis(500))
            .await
            .is_empty(),
        "no new announcement while Nina stays online"
    );
    nina_ws.close().await;
    // Offline is announced after a 5 s grace period, with the time she was last seen.
    let offline = loop {
        match miles_ws.next_within(Duration::from_secs(8)).await {
            End::Frame(f)
                if f["type"] == "presence"
                    && f["status"] == "offline"
                    && f["last_seen_at"].is_string() =>
            {
                break f;
            }
            End::Frame(_) => continue,
            other => panic!("no offline presence: {other:?}"),
        }
    };
    assert_eq!(offline["user_id"], nina.id.as_str());
    assert!(
        eve_ws
            .drain(&["presence"], Duration::from_millis(200))
            .await
            .is_empty(),
        "strangers are not told"
    );
}

#[tokio::test]
async fn notifications_are_pushed_as_they_are_created() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    let piano = crate::helpers::catalogue_id(&app, "instruments", "Piano").await;
    let event = crate::helpers::create_event(
        &app,
        &nina,
        crate::helpers::event_body("Jam", 3, 45.76, 4.83),
    )
    .await;
    app.post(
        &format!("/api/v1/events/{event}/participations"),
        miles.token(),
        json!({"instrument_id": piano}),
    )
    .await
    .ok(201);
    let pushed = nina_ws
        .next_of(&["notification.created"])
        .await
        .expect("pushed live");
    assert_eq!(pushed["notification"]["type"], "participation_created");
    assert_eq!(pushed["notification"]["event_id"], event.as_str());
    let stored = app.get("/api/v1/notifications", nina.token()).await;
    assert_eq!(
        stored.ok(200)["items"][0]["id"],
        pushed["notification"]["id"]
    );
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_elsewhere() {
    let mut app = spawn_app().await;
    let nina = app.register("nina").await;
    let mut ws = Ws::connect(&app, &nina.access).await;
    app.stop().await;
    assert_eq!(ws.closed().await, 1001);
}

#[tokio::test]
async fn a_redis_restart_loses_nothing_for_a_client_that_resumes() {
    let port = free_port();
    let mut redis = OwnRedis::start(port).await;
    let url = redis.url();
    let with_redis = |s: &mut tunelink::config::Settings| {
        s.redis_url = Some(tunelink::config::Secret::new(url.clone()))
    };
    let one = spawn_with(with_redis).await;
    let two = spawn_sibling_with(&one, with_redis).await;
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    let conv = conversation(&one, &nina, &[&miles]).await;
    let mut receiver = Ws::connect(&two, &miles.access).await;
    rest_send(&one, &nina, &conv, "before").await;
    let first = receiver.next_of(&["message.created"]).await.unwrap();
    let mut last_seq = first["seq"].as_i64().unwrap();

    // Redis goes away: messages sent meanwhile cannot cross instances…
    redis.stop();
    for i in 1..=3 {
        rest_send(&one, &nina, &conv, &format!("during {i}")).await;
    }
    // …and when it is back, the instances resubscribe and tell clients to resync.
    let mut redis = OwnRedis::start(port).await;
    let resync = receiver
        .next_of(&["resync_required"])
        .await
        .expect("told to resync");
    assert!(resync["conversation_id"].is_null());
    for f in receiver
        .drain(&["message.created"], Duration::from_millis(200))
        .await
    {
        last_seq = last_seq.max(f["seq"].as_i64().unwrap());
    }
    let mut back = Ws::connect_quiet(&two, &miles.access).await;
    back.send(json!({"type": "resume", "conversations": {conv.clone(): first["seq"]}}))
        .await;
    let mut bodies = Vec::new();
    loop {
        let f = back.next().await.expect("replay then resumed");
        match f["type"].as_str().unwrap() {
            "message.created" => bodies.push(f["message"]["body"].as_str().unwrap().to_owned()),
            "resumed" => break,
            _ => {}
        }
    }
    assert_eq!(bodies, ["during 1", "during 2", "during 3"]);
    rest_send(&one, &nina, &conv, "after").await;
    let live = back
        .next_of(&["message.created"])
        .await
        .expect("live again across instances");
    assert_eq!(live["message"]["body"], "after");
    let _ = last_seq;
    redis.stop();
}

#[tokio::test]
async fn membership_and_renames_are_pushed_to_everyone_concerned() {
    let app = spawn_app().await;
    let (nina, miles, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("zoe").await,
    );
    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    let mut zoe_ws = Ws::connect(&app, &zoe.access).await;
    let conv = conversation(&app, &nina, &[&miles, &nina]).await;
    let members = format!("/api/v1/conversations/{conv}/participants");
    app.post(&members, nina.token(), json!({"user_id": zoe.id}))
        .await
        .ok(200);
    app.patch(
        &format!("/api/v1/conversations/{conv}"),
        zoe.token(),
        json!({"title": "Trio"}),
    )
    .await
    .ok(200);
    app.delete(&format!("{members}/{}", miles.id), nina.token())
        .await
        .ok(200);
    let kinds = |frames: Vec<serde_json::Value>| -> Vec<String> {
        frames
            .iter()
            .map(|f| f["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let types = [
        "conversation.created",
        "member.joined",
        "conversation.renamed",
        "member.left",
    ];
    assert_eq!(
        kinds(nina_ws.drain(&types, Duration::from_millis(500)).await),
        [
            "conversation.created",
            "member.joined",
            "conversation.renamed",
            "member.left"
        ]
    );
    assert_eq!(
        kinds(miles_ws.drain(&types, Duration::from_millis(200)).await),
        [
            "conversation.created",
            "member.joined",
            "conversation.renamed",
            "member.left"
        ],
        "the removed member hears of it"
    );
    assert_eq!(
        kinds(zoe_ws.drain(&types, Duration::from_millis(200)).await),
        ["member.joined", "conversation.renamed", "member.left"],
        "the newcomer hears from her arrival on"
    );
    rest_send(&app, &nina, &conv, "after miles left").await;
    assert!(
        miles_ws
            .drain(MESSAGES, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

/// A frame over 64 KiB closes with 1009 (message too big) and a text frame that is not
/// UTF-8 with 1007 (RFC 6455, 7.4.1), as `protocol/README.md` says; they closed with 1000.
#[tokio::test]
async fn oversized_and_invalid_utf8_frames_close_with_their_rfc_codes() {
    use tokio_tungstenite::tungstenite::{
        Message,
        protocol::frame::{
            Frame,
            coding::{Data, OpCode},
        },
    };
    let app = spawn_app().await;
    let nina = app.register("nina").await;

    let mut ws = Ws::connect(&app, &nina.access).await;
    let huge = json!({"type": "ping", "ref": "x".repeat(70 * 1024)}).to_string();
    ws.send_raw(Message::Text(huge.into())).await;
    assert_eq!(ws.closed().await, 1009, "over 64 KiB");

    let mut ws = Ws::connect(&app, &nina.access).await;
    let invalid = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
    ws.send_raw(Message::Frame(invalid)).await;
    assert_eq!(ws.closed().await, 1007, "not UTF-8");
}

/// Reconnecting with the token of a session that has ended closes with 4004 (log in
/// again), as a revocation of a live socket does; it closed with 4001.
#[tokio::test]
async fn reconnecting_with_a_revoked_session_closes_with_4004() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    app.post("/api/v1/auth/logout", nina.token(), json!({}))
        .await
        .ok(200);
    let mut ws = Ws::open(&app, Some(&nina.access), None).await;
    assert_eq!(ws.closed().await, 4004, "the session was revoked");
}
