//! The decisions on property mappings: a name is unique in its directory, a mapping keeps its
//! name and kind, one that a provider applies stays, and a provider applies only provider
//! mappings of its own directory. The expression itself was checked at the edge.

use super::{Builder, DomainError, Outcome};
use roster_events::{
    Event, MappingCreated, MappingDef, MappingKind, MappingUpdated, ResourceId, ResourceType,
};
use roster_projections::{Directory, MappingView};

fn existing(state: &Directory, id: ResourceId) -> Result<&MappingView, DomainError> {
    state
        .mappings()
        .find(|m| m.id == id)
        .ok_or_else(|| DomainError::NotFound(format!("mapping {id} not found")))
}

pub(super) fn create(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
    mapping: &MappingDef,
) -> Result<Outcome, DomainError> {
    if state.mapping_by_name(&mapping.name).is_some() {
        return Err(DomainError::Conflict(format!(
            "mapping {:?} exists",
            mapping.name
        )));
    }
    let event = Event::MappingCreated(MappingCreated {
        mapping: mapping.clone(),
    });
    b.push(ResourceType::Mapping, id, 0, event);
    Ok(Outcome::Mapping(id))
}

pub(super) fn update(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
    mapping: &MappingDef,
) -> Result<Outcome, DomainError> {
    let m = existing(state, id)?;
    if m.mapping.name != mapping.name || m.mapping.kind != mapping.kind {
        return Err(DomainError::Invalid(format!(
            "a mapping's name and kind stay as they were created ({:?}, {})",
            m.mapping.name,
            m.mapping.kind.as_str()
        )));
    }
    if m.mapping != *mapping {
        let event = Event::MappingUpdated(MappingUpdated {
            mapping: mapping.clone(),
        });
        b.push(ResourceType::Mapping, id, m.version, event);
    }
    Ok(Outcome::Mapping(id))
}

pub(super) fn delete(
    state: &Directory,
    b: &mut Builder<'_>,
    id: ResourceId,
) -> Result<Outcome, DomainError> {
    let m = existing(state, id)?;
    let name = &m.mapping.name;
    if let Some(p) = state.providers().find(|p| p.config.mappings.contains(name)) {
        return Err(DomainError::Conflict(format!(
            "mapping {name:?} is applied by provider {:?}; take it out of the provider's \
             mappings first",
            p.config.name
        )));
    }
    b.push(ResourceType::Mapping, id, m.version, Event::MappingDeleted);
    Ok(Outcome::Done)
}

/// The mappings a provider names are provider mappings of its directory.
pub(super) fn check_applied(state: &Directory, names: &[String]) -> Result<(), DomainError> {
    for name in names {
        let m = state.mapping_by_name(name).ok_or_else(|| {
            DomainError::Invalid(format!(
                "mapping {name:?} is not in directory {:?}",
                state.name()
            ))
        })?;
        if !matches!(
            m.mapping.kind,
            MappingKind::ProviderUser | MappingKind::ProviderGroup
        ) {
            return Err(DomainError::Invalid(format!(
                "mapping {name:?} is a {} mapping; a provider takes provider_user and \
                 provider_group ones",
                m.mapping.kind.as_str()
            )));
        }
    }
    Ok(())
}
