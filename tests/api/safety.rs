//! Block, report and presence privacy (issue 15): what strangers can do to each other, and
//! what administrators do about it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{
        TestApp, User, all_pages, make_admin, post_message as send, spawn_app, start_conversation,
    },
    ws::Ws,
};

async fn finds(app: &TestApp, by: &User, name: &str) -> bool {
    all_pages(app, &format!("/api/v1/users?q={name}"), by.token())
        .await
        .iter()
        .any(|u| u["username"] == name)
}

#[tokio::test]
async fn a_block_closes_direct_chat_group_invitations_and_search_both_ways() {
    let app = spawn_app().await;
    let (nina, miles, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("zoe").await,
    );
    let direct = start_conversation(&app, &nina, &[&miles], None).await;
    let group = start_conversation(&app, &nina, &[&zoe], Some("Band")).await;
    send(&app, &nina, &direct, "hi miles").await;
    assert!(finds(&app, &nina, "miles").await);

    let blocked = app
        .put(
            &format!("/api/v1/users/me/blocks/{}", nina.id),
            miles.token(),
            json!({}),
        )
        .await;
    assert_eq!(blocked.ok(201)["user"]["username"], "nina");
    app.put(
        &format!("/api/v1/users/me/blocks/{}", nina.id),
        miles.token(),
        json!({}),
    )
    .await
    .ok(200);

    // Neither writes in their direct conversation, over REST or the socket.
    for by in [&nina, &miles] {
        app.post(
            &format!("/api/v1/conversations/{direct}/messages"),
            by.token(),
            json!({"body": "still there?"}),
        )
        .await
        .err(403, "forbidden");
    }
    let mut ws = Ws::connect(&app, &nina.access).await;
    ws.send_message("r1", &direct, "over the socket", None)
        .await;
    let answer = ws.next_of(&["ack", "error"]).await.unwrap();
    assert_eq!(answer["type"], "error", "{answer}");
    // Nor starts one again, nor adds the other to a group.
    app.post(
        "/api/v1/conversations",
        nina.token(),
        json!({"participant_ids": [miles.id]}),
    )
    .await
    .err(403, "forbidden");
    app.post(
        &format!("/api/v1/conversations/{group}/participants"),
        nina.token(),
        json!({"user_id": miles.id}),
    )
    .await
    .err(403, "forbidden");
    // Nor finds the other.
    assert!(!finds(&app, &nina, "miles").await);
    assert!(!finds(&app, &miles, "nina").await);
    assert!(finds(&app, &nina, "zoe").await);
    // History stays; nothing was half-written.
    let history = all_pages(
        &app,
        &format!("/api/v1/conversations/{direct}/messages"),
        miles.token(),
    )
    .await;
    assert_eq!(history.len(), 1);

    let list = all_pages(&app, "/api/v1/users/me/blocks", miles.token()).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["user"]["id"], json!(nina.id));

    // Unblocked: the conversation carries messages again.
    let lifted = app
        .delete(
            &format!("/api/v1/users/me/blocks/{}", nina.id),
            miles.token(),
        )
        .await;
    assert_eq!(lifted.ok(200)["unblocked"], true);
    send(&app, &nina, &direct, "welcome back").await;
    assert!(finds(&app, &miles, "nina").await);
}

#[tokio::test]
async fn blocking_yourself_or_nobody_is_refused_by_field() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let me = app
        .put(
            &format!("/api/v1/users/me/blocks/{}", nina.id),
            nina.token(),
            json!({}),
        )
        .await;
    me.err(422, "validation_failed");
    assert_eq!(me.fields()[0].0, "user_id");
    app.put(
        &format!("/api/v1/users/me/blocks/{}", uuid::Uuid::new_v4()),
        nina.token(),
        json!({}),
    )
    .await
    .err(404, "not_found");
    app.put("/api/v1/users/me/blocks/nope", nina.token(), json!({}))
        .await
        .err(422, "validation_failed");
}

async fn presence_of(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    ws.drain(&["presence"], wait).await
}

