//! Finding events: each filter alone, combined, distance order, pagination.

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, User, all_pages, catalogue_id, create_event, event_body, spawn_app, spawn_with,
};

struct Scene {
    app: TestApp,
    viewer: User,
    piano: String,
    jazz: String,
}

/// Events around Lyon and one in Paris, of several types, dates and statuses.
async fn scene() -> Scene {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let jazz = catalogue_id(&app, "genres", "Jazz").await;
    let rock = catalogue_id(&app, "genres", "Rock").await;
    // (title, days ahead, lat, lon, type, genre, needs piano)
    let events: [(&str, i64, f64, f64, &str, &str, bool); 6] = [
        ("Bellecour jazz jam", 2, 45.7578, 4.8320, "jam", &jazz, true),
        (
            "Croix-Rousse rehearsal",
            5,
            45.7745,
            4.8279,
            "rehearsal",
            &rock,
            false,
        ),
        (
            "Villeurbanne concert",
            1,
            45.7719,
            4.8902,
            "concert",
            &jazz,
            false,
        ),
        (
            "Vienne open mic",
            10,
            45.5253,
            4.8744,
            "open_mic",
            &rock,
            true,
        ),
        (
            "Paris jazz night",
            3,
            48.8566,
            2.3522,
            "concert",
            &jazz,
            true,
        ),
        ("Cancelled gig", 4, 45.7640, 4.8357, "concert", &jazz, false),
    ];
    for (title, days, lat, lon, kind, genre, needs_piano) in events {
        let mut body = event_body(title, days, lat, lon);
        body["type"] = json!(kind);
        body["genre_ids"] = json!([genre]);
        if needs_piano {
            body["instruments"] = json!([{"instrument_id": piano, "quantity": 1}]);
        }
        let id = create_event(&app, &nina, body).await;
        if title == "Cancelled gig" {
            app.post(
                &format!("/api/v1/events/{id}/cancel"),
                nina.token(),
                json!({}),
            )
            .await
            .ok(200);
        }
    }
    // A finished one, written directly since the API refuses past dates.
    sqlx::query(
        "INSERT INTO events (creator_id, title, type, starts_at, ends_at, address, latitude, longitude)
         VALUES ($1::uuid, 'Last week''s jam', 'jam', now() - interval '7 days', now() - interval '7 days' + interval '3 hours',
                 'Lyon', 45.76, 4.83)",
    )
    .bind(&nina.id)
    .execute(&app.db)
    .await
    .unwrap();
    let viewer = app.register("viewer").await;
    Scene {
        app,
        viewer,
        piano,
        jazz,
    }
}

fn titles(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["title"].as_str().unwrap()).collect()
}

const LYON: &str = "lat=45.7640&lon=4.8357";

