//! Compression (issue 20): large JSON answers and the docs page are gzipped for clients
//! that accept it; small answers, clients that refuse it and non-JSON bodies are not.

use std::io::Read;

use reqwest::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, ETAG, VARY};
use serde_json::Value;

use crate::helpers::{create_event, event_body, spawn_app};

async fn get(url: &str, token: Option<&str>, accept: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(a) = accept {
        req = req.header(ACCEPT_ENCODING, a);
    }
    req.send().await.unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

#[tokio::test]
async fn large_lists_and_the_docs_are_gzipped_for_clients_that_accept_it() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    for k in 0..30 {
        create_event(
            &app,
            &nina,
            event_body(&format!("jam number {k}"), 2, 45.76, 4.83),
        )
        .await;
    }
    let url = format!("{}/api/v1/events?limit=100", app.base);
    let plain = get(&url, nina.token(), None).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(plain["data"]["items"].as_array().unwrap().len(), 30);

    for accept in ["gzip", "br;q=1.0, gzip;q=0.8, *;q=0.1", "deflate, GZIP"] {
        let resp = get(&url, nina.token(), Some(accept)).await;
        assert_eq!(resp.status(), 200, "{accept}");
        assert_eq!(resp.headers()[CONTENT_ENCODING], "gzip", "{accept}");
        assert!(
            resp.headers()[VARY]
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        let bytes = resp.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&gunzip(&bytes)).unwrap();
        assert_eq!(body, plain, "{accept}");
        assert!(bytes.len() * 3 < serde_json::to_vec(&plain).unwrap().len());
    }
    // Refused, or only other encodings accepted: identity.
    for accept in ["gzip;q=0", "br", "identity", "gzip;q=0.000"] {
        let resp = get(&url, nina.token(), Some(accept)).await;
        assert!(resp.headers().get(CONTENT_ENCODING).is_none(), "{accept}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, plain, "{accept}");
    }
    // A small answer is not worth it; errors neither.
    let me = get(
        &format!("{}/api/v1/users/me", app.base),
        nina.token(),
        Some("gzip"),
    )
    .await;
    assert!(me.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(
        me.json::<Value>().await.unwrap()["data"]["username"],
        "nina"
    );

    // The 2 MB docs page.
    let docs = get(&format!("{}/docs", app.base), None, Some("gzip")).await;
    assert_eq!(docs.status(), 200);
    assert_eq!(docs.headers()[CONTENT_ENCODING], "gzip");
    let html = gunzip(&docs.bytes().await.unwrap());
    assert!(String::from_utf8(html).unwrap().contains("<html"));

    // A cached catalogue answer: the gzipped variant has a weak ETag of its own, and
    // revalidating with it still answers 304.
    let url = format!("{}/api/v1/instruments?limit=100", app.base);
    let resp = get(&url, None, Some("gzip")).await;
    assert_eq!(resp.headers()[CONTENT_ENCODING], "gzip");
    let tag = resp.headers()[ETAG].to_str().unwrap().to_owned();
    assert!(tag.starts_with("W/"), "{tag}");
    let again = reqwest::Client::new()
        .get(&url)
        .header(ACCEPT_ENCODING, "gzip")
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}
