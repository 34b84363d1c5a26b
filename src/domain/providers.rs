//! The decisions on outbound providers: a provider's name is unique in its directory, its
//! scope names groups that exist and its mappings are provider mappings of its directory;
//! an operator's request (full sync, retry, replay) is recorded for its consumer.

use super::{mappings, Builder, DomainError, Outcome, ProviderRequest};
use roster_events::{
    Event, ProviderConfig, ProviderCreated, ProviderReplayRequested, ProviderUpdated, ResourceId,
    ResourceType,
};
use roster_projections::{Directory, ProviderView};
use std::sync::Arc;

fn existing(state: &Directory, id: ResourceId) -> Result<&Arc<ProviderView>, DomainError> {
    state
        .provider(id)
        .ok_or_else(|| DomainError::NotFound(format!("provider {id} not found")))
}

/// A provider's name is unique in its directory and its scope names groups that exist.
fn check(state: &Directory, id: ResourceId, config: &ProviderConfig) -> Result<(), DomainError> {
    if state
        .provider_by_name(&config.name)
        .is_some_and(|p| p.id != id)
    {
        return Err(DomainError::Conflict(format!(
            "provider {:?} exists",
            config.name
        )));
    }
    let scope = &config.scope;
    for g in scope.group_filter.iter().chain(&scope.access_groups) {
        if state.group(*g).is_none() {
            return Err(DomainError::Invalid(format!(
                "the scope names group {g}, which is not in directory {:?}",
                state.name()
            )));
        }
    }
    mappings::check_applied(state, &config.mappings)
}

pub(super) fn create(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
    config: &ProviderConfig,
) -> Result<Outcome, DomainError> {
    if state.provider(id).is_some() {
        return Err(DomainError::Conflict(format!("provider {id} exists")));
    }
    check(state, id, config)?;
    let event = Event::ProviderCreated(ProviderCreated {
        config: config.clone(),
    });
    b.push(ResourceType::Provider, id, 0, event);
    Ok(Outcome::Provider(id))
}

pub(super) fn update(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
    config: &ProviderConfig,
) -> Result<Outcome, DomainError> {
    let p = existing(state, id)?;
    check(state, id, config)?;
    if p.config != *config {
        let event = Event::ProviderUpdated(ProviderUpdated {
            config: config.clone(),
        });
        b.push(ResourceType::Provider, id, p.version, event);
    }
    Ok(Outcome::Provider(id))
}

pub(super) fn delete(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
) -> Result<Outcome, DomainError> {
    let p = existing(state, id)?;
    b.push(
        ResourceType::Provider,
        id,
        p.version,
        Event::ProviderDeleted,
    );
    Ok(Outcome::Done)
}

pub(super) fn request(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
    request: ProviderRequest,
) -> Result<Outcome, DomainError> {
    let p = existing(state, id)?;
    let event = match request {
        ProviderRequest::Sync => Event::ProviderSyncRequested,
        ProviderRequest::Retry => Event::ProviderRetryRequested,
        ProviderRequest::Replay { from } => {
            Event::ProviderReplayRequested(ProviderReplayRequested { from })
        }
    };
    b.push(ResourceType::Provider, id, p.version, event);
    Ok(Outcome::Provider(id))
}
