//! The instrument and genre catalogue: starting data, admin writes, caching.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    all_pages, catalogue_id, make_admin, redis_url, spawn_app, spawn_sibling_with, spawn_with,
};

#[tokio::test]
async fn the_starting_catalogue_is_loaded_and_pages_cover_it_exactly() {
    let app = spawn_app().await;
    let instruments = all_pages(&app, "/api/v1/instruments?limit=7", None).await;
    assert!(instruments.len() >= 40, "{} instruments", instruments.len());
    let ids: HashSet<_> = instruments
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), instruments.len(), "no duplicate across pages");
    let names: Vec<String> = instruments
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    let categories: HashSet<_> = instruments
        .iter()
        .map(|i| i["category"].as_str().unwrap())
        .collect();
    for c in [
        "strings",
        "keys",
        "percussion",
        "brass",
        "woodwind",
        "voice",
        "electronic",
    ] {
        assert!(categories.contains(c), "no {c}");
    }
    let all = app.get("/api/v1/instruments?limit=100", None).await;
    assert_eq!(
        all.ok(200)["items"].as_array().unwrap().len(),
        instruments.len()
    );

    let brass = all_pages(&app, "/api/v1/instruments?category=brass&limit=2", None).await;
    assert!(brass.len() >= 5 && brass.iter().all(|i| i["category"] == "brass"));

    let genres = all_pages(&app, "/api/v1/genres?limit=9", None).await;
    assert!(genres.len() >= 30, "{} genres", genres.len());
    let ids: HashSet<_> = genres.iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), genres.len());

    app.get("/api/v1/instruments?limit=0", None)
        .await
        .err(422, "validation_failed");
    app.get("/api/v1/instruments?limit=101", None)
        .await
        .err(422, "validation_failed");
    app.get("/api/v1/instruments?cursor=garbage", None)
        .await
        .err(422, "validation_failed");
    let bad = app.get("/api/v1/instruments?category=kazoo", None).await;
    bad.err(422, "validation_failed");
    assert_eq!(bad.fields(), vec![("category".into(), "invalid".into())]);
}

#[tokio::test]
async fn only_admins_write_and_names_are_unique_ignoring_case() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    let nina = app.register("nina").await;
    make_admin(&app, &boss).await;

    let new = json!({"name": "Nyckelharpa", "category": "strings"});
    app.post("/api/v1/instruments", nina.token(), new.clone())
        .await
        .err(403, "forbidden");
    app.post("/api/v1/instruments", None, new.clone())
        .await
        .err(401, "unauthenticated");
    let created = app
        .post("/api/v1/instruments", boss.token(), new.clone())
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/instruments",
        boss.token(),
        json!({"name": "NYCKELHARPA", "category": "keys"}),
    )
    .await
    .err(409, "name_taken");
    let bad = app
        .post(
            "/api/v1/instruments",
            boss.token(),
            json!({"name": " ", "category": "kazoo", "icon_url": "nope"}),
        )
        .await;
    bad.err(422, "validation_failed");
    let fields: Vec<String> = bad.fields().into_iter().map(|f| f.0).collect();
    assert_eq!(fields, ["name", "category", "icon_url"]);

    let path = format!("/api/v1/instruments/{id}");
    let changed = app
        .patch(
            &path,
            boss.token(),
            json!({"category": "other", "icon_url": "https://cdn.example.com/n.svg"}),
        )
        .await;
    assert_eq!(changed.ok(200)["category"], "other");
    app.patch(&path, nina.token(), json!({"name": "x"}))
        .await
        .err(403, "forbidden");
    app.patch(&path, boss.token(), json!({"name": "piano"}))
        .await
        .err(409, "name_taken");
    app.patch(
        &format!("/api/v1/instruments/{}", uuid::Uuid::new_v4()),
        boss.token(),
        json!({"name": "x"}),
    )
    .await
    .err(404, "not_found");
    assert_eq!(
        app.get(&path, None).await.ok(200)["icon_url"],
        "https://cdn.example.com/n.svg"
    );

    let genre = app
        .post("/api/v1/genres", boss.token(), json!({"name": "Zouk"}))
        .await;
    let genre_id = genre.ok(201)["id"].as_str().unwrap().to_owned();
    app.post("/api/v1/genres", boss.token(), json!({"name": "jazz"}))
        .await
        .err(409, "name_taken");
    app.post("/api/v1/genres", nina.token(), json!({"name": "Polka"}))
        .await
        .err(403, "forbidden");
    let changed = app
        .patch(
            &format!("/api/v1/genres/{genre_id}"),
            boss.token(),
            json!({"description": "From the Antilles."}),
        )
        .await;
    assert_eq!(changed.ok(200)["description"], "From the Antilles.");
    app.delete(&format!("/api/v1/genres/{genre_id}"), nina.token())
        .await
        .err(403, "forbidden");
    app.delete(&format!("/api/v1/genres/{genre_id}"), boss.token())
        .await
        .ok(200);
    app.get(&format!("/api/v1/genres/{genre_id}"), None)
        .await
        .err(404, "not_found");
    app.delete(&format!("/api/v1/genres/{genre_id}"), boss.token())
        .await
        .err(404, "not_found");
}

