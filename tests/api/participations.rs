//! Participations: the lifecycle, instrument rules, and the race for the last place.

use serde_json::json;

use crate::helpers::{
    TestApp, User, catalogue_id, create_event, event_body, notification_types, spawn_app,
};

const LYON: (f64, f64) = (45.7640, 4.8357);

async fn join(app: &TestApp, user: &User, event: &str, instrument: &str) -> crate::helpers::Resp {
    app.post(
        &format!("/api/v1/events/{event}/participations"),
        user.token(),
        json!({"instrument_id": instrument}),
    )
    .await
}

#[tokio::test]
async fn the_lifecycle_and_every_refused_transition() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let stranger = app.register("stranger").await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let bass = catalogue_id(&app, "instruments", "Double Bass").await;
    let id = create_event(&app, &nina, event_body("Open jam", 3, LYON.0, LYON.1)).await;

    join(&app, &nina, &id, &piano).await.err(409, "own_event");
    let joined = join(&app, &miles, &id, &piano).await;
    let p = joined.ok(201);
    assert_eq!(p["status"], "pending");
    let pid = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/participations/{pid}");
    join(&app, &miles, &id, &bass)
        .await
        .err(409, "already_participating");

    // Who may do what.
    app.patch(&path, stranger.token(), json!({"status": "accepted"}))
        .await
        .err(404, "not_found");
    app.patch(&path, miles.token(), json!({"status": "accepted"}))
        .await
        .err(403, "forbidden");
    app.patch(&path, nina.token(), json!({"instrument_id": bass}))
        .await
        .err(403, "forbidden");
    app.delete(&path, nina.token()).await.err(404, "not_found");
    app.patch(&path, nina.token(), json!({"status": "pending"}))
        .await
        .err(422, "validation_failed");
    app.patch(
        &path,
        nina.token(),
        json!({"status": "accepted", "instrument_id": bass}),
    )
    .await
    .err(422, "validation_failed");
    app.patch(&path, nina.token(), json!({}))
        .await
        .err(422, "validation_failed");

    assert_eq!(
        app.patch(&path, nina.token(), json!({"status": "accepted"}))
            .await
            .ok(200)["status"],
        "accepted"
    );
    let changed = app
        .patch(&path, miles.token(), json!({"instrument_id": bass}))
        .await;
    let changed = changed.ok(200);
    assert_eq!(
        (
            changed["status"].as_str(),
            changed["instrument_name"].as_str()
        ),
        (Some("pending"), Some("Double Bass"))
    );
    app.patch(&path, nina.token(), json!({"status": "accepted"}))
        .await
        .ok(200);
    app.patch(&path, nina.token(), json!({"status": "declined"}))
        .await
        .ok(200);
    app.patch(&path, nina.token(), json!({"status": "accepted"}))
        .await
        .err(409, "invalid_transition");
    app.patch(&path, miles.token(), json!({"instrument_id": piano}))
        .await
        .err(409, "invalid_transition");
    app.delete(&path, miles.token())
        .await
        .err(409, "invalid_transition");

    // Declined frees the place; joining again starts a new participation.
    let event = app.get(&format!("/api/v1/events/{id}"), nina.token()).await;
    assert_eq!(event.ok(200)["participants_count"], 0);
    let again = join(&app, &miles, &id, &piano).await;
    let again_id = again.ok(201)["id"].as_str().unwrap().to_owned();
    assert_ne!(again_id, pid);
    app.delete(&format!("/api/v1/participations/{again_id}"), miles.token())
        .await
        .ok(200);
    app.delete(&format!("/api/v1/participations/{again_id}"), miles.token())
        .await
        .err(409, "invalid_transition");
    app.patch(
        &format!("/api/v1/participations/{again_id}"),
        nina.token(),
        json!({"status": "accepted"}),
    )
    .await
    .err(409, "invalid_transition");

    assert_eq!(
        notification_types(&app, &nina).await,
        [
            "participation_created",
            "participation_instrument_changed",
            "participation_created",
            "participation_withdrawn"
        ]
    );
    assert_eq!(
        notification_types(&app, &miles).await,
        [
            "participation_accepted",
            "participation_accepted",
            "participation_declined"
        ]
    );
    assert!(notification_types(&app, &stranger).await.is_empty());

    let mine = app
        .get("/api/v1/users/me/participations", miles.token())
        .await;
    let statuses: Vec<&str> = mine.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["withdrawn", "declined"], "newest first");
}

