//! What a client refetches over REST when the socket says `resync_required`.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::socket::Endpoints;

/// Tries every server, from a random one, a few rounds: one of them may be down.
async fn get<T: DeserializeOwned>(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    token: &str,
    path: &str,
) -> anyhow::Result<T> {
    let mut last = None;
    for round in 0..4u32 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(250 * u64::from(round))).await;
        }
        let first = rand::random_range(0..endpoints.len());
        for server in first..first + endpoints.len() {
            let url = format!("{}{path}", endpoints.http_base(server));
            let answer = async {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Envelope<T>>()
                    .await
            }
            .await;
            match answer {
                Ok(e) => return Ok(e.data),
                Err(e) => last = Some(e),
            }
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => bail!("no server"),
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct Conversation {
    last_event_seq: i64,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Message {
    pub seq: i64,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub client_msg_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Notification {
    pub id: Uuid,
    #[serde(default)]
    pub seq: Option<i64>,
}

/// A conversation's event number now, then its messages after message number `after`,
/// oldest first: the client continues from that event number.
pub(crate) async fn conversation(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    token: &str,
    id: Uuid,
    after: i64,
) -> anyhow::Result<(i64, Vec<Message>)> {
    // The event number first: every message it covers is in the pages read after.
    let state: Conversation = get(
        http,
        endpoints,
        token,
        &format!("/api/v1/conversations/{id}"),
    )
    .await?;
    let mut messages = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations/{id}/messages?limit=100&cursor={c}"),
            None => format!("/api/v1/conversations/{id}/messages?limit=100&after={after}"),
        };
        let page: Page<Message> = get(http, endpoints, token, &path).await?;
        messages.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok((state.last_event_seq, messages)),
        }
    }
}

/// The user's notifications numbered after `after`, oldest first (the list is newest
/// first: read until an older number shows).
pub(crate) async fn notifications(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    token: &str,
    after: i64,
) -> anyhow::Result<Vec<Notification>> {
    let mut found = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/notifications?limit=100&cursor={c}"),
            None => "/api/v1/notifications?limit=100".to_owned(),
        };
        let page: Page<Notification> = get(http, endpoints, token, &path).await?;
        let mut older = false;
        for n in page.items {
            match n.seq {
                Some(seq) if seq > after => found.push(n),
                Some(_) => older = true,
                None => bail!("the server does not number notifications"),
            }
        }
        match page.next_cursor {
            Some(c) if !older => cursor = Some(c),
            _ => break,
        }
    }
    found.sort_by_key(|n| n.seq);
    Ok(found)
}