/// Finding 7: a stranger who starts a direct conversation does not get to watch your
/// presence; you share it once you take part, and can stop sharing it.
#[tokio::test]
async fn presence_goes_only_to_people_you_talk_with_and_can_be_turned_off() {
    let app = spawn_app().await;
    let (nina, eve) = (app.register("nina").await, app.register("eve").await);
    let conv = start_conversation(&app, &eve, &[&nina], None).await;
    let mut eve_ws = Ws::connect(&app, &eve.access).await;
    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    // Nina never wrote there: Eve learns nothing of her.
    assert!(
        presence_of(&mut eve_ws, Duration::from_millis(600))
            .await
            .is_empty()
    );
    // Eve started it: Nina sees Eve.
    let seen = presence_of(&mut nina_ws, Duration::from_millis(300)).await;
    assert!(
        seen.iter()
            .any(|p| p["user_id"] == json!(eve.id) && p["status"] == "online"),
        "{seen:?}"
    );
    // Once Nina writes there, Eve's next snapshot shows her.
    send(&app, &nina, &conv, "hello").await;
    eve_ws.close().await;
    let mut eve_ws = Ws::connect(&app, &eve.access).await;
    let online = eve_ws.next_of(&["presence"]).await.expect("now shared");
    assert_eq!(
        (&online["user_id"], &online["status"]),
        (&json!(nina.id), &json!("online"))
    );

    // Nina turns sharing off: Eve is told she is gone, and sees nothing more.
    let off = app
        .put(
            "/api/v1/users/me/privacy",
            nina.token(),
            json!({"share_presence": false}),
        )
        .await;
    assert_eq!(off.ok(200)["share_presence"], false);
    let gone = eve_ws.next_of(&["presence"]).await.expect("offline");
    assert_eq!(
        (&gone["status"], &gone["last_seen_at"]),
        (&json!("offline"), &Value::Null)
    );
    nina_ws.close().await;
    let _nina_again = Ws::connect(&app, &nina.access).await;
    assert!(
        presence_of(&mut eve_ws, Duration::from_millis(1500))
            .await
            .is_empty()
    );
    let privacy = app.get("/api/v1/users/me/privacy", nina.token()).await;
    assert_eq!(privacy.ok(200)["share_presence"], false);

    // A block hides presence both ways, even with sharing on.
    app.put(
        "/api/v1/users/me/privacy",
        nina.token(),
        json!({"share_presence": true}),
    )
    .await
    .ok(200);
    app.put(
        &format!("/api/v1/users/me/blocks/{}", eve.id),
        nina.token(),
        json!({}),
    )
    .await
    .ok(201);
    let mut eve_again = Ws::connect(&app, &eve.access).await;
    assert!(
        presence_of(&mut eve_again, Duration::from_millis(600))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn reports_reach_the_queue_and_administrators_act_on_them() {
    let app = spawn_app().await;
    let (nina, miles, eve, admin) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
        app.register("boss").await,
    );
    make_admin(&app, &admin).await;
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    let spam = send(&app, &miles, &conv, "buy followers").await;
    let spam_id = spam["id"].as_str().unwrap();

    let filed = app
        .post(
            "/api/v1/reports",
            nina.token(),
            json!({"target_type": "message", "target_id": spam_id, "reason": "spam"}),
        )
        .await;
    let report = filed.ok(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(filed.body["data"]["status"], "open");
    let again = app
        .post(
            "/api/v1/reports",
            nina.token(),
            json!({"target_type": "message", "target_id": spam_id, "reason": "spam!"}),
        )
        .await;
    assert_eq!(again.ok(200)["id"], report.as_str());
    // What you cannot see, an invisible reason, a bad type: refused, by field.
    for (body, field) in [
        (
            json!({"target_type": "message", "target_id": spam_id, "reason": "x"}),
            "target_id",
        ),
        (
            json!({"target_type": "user", "target_id": miles.id, "reason": "\u{200B}\u{202E} "}),
            "reason",
        ),
        (
            json!({"target_type": "planet", "target_id": miles.id, "reason": "x"}),
            "target_type",
        ),
    ] {
        let refused = app.post("/api/v1/reports", eve.token(), body).await;
        refused.err(422, "validation_failed");
        assert_eq!(refused.fields()[0].0, field);
    }
    app.get("/api/v1/reports", nina.token())
        .await
        .err(403, "forbidden");

    let queue = all_pages(&app, "/api/v1/reports", admin.token()).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["target_id"], spam_id);
    let resolved = app
        .post(
            &format!("/api/v1/reports/{report}/resolve"),
            admin.token(),
            json!({"action": "delete_content", "note": "spam"}),
        )
        .await;
    assert_eq!(resolved.ok(200)["resolution"], "content_deleted");
    let message = app
        .get(&format!("/api/v1/messages/{spam_id}"), nina.token())
        .await;
    assert_eq!(message.ok(200)["deleted"], true);
    app.post(
        &format!("/api/v1/reports/{report}/resolve"),
        admin.token(),
        json!({"action": "dismiss"}),
    )
    .await
    .err(409, "conflict");
    assert!(
        all_pages(&app, "/api/v1/reports", admin.token())
            .await
            .is_empty()
    );

    // Suspending the account: sessions end, the socket closes with 4004, login is refused.
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    let user_report = app
        .post(
            "/api/v1/reports",
            nina.token(),
            json!({"target_type": "user", "target_id": miles.id, "reason": "harassment"}),
        )
        .await;
    let user_report = user_report.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/reports/{user_report}/resolve"),
        admin.token(),
        json!({"action": "suspend_user"}),
    )
    .await
    .ok(200);
    assert_eq!(miles_ws.closed().await, 4004);
    app.get("/api/v1/users/me", miles.token())
        .await
        .err(401, "session_revoked");
    let login = app.login("miles", "password-of-miles").await;
    assert_eq!(login.status, 403, "{:?}", login.body);
    let resolved = all_pages(&app, "/api/v1/reports?status=resolved", admin.token()).await;
    assert_eq!(resolved.len(), 2);
}

