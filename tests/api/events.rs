//! Events: creation rules, authorisation, updates and cancellation with their notifications.

use serde_json::json;

use crate::helpers::{
    catalogue_id, create_event, event_body, make_admin, notification_types, spawn_app,
};

const LYON: (f64, f64) = (45.7640, 4.8357);

#[tokio::test]
async fn creation_answers_the_full_event() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let bass = catalogue_id(&app, "instruments", "Double Bass").await;
    let jazz = catalogue_id(&app, "genres", "Jazz").await;
    let mut body = event_body("Friday jam", 3, LYON.0, LYON.1);
    body["capacity"] = json!(10);
    body["genre_ids"] = json!([jazz, jazz]);
    body["instruments"] = json!([{"instrument_id": bass, "quantity": 2}]);
    body["description"] = json!("Standards.");
    let resp = app.post("/api/v1/events", nina.token(), body).await;
    let e = resp.ok(201);
    assert_eq!(e["status"], "scheduled");
    assert_eq!(e["type"], "jam");
    assert_eq!(e["creator"]["id"], nina.id.as_str());
    assert_eq!(e["capacity"], 10);
    assert_eq!(e["places_left"], 10);
    assert_eq!(e["genres"].as_array().unwrap().len(), 1);
    assert_eq!(e["instruments"][0]["quantity"], 2);
    assert_eq!(e["instruments"][0]["available"], 2);

    let id = e["id"].as_str().unwrap();
    let near = app
        .get(
            &format!("/api/v1/events/{id}?lat=45.77&lon=4.84"),
            nina.token(),
        )
        .await;
    let d = near.ok(200)["distance_km"].as_f64().unwrap();
    assert!((0.1..2.0).contains(&d), "{d}");
    let needed = app
        .get(&format!("/api/v1/events/{id}/instruments"), nina.token())
        .await;
    assert_eq!(needed.ok(200)["items"][0]["instrument_id"], bass.as_str());
    app.get(
        &format!("/api/v1/events/{}", uuid::Uuid::new_v4()),
        nina.token(),
    )
    .await
    .err(404, "not_found");
}

