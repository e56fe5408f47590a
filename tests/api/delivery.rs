//! Delivery guarantees of the socket (issue 11, `spec-11`): a `resume` on the same socket
//! after a transport resync, live frames that reach an instance out of order, notifications
//! replayed by `resume`, an announcement to every account, and a shutdown that waits for
//! its sockets. Real servers, real sockets, PostgreSQL and a Redis of each test's own.

use std::time::Duration;

use serde_json::{Value, json};
use tunelink::{config::Secret, limits::RateLimits};
use uuid::Uuid;

use crate::{
    helpers::post_message as rest_send,
    helpers::{
        HeldLink, OwnRedis, TestApp, User, catalogue_id, create_event, event_body, free_port,
        make_admin, pair_with, redis_up, spawn_app, spawn_sibling_with, spawn_with,
        start_conversation,
    },
    ws::{End, Ws},
};

/// An administrator's announcement to one user.
async fn announce(app: &TestApp, admin: &User, to: &User, title: &str) {
    let sent = app
        .post(
            "/api/v1/notifications",
            admin.token(),
            json!({"user_id": to.id, "title": title, "body": "From the team."}),
        )
        .await;
    assert_eq!(sent.ok(201)["recipients"], 1);
}

/// Connects and waits for the `pong` of `Ws::connect`'s ping: live frames flow from then on.
async fn connect_live(app: &TestApp, token: &str) -> Ws {
    let mut ws = Ws::connect(app, token).await;
    let pong = ws.next_of(&["pong"]).await.expect("pong");
    assert_eq!(pong["ref"], "live");
    ws
}

/// Every frame up to `resumed` (bounded: 5 s of silence ends it), and `resumed` itself.
async fn until_resumed(ws: &mut Ws) -> (Vec<Value>, Option<Value>) {
    let mut frames = Vec::new();
    while let Some(f) = ws.next().await {
        if f["type"] == "resumed" {
            return (frames, Some(f));
        }
        frames.push(f);
    }
    (frames, None)
}

