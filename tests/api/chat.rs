//! Conversations and messages over REST.

use serde_json::json;

use crate::helpers::{
    TestApp, User, all_pages, post_message as send, spawn_app, start_conversation,
};

async fn conversation(app: &TestApp, by: &User, with: &[&User], title: Option<&str>) -> String {
    start_conversation(app, by, with, title).await
}

#[tokio::test]
async fn a_direct_conversation_is_created_once() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let first = app
        .post(
            "/api/v1/conversations",
            nina.token(),
            json!({"participant_ids": [miles.id]}),
        )
        .await;
    let id = first.ok(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(first.body["data"]["kind"], "direct");
    let again = app
        .post(
            "/api/v1/conversations",
            nina.token(),
            json!({"participant_ids": [miles.id, nina.id]}),
        )
        .await;
    assert_eq!(again.ok(200)["id"], id.as_str());
    let other_side = app
        .post(
            "/api/v1/conversations",
            miles.token(),
            json!({"participant_ids": [nina.id]}),
        )
        .await;
    assert_eq!(other_side.ok(200)["id"], id.as_str());
    let together = futures_util::future::join_all((0..5).map(|_| {
        app.post(
            "/api/v1/conversations",
            miles.token(),
            json!({"participant_ids": [nina.id]}),
        )
    }))
    .await;
    assert!(together.iter().all(|r| r.body["data"]["id"] == id.as_str()));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);

    app.post(
        "/api/v1/conversations",
        nina.token(),
        json!({"participant_ids": []}),
    )
    .await
    .err(422, "validation_failed");
    app.post(
        "/api/v1/conversations",
        nina.token(),
        json!({"participant_ids": [nina.id]}),
    )
    .await
    .err(422, "validation_failed");
    app.post(
        "/api/v1/conversations",
        nina.token(),
        json!({"participant_ids": [uuid::Uuid::new_v4()]}),
    )
    .await
    .err(422, "validation_failed");
    app.post(
        "/api/v1/conversations",
        nina.token(),
        json!({"participant_ids": [miles.id], "title": "x".repeat(101)}),
    )
    .await
    .err(422, "validation_failed");
    app.patch(
        &format!("/api/v1/conversations/{id}"),
        nina.token(),
        json!({"title": "Duo"}),
    )
    .await
    .err(409, "conflict");
    let third = app.register("third").await;
    app.post(
        &format!("/api/v1/conversations/{id}/participants"),
        nina.token(),
        json!({"user_id": third.id}),
    )
    .await
    .err(409, "conflict");
    app.delete(
        &format!("/api/v1/conversations/{id}/participants/{}", nina.id),
        nina.token(),
    )
    .await
    .err(409, "conflict");
}

#[tokio::test]
async fn messages_are_numbered_without_gaps_and_retries_make_no_twins() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = conversation(&app, &nina, &[&miles], None).await;
    let path = format!("/api/v1/conversations/{conv}/messages");

    let first = app
        .post(
            &path,
            nina.token(),
            json!({"body": "hello", "client_msg_id": "k1"}),
        )
        .await;
    let first = first.ok(201).clone();
    assert_eq!(first["seq"], 1);
    let retry = app
        .post(
            &path,
            nina.token(),
            json!({"body": "hello", "client_msg_id": "k1"}),
        )
        .await;
    assert_eq!(retry.ok(200)["id"], first["id"]);
    let retries = futures_util::future::join_all((0..8).map(|_| {
        app.post(
            &path,
            miles.token(),
            json!({"body": "hi", "client_msg_id": "same-key"}),
        )
    }))
    .await;
    let ids: std::collections::HashSet<_> = retries
        .iter()
        .map(|r| r.body["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "concurrent retries yield one message");

    let burst = futures_util::future::join_all((0..20).map(|i| {
        let who = if i % 2 == 0 { &nina } else { &miles };
        app.post(&path, who.token(), json!({"body": format!("m{i}")}))
    }))
    .await;
    assert!(burst.iter().all(|r| r.status == 201));
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM messages ORDER BY seq")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(seqs, (1..=22).collect::<Vec<i64>>());
    let events: Vec<i64> = sqlx::query_scalar("SELECT seq FROM conversation_events ORDER BY seq")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        events,
        (1..=events.len() as i64).collect::<Vec<i64>>(),
        "event numbers have no gap either"
    );

    app.post(&path, nina.token(), json!({"body": "   "}))
        .await
        .err(422, "validation_failed");
    app.post(&path, nina.token(), json!({"body": "x".repeat(4001)}))
        .await
        .err(422, "validation_failed");
    app.post(
        &path,
        nina.token(),
        json!({"body": "x", "client_msg_id": "k".repeat(65)}),
    )
    .await
    .err(422, "validation_failed");
}

