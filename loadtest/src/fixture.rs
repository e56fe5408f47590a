//! The users, tokens and conversations written by `tunelink load-fixture`.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    pub run: String,
    pub password: String,
    pub users: Vec<User>,
    pub conversations: Vec<Conversation>,
    /// Index of the user who is an administrator (fixtures written before chaos mode have
    /// none).
    #[serde(default)]
    pub admin: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    pub id: Uuid,
    /// Indexes into `users`.
    pub members: Vec<usize>,
}

impl Fixture {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "reading {} (write one with `tunelink load-fixture`)",
                path.display()
            )
        })?;
        let fixture: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a load fixture", path.display()))?;
        if let Some(c) = fixture
            .conversations
            .iter()
            .find(|c| c.members.iter().any(|&m| m >= fixture.users.len()))
        {
            anyhow::bail!("conversation {} names a user the fixture lacks", c.id);
        }
        if fixture.admin.is_some_and(|a| a >= fixture.users.len()) {
            anyhow::bail!("the fixture's admin is not one of its users");
        }
        Ok(fixture)
    }
}
