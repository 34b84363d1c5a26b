//! Property mappings: named CEL expressions that shape the users and groups sources write and
//! providers send. This module owns a mapping's definition as the admin API receives it
//! (parsed and checked once: its name, its kind, its expression compiled and tried on sample
//! objects) and the variables an expression of each kind sees.

pub mod expression;
pub mod inbound;
mod samples;
pub mod templates;

pub use expression::{Bindings, EvalError, Expression, ExpressionError, Needs, Outcome};
use roster_events::{MappingDef, MappingKind};
use serde_json::{json, Map, Value};

/// The longest description accepted, in bytes.
pub const MAX_DESCRIPTION: usize = 1024;

/// Why a mapping definition is refused; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{0}")]
    Invalid(String),
    #[error("mapping {name:?}: {error}")]
    Expression {
        name: String,
        error: ExpressionError,
    },
    /// The expression failed, or gave no map, on one of the sample objects.
    #[error("mapping {name:?} on {sample}: {error}")]
    Sample {
        name: String,
        sample: &'static str,
        error: EvalError,
    },
}

/// A definition that passed every check: its expression compiles within the bounds and gives
/// a map (or skip) on every sample object of its kind.
#[derive(Debug)]
pub struct Checked {
    pub def: MappingDef,
    pub expression: Expression,
}

/// A mapping as the admin API takes it: all of it for a new mapping (or a template), or the
/// members to change.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSettings {
    /// 1-63 lower-case letters, digits or hyphens; cannot change.
    pub name: Option<String>,
    /// `source_user`, `source_group`, `provider_user` or `provider_group`; cannot change.
    pub kind: Option<String>,
    /// The CEL expression.
    pub expression: Option<String>,
    pub description: Option<String>,
    /// The directory it belongs to (`default` when left out); cannot change.
    pub directory: Option<String>,
    /// A ready-made mapping to create it from (`GET /mapping-templates`), instead of `kind`
    /// and `expression`.
    pub template: Option<String>,
}

/// Parses a mapping from the admin API's settings. On an update, `old` is the current
/// definition: its name and kind stay, and members the body leaves out are kept.
pub fn parse(body: &MappingSettings, old: Option<&MappingDef>) -> Result<Checked, MappingError> {
    if body.template.is_some() {
        return Err(MappingError::Invalid(
            "a template only makes a new mapping".into(),
        ));
    }
    let name = match (body.name.clone(), old) {
        (Some(n), Some(o)) if n != o.name => {
            return Err(MappingError::Invalid(
                "a mapping's name cannot change; create another".into(),
            ))
        }
        (Some(n), _) => n,
        (None, Some(o)) => o.name.clone(),
        (None, None) => return Err(MappingError::Invalid("name is required".into())),
    };
    if !crate::domain::valid_slug(&name) {
        return Err(MappingError::Invalid(
            "name must be 1-63 lower-case letters, digits or hyphens".into(),
        ));
    }
    let kind = match (body.kind.clone(), old) {
        (None, Some(o)) => o.kind,
        (None, None) => {
            return Err(MappingError::Invalid(format!(
                "kind is required: one of {}",
                kinds()
            )))
        }
        (Some(k), _) => {
            let kind = MappingKind::ALL
                .into_iter()
                .find(|x| x.as_str() == k)
                .ok_or_else(|| {
                    MappingError::Invalid(format!("kind {k:?} is not one of {}", kinds()))
                })?;
            if old.is_some_and(|o| o.kind != kind) {
                return Err(MappingError::Invalid(
                    "a mapping's kind cannot change; create another".into(),
                ));
            }
            kind
        }
    };
    let expression = match (body.expression.clone(), old) {
        (Some(e), _) => e,
        (None, Some(o)) => o.expression.clone(),
        (None, None) => return Err(MappingError::Invalid("expression is required".into())),
    };
    let description = match (body.description.clone(), old) {
        (Some(d), _) => d,
        (None, Some(o)) => o.description.clone(),
        (None, None) => String::new(),
    };
    if description.len() > MAX_DESCRIPTION {
        return Err(MappingError::Invalid(format!(
            "description is {} bytes long; at most {MAX_DESCRIPTION} are accepted",
            description.len()
        )));
    }
    check(MappingDef {
        name,
        kind,
        expression,
        description,
    })
}

fn kinds() -> String {
    MappingKind::ALL.map(MappingKind::as_str).join(", ")
}