#[tokio::test]
async fn each_filter_alone() {
    let s = scene().await;
    let (app, t) = (&s.app, s.viewer.token());

    let by_date = all_pages(app, "/api/v1/events", t).await;
    assert_eq!(
        titles(&by_date),
        [
            "Villeurbanne concert",
            "Bellecour jazz jam",
            "Paris jazz night",
            "Croix-Rousse rehearsal",
            "Vienne open mic"
        ],
        "default: scheduled events, soonest first"
    );
    let near = all_pages(app, &format!("/api/v1/events?{LYON}&radius_km=10"), t).await;
    assert_eq!(
        titles(&near),
        [
            "Villeurbanne concert",
            "Bellecour jazz jam",
            "Croix-Rousse rehearsal"
        ]
    );
    assert!(
        near.iter()
            .all(|e| e["distance_km"].as_f64().unwrap() <= 10.0)
    );
    let by_distance = all_pages(
        app,
        &format!("/api/v1/events?{LYON}&radius_km=50&sort=distance"),
        t,
    )
    .await;
    assert_eq!(
        titles(&by_distance),
        [
            "Bellecour jazz jam",
            "Croix-Rousse rehearsal",
            "Villeurbanne concert",
            "Vienne open mic"
        ]
    );
    let d: Vec<f64> = by_distance
        .iter()
        .map(|e| e["distance_km"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");

    let from =
        (chrono::Utc::now() + chrono::Duration::days(2) - chrono::Duration::hours(1)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::days(6)).to_rfc3339();
    let window = all_pages(
        app,
        &format!(
            "/api/v1/events?from={}&to={}",
            urlencode(&from),
            urlencode(&to)
        ),
        t,
    )
    .await;
    assert_eq!(
        titles(&window),
        [
            "Bellecour jazz jam",
            "Paris jazz night",
            "Croix-Rousse rehearsal"
        ]
    );

    let concerts = all_pages(app, "/api/v1/events?type=concert", t).await;
    assert_eq!(
        titles(&concerts),
        ["Villeurbanne concert", "Paris jazz night"]
    );
    let piano = all_pages(app, &format!("/api/v1/events?instrument_id={}", s.piano), t).await;
    assert_eq!(
        titles(&piano),
        ["Bellecour jazz jam", "Paris jazz night", "Vienne open mic"]
    );
    let jazz = all_pages(app, &format!("/api/v1/events?genre_id={}", s.jazz), t).await;
    assert_eq!(
        titles(&jazz),
        [
            "Villeurbanne concert",
            "Bellecour jazz jam",
            "Paris jazz night"
        ]
    );
    let text = all_pages(app, "/api/v1/events?q=JAZZ", t).await;
    assert_eq!(titles(&text), ["Bellecour jazz jam", "Paris jazz night"]);
    let cancelled = all_pages(app, "/api/v1/events?status=cancelled", t).await;
    assert_eq!(titles(&cancelled), ["Cancelled gig"]);
    assert_eq!(cancelled[0]["status"], "cancelled");
    let finished = all_pages(app, "/api/v1/events?status=finished", t).await;
    assert_eq!(titles(&finished), ["Last week's jam"]);
    assert_eq!(finished[0]["status"], "finished");
}

#[tokio::test]
async fn filters_combine_and_pages_have_no_gap_or_repeat() {
    let s = scene().await;
    let (app, t) = (&s.app, s.viewer.token());
    let combined = all_pages(
        app,
        &format!(
            "/api/v1/events?{LYON}&radius_km=50&genre_id={}&instrument_id={}&type=jam",
            s.jazz, s.piano
        ),
        t,
    )
    .await;
    assert_eq!(titles(&combined), ["Bellecour jazz jam"]);
    let jazz_near = all_pages(
        app,
        &format!("/api/v1/events?{LYON}&radius_km=50&q=jazz&sort=distance"),
        t,
    )
    .await;
    assert_eq!(titles(&jazz_near), ["Bellecour jazz jam"]);
    for limit in [1, 2, 3] {
        let paged = all_pages(
            app,
            &format!("/api/v1/events?{LYON}&radius_km=500&sort=distance&limit={limit}"),
            t,
        )
        .await;
        assert_eq!(
            titles(&paged),
            [
                "Bellecour jazz jam",
                "Croix-Rousse rehearsal",
                "Villeurbanne concert",
                "Vienne open mic",
                "Paris jazz night"
            ],
            "limit {limit}"
        );
        let by_date = all_pages(app, &format!("/api/v1/events?limit={limit}"), t).await;
        assert_eq!(by_date.len(), 5, "limit {limit}");
    }
}

#[tokio::test]
async fn bad_search_parameters_are_422() {
    let s = scene().await;
    let t = s.viewer.token();
    for (query, field) in [
        ("sort=distance", "sort"),
        ("lat=45&lon=4", "radius_km"),
        ("lat=45&lon=4&radius_km=900", "radius_km"),
        ("type=rave", "type"),
        ("status=lost", "status"),
        ("q=ab", "q"),
        ("from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "to"),
    ] {
        let resp = s.app.get(&format!("/api/v1/events?{query}"), t).await;
        resp.err(422, "validation_failed");
        assert_eq!(resp.fields()[0].0, field, "{query}");
    }
    s.app
        .get("/api/v1/events?from=yesterday", t)
        .await
        .err(422, "validation_failed");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Found by schemathesis: subnormal coordinates (`5e-324`) and radii made PostgreSQL's
/// float arithmetic underflow, a 500. They are a place at (0, 0) and a one-metre radius.
#[tokio::test]
async fn subnormal_coordinates_and_radius_are_answered() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let id = create_event(
        &app,
        &nina,
        event_body("Null island jam", 3, 5e-324, -5e-324),
    )
    .await;
    let event = app
        .get(
            &format!("/api/v1/events/{id}?lat=5e-324&lon=8.317500968681744e-62"),
            nina.token(),
        )
        .await;
    let data = event.ok(200);
    assert_eq!(data["latitude"], 0.0);
    assert_eq!(data["distance_km"], 0.0);
    let found = app
        .get(
            "/api/v1/events?lat=1e-320&lon=0&radius_km=1e-300&sort=distance",
            nina.token(),
        )
        .await;
    assert_eq!(found.ok(200)["items"][0]["id"], id.as_str());
    let musicians = app
        .get(
            "/api/v1/users?lat=-5e-324&lon=5e-324&radius_km=5e-324",
            nina.token(),
        )
        .await;
    musicians.ok(200);
}

/// Around a point in start order, the search reads the grid cells that cover the circle
/// (`events::search::cells_around`). Wherever the point is — on a cell's corner, across the
/// antimeridian, near a pole, with a radius too big for cells — it answers exactly what a
/// scan of the whole table finds, in order, with ties on the start time, page after page.
#[tokio::test]
async fn searching_around_a_point_answers_what_a_full_scan_finds() {
    let app = spawn_with(|s| {
        // Hundreds of searches by one user: more than the per-user search limit allows.
        s.rate_limits.searches_per_user = tunelink::limits::Rule::OFF;
    })
    .await;
    let nina = app.register("nina").await;
    let t = nina.token();
    let centres = [
        (45.0, 4.5),
        (45.7640, 4.8357),
        (0.2, 179.9),
        (-0.1, -180.0),
        (-33.87, 151.21),
        (89.8, 10.0),
    ];
    // 60 events around each centre (a simple LCG, so the test is reproducible), starting
    // at one of 5 hours: many share a start time.
    let mut seed: u64 = 7;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut lats, mut lons, mut hours) = (Vec::new(), Vec::new(), Vec::new());
    for (lat, lon) in centres {
        for k in 0..60 {
            lats.push((lat + (next() - 0.5) * 1.2_f64).clamp(-90.0, 90.0));
            let mut l = lon + (next() - 0.5) * 1.6;
            if l > 180.0 {
                l -= 360.0;
            } else if l < -180.0 {
                l += 360.0;
            }
            lons.push(l);
            // Three of them in the past (one still under way), the rest to come.
            hours.push(match k {
                0 => -48,
                1 => -1,
                _ => 24 + (k % 5) * 24,
            });
        }
    }
    sqlx::query(
        "INSERT INTO events (creator_id, title, type, starts_at, ends_at, address, latitude, longitude)
         SELECT $1::uuid, 'event ' || n, 'jam', date_trunc('hour', now()) + h * interval '1 hour',
                date_trunc('hour', now()) + (h + 3) * interval '1 hour', 'somewhere', lat, lon
         FROM UNNEST($2::float8[], $3::float8[], $4::int4[]) WITH ORDINALITY AS t(lat, lon, h, n)",
    )
    .bind(&nina.id)
    .bind(&lats)
    .bind(&lons)
    .bind(&hours)
    .execute(&app.db)
    .await
    .unwrap();
    let from = (chrono::Utc::now() + chrono::Duration::hours(30)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::hours(80)).to_rfc3339();
    for (lat, lon) in centres {
        for radius_km in [0.5, 10.0, 25.0, 40.0, 75.0, 200.0] {
            for window in [false, true] {
                let mut path =
                    format!("/api/v1/events?lat={lat}&lon={lon}&radius_km={radius_km}&limit=7");
                let mut truth = String::from(
                    "SELECT id::text FROM events WHERE status = 'scheduled' AND ends_at > now()
                       AND earth_distance(ll_to_earth($1, $2), location) <= $3 * 1000",
                );
                if window {
                    path.push_str(&format!(
                        "&from={}&to={}",
                        urlencoding(&from),
                        urlencoding(&to)
                    ));
                    truth.push_str(
                        " AND starts_at >= $4::timestamptz AND starts_at <= $5::timestamptz",
                    );
                }
                truth.push_str(" ORDER BY starts_at, id");
                let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(truth))
                    .bind(lat)
                    .bind(lon)
                    .bind(radius_km);
                if window {
                    query = query.bind(&from).bind(&to);
                }
                let expected = query.fetch_all(&app.db).await.unwrap();
                let found = all_pages(&app, &path, t).await;
                let ids: Vec<&str> = found.iter().map(|e| e["id"].as_str().unwrap()).collect();
                assert_eq!(ids, expected, "{path}");
            }
        }
    }
}

fn urlencoding(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