#[tokio::test]
async fn history_pages_both_ways_and_read_markers_move_forward_only() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = conversation(&app, &nina, &[&miles], None).await;
    for i in 1..=7 {
        send(&app, &nina, &conv, &format!("m{i}")).await;
    }
    let newest_first = all_pages(
        &app,
        &format!("/api/v1/conversations/{conv}/messages?limit=3"),
        miles.token(),
    )
    .await;
    let seqs: Vec<i64> = newest_first
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [7, 6, 5, 4, 3, 2, 1]);
    let since = all_pages(
        &app,
        &format!("/api/v1/conversations/{conv}/messages?after=4&limit=2"),
        miles.token(),
    )
    .await;
    let seqs: Vec<i64> = since.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [5, 6, 7]);

    let list = app.get("/api/v1/conversations", miles.token()).await;
    let c = &list.ok(200)["items"][0];
    assert_eq!(
        (
            c["unread_count"].as_i64(),
            c["last_message"]["body"].as_str()
        ),
        (Some(7), Some("m7"))
    );
    assert_eq!(
        app.get("/api/v1/conversations", nina.token()).await.ok(200)["items"][0]["unread_count"],
        0
    );

    let read = format!("/api/v1/conversations/{conv}/read");
    assert_eq!(
        app.post(&read, miles.token(), json!({"seq": 5}))
            .await
            .ok(200)["moved"],
        true
    );
    let back = app.post(&read, miles.token(), json!({"seq": 2})).await;
    assert_eq!(
        (
            back.ok(200)["moved"].as_bool(),
            back.body["data"]["last_read_seq"].as_i64()
        ),
        (Some(false), Some(5))
    );
    app.post(&read, miles.token(), json!({"seq": 99}))
        .await
        .err(422, "validation_failed");
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{conv}"), miles.token())
            .await
            .ok(200)["unread_count"],
        2
    );

    let m5 = &newest_first[2];
    let details = app
        .get(
            &format!("/api/v1/messages/{}", m5["id"].as_str().unwrap()),
            nina.token(),
        )
        .await;
    assert_eq!(details.ok(200)["read_by"][0]["username"], "miles");
    let m6 = &newest_first[1];
    let details = app
        .get(
            &format!("/api/v1/messages/{}", m6["id"].as_str().unwrap()),
            nina.token(),
        )
        .await;
    assert!(details.ok(200)["read_by"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_list_is_sorted_by_last_activity() {
    let app = spawn_app().await;
    let (nina, a, b) = (
        app.register("nina").await,
        app.register("alice").await,
        app.register("bob").await,
    );
    let with_a = conversation(&app, &nina, &[&a], None).await;
    let with_b = conversation(&app, &nina, &[&b], None).await;
    send(&app, &nina, &with_b, "first").await;
    send(&app, &a, &with_a, "latest").await;
    let items = all_pages(&app, "/api/v1/conversations?limit=1", nina.token()).await;
    let ids: Vec<&str> = items.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [with_a.as_str(), with_b.as_str()]);
}

#[tokio::test]
async fn only_members_see_or_touch_a_conversation() {
    let app = spawn_app().await;
    let (nina, miles, eve) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
    );
    let conv = conversation(&app, &nina, &[&miles], None).await;
    let m = send(&app, &nina, &conv, "secret").await;
    let mid = m["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/conversations/{conv}"),
        format!("/api/v1/conversations/{conv}/messages"),
        format!("/api/v1/conversations/{conv}/participants"),
        format!("/api/v1/messages/{mid}"),
    ] {
        app.get(&path, eve.token()).await.err(404, "not_found");
    }
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        eve.token(),
        json!({"body": "hi"}),
    )
    .await
    .err(404, "not_found");
    app.post(
        &format!("/api/v1/conversations/{conv}/read"),
        eve.token(),
        json!({"seq": 1}),
    )
    .await
    .err(404, "not_found");
    app.patch(
        &format!("/api/v1/messages/{mid}"),
        eve.token(),
        json!({"body": "x"}),
    )
    .await
    .err(404, "not_found");
    app.delete(&format!("/api/v1/messages/{mid}"), eve.token())
        .await
        .err(404, "not_found");
    app.get(
        &format!("/api/v1/conversations/{}", uuid::Uuid::new_v4()),
        eve.token(),
    )
    .await
    .err(404, "not_found");
    assert!(
        all_pages(&app, "/api/v1/conversations", eve.token())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn authors_edit_and_delete_leaving_a_tombstone() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = conversation(&app, &nina, &[&miles], None).await;
    let m = send(&app, &nina, &conv, "draft").await;
    let path = format!("/api/v1/messages/{}", m["id"].as_str().unwrap());
    app.patch(&path, miles.token(), json!({"body": "mine now"}))
        .await
        .err(403, "forbidden");
    let edited = app
        .patch(&path, nina.token(), json!({"body": "final"}))
        .await;
    assert!(edited.ok(200)["edited_at"].is_string());
    app.patch(&path, nina.token(), json!({"body": ""}))
        .await
        .err(422, "validation_failed");
    app.delete(&path, miles.token()).await.err(403, "forbidden");
    let deleted = app.delete(&path, nina.token()).await;
    assert_eq!(
        (
            deleted.ok(200)["deleted"].as_bool(),
            deleted.body["data"]["body"].is_null()
        ),
        (Some(true), true)
    );
    app.patch(&path, nina.token(), json!({"body": "again"}))
        .await
        .err(409, "conflict");
    app.delete(&path, nina.token()).await.err(409, "conflict");
    let history = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            miles.token(),
        )
        .await;
    let first = &history.ok(200)["items"][0];
    assert_eq!(
        (first["deleted"].as_bool(), first["seq"].as_i64()),
        (Some(true), Some(1))
    );
}

