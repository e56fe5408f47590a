//! What musicians play and like, public profiles, and finding musicians.

use serde_json::{Value, json};

use crate::helpers::{TestApp, User, all_pages, catalogue_id, spawn_app};

#[tokio::test]
async fn my_instruments_with_levels_are_idempotent_and_validated() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let cello = catalogue_id(&app, "instruments", "Cello").await;
    let path = format!("/api/v1/users/me/instruments/{piano}");

    let set = app
        .put(&path, nina.token(), json!({"level": "advanced"}))
        .await;
    assert_eq!(set.ok(200)["level"], "advanced");
    assert_eq!(set.body["data"]["name"], "Piano");
    app.put(&path, nina.token(), json!({"level": "advanced"}))
        .await
        .ok(200);
    app.put(
        &format!("/api/v1/users/me/instruments/{cello}"),
        nina.token(),
        json!({"level": "beginner"}),
    )
    .await
    .ok(200);
    let raised = app
        .put(&path, nina.token(), json!({"level": "expert"}))
        .await;
    assert_eq!(raised.ok(200)["level"], "expert");

    let mine = all_pages(&app, "/api/v1/users/me/instruments?limit=1", nina.token()).await;
    let listed: Vec<(&str, &str)> = mine
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["level"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("Cello", "beginner"), ("Piano", "expert")]);

    let bad = app
        .put(&path, nina.token(), json!({"level": "wizard"}))
        .await;
    bad.err(422, "validation_failed");
    assert_eq!(bad.fields(), vec![("level".into(), "invalid".into())]);
    let missing = app.put(&path, nina.token(), json!({})).await;
    missing.err(422, "validation_failed");
    assert_eq!(missing.fields(), [("level".into(), "missing".into())]);
    app.put(
        &format!("/api/v1/users/me/instruments/{}", uuid::Uuid::new_v4()),
        nina.token(),
        json!({"level": "expert"}),
    )
    .await
    .err(404, "not_found");
    app.put(&path, None, json!({"level": "expert"}))
        .await
        .err(401, "unauthenticated");

    app.delete(&path, nina.token()).await.ok(200);
    app.delete(&path, nina.token()).await.err(404, "not_found");
    let mine = app.get("/api/v1/users/me/instruments", nina.token()).await;
    assert_eq!(mine.ok(200)["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn my_genres_are_idempotent() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let jazz = catalogue_id(&app, "genres", "Jazz").await;
    let funk = catalogue_id(&app, "genres", "Funk").await;
    for id in [&jazz, &jazz, &funk] {
        app.put(
            &format!("/api/v1/users/me/genres/{id}"),
            nina.token(),
            json!({}),
        )
        .await
        .ok(200);
    }
    let mine = all_pages(&app, "/api/v1/users/me/genres?limit=1", nina.token()).await;
    let names: Vec<&str> = mine.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Funk", "Jazz"]);
    app.put(
        &format!("/api/v1/users/me/genres/{}", uuid::Uuid::new_v4()),
        nina.token(),
        json!({}),
    )
    .await
    .err(404, "not_found");
    app.delete(&format!("/api/v1/users/me/genres/{funk}"), nina.token())
        .await
        .ok(200);
    app.delete(&format!("/api/v1/users/me/genres/{funk}"), nina.token())
        .await
        .err(404, "not_found");
}

#[tokio::test]
async fn public_profiles_show_instruments_with_levels_and_genres() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let bass = catalogue_id(&app, "instruments", "Double Bass").await;
    let jazz = catalogue_id(&app, "genres", "Jazz").await;
    app.put(
        &format!("/api/v1/users/me/instruments/{bass}"),
        nina.token(),
        json!({"level": "professional"}),
    )
    .await
    .ok(200);
    app.put(
        &format!("/api/v1/users/me/genres/{jazz}"),
        nina.token(),
        json!({}),
    )
    .await
    .ok(200);
    let profile = app
        .get(&format!("/api/v1/users/{}", nina.id), miles.token())
        .await;
    let profile = profile.ok(200);
    assert_eq!(profile["instruments"][0]["instrument_id"], bass.as_str());
    assert_eq!(profile["instruments"][0]["level"], "professional");
    assert_eq!(profile["genres"][0]["name"], "Jazz");
}

/// Name, place, city, (instrument, level)s, genres.
type Person<'a> = (
    &'a str,
    Option<(f64, f64)>,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
);

struct Scene {
    app: TestApp,
    viewer: User,
    piano: String,
    jazz: String,
}

