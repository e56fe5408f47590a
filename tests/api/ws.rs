//! A WebSocket test client speaking the TuneLink protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, client_async,
    tungstenite::{Message, client::IntoClientRequest, protocol::CloseFrame},
};

use crate::helpers::TestApp;

pub struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames skipped by `next_of`, handed out again first.
    pending: std::collections::VecDeque<Value>,
    /// Every frame received, for checks against the protocol schema.
    pub seen: Vec<Value>,
}

impl Drop for Ws {
    /// Every frame a test received must match the protocol's schema.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.seen
                .iter()
                .for_each(crate::protocol::assert_server_frame);
        }
    }
}

/// How a socket ended.
#[derive(Debug, PartialEq)]
pub enum End {
    Closed(u16),
    Frame(Value),
    Silent,
}

impl Ws {
    /// Connects with `Authorization: Bearer`, waits for `ready`, and goes live at once
    /// (a first frame other than `resume` means "no resume").
    pub async fn connect(app: &TestApp, token: &str) -> Self {
        let mut ws = Self::connect_quiet(app, token).await;
        ws.send(json!({"type": "ping", "ref": "live"})).await;
        ws
    }

    /// Connects and waits for `ready`, sending nothing (to `resume` next).
    pub async fn connect_quiet(app: &TestApp, token: &str) -> Self {
        let mut ws = Self::open(app, Some(token), None).await;
        let ready = ws.next().await.expect("ready frame");
        assert_eq!(ready["type"], "ready", "{ready}");
        ws
    }

    /// Opens a socket; with a small receive buffer when `rcvbuf` is given (slow clients).
    pub async fn open(app: &TestApp, token: Option<&str>, rcvbuf: Option<u32>) -> Self {
        let url = format!("{}/ws", app.base.replace("http://", "ws://"));
        let mut request = url.clone().into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = socket.connect(addr).await.unwrap();
        let (inner, _) = client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("upgrade");
        Self {
            inner,
            pending: Default::default(),
            seen: Vec::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.inner
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame within 5 s (`None`: closed or silent).
    pub async fn next(&mut self) -> Option<Value> {
        match self.next_within(Duration::from_secs(5)).await {
            End::Frame(v) => Some(v),
            _ => None,
        }
    }

    pub async fn next_within(&mut self, wait: Duration) -> End {
        if let Some(frame) = self.pending.pop_front() {
            return End::Frame(frame);
        }
        loop {
            match tokio::time::timeout(wait, self.inner.next()).await {
                Err(_) => return End::Silent,
                Ok(None) | Ok(Some(Err(_))) => return End::Closed(1006),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    self.seen.push(v.clone());
                    return End::Frame(v);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return End::Closed(frame.map_or(1005, |f: CloseFrame| f.code.into()));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next frame of one of these types, skipping others (typing, presence…).
    pub async fn next_of(&mut self, types: &[&str]) -> Option<Value> {
        let mut skipped = Vec::new();
        let found = loop {
            let Some(frame) = self.next().await else {
                break None;
            };
            if types.contains(&frame["type"].as_str().unwrap_or_default()) {
                break Some(frame);
            }
            skipped.push(frame);
        };
        for frame in skipped.into_iter().rev() {
            self.pending.push_front(frame);
        }
        found
    }

    /// Frames of these types until `wait` passes with nothing new.
    pub async fn drain(&mut self, types: &[&str], wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let End::Frame(f) = self.next_within(wait).await {
            if types.contains(&f["type"].as_str().unwrap_or_default()) {
                out.push(f);
            }
        }
        out
    }

    /// Waits for the server to close the socket; its close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.next_within(Duration::from_secs(10)).await {
                End::Closed(code) => return code,
                End::Frame(_) => continue,
                End::Silent => return 0,
            }
        }
    }

    pub async fn close(&mut self) {
        let _ = self.inner.close(None).await;
    }

    pub async fn send_message(
        &mut self,
        reference: &str,
        conversation: &str,
        body: &str,
        key: Option<&str>,
    ) {
        self.send(json!({"type": "send", "ref": reference, "conversation_id": conversation, "body": body, "client_msg_id": key}))
            .await;
    }
}

impl Ws {
    /// Sends a raw WebSocket message (bytes the protocol would not allow included).
    pub async fn send_raw(&mut self, message: Message) {
        let _ = self.inner.send(message).await;
    }
}