#[tokio::test]
async fn groups_add_remove_leave_and_rename() {
    let app = spawn_app().await;
    let (nina, miles, eve, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
        app.register("zoe").await,
    );
    let conv = conversation(&app, &nina, &[&miles], Some("Band")).await;
    let members = format!("/api/v1/conversations/{conv}/participants");
    // Members add nobody; the owner (the creator) does (see group_roles.rs).
    app.post(&members, miles.token(), json!({"user_id": eve.id}))
        .await
        .err(403, "forbidden");
    let added = app
        .post(&members, nina.token(), json!({"user_id": eve.id}))
        .await;
    assert_eq!(added.ok(200)["items"].as_array().unwrap().len(), 3);
    app.post(&members, zoe.token(), json!({"user_id": zoe.id}))
        .await
        .err(404, "not_found");
    app.post(
        &members,
        nina.token(),
        json!({"user_id": uuid::Uuid::new_v4()}),
    )
    .await
    .err(404, "not_found");
    app.get(
        &format!("/api/v1/conversations/{conv}/messages"),
        eve.token(),
    )
    .await
    .ok(200);

    app.delete(&format!("{members}/{}", eve.id), nina.token())
        .await
        .ok(200);
    app.get(&format!("/api/v1/conversations/{conv}"), eve.token())
        .await
        .err(404, "not_found");
    app.delete(&format!("{members}/{}", eve.id), nina.token())
        .await
        .err(404, "not_found");
    app.delete(&format!("{members}/{}", miles.id), miles.token())
        .await
        .ok(200);
    app.post(
        &format!("/api/v1/conversations/{conv}/messages"),
        miles.token(),
        json!({"body": "x"}),
    )
    .await
    .err(404, "not_found");

    let renamed = app
        .patch(
            &format!("/api/v1/conversations/{conv}"),
            nina.token(),
            json!({"title": "Trio"}),
        )
        .await;
    assert_eq!(renamed.ok(200)["title"], "Trio");
    let left = app.get(&members, nina.token()).await;
    assert_eq!(left.ok(200)["items"].as_array().unwrap().len(), 1);
}
