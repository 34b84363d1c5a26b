//! The decisions on property mappings: a name is unique in its directory, a mapping keeps its
//! name and kind, one that a provider applies stays, and a provider applies only provider
//! mappings of its own directory, a source only source mappings. The expression itself was
//! checked at the edge.
//!
//! Also where a source's mappings run on what it writes: after the request was parsed and
//! before the rest of the decision, on the directory's state as it is, so that `existing` is
//! the object this write replaces.

use super::{
    replace_user, schemas_of, source_schemas, write_group, Builder, Context, DomainError, Outcome,
};
use crate::mappings::inbound::{self, Refusal};
use crate::mappings::{group_object, merge_patch, user_object};
use roster_events::{
    Document, Event, Mapped, MappingCreated, MappingDef, MappingKind, MappingUpdated, Personal,
    ResourceId, ResourceType, SourceMappingsSet,
};
use roster_projections::schema::Checked;
use roster_projections::{Directory, GroupView, MappingView, UserView};

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
    if let Some(s) = state.sources().find(|s| s.mappings.contains(name)) {
        return Err(DomainError::Conflict(format!(
            "mapping {name:?} is run by source {:?}; take it out of the source's mappings \
             first",
            s.slug
        )));
    }
    b.push(ResourceType::Mapping, id, m.version, Event::MappingDeleted);
    Ok(Outcome::Done)
}

/// The mappings a provider names are provider mappings of its directory.
pub(super) fn check_applied(state: &Directory, names: &[String]) -> Result<(), DomainError> {
    check_kinds(
        state,
        names,
        "a provider",
        [MappingKind::ProviderUser, MappingKind::ProviderGroup],
    )
}

/// A source's mappings become `names`: source mappings of its directory, each named once.
pub(super) fn set_for_source(
    state: &Directory,
    b: &mut Builder<'_>,
    slug: &str,
    names: &[String],
) -> Result<Outcome, DomainError> {
    let source = state
        .source_by_slug(slug)
        .ok_or_else(|| DomainError::NotFound(format!("source {slug:?} not found")))?;
    check_kinds(
        state,
        names,
        "a source",
        [MappingKind::SourceUser, MappingKind::SourceGroup],
    )?;
    if let Some((i, name)) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(DomainError::Invalid(format!(
            "mapping {name:?} is named twice (at {} and {i})",
            names.iter().position(|n| n == name).unwrap_or_default()
        )));
    }
    if source.mappings != names {
        let event = Event::SourceMappingsSet(SourceMappingsSet {
            mappings: names.to_vec(),
        });
        b.push(ResourceType::Source, source.id, source.version, event);
    }
    Ok(Outcome::Source(source.id))
}

/// Each of `names` is a mapping of the directory of one of `kinds`.
fn check_kinds(
    state: &Directory,
    names: &[String],
    whose: &str,
    kinds: [MappingKind; 2],
) -> Result<(), DomainError> {
    for name in names {
        let m = state.mapping_by_name(name).ok_or_else(|| {
            DomainError::Invalid(format!(
                "mapping {name:?} is not in directory {:?}",
                state.name()
            ))
        })?;
        if !kinds.contains(&m.mapping.kind) {
            return Err(DomainError::Invalid(format!(
                "mapping {name:?} is a {} mapping; {whose} takes {} and {} ones",
                m.mapping.kind.as_str(),
                kinds[0].as_str(),
                kinds[1].as_str()
            )));
        }
    }
    Ok(())
}

/// A user or group its source's mappings reshaped: the document to store, and what the
/// source sent (as the merge patch from the stored document to it), with the mappings that
/// ran.
pub(super) struct Reshaped {
    pub resource: Checked,
    sent_patch: Document,
    mappings: Vec<String>,
}

/// What the caller's source's mappings make of a user it writes (`existing` when the write
/// replaces one); None when they leave it as sent.
///
/// Fails, with nothing written, when a mapping fails or refuses the user, or its result is
/// not a valid user of the source.
pub(super) fn reshape_user(
    state: &Directory,
    ctx: &Context,
    sent: &Checked,
    existing: Option<&UserView>,
) -> Result<Option<Reshaped>, DomainError> {
    let target = existing.map(|u| (u.id, Target::User(u)));
    reshape(state, ctx, MappingKind::SourceUser, sent, target)
}

/// As [`reshape_user`], for a group (its document; its members are not the mappings' to
/// change).
pub(super) fn reshape_group(
    state: &Directory,
    ctx: &Context,
    sent: &Checked,
    existing: Option<&GroupView>,
) -> Result<Option<Reshaped>, DomainError> {
    let target = existing.map(|g| (g.id, Target::Group(g)));
    reshape(state, ctx, MappingKind::SourceGroup, sent, target)
}