/// Seven musicians around Lyon (and one in Paris), one of them deactivated.
async fn scene() -> Scene {
    let app = spawn_app().await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let bass = catalogue_id(&app, "instruments", "Bass Guitar").await;
    let drums = catalogue_id(&app, "instruments", "Drum Kit").await;
    let jazz = catalogue_id(&app, "genres", "Jazz").await;
    let funk = catalogue_id(&app, "genres", "Funk").await;
    let people: [Person; 7] = [
        (
            "anna",
            Some((45.7640, 4.8357)),
            Some("Lyon"),
            &[(&piano, "expert")],
            &[&jazz],
        ),
        (
            "bart",
            Some((45.7719, 4.8902)),
            Some("Villeurbanne"),
            &[(&piano, "beginner"), (&bass, "advanced")],
            &[&funk],
        ),
        (
            "chloe",
            Some((45.5253, 4.8744)),
            Some("Vienne"),
            &[(&bass, "professional")],
            &[&jazz],
        ),
        (
            "dora",
            Some((48.8566, 2.3522)),
            Some("Paris"),
            &[(&piano, "professional")],
            &[&jazz],
        ),
        ("emile", None, Some("Lyon"), &[(&piano, "advanced")], &[]),
        (
            "fanny",
            Some((45.7640, 4.8357)),
            Some("Lyon"),
            &[(&piano, "expert")],
            &[&jazz],
        ),
        (
            "lyonnais_drummer",
            Some((45.7500, 4.8500)),
            None,
            &[(&drums, "intermediate")],
            &[&funk],
        ),
    ];
    for (name, place, city, plays, likes) in people {
        let user = app.register(name).await;
        let mut profile = json!({"city": city});
        if let Some((lat, lon)) = place {
            profile["latitude"] = json!(lat);
            profile["longitude"] = json!(lon);
        }
        app.patch("/api/v1/users/me", user.token(), profile)
            .await
            .ok(200);
        for (instrument, level) in plays {
            app.put(
                &format!("/api/v1/users/me/instruments/{instrument}"),
                user.token(),
                json!({"level": level}),
            )
            .await
            .ok(200);
        }
        for genre in likes {
            app.put(
                &format!("/api/v1/users/me/genres/{genre}"),
                user.token(),
                json!({}),
            )
            .await
            .ok(200);
        }
        if name == "fanny" {
            app.delete("/api/v1/users/me", user.token()).await.ok(200);
        }
    }
    let viewer = app.register("viewer").await;
    Scene {
        app,
        viewer,
        piano,
        jazz,
    }
}

fn names(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["username"].as_str().unwrap())
        .collect()
}

const LYON: &str = "lat=45.7640&lon=4.8357";

#[tokio::test]
async fn each_search_filter_alone() {
    let s = scene().await;
    let t = s.viewer.token();
    let app = &s.app;

    let by_instrument =
        all_pages(app, &format!("/api/v1/users?instrument_id={}", s.piano), t).await;
    assert_eq!(names(&by_instrument), ["anna", "bart", "dora", "emile"]);
    let first = &by_instrument[0]["instruments"][0];
    assert_eq!(
        (first["name"].as_str(), first["level"].as_str()),
        (Some("Piano"), Some("expert"))
    );

    let by_level = all_pages(
        app,
        &format!("/api/v1/users?instrument_id={}&min_level=advanced", s.piano),
        t,
    )
    .await;
    assert_eq!(names(&by_level), ["anna", "dora", "emile"]);

    let by_genre = all_pages(app, &format!("/api/v1/users?genre_id={}", s.jazz), t).await;
    assert_eq!(names(&by_genre), ["anna", "chloe", "dora"]);

    let near = all_pages(app, &format!("/api/v1/users?{LYON}&radius_km=30"), t).await;
    assert_eq!(names(&near), ["anna", "lyonnais_drummer", "bart", "chloe"]);
    let distances: Vec<f64> = near
        .iter()
        .map(|u| u["distance_km"].as_f64().unwrap())
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
    assert!(
        // Whole kilometres, at least 1, to the musician's area (location privacy).
        distances[0] == 1.0 && (20.0..=30.0).contains(&distances[3]),
        "{distances:?}"
    );

    let text = all_pages(app, "/api/v1/users?q=LYON", t).await;
    assert_eq!(names(&text), ["anna", "emile", "lyonnais_drummer"]);
    let literal = all_pages(app, "/api/v1/users?q=%25%25%25", t).await;
    assert!(literal.is_empty(), "% is matched literally");

    let everyone = all_pages(app, "/api/v1/users?limit=3", t).await;
    assert_eq!(
        names(&everyone),
        [
            "anna",
            "bart",
            "chloe",
            "dora",
            "emile",
            "lyonnais_drummer",
            "viewer"
        ]
    );
}