/// Compiles the definition's expression and runs it on every sample object of its kind.
pub fn check(def: MappingDef) -> Result<Checked, MappingError> {
    let expression =
        Expression::compile(&def.expression).map_err(|error| MappingError::Expression {
            name: def.name.clone(),
            error,
        })?;
    let all = samples::of(def.kind);
    // A source's mapping sees no `existing` on a create, and the stored object on a PUT or
    // PATCH: each sample is tried as a create, the full one as a replacement of itself too.
    let mut runs: Vec<(&'static str, &Value, Option<&Value>)> =
        all.iter().map(|(name, o)| (*name, o, None)).collect();
    if matches!(def.kind, MappingKind::SourceUser | MappingKind::SourceGroup) {
        if let Some((_, full)) = all.first() {
            runs.push((samples::replacing(def.kind), full, Some(full)));
        }
    }
    for (sample, object, existing) in runs {
        let vars = Variables {
            kind: def.kind,
            object,
            existing,
            source: Some("entra"),
            provider: Some(("slack", "slack")),
        };
        expression
            .evaluate_with(&vars)
            .map_err(|error| MappingError::Sample {
                name: def.name.clone(),
                sample,
                error,
            })?;
    }
    Ok(Checked { def, expression })
}

/// A stored user as a mapping sees it: its document with its `id`.
pub fn user_object(u: &roster_projections::UserView) -> Value {
    let mut object = u.resource.to_map();
    object.insert("id".into(), json!(u.id.to_string()));
    Value::Object(object)
}

/// A stored group as a mapping sees it: its document with its `id` and its members (by
/// Roster's ids).
pub fn group_object(g: &roster_projections::GroupView) -> Value {
    let mut object = g.resource.to_map();
    object.insert("id".into(), json!(g.id.to_string()));
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| json!({"value": m.value.to_string(), "type": m.kind}))
        .collect();
    object.insert("members".into(), Value::Array(members));
    Value::Object(object)
}

/// Merges `from` over `into`: objects member by member, anything else replaced; a null
/// removes.
pub fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to` (documents without nulls):
/// [`merge`] it over `from`, then drop the nulls, and `to` comes back.
pub fn merge_patch(from: &Map<String, Value>, to: &Map<String, Value>) -> Map<String, Value> {
    let mut patch: Map<String, Value> = from
        .keys()
        .filter(|k| !to.contains_key(*k))
        .map(|k| (k.clone(), Value::Null))
        .collect();
    for (k, v) in to {
        match (from.get(k), v) {
            (Some(a), b) if a == b => {}
            (Some(Value::Object(a)), Value::Object(b)) => {
                patch.insert(k.clone(), Value::Object(merge_patch(a, b)));
            }
            (_, b) => {
                patch.insert(k.clone(), b.clone());
            }
        }
    }
    patch
}

/// `schemas` lists every schema the document holds: the ones given, and each extension
/// present under its URN.
pub fn list_schemas(doc: &mut Map<String, Value>) {
    let mut schemas: Vec<Value> = match doc.get("schemas") {
        Some(Value::Array(a)) => a.iter().filter(|s| s.is_string()).cloned().collect(),
        _ => Vec::new(),
    };
    for key in doc.keys().filter(|k| k.starts_with("urn:")) {
        if !schemas.iter().any(|s| s.as_str() == Some(key.as_str())) {
            schemas.push(Value::from(key.as_str()));
        }
    }
    doc.insert("schemas".into(), Value::Array(schemas));
}

/// What an expression of a kind is evaluated on.
pub struct Variables<'a> {
    pub kind: MappingKind,
    /// The user or group: the request's resource for a source's mapping, the stored document
    /// for a provider's.
    pub object: &'a Value,
    /// For a source's mapping on PUT or PATCH: the stored object before the write.
    pub existing: Option<&'a Value>,
    /// The slug of the source writing (source mappings).
    pub source: Option<&'a str>,
    /// The provider's name and compatibility mode (provider mappings).
    pub provider: Option<(&'a str, &'a str)>,
}

impl<'a> Variables<'a> {
    /// The variables by name, converted for evaluation: `user` or `group`; `existing` and
    /// `source` for a source's mappings, `provider` for a provider's.
    ///
    /// Only what `needs` says is read is converted.
    pub fn bindings(&self, needs: &Needs) -> Bindings<'a> {
        static NULL: Value = Value::Null;
        let object = if self.kind.users() { "user" } else { "group" };
        match self.kind {
            MappingKind::SourceUser | MappingKind::SourceGroup => {
                let vars = [
                    (object, self.object),
                    ("existing", self.existing.unwrap_or(&NULL)),
                ];
                let slug = self.source.unwrap_or_default();
                Bindings::new(&vars, needs).with_strings("source", &[("slug", slug)])
            }
            MappingKind::ProviderUser | MappingKind::ProviderGroup => {
                let (name, mode) = self.provider.unwrap_or_default();
                Bindings::new(&[(object, self.object)], needs)
                    .with_strings("provider", &[("name", name), ("mode", mode)])
            }
        }
    }
}

impl Expression {
    /// Evaluates with [`Variables::bindings`].
    pub fn evaluate_with(&self, vars: &Variables<'_>) -> Result<Outcome, EvalError> {
        self.evaluate_in(&vars.bindings(self.needs()))
    }
}