/// `(event seq, body)` of the `message.created` frames among `frames`.
fn messages(frames: &[Value]) -> Vec<(i64, String)> {
    frames
        .iter()
        .filter(|f| f["type"] == "message.created")
        .map(|f| {
            (
                f["seq"].as_i64().unwrap_or(-1),
                f["message"]["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Defect 1: after `resync_required` (null), a `resume` on the same socket replays what
/// was missed, also for a conversation that had live frames on that socket.
#[tokio::test]
async fn resume_on_the_same_socket_after_a_resync_replays_what_was_missed() {
    let (mut redis, one, two) = pair_with(|_| {}).await;
    let port = redis.port;
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    let conv = start_conversation(&one, &nina, &[&miles], None).await;
    let mut phone = connect_live(&two, &miles.access).await;

    // Message 1 reaches the phone on instance two live, through Redis.
    rest_send(&one, &nina, &conv, "one").await;
    let first = phone
        .next_of(&["message.created"])
        .await
        .expect("message 1 live across instances");
    assert_eq!(first["message"]["body"], "one");
    let seen = first["seq"].as_i64().unwrap();

    // Redis goes away: messages 2 and 3 are stored, but cannot cross to instance two.
    redis.stop();
    rest_send(&one, &nina, &conv, "two").await;
    rest_send(&one, &nina, &conv, "three").await;
    let _redis = OwnRedis::start(port).await;
    let resync = phone
        .next_of(&["resync_required"])
        .await
        .expect("told to resync once Redis is back");
    assert!(resync["conversation_id"].is_null(), "{resync}");

    // The client resumes on the same socket, from what it processed.
    phone
        .send(json!({"type": "resume", "conversations": {conv.clone(): seen}}))
        .await;
    let (frames, resumed) = until_resumed(&mut phone).await;
    assert_eq!(
        messages(&frames),
        [(seen + 1, "two".to_owned()), (seen + 2, "three".to_owned())],
        "messages 2 and 3 replayed in order before `resumed`; frames: {frames:?}, then {resumed:?}"
    );
    assert!(resumed.is_some(), "no `resumed`; frames: {frames:?}");

    // Live again, and nothing twice.
    rest_send(&one, &nina, &conv, "four").await;
    let mut after = Vec::new();
    if let Some(f) = phone.next_of(&["message.created"]).await {
        after.push(f);
    }
    after.extend(
        phone
            .drain(&["message.created"], Duration::from_millis(500))
            .await,
    );
    assert_eq!(messages(&after), [(seen + 3, "four".to_owned())]);
}

/// Defect 2: the first live frames of a conversation reach an instance out of order
/// (N+1, stored through this instance, before N, which crosses Redis): the device gets N
/// then N+1, each once.
#[tokio::test]
async fn live_frames_arriving_out_of_order_are_delivered_in_order() {
    let port = free_port();
    let redis = OwnRedis::start(port).await;
    let url = redis.url();
    // Instance two reaches Redis through a link the test can hold.
    let link = HeldLink::start(port).await;
    let link_url = link.url();
    let one = spawn_with(|s| {
        s.redis_url = Some(Secret::new(url.clone()));
        s.rate_limits = RateLimits::off();
    })
    .await;
    let two = spawn_sibling_with(&one, |s| {
        s.redis_url = Some(Secret::new(link_url.clone()));
        s.rate_limits = RateLimits::off();
    })
    .await;
    redis_up(&one).await;
    redis_up(&two).await;
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    // Created before the device connects: N is the first frame of it the device sees.
    let conv = start_conversation(&one, &nina, &[&miles], None).await;
    let mut phone = connect_live(&two, &miles.access).await;

    link.hold();
    // N is stored through instance one: it reaches instance two through Redis, held back…
    let n = rest_send(&one, &nina, &conv, "N").await;
    // …N+1 is stored through instance two, which hands it to its own device at once.
    let n1 = rest_send(&two, &nina, &conv, "N+1").await;
    assert_eq!(n1["seq"].as_i64(), n["seq"].as_i64().map(|s| s + 1));
    link.release();

    let mut got = Vec::new();
    for _ in 0..2 {
        if let Some(f) = phone.next_of(&["message.created"]).await {
            got.push(f);
        }
    }
    got.extend(
        phone
            .drain(&["message.created"], Duration::from_millis(500))
            .await,
    );
    let got = messages(&got);
    let bodies: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies, ["N", "N+1"], "in order, once each: {got:?}");
    assert_eq!(got[1].0, got[0].0 + 1, "consecutive event numbers: {got:?}");
}

/// Defect 3: notifications created while a device was offline are replayed by `resume`
/// with `notifications`, in order, before `resumed`, which tells the current number.
#[tokio::test]
async fn notifications_missed_while_offline_are_replayed_by_resume() {
    let app = spawn_app().await;
    let (boss, nina, miles) = (
        app.register("boss").await,
        app.register("nina").await,
        app.register("miles").await,
    );
    make_admin(&app, &boss).await;
    let mut phone = connect_live(&app, &nina.access).await;
    announce(&app, &boss, &nina, "while online").await;
    let live = phone
        .next_of(&["notification.created"])
        .await
        .expect("pushed live");
    phone.close().await;
    drop(phone);

    // Offline: an announcement, then a participation accepted.
    announce(&app, &boss, &nina, "while offline").await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let event = create_event(&app, &miles, event_body("Jam", 3, 45.76, 4.83)).await;
    let joined = app
        .post(
            &format!("/api/v1/events/{event}/participations"),
            nina.token(),
            json!({"instrument_id": piano}),
        )
        .await;
    let participation = joined.ok(201)["id"].as_str().unwrap().to_owned();
    app.patch(
        &format!("/api/v1/participations/{participation}"),
        miles.token(),
        json!({"status": "accepted"}),
    )
    .await
    .ok(200);

    // Back: the client had notification 1 (an account's first notification is number 1).
    let mut back = Ws::connect_quiet(&app, &nina.access).await;
    back.send(json!({"type": "resume", "conversations": {}, "notifications": 1}))
        .await;
    let (frames, resumed) = until_resumed(&mut back).await;
    let replayed: Vec<(Value, Value, Value, Value)> = frames
        .iter()
        .filter(|f| f["type"] == "notification.created")
        .map(|f| {
            (
                f["seq"].clone(),
                f["notification"]["seq"].clone(),
                f["notification"]["type"].clone(),
                f["notification"]["title"].clone(),
            )
        })
        .collect();
    assert_eq!(
        replayed,
        [
            (
                json!(2),
                json!(2),
                json!("announcement"),
                json!("while offline")
            ),
            (
                json!(3),
                json!(3),
                json!("participation_accepted"),
                json!("Your participation was accepted")
            ),
        ],
        "notifications 2 and 3 replayed in order before `resumed`; frames: {frames:?}, then {resumed:?}"
    );
    let resumed = resumed.expect("`resumed` ends the replay");
    assert_eq!(resumed["notifications_seq"], 3, "{resumed}");
    assert_eq!(live["seq"], 1, "the live frame was number 1: {live}");
}

/// Defect 3: live `notification.created` frames and `GET /notifications` items carry the
/// per-user notification number.
#[tokio::test]
async fn notification_frames_and_the_list_carry_the_per_user_number() {
    let app = spawn_app().await;
    let (boss, nina) = (app.register("boss").await, app.register("nina").await);
    make_admin(&app, &boss).await;
    let mut phone = connect_live(&app, &nina.access).await;
    announce(&app, &boss, &nina, "first").await;
    announce(&app, &boss, &nina, "second").await;
    let mut live = Vec::new();
    for _ in 0..2 {
        let f = phone
            .next_of(&["notification.created"])
            .await
            .expect("pushed live");
        live.push((
            f["seq"].clone(),
            f["notification"]["seq"].clone(),
            f["notification"]["title"].clone(),
        ));
    }
    assert_eq!(
        live,
        [
            (json!(1), json!(1), json!("first")),
            (json!(2), json!(2), json!("second"))
        ]
    );
    let list = app.get("/api/v1/notifications", nina.token()).await;
    let listed: Vec<(Value, Value)> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["seq"].clone(), n["title"].clone()))
        .collect();
    assert_eq!(
        listed,
        [(json!(2), json!("second")), (json!(1), json!("first"))],
        "newest first, with their numbers"
    );
}

/// Defect 3: reading a notification on one device is pushed to the user's other devices.
#[tokio::test]
async fn reading_a_notification_is_pushed_to_the_other_devices() {
    let app = spawn_app().await;
    let (boss, nina) = (app.register("boss").await, app.register("nina").await);
    make_admin(&app, &boss).await;
    let tablet_token = app.login("nina", &nina.password).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut phone = connect_live(&app, &nina.access).await;
    let mut tablet = connect_live(&app, &tablet_token).await;
    announce(&app, &boss, &nina, "read me").await;
    let created = tablet
        .next_of(&["notification.created"])
        .await
        .expect("pushed live");
    let id = created["notification"]["id"].as_str().unwrap().to_owned();
    phone
        .next_of(&["notification.created"])
        .await
        .expect("pushed live");

    // Read on the phone (over REST).
    app.post(
        &format!("/api/v1/notifications/{id}/read"),
        nina.token(),
        json!({}),
    )
    .await
    .ok(200);
    let read = tablet
        .next_of(&["notification.read"])
        .await
        .expect("the read reaches the other device as `notification.read`");
    assert_eq!(read["notification_ids"], json!([id]), "{read}");
    assert!(read["read_at"].is_string(), "{read}");
    assert_eq!(
        read["seq"].as_i64(),
        created["seq"].as_i64().map(|s| s + 1),
        "the read takes the next number: {read}"
    );
}

/// Defect 4: an announcement to every account (thousands of them) reaches the connected
/// devices, on both instances, without any `resync_required`.
#[tokio::test]
async fn an_announcement_to_thousands_of_accounts_needs_no_resync() {
    let (_redis, one, two) = pair_with(|_| {}).await;
    // 5,000 active accounts, straight into the database (nobody logs in with them).
    sqlx::query(
        "INSERT INTO users (username, email, password_hash)
         SELECT 'filler' || i, 'filler' || i || '@example.com',
                '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo'
         FROM generate_series(1, 5000) AS i",
    )
    .execute(&one.db)
    .await
    .unwrap();
    let (boss, nina, miles) = (
        one.register("boss").await,
        one.register("nina").await,
        one.register("miles").await,
    );
    make_admin(&one, &boss).await;
    let mut on_one = connect_live(&one, &nina.access).await;
    let mut on_two = connect_live(&two, &miles.access).await;

    let sent = one
        .post(
            "/api/v1/notifications",
            boss.token(),
            json!({"all": true, "title": "Fête de la musique", "body": "June 21st."}),
        )
        .await;
    assert_eq!(sent.ok(201)["recipients"], 5003);
    for (device, ws) in [("nina on one", &mut on_one), ("miles on two", &mut on_two)] {
        let got: Vec<(Value, Value)> = ws
            .drain(
                &["notification.created", "resync_required"],
                Duration::from_secs(2),
            )
            .await
            .iter()
            .map(|f| (f["type"].clone(), f["notification"]["title"].clone()))
            .collect();
        assert_eq!(
            got,
            [(json!("notification.created"), json!("Fête de la musique"))],
            "{device}: the announcement, once, and no resync"
        );
    }
}

/// Defect 6: when the server's run future returns, its sockets were closed with 1001 and
/// their presence removed, and contacts on another instance hear the user went offline.
#[tokio::test]
async fn shutdown_waits_for_its_sockets_to_close_and_leave() {
    // Room to wait for its sockets: the wait below must not be cut short by the grace.
    let (_redis, one, mut two) = pair_with(|s| s.shutdown_grace = Duration::from_secs(10)).await;
    let (nina, miles) = (one.register("nina").await, one.register("miles").await);
    start_conversation(&one, &nina, &[&miles], None).await;
    let mut miles_ws = connect_live(&one, &miles.access).await;
    let mut nina_ws = connect_live(&two, &nina.access).await;
    // Miles hears that Nina came online (from instance two, through Redis).
    loop {
        let f = miles_ws
            .next_of(&["presence"])
            .await
            .expect("nina's presence");
        if f["user_id"] == nina.id.as_str() && f["status"] == "online" {
            break;
        }
    }

    // A slow database while shutting down: Nina's presence row stays locked for a moment,
    // so removing it takes that long. The run future must wait for it.
    let mut lock = one.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM presence WHERE user_id = $1::uuid FOR UPDATE")
        .bind(&nina.id)
        .fetch_all(&mut *lock)
        .await
        .unwrap();
    let slow = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        lock.commit().await.unwrap();
    });
    two.stop().await;
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(connections), 0)::bigint FROM presence WHERE user_id = $1::uuid",
    )
    .bind(&nina.id)
    .fetch_one(&one.db)
    .await
    .unwrap();
    assert_eq!(
        counted, 0,
        "nina's socket is still counted once the run future returned"
    );
    slow.await.unwrap();
    assert_eq!(nina_ws.closed().await, 1001);
    let offline = loop {
        match miles_ws.next_within(Duration::from_secs(10)).await {
            End::Frame(f)
                if f["type"] == "presence"
                    && f["user_id"] == nina.id.as_str()
                    && f["status"] == "offline" =>
            {
                break f;
            }
            End::Frame(_) => continue,
            other => panic!("miles never heard nina went offline: {other:?}"),
        }
    };
    assert!(offline["last_seen_at"].is_string(), "{offline}");
}

