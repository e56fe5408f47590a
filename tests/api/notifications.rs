//! Notifications: reading them, and announcements by administrators.

use serde_json::json;

use crate::helpers::{all_pages, make_admin, notification_types, spawn_app};

#[tokio::test]
async fn read_list_count_and_delete_my_notifications() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    make_admin(&app, &boss).await;
    for i in 0..3 {
        app.post(
            "/api/v1/notifications",
            boss.token(),
            json!({"user_id": nina.id, "title": format!("Hello {i}"), "body": "Hi."}),
        )
        .await
        .ok(201);
    }
    let count = app
        .get("/api/v1/notifications/unread-count", nina.token())
        .await;
    assert_eq!(count.ok(200)["unread"], 3);
    let list = all_pages(&app, "/api/v1/notifications?limit=2", nina.token()).await;
    let titles: Vec<&str> = list.iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Hello 2", "Hello 1", "Hello 0"], "newest first");
    let newest = list[0]["id"].as_str().unwrap();

    app.get(&format!("/api/v1/notifications/{newest}"), miles.token())
        .await
        .err(404, "not_found");
    app.post(
        &format!("/api/v1/notifications/{newest}/read"),
        miles.token(),
        json!({}),
    )
    .await
    .err(404, "not_found");
    app.delete(&format!("/api/v1/notifications/{newest}"), miles.token())
        .await
        .err(404, "not_found");

    let read = app
        .post(
            &format!("/api/v1/notifications/{newest}/read"),
            nina.token(),
            json!({}),
        )
        .await;
    assert_eq!(read.ok(200)["read"], true);
    let unread = all_pages(&app, "/api/v1/notifications?unread_only=true", nina.token()).await;
    assert_eq!(unread.len(), 2);
    app.post("/api/v1/notifications/read-all", nina.token(), json!({}))
        .await
        .ok(200);
    assert_eq!(
        app.get("/api/v1/notifications/unread-count", nina.token())
            .await
            .ok(200)["unread"],
        0
    );
    app.delete(&format!("/api/v1/notifications/{newest}"), nina.token())
        .await
        .ok(200);
    app.get(&format!("/api/v1/notifications/{newest}"), nina.token())
        .await
        .err(404, "not_found");
    assert_eq!(
        all_pages(&app, "/api/v1/notifications", nina.token())
            .await
            .len(),
        2
    );
    assert!(notification_types(&app, &miles).await.is_empty());
}

#[tokio::test]
async fn announcements_reach_exactly_their_recipients() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    let nina = app.register("nina").await;
    let gone = app.register("gone").await;
    make_admin(&app, &boss).await;
    app.delete("/api/v1/users/me", gone.token()).await.ok(200);

    let body = json!({"all": true, "title": "Fête de la musique", "body": "June 21st.", "link": "/api/v1/events"});
    app.post("/api/v1/notifications", nina.token(), body.clone())
        .await
        .err(403, "forbidden");
    let sent = app.post("/api/v1/notifications", boss.token(), body).await;
    assert_eq!(
        sent.ok(201)["recipients"],
        2,
        "every active account, the deactivated one excepted"
    );
    assert_eq!(notification_types(&app, &nina).await, ["announcement"]);
    assert_eq!(notification_types(&app, &boss).await, ["announcement"]);

    let bad = app
        .post(
            "/api/v1/notifications",
            boss.token(),
            json!({"title": "", "body": "x", "link": "javascript:x"}),
        )
        .await;
    bad.err(422, "validation_failed");
    let fields: Vec<String> = bad.fields().into_iter().map(|f| f.0).collect();
    assert_eq!(fields, ["user_id", "title", "link"]);
    app.post(
        "/api/v1/notifications",
        boss.token(),
        json!({"user_id": gone.id, "title": "t", "body": "b"}),
    )
    .await
    .err(404, "not_found");
}