#[tokio::test]
async fn entries_in_use_cannot_be_deleted() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    make_admin(&app, &boss).await;
    let cello = catalogue_id(&app, "instruments", "Cello").await;
    let jazz = catalogue_id(&app, "genres", "Jazz").await;
    app.put(
        &format!("/api/v1/users/me/instruments/{cello}"),
        boss.token(),
        json!({"level": "expert"}),
    )
    .await
    .ok(200);
    app.put(
        &format!("/api/v1/users/me/genres/{jazz}"),
        boss.token(),
        json!({}),
    )
    .await
    .ok(200);

    app.delete(&format!("/api/v1/instruments/{cello}"), boss.token())
        .await
        .err(409, "in_use");
    app.delete(&format!("/api/v1/genres/{jazz}"), boss.token())
        .await
        .err(409, "in_use");
    app.get(&format!("/api/v1/instruments/{cello}"), None)
        .await
        .ok(200);

    app.delete(
        &format!("/api/v1/users/me/instruments/{cello}"),
        boss.token(),
    )
    .await
    .ok(200);
    app.delete(&format!("/api/v1/instruments/{cello}"), boss.token())
        .await
        .ok(200);
    app.get(&format!("/api/v1/instruments/{cello}"), None)
        .await
        .err(404, "not_found");
}

#[tokio::test]
async fn reads_carry_etags_and_answer_304_until_a_write() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    make_admin(&app, &boss).await;

    let first = app.get("/api/v1/instruments", None).await;
    first.ok(200);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        first.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let again = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments")
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.headers["etag"].to_str().unwrap(), etag);
    let other_page = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments?limit=5")
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(other_page.status, 200, "another query has another ETag");

    let one = app
        .get(
            &format!(
                "/api/v1/instruments/{}",
                catalogue_id(&app, "instruments", "Tuba").await
            ),
            None,
        )
        .await;
    let one_tag = one.headers["etag"].to_str().unwrap().to_owned();

    app.post(
        "/api/v1/instruments",
        boss.token(),
        json!({"name": "Kazoo", "category": "other"}),
    )
    .await
    .ok(201);
    let after = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments")
                .header("if-none-match", &etag),
        )
        .await;
    after.ok(200);
    assert_ne!(
        after.headers["etag"].to_str().unwrap(),
        etag,
        "a write changes the ETag"
    );
    let tuba = catalogue_id(&app, "instruments", "Tuba").await;
    let one_after = app
        .send(
            app.raw(Method::GET, &format!("/api/v1/instruments/{tuba}"))
                .header("if-none-match", &one_tag),
        )
        .await;
    assert_eq!(one_after.status, 200);
}

#[tokio::test]
async fn reads_are_served_from_memory() {
    let app = spawn_app().await;
    app.get("/api/v1/genres", None).await.ok(200);
    // Change the table behind the cache's back: a cached read does not see it…
    sqlx::query("UPDATE genres SET name = 'Jazz (renamed in SQL)' WHERE name = 'Jazz'")
        .execute(&app.db)
        .await
        .unwrap();
    let page = app.get("/api/v1/genres?limit=100", None).await;
    let names: Vec<&str> = page.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Jazz") && !names.contains(&"Jazz (renamed in SQL)"));
}

#[tokio::test]
async fn a_write_on_one_instance_reaches_the_other_through_redis() {
    let with_redis = |s: &mut tunelink::config::Settings| {
        s.redis_url = Some(tunelink::config::Secret::new(redis_url()))
    };
    let first = spawn_with(with_redis).await;
    let second = spawn_sibling_with(&first, with_redis).await;
    let boss = first.register("boss").await;
    make_admin(&first, &boss).await;
    let before = second.get("/api/v1/genres?limit=100", None).await;
    let count = before.ok(200)["items"].as_array().unwrap().len();

    first
        .post("/api/v1/genres", boss.token(), json!({"name": "Zydeco"}))
        .await
        .ok(201);
    // Bounded wait for the invalidation to cross Redis (it takes milliseconds).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = second.get("/api/v1/genres?limit=100", None).await;
        if now.ok(200)["items"].as_array().unwrap().len() == count + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance never saw the write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