#[tokio::test]
async fn search_filters_combine_and_paginate_without_gaps_or_repeats() {
    let s = scene().await;
    let t = s.viewer.token();
    let app = &s.app;

    let combined = all_pages(
        app,
        &format!(
            "/api/v1/users?instrument_id={}&min_level=advanced&{LYON}&radius_km=30",
            s.piano
        ),
        t,
    )
    .await;
    assert_eq!(names(&combined), ["anna"]);
    let jazz_near = all_pages(
        app,
        &format!("/api/v1/users?genre_id={}&{LYON}&radius_km=30", s.jazz),
        t,
    )
    .await;
    assert_eq!(names(&jazz_near), ["anna", "chloe"]);
    let text_and_instrument = all_pages(
        app,
        &format!("/api/v1/users?q=lyon&instrument_id={}", s.piano),
        t,
    )
    .await;
    assert_eq!(names(&text_and_instrument), ["anna", "emile"]);

    for limit in [1, 2, 3] {
        let far = all_pages(
            app,
            &format!("/api/v1/users?{LYON}&radius_km=500&limit={limit}"),
            t,
        )
        .await;
        assert_eq!(
            names(&far),
            ["anna", "lyonnais_drummer", "bart", "chloe", "dora"],
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn bad_search_parameters_are_422_naming_the_field() {
    let s = scene().await;
    let t = s.viewer.token();
    let cases = [
        ("q=ab", "q"),
        ("min_level=expert", "min_level"),
        (
            "instrument_id=00000000-0000-0000-0000-000000000000&min_level=wizard",
            "min_level",
        ),
        ("lat=45.7", "lon"),
        ("lat=45.7&lon=4.8", "radius_km"),
        ("lat=45.7&lon=4.8&radius_km=600", "radius_km"),
        ("lat=45.7&lon=4.8&radius_km=0", "radius_km"),
        ("lat=95&lon=4.8&radius_km=10", "lat"),
        ("radius_km=10", "lat"),
        ("limit=500", "limit"),
    ];
    for (query, field) in cases {
        let resp = s.app.get(&format!("/api/v1/users?{query}"), t).await;
        resp.err(422, "validation_failed");
        assert_eq!(resp.fields()[0].0, field, "{query}");
    }
    s.app
        .get("/api/v1/users?instrument_id=nope", t)
        .await
        .err(422, "validation_failed");
    s.app
        .get("/api/v1/users", None)
        .await
        .err(401, "unauthenticated");
}

/// Location privacy (issue 15, finding 3): search answered `distance_km` to 10 m, so three
/// searches located a musician within ~19 m, and bisecting `radius_km` to 1 m. Now two
/// musicians at different exact places in the same 0.01° cell are the same to every query —
/// any point, any radius, bisected to the metre — so no combination of searches tells where
/// in the cell either is; distances are whole kilometres.
#[tokio::test]
async fn no_search_locates_a_musician_better_than_their_area() {
    let app = crate::helpers::spawn_with(|s| {
        // Hundreds of searches by one user: more than the per-user search limit allows.
        s.rate_limits.searches_per_user = tunelink::limits::Rule::OFF;
    })
    .await;
    let (a, b) = (app.register("alto").await, app.register("bass").await);
    // Both in the cell rounded to (45.76, 4.84), 600 m apart.
    for (user, lat, lon) in [(&a, 45.7579, 4.8361), (&b, 45.7631, 4.8412)] {
        app.patch(
            "/api/v1/users/me",
            user.token(),
            json!({"latitude": lat, "longitude": lon}),
        )
        .await
        .ok(200);
    }
    let spy = app.register("spy").await;
    let mut checked = 0;
    for (lat, lon) in [
        (45.7579, 4.8361),
        (45.7631, 4.8412),
        (45.80, 4.80),
        (45.70, 4.90),
        (45.7605, 4.9000),
    ] {
        // Radii from 1 m to 12 km, finer where the boundary is.
        let mut radii: Vec<f64> = (1..=120).map(|i| f64::from(i) * 0.1).collect();
        radii.extend((0..200).map(|i| 4.0 + f64::from(i) * 0.005));
        radii.push(0.001);
        for radius in radii {
            let page = app
                .get(
                    &format!("/api/v1/users?lat={lat}&lon={lon}&radius_km={radius}&limit=100"),
                    spy.token(),
                )
                .await;
            let items = page.ok(200)["items"].as_array().unwrap().clone();
            let find = |id: &str| {
                items
                    .iter()
                    .find(|i| i["id"] == id)
                    .map(|i| i["distance_km"].as_f64().unwrap())
            };
            let (da, db) = (find(&a.id), find(&b.id));
            assert_eq!(da, db, "({lat}, {lon}) radius {radius} km tells them apart");
            if let Some(d) = da {
                assert!(d >= 1.0 && d.fract() == 0.0, "distance {d} is not whole km");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} answers found them");
}