/// Defect 5: the periodic session check compared two lists (O(n²)), about 10⁸ comparisons
/// at 19,000 sockets, blocking a runtime thread every 30 s. At 40,000 sockets of live
/// sessions (and a few revoked) one round closes exactly the revoked ones and leaves the
/// others open. (Not a timing test: the bound only stops a hang. Measured, this test took
/// 7.3 s with the quadratic check and 1.6 s with the linear one, in a debug build.)
#[tokio::test]
async fn the_session_check_is_linear_in_the_number_of_sockets() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    const SOCKETS: usize = 40_000;
    let sessions: Vec<Uuid> = (0..SOCKETS).map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, expires_at, revoked_at)
         SELECT s, $2::uuid, now() + interval '1 day',
                CASE WHEN n % 10000 = 0 THEN now() END
         FROM unnest($1::uuid[]) WITH ORDINALITY AS t(s, n)",
    )
    .bind(&sessions)
    .bind(&nina.id)
    .execute(&app.db)
    .await
    .unwrap();
    // One user of the hub per socket (the hub files connections by user).
    let hub = &app.state.hub;
    let conns: Vec<_> = sessions
        .iter()
        .map(|s| {
            let user = Uuid::new_v4();
            let (id, mailbox) = hub.register(user, *s);
            (user, id, mailbox)
        })
        .collect();
    let checked = tokio::time::timeout(
        Duration::from_secs(60),
        tunelink::realtime::upkeep::round(hub, &app.db, false),
    )
    .await;
    assert!(checked.is_ok(), "one session check round never finished");
    let closed: Vec<usize> = conns
        .iter()
        .enumerate()
        .filter(|(_, (_, _, mailbox))| mailbox.is_closed())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        closed,
        [10_000, 20_000, 30_000, 40_000],
        "exactly the revoked sessions"
    );
    for (user, id, _) in conns {
        hub.unregister(user, id);
    }
}

