//! After the run: does PostgreSQL hold every acked message?

use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::{
    fixture::{Conversation, Fixture},
    socket::Endpoints,
};

/// Checked over REST afterwards: each conversation's last message number is the last acked.
#[derive(Debug, Default, Serialize)]
pub struct Persisted {
    pub conversations_checked: u64,
    pub conversations_matching: u64,
    /// Acked messages that PostgreSQL does not have (should be 0).
    pub missing_messages: u64,
    pub errors: u64,
}

#[derive(Deserialize)]
struct ConversationEnvelope {
    data: ConversationState,
}

#[derive(Deserialize)]
struct ConversationState {
    last_message_seq: i64,
}

/// Asks the servers, conversation by conversation, for its last message number (another
/// server when one does not answer: chaos runs stop one).
pub(super) async fn verify(
    fixture: &Fixture,
    conversations: &[Conversation],
    last: &[i64],
    endpoints: &Endpoints,
) -> Persisted {
    let client = reqwest::Client::new();
    let checks = stream::iter(conversations.iter().zip(last).enumerate())
        .map(|(i, (c, &acked))| {
            let client = client.clone();
            let token = c
                .members
                .first()
                .map(|&m| fixture.users[m].token.clone())
                .unwrap_or_default();
            async move {
                let mut stored = Err(None);
                for server in i..i + endpoints.len() {
                    let base = endpoints.http_base(server);
                    let answer = async {
                        client
                            .get(format!("{base}/api/v1/conversations/{}", c.id))
                            .bearer_auth(&token)
                            .send()
                            .await?
                            .error_for_status()?
                            .json::<ConversationEnvelope>()
                            .await
                    }
                    .await;
                    match answer {
                        Ok(e) => {
                            stored = Ok(e.data.last_message_seq);
                            break;
                        }
                        Err(e) => stored = Err(Some(e)),
                    }
                }
                (acked, stored)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut p = Persisted::default();
    for (acked, stored) in checks {
        p.conversations_checked += 1;
        match stored {
            Ok(stored) if stored >= acked => p.conversations_matching += 1,
            Ok(stored) => p.missing_messages += u64::try_from(acked - stored).unwrap_or(0),
            Err(_) => p.errors += 1,
        }
    }
    p
}