#[tokio::test]
async fn creation_rules_name_each_bad_field() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let past = {
        let mut b = event_body("Past", -1, LYON.0, LYON.1);
        b["ends_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
        b
    };
    let backwards = {
        let mut b = event_body("Backwards", 2, LYON.0, LYON.1);
        b["ends_at"] = json!((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339());
        b
    };
    let cases = [
        (past, "starts_at"),
        (backwards, "ends_at"),
        (event_body("Far north", 2, 91.0, 0.0), "latitude"),
        (event_body("  ", 2, LYON.0, LYON.1), "title"),
        (
            {
                let mut b = event_body("Kind", 2, LYON.0, LYON.1);
                b["type"] = json!("rave");
                b
            },
            "type",
        ),
        (
            {
                let mut b = event_body("Cap", 2, LYON.0, LYON.1);
                b["capacity"] = json!(0);
                b
            },
            "capacity",
        ),
        (
            {
                let mut b = event_body("Img", 2, LYON.0, LYON.1);
                b["image_url"] = json!("nope");
                b
            },
            "image_url",
        ),
        (
            {
                let mut b = event_body("Long", 2, LYON.0, LYON.1);
                b["ends_at"] =
                    json!((chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339());
                b
            },
            "ends_at",
        ),
        (
            {
                let mut b = event_body("Genre", 2, LYON.0, LYON.1);
                b["genre_ids"] = json!([uuid::Uuid::new_v4()]);
                b
            },
            "genre_ids",
        ),
        (
            {
                let mut b = event_body("Instr", 2, LYON.0, LYON.1);
                b["instruments"] = json!([{"instrument_id": uuid::Uuid::new_v4(), "quantity": 1}]);
                b
            },
            "instruments[0].instrument_id",
        ),
        (
            {
                let mut b = event_body("Qty", 2, LYON.0, LYON.1);
                b["instruments"] = json!([{"instrument_id": uuid::Uuid::new_v4(), "quantity": 0}]);
                b
            },
            "instruments[0].quantity",
        ),
    ];
    for (body, field) in cases {
        let resp = app.post("/api/v1/events", nina.token(), body).await;
        resp.err(422, "validation_failed");
        assert_eq!(resp.fields()[0].0, field, "{}", resp.body);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "no half-written event");
    app.post(
        "/api/v1/events",
        None,
        event_body("Anon", 2, LYON.0, LYON.1),
    )
    .await
    .err(401, "unauthenticated");
}

#[tokio::test]
async fn only_the_creator_or_an_admin_changes_or_cancels() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let boss = app.register("boss").await;
    make_admin(&app, &boss).await;
    let id = create_event(&app, &nina, event_body("Jam", 3, LYON.0, LYON.1)).await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;

    app.patch(
        &format!("/api/v1/events/{id}"),
        miles.token(),
        json!({"title": "Mine now"}),
    )
    .await
    .err(403, "forbidden");
    app.post(
        &format!("/api/v1/events/{id}/cancel"),
        miles.token(),
        json!({}),
    )
    .await
    .err(403, "forbidden");
    app.put(
        &format!("/api/v1/events/{id}/instruments/{piano}"),
        miles.token(),
        json!({"quantity": 1}),
    )
    .await
    .err(403, "forbidden");
    let renamed = app
        .patch(
            &format!("/api/v1/events/{id}"),
            nina.token(),
            json!({"title": "Big jam", "capacity": 4}),
        )
        .await;
    assert_eq!(renamed.ok(200)["title"], "Big jam");
    let by_admin = app
        .patch(
            &format!("/api/v1/events/{id}"),
            boss.token(),
            json!({"description": "Moderated."}),
        )
        .await;
    assert_eq!(by_admin.ok(200)["description"], "Moderated.");
    app.patch(
        &format!("/api/v1/events/{id}"),
        nina.token(),
        json!({"latitude": 45.0}),
    )
    .await
    .err(422, "validation_failed");
    app.patch(
        &format!("/api/v1/events/{}", uuid::Uuid::new_v4()),
        nina.token(),
        json!({"title": "x"}),
    )
    .await
    .err(404, "not_found");
}

#[tokio::test]
async fn time_or_place_changes_notify_active_participants_only() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let (a, b, c, outsider) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
        app.register("dave").await,
    );
    let id = create_event(&app, &nina, event_body("Jam", 3, LYON.0, LYON.1)).await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let mut participations = Vec::new();
    for u in [&a, &b, &c] {
        let p = app
            .post(
                &format!("/api/v1/events/{id}/participations"),
                u.token(),
                json!({"instrument_id": piano}),
            )
            .await;
        participations.push(p.ok(201)["id"].as_str().unwrap().to_owned());
    }
    app.delete(
        &format!("/api/v1/participations/{}", participations[2]),
        c.token(),
    )
    .await
    .ok(200);

    app.patch(
        &format!("/api/v1/events/{id}"),
        nina.token(),
        json!({"title": "Renamed jam"}),
    )
    .await
    .ok(200);
    let later = chrono::Utc::now() + chrono::Duration::days(4);
    app.patch(
        &format!("/api/v1/events/{id}"),
        nina.token(),
        json!({"starts_at": later.to_rfc3339(), "ends_at": (later + chrono::Duration::hours(2)).to_rfc3339()}),
    )
    .await
    .ok(200);
    app.patch(
        &format!("/api/v1/events/{id}"),
        nina.token(),
        json!({"address": "2 quai du Rhône"}),
    )
    .await
    .ok(200);

    assert_eq!(
        notification_types(&app, &a).await,
        ["event_updated", "event_updated"]
    );
    assert_eq!(
        notification_types(&app, &b).await,
        ["event_updated", "event_updated"]
    );
    assert!(
        notification_types(&app, &c).await.is_empty(),
        "withdrawn musicians are not told"
    );
    assert!(notification_types(&app, &outsider).await.is_empty());
    assert_eq!(
        notification_types(&app, &nina).await,
        [
            "participation_created",
            "participation_created",
            "participation_created",
            "participation_withdrawn"
        ]
    );
}

#[tokio::test]
async fn cancelling_notifies_every_participant_and_freezes_the_event() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let (a, b, outsider) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("dave").await,
    );
    let id = create_event(&app, &nina, event_body("Jam", 3, LYON.0, LYON.1)).await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let pa = app
        .post(
            &format!("/api/v1/events/{id}/participations"),
            a.token(),
            json!({"instrument_id": piano}),
        )
        .await;
    let pa = pa.ok(201)["id"].as_str().unwrap().to_owned();
    app.patch(
        &format!("/api/v1/participations/{pa}"),
        nina.token(),
        json!({"status": "accepted"}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/events/{id}/participations"),
        b.token(),
        json!({"instrument_id": piano}),
    )
    .await
    .ok(201);

    let cancelled = app
        .post(
            &format!("/api/v1/events/{id}/cancel"),
            nina.token(),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.ok(200)["status"], "cancelled");
    assert_eq!(
        notification_types(&app, &a).await,
        ["participation_accepted", "event_cancelled"]
    );
    assert_eq!(notification_types(&app, &b).await, ["event_cancelled"]);
    assert!(notification_types(&app, &outsider).await.is_empty());
    assert!(
        !notification_types(&app, &nina)
            .await
            .contains(&"event_cancelled".to_owned())
    );

    app.post(
        &format!("/api/v1/events/{id}/cancel"),
        nina.token(),
        json!({}),
    )
    .await
    .err(409, "event_cancelled");
    app.patch(
        &format!("/api/v1/events/{id}"),
        nina.token(),
        json!({"title": "Back"}),
    )
    .await
    .err(409, "event_cancelled");
    app.post(
        &format!("/api/v1/events/{id}/participations"),
        outsider.token(),
        json!({"instrument_id": piano}),
    )
    .await
    .err(409, "event_cancelled");
}