/// Issue 15, finding 8: `resume` from `i64::MIN` wrapped (events 1–500 replayed, `resumed`
/// sent, 501… never came). Negative numbers are refused with a `validation_failed` error
/// frame naming the field, nothing is replayed, and the same socket resumes properly next.
#[tokio::test]
async fn negative_resume_numbers_are_refused_and_the_socket_still_resumes() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    for body in ["one", "two"] {
        rest_send(&app, &nina, &conv, body).await;
    }

    let mut phone = Ws::connect_quiet(&app, &miles.access).await;
    for (frame, field) in [
        (
            json!({"type": "resume", "conversations": {conv.clone(): i64::MIN}}),
            "conversations",
        ),
        (
            json!({"type": "resume", "conversations": {}, "notifications": -1}),
            "notifications",
        ),
    ] {
        phone.send(frame).await;
        let error = phone
            .next_of(&["error", "resumed", "message.created"])
            .await
            .expect("an answer");
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], "validation_failed", "{error}");
        assert!(
            error["message"].as_str().unwrap_or("").contains(field),
            "{error}"
        );
    }
    phone
        .send(json!({"type": "resume", "conversations": {conv.clone(): 2}}))
        .await;
    let (frames, resumed) = until_resumed(&mut phone).await;
    // Event 1 started the conversation, 2 and 3 are the messages.
    assert_eq!(messages(&frames), [(3, "two".to_owned())], "{frames:?}");
    assert!(resumed.is_some());
}