/// Finding 8: text made only of invisible characters shows nothing and is refused.
#[tokio::test]
async fn invisible_only_messages_are_refused_by_field() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    for body in ["\u{200B}\u{200D}", "\u{202E}\u{2066}\u{FEFF} ", "\u{3164}"] {
        let refused = app
            .post(
                &format!("/api/v1/conversations/{conv}/messages"),
                nina.token(),
                json!({ "body": body }),
            )
            .await;
        refused.err(422, "validation_failed");
        assert_eq!(refused.fields()[0].0, "body");
    }
    let history = all_pages(
        &app,
        &format!("/api/v1/conversations/{conv}/messages"),
        miles.token(),
    )
    .await;
    assert!(history.is_empty());
}

/// Finding 8: announcement links are API paths or https URLs; nothing a browser would read
/// as another host.
#[tokio::test]
async fn announcement_links_cannot_lead_to_another_host() {
    let app = spawn_app().await;
    let (admin, nina) = (app.register("boss").await, app.register("nina").await);
    make_admin(&app, &admin).await;
    for link in [
        "/\\evil.com",
        "//evil.com",
        "/api/v1/events\\..\\x",
        "http://evil.com",
        "javascript:alert(1)",
        "https:/\\evil.com",
    ] {
        let refused = app
            .post(
                "/api/v1/notifications",
                admin.token(),
                json!({"user_id": nina.id, "title": "t", "body": "b", "link": link}),
            )
            .await;
        refused.err(422, "validation_failed");
        assert_eq!(refused.fields()[0].0, "link", "{link}");
    }
    for link in ["/api/v1/events", "https://tunelink.example/fete"] {
        app.post(
            "/api/v1/notifications",
            admin.token(),
            json!({"user_id": nina.id, "title": "t", "body": "b", "link": link}),
        )
        .await
        .ok(201);
    }
}

/// Finding 8: a NUL character is refused naming the field it is in, wherever it is.
#[tokio::test]
async fn nul_characters_are_reported_against_their_field() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    let cases = [
        (
            app.post(
                &format!("/api/v1/conversations/{conv}/messages"),
                nina.token(),
                json!({"body": "hi", "client_msg_id": "k\u{0}1"}),
            )
            .await,
            "client_msg_id",
        ),
        (
            app.post(
                "/api/v1/conversations",
                nina.token(),
                json!({"participant_ids": [miles.id], "title": "Band\u{0}"}),
            )
            .await,
            "title",
        ),
        (app.get("/api/v1/users?q=ni%00na", nina.token()).await, "q"),
    ];
    for (resp, field) in cases {
        resp.err(422, "validation_failed");
        assert_eq!(resp.fields()[0].0, field, "{:?}", resp.body);
    }
}

/// Finding 1: one address cannot hold more than a few sockets that never log in; once one
/// authenticates (or times out) its place is free, and logged-in sockets are not counted.
#[tokio::test]
async fn unauthenticated_sockets_are_capped_per_address() {
    use tokio_tungstenite::tungstenite::Error;
    let app =
        crate::helpers::spawn_with(|s| s.connections.max_unauthenticated_per_address = 2).await;
    let nina = app.register("nina").await;
    let url = format!("{}/ws", app.base.replace("http://", "ws://"));
    let mut first = Ws::open(&app, None, None).await;
    let _second = Ws::open(&app, None, None).await;
    match tokio_tungstenite::connect_async(&url).await {
        Err(Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            assert!(resp.headers().contains_key("retry-after"));
        }
        other => panic!("a third waiting socket was let in: {:?}", other.map(|_| ())),
    }
    // With a token in the header, nothing waits: not counted.
    let _live = Ws::connect(&app, &nina.access).await;
    // The first one logs in: its place is free again.
    first
        .send(json!({"type": "auth", "token": nina.access}))
        .await;
    assert_eq!(first.next().await.unwrap()["type"], "ready");
    let _third = Ws::open(&app, None, None).await;
}