#[tokio::test]
async fn needed_instruments_rule_who_can_join() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let (a, b, c) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let drums = catalogue_id(&app, "instruments", "Drum Kit").await;
    let mut body = event_body("Band", 3, LYON.0, LYON.1);
    body["instruments"] = json!([{"instrument_id": piano, "quantity": 1}]);
    let id = create_event(&app, &nina, body).await;

    let wrong = join(&app, &a, &id, &drums).await;
    wrong.err(422, "validation_failed");
    assert_eq!(wrong.fields()[0].0, "instrument_id");
    join(&app, &a, &id, &uuid::Uuid::new_v4().to_string())
        .await
        .err(422, "validation_failed");
    let pa = join(&app, &a, &id, &piano).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    join(&app, &b, &id, &piano)
        .await
        .err(409, "instrument_full");

    // The creator adds drums: now b can come with drums, and piano cannot shrink below 1.
    app.put(
        &format!("/api/v1/events/{id}/instruments/{drums}"),
        nina.token(),
        json!({"quantity": 1}),
    )
    .await
    .ok(200);
    join(&app, &b, &id, &drums).await.ok(201);
    app.put(
        &format!("/api/v1/events/{id}/instruments/{piano}"),
        nina.token(),
        json!({"quantity": 0}),
    )
    .await
    .err(422, "validation_failed");
    app.delete(
        &format!("/api/v1/events/{id}/instruments/{piano}"),
        nina.token(),
    )
    .await
    .err(409, "in_use");

    // a switches to drums? Full. a withdraws: piano frees up for c.
    app.patch(
        &format!("/api/v1/participations/{pa}"),
        a.token(),
        json!({"instrument_id": drums}),
    )
    .await
    .err(409, "instrument_full");
    app.delete(&format!("/api/v1/participations/{pa}"), a.token())
        .await
        .ok(200);
    join(&app, &c, &id, &piano).await.ok(201);
    let needed = app
        .get(&format!("/api/v1/events/{id}/instruments"), nina.token())
        .await;
    let filled: Vec<(String, i64)> = needed.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["filled"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        filled,
        [("Drum Kit".to_owned(), 1), ("Piano".to_owned(), 1)]
    );

    // An event that lists no instrument takes any.
    let open = create_event(&app, &nina, event_body("Open", 3, LYON.0, LYON.1)).await;
    join(&app, &a, &open, &drums).await.ok(201);

    let participants = app
        .get(&format!("/api/v1/events/{id}/participants"), a.token())
        .await;
    let names: Vec<&str> = participants.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "carol"]);
}

#[tokio::test]
async fn racing_for_the_last_places_exactly_capacity_win() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let mut body = event_body("Tiny club", 3, LYON.0, LYON.1);
    body["capacity"] = json!(5);
    let id = create_event(&app, &nina, body).await;
    let mut players = Vec::new();
    for i in 0..20 {
        players.push(app.register(&format!("player{i}")).await);
    }
    let attempts = players.iter().map(|p| join(&app, p, &id, &piano));
    let results = futures_util::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.status == 201).count();
    let full = results
        .iter()
        .filter(|r| r.status == 409 && r.body["error_code"] == "event_full")
        .count();
    assert_eq!((won, full), (5, 15));
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM participations WHERE status = 'pending'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(count, 5);
    let event = app.get(&format!("/api/v1/events/{id}"), nina.token()).await;
    assert_eq!(event.ok(200)["places_left"], 0);
    assert_eq!(event.body["data"]["participants_count"], 5);
}

#[tokio::test]
async fn racing_for_an_instruments_places_exactly_quantity_win() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let drums = catalogue_id(&app, "instruments", "Drum Kit").await;
    let mut body = event_body("Drum circle", 3, LYON.0, LYON.1);
    body["instruments"] = json!([{"instrument_id": drums, "quantity": 2}]);
    let id = create_event(&app, &nina, body).await;
    let mut players = Vec::new();
    for i in 0..10 {
        players.push(app.register(&format!("drummer{i}")).await);
    }
    let results =
        futures_util::future::join_all(players.iter().map(|p| join(&app, p, &id, &drums))).await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 2);
    assert!(
        results
            .iter()
            .filter(|r| r.status != 201)
            .all(|r| r.body["error_code"] == "instrument_full")
    );
}
