//! Connection hygiene (issue 15, finding 1): the server itself — without a proxy in front —
//! closes connections that say nothing, never finish their headers or sit idle, and caps
//! the connections one address may hold, so that one client cannot take an instance
//! offline; everyone else is still served.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::spawn_with;

/// Waits for the server to close `stream` (EOF or reset); how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let app = spawn_with(|s| s.connections.idle_timeout = Duration::from_secs(1)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Says nothing at all.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // Starts a request and never finishes its headers.
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A finished request, then an idle keep-alive connection.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A body announced and never sent.
    let mut no_body = TcpStream::connect(&addr).await.unwrap();
    no_body
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    for (name, stream) in [
        ("silent", &mut silent),
        ("partial headers", &mut partial),
        ("idle keep-alive", &mut idle),
        ("unfinished body", &mut no_body),
    ] {
        let took = closed_within(stream, Duration::from_secs(10)).await;
        assert!(took.is_some(), "{name}: still open after 10 s");
    }
    // Still serving.
    app.get("/healthz", None).await.ok(200);
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let app = spawn_with(|s| {
        s.connections.max_per_address = 20;
        s.connections.max_total = 1000;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Accepted by the kernel, then closed at once by the server.
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(5))
            .await
            .is_some(),
        "the 21st connection from one address was kept"
    );
    // A connection given back makes room for a new one.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.get("/healthz", None).await.ok(200);
    // The held connections still work.
    let stream = &mut held[0];
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// A slow-header client that sends a byte every 200 ms is never idle, but its headers must
/// arrive whole within the header timeout: it is cut. Normal requests, a keep-alive
/// connection's second request and a WebSocket that stays open past the timeout are not.
#[tokio::test]
async fn headers_trickled_byte_by_byte_are_cut_at_the_header_timeout() {
    let app = spawn_with(|s| {
        s.connections.header_timeout = Duration::from_secs(1);
        s.connections.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
        "a".repeat(200)
    );
    let started = Instant::now();
    let mut cut = false;
    for byte in request.bytes() {
        if slow.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickled request was let through");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A keep-alive connection serves one request, waits longer than the header timeout
    // (idle, not slow), then serves another.
    let mut keep = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = keep.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // A socket that sends a frame now and then stays open beyond the header timeout.
    let nina = app.register("nina").await;
    let mut ws = crate::ws::Ws::connect(&app, &nina.access).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        ws.send(serde_json::json!({"type": "ping", "ref": "p"}))
            .await;
    }
    let pong = ws.next_of(&["pong"]).await;
    assert!(pong.is_some(), "the socket was cut");
}

/// Issue 15, finding 8: what the HTTP layer refuses before any handler (not HTTP at all,
/// headers too large) is answered in the standard envelope too.
#[tokio::test]
async fn protocol_errors_are_answered_in_the_envelope() {
    let app = spawn_with(|_| {}).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(600_000)
    );
    for (request, status) in [
        ("GARBAGE\r\n\r\n".to_owned(), 400),
        (
            "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_owned(),
            400,
        ),
        (big, 431),
    ] {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        // The server may answer and close before reading everything.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {text}"
        );
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], status);
        assert_eq!(body["error_code"], "malformed_request");
    }
}

/// A body sent after `100 Continue` is a body, not the next request's headers: a slow
/// upload past the header timeout is not cut (only silence is, by the idle timeout).
#[tokio::test]
async fn a_body_after_100_continue_is_not_held_to_the_header_timeout() {
    let app = spawn_with(|s| {
        s.connections.header_timeout = Duration::from_secs(1);
        s.connections.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"login": "nobody", "password": "wrong password"}"#;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 100"), "{:?}", &buf[..n]);
    // The body trickles in over 2 s: longer than the header timeout.
    for chunk in body.chunks(10) {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}
