//! Erasure of one person's personal data (GDPR article 17, docs/adr/0014): the `user.erased`
//! event is appended (an admin action in the audit trail; a user still in the directory
//! leaves it, and providers delete it downstream), then the user's data key is destroyed, so
//! every document and password hash the log holds of the person reads as erased from then on.
//! The log keeps every byte it had: the digest chain and `roster audit verify` still check out.
//!
//! Erasing again is harmless and finishes an erasure whose key could not be destroyed the
//! first time (the event is not appended twice; the key is destroyed again).

use crate::audit::AuditError;
use crate::domain::{Command, Context};
use crate::http::Shared;
use crate::keys::KeyError;
use crate::pipeline::WriteError;
use roster_events::{KeyId, ResourceId};
use uuid::Uuid;

/// The longest `reference` kept.
pub const MAX_REFERENCE: usize = 200;

/// What an erasure did.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub user: Uuid,
    pub directory: String,
    /// Whether this request appended the erasure (false: the user was erased before).
    pub recorded: bool,
    /// The data key destroyed, if the user's data was ever sealed.
    #[schema(value_type = Option<String>)]
    pub key: Option<KeyId>,
    /// How many of the user's events hold personal data in clear (written before Roster
    /// sealed it); the log keeps those as they are.
    pub in_clear: u64,
}

/// Why an erasure was not done.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no user {0} in the audit trail")]
    NotFound(Uuid),
    #[error("{0} is not a user: only a person's data is erased")]
    NotAUser(Uuid),
    #[error("reference is longer than {MAX_REFERENCE} bytes")]
    Reference,
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The erasure is recorded, but the key is not destroyed yet: erase again.
    #[error("the erasure is recorded but its data key could not be destroyed yet ({0}); repeat the request")]
    Key(#[from] KeyError),
}

/// Erases `user`'s personal data on behalf of `ctx` (an admin).
///
/// Fails when the user is unknown, the audit trail or the log is unavailable, or the key
/// store cannot destroy the key (then the erasure is recorded and a repeat finishes it).
pub async fn erase(
    app: &Shared,
    ctx: Context,
    user: Uuid,
    reference: Option<String>,
) -> Result<Erased, EraseError> {
    if reference.as_ref().is_some_and(|r| r.len() > MAX_REFERENCE) {
        return Err(EraseError::Reference);
    }
    let person = app
        .audit
        .person(user)
        .await?
        .ok_or(EraseError::NotFound(user))?;
    if !person.user {
        return Err(EraseError::NotAUser(user));
    }
    let recorded = person.erased_at.is_none();
    if recorded {
        let cmd = Command::EraseUser {
            id: ResourceId(user),
            version: person.version,
            key: person.key,
            in_clear: person.in_clear,
            reference,
        };
        let writer = app.writers.get(&person.directory).await?;
        writer.execute(cmd, ctx).await?;
    }
    if let Some(key) = person.key {
        app.keys.destroy(key).await?;
    }
    tracing::info!(%user, directory = %person.directory, recorded, "personal data erased");
    Ok(Erased {
        user,
        directory: person.directory,
        recorded,
        key: person.key,
        in_clear: person.in_clear,
    })
}