/// The object a write replaces, turned into what the mappings see only when a source has
/// mappings to run (most writes have none).
enum Target<'a> {
    User(&'a UserView),
    Group(&'a GroupView),
}

fn reshape(
    state: &Directory,
    ctx: &Context,
    kind: MappingKind,
    sent: &Checked,
    target: Option<(ResourceId, Target<'_>)>,
) -> Result<Option<Reshaped>, DomainError> {
    let Some(source) = ctx.source.as_deref().and_then(|s| state.source_by_slug(s)) else {
        return Ok(None);
    };
    let slug = source.slug.as_str();
    let what = if kind.users() { "user" } else { "group" };
    let refused = |why: String| DomainError::Invalid(format!("source {slug:?}'s {why}"));
    let steps = inbound::steps(&source.mappings, kind, |name| {
        state.mapping_by_name(name).map(|m| &m.mapping)
    })
    .map_err(|e| refused(e.to_string()))?;
    if steps.is_empty() {
        return Ok(None);
    }
    let (id, existing) = match target {
        Some((id, Target::User(u))) => (Some(id.to_string()), Some(user_object(u))),
        Some((id, Target::Group(g))) => (Some(id.to_string()), Some(group_object(g))),
        None => (None, None),
    };
    let schemas = source_schemas(state, ctx, kind.users());
    let existing = existing.as_ref();
    let reshaped = inbound::reshape(kind, &steps, slug, sent, id.as_deref(), existing, &schemas);
    let resource = match reshaped {
        Ok(Some(resource)) => resource,
        Ok(None) => return Ok(None),
        Err(Refusal::Skipped(name)) => {
            return Err(refused(format!("mapping {name:?} refuses this {what}")))
        }
        Err(Refusal::Failed(e)) => return Err(refused(e.to_string())),
        Err(Refusal::Invalid { mappings, detail }) => {
            return Err(refused(format!(
                "mappings ({}) gave a {what} that is not valid: {detail}",
                mappings.join(", ")
            )))
        }
    };
    let patch = merge_patch(resource.as_map(), sent.as_map());
    Ok(Some(Reshaped {
        resource,
        sent_patch: Document::from_map(&patch),
        mappings: steps.iter().map(|s| s.name.to_owned()).collect(),
    }))
}

impl Reshaped {
    /// What the source sent, as a user's event records it (personal data).
    pub fn for_user(&self) -> Mapped<Personal<Document>> {
        Mapped {
            sent_patch: Personal::Plain(self.sent_patch.clone()),
            mappings: self.mappings.clone(),
        }
    }

    /// What the source sent, as a group's event records it.
    pub fn for_group(&self) -> Mapped<Document> {
        Mapped {
            sent_patch: self.sent_patch.clone(),
            mappings: self.mappings.clone(),
        }
    }
}

/// Runs the source's current mappings again on one object it owns, as stored: the stored
/// document is what the mappings see as the user or group, and as `existing`. A result that
/// differs replaces the document, with the record of what the mappings ran on.
///
/// Fails when the object is gone or not the source's (`NotFound`), or as a write by the
/// source would.
pub(super) fn remap(
    state: &Directory,
    b: &mut Builder<'_>,
    ctx: &Context,
    slug: &str,
    user: bool,
    id: ResourceId,
) -> Result<Outcome, DomainError> {
    let as_source = Context {
        source: Some(slug.to_owned()),
        ..ctx.clone()
    };
    let owned = |owner: &Option<String>| owner.as_deref() == Some(slug);
    let gone = || DomainError::NotFound(format!("no object {id} of source {slug:?}"));
    let stored = |doc: &Document| {
        schemas_of(state, Some(slug), user)
            .check(doc.to_map())
            .map_err(|e| DomainError::Invalid(e.detail))
    };
    if user {
        let u = state
            .user(id)
            .filter(|u| owned(&u.owner))
            .ok_or_else(gone)?;
        let doc = stored(&u.resource)?;
        match reshape_user(state, &as_source, &doc, Some(u))? {
            Some(r) => replace_user(state, b, u, &r.resource, Some(&r)),
            None => Ok(Outcome::User(id)),
        }
    } else {
        let g = state
            .group(id)
            .filter(|g| owned(&g.owner))
            .ok_or_else(gone)?;
        let doc = stored(&g.resource)?;
        match reshape_group(state, &as_source, &doc, Some(g))? {
            Some(r) => write_group(state, b, g, Some((&r.resource, Some(&r))), vec![], vec![]),
            None => Ok(Outcome::Group(id)),
        }
    }
}
