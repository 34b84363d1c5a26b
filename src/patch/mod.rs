//! SCIM PATCH (RFC 7644 §3.5.2): a request parsed once, at the edge, into operations whose
//! paths are checked against the resource's schemas (`parse_request`), and those operations
//! applied to a document (`apply`) or, for a group's members, to its member set (`members`).
//!
//! Pure: the write path records the outcome (the patched document, the members added and
//! removed), never the operations, so replay never re-runs this code. All operations of a
//! request apply to one copy, so they take effect together or not at all.
//!
//! What real clients send is accepted: operation names in any case (`Replace`), booleans as
//! strings (`"False"`), attribute names in any case, path-less operations whose keys are
//! dotted (`name.givenName`) or URN-qualified, value-filtered paths that match nothing yet
//! (`add`/`replace` of `emails[type eq "work"].value` creates that email), Entra's unqualified
//! `manager` path with an array value and its `manager[value eq "..."]` removal, member removal
//! as `path: "members"` with a value array or as `members[value eq "..."]`, and a whole
//! extension by its URN (`path: "urn:...:enterprise:2.0:User"`).

mod apply;
pub mod members;

pub use apply::{apply, coerce_booleans};
pub use members::{split_members, MemberOp, MemberRef};

use roster_projections::filter::{self, get_ci, AttrPath, Filter};
use roster_projections::schema::{Mutability, ResourceSchemas, Target, Type};
use serde_json::{Map, Value};

pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// A PATCH failure, with the RFC 7644 §3.12 scimType.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{detail}")]
pub struct PatchError {
    pub scim_type: &'static str,
    pub detail: String,
}

fn err<T>(scim_type: &'static str, detail: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError {
        scim_type,
        detail: detail.into(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

/// `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, optionally URN-qualified. Once
/// checked against the schemas, names are spelled as the schemas spell them, and a whole
/// extension is a path whose `attr` is the extension's URN (with no `schema`).
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a filter (`emails[type eq "work"].value`).
    pub sub_after: Option<String>,
}

/// The canonical text of a path; parsing it gives the same path back.
impl std::fmt::Display for PatchPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_after {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Parses a PATCH path's syntax.
///
/// Fails with `invalidPath` on anything the grammar does not allow.
pub fn parse_path(s: &str) -> Result<PatchPath, PatchError> {
    let s = s.trim();
    let invalid = |why: &str| PatchError {
        scim_type: "invalidPath",
        detail: format!("invalid path {s:?}: {why}"),
    };
    let (attr_part, filter, sub_after) = match s.find('[') {
        None => (s, None, None),
        Some(open) => {
            let close = s.rfind(']').ok_or_else(|| invalid("unclosed '['"))?;
            if close < open {
                return Err(invalid("unbalanced brackets"));
            }
            let inner = &s[open + 1..close];
            let f = filter::parse(inner).map_err(|e| invalid(&e.0))?;
            let rest = &s[close + 1..];
            let sub = match rest {
                "" => None,
                r => {
                    let sub = r
                        .strip_prefix('.')
                        .ok_or_else(|| invalid("expected '.' after ']'"))?;
                    filter::parse_attr_path(sub).map_err(|e| invalid(&e.0))?;
                    if sub.contains('.') || sub.contains(':') {
                        return Err(invalid("one sub-attribute only"));
                    }
                    Some(sub.to_owned())
                }
            };
            (&s[..open], Some(f), sub)
        }
    };
    let attr = filter::parse_attr_path(attr_part).map_err(|e| invalid(&e.0))?;
    if filter.is_some() && attr.sub.is_some() {
        return Err(invalid(
            "a filter applies to a multi-valued attribute, not a sub-attribute",
        ));
    }
    Ok(PatchPath {
        attr,
        filter,
        sub_after,
    })
}

/// Checks a parsed path against the schemas and spells it as they do.
///
/// Fails with `invalidPath` when it names no attribute (or a filter follows one that is not
/// multi-valued or complex, or a sub-attribute that does not exist), and with `mutability`
/// for attributes a client may not change.
pub fn resolve(path: PatchPath, schemas: &ResourceSchemas<'_>) -> Result<PatchPath, PatchError> {
    let shown = path.to_string();
    let invalid_path = |e: roster_projections::schema::Invalid| PatchError {
        scim_type: "invalidPath",
        detail: e.detail,
    };
    let target = match schemas.resolve(&path.attr) {
        Ok(t) => t,
        // Entra names the enterprise `manager` (and its other attributes) without the URN.
        Err(e) => match unqualified_extension_attribute(&path.attr, schemas) {
            Some(t) => t,
            None => return Err(invalid_path(e)),
        },
    };
    match target {
        Target::Schemas => err("mutability", "schemas is managed by Roster"),
        Target::Undeclared => Ok(path),
        Target::Extension(urn) => {
            if path.filter.is_some() {
                return err(
                    "invalidPath",
                    format!("{shown}: an extension takes no filter"),
                );
            }
            Ok(PatchPath {
                attr: AttrPath {
                    schema: None,
                    attr: urn.to_owned(),
                    sub: None,
                },
                filter: None,
                sub_after: None,
            })
        }
        Target::Attribute {
            extension,
            def,
            sub,
        } => {
            let read_only = |m: Mutability| m == Mutability::ReadOnly;
            if read_only(def.mutability()) || sub.is_some_and(|s| read_only(s.mutability())) {
                return err("mutability", format!("{} is read-only", path.attr));
            }
            let mut sub_after = None;
            if path.filter.is_some() {
                if !def.multi_valued() && def.kind() != Type::Complex {
                    return err(
                        "invalidPath",
                        format!(
                            "{shown}: {} is neither multi-valued nor complex",
                            def.name()
                        ),
                    );
                }
                if let Some(s) = &path.sub_after {
                    let sd = def.sub(s).ok_or_else(|| PatchError {
                        scim_type: "invalidPath",
                        detail: format!("{shown}: {s} is not a sub-attribute of {}", def.name()),
                    })?;
                    if read_only(sd.mutability()) {
                        return err("mutability", format!("{shown} is read-only"));
                    }
                    sub_after = Some(sd.name().to_owned());
                }
            }
            Ok(PatchPath {
                attr: AttrPath {
                    schema: extension.map(str::to_owned),
                    attr: def.name().to_owned(),
                    sub: sub.map(|s| s.name().to_owned()),
                },
                filter: path.filter,
                sub_after,
            })
        }
    }
}

/// An attribute path without a URN that names no core attribute, but an attribute of exactly
/// one extension (`manager`, `department`): what Entra sends.
fn unqualified_extension_attribute<'a>(
    path: &AttrPath,
    schemas: &ResourceSchemas<'a>,
) -> Option<Target<'a>> {
    if path.schema.is_some() {
        return None;
    }
    let mut found = schemas.extensions().filter_map(|e| {
        let def = e.attribute(&path.attr)?;
        let sub = match &path.sub {
            None => None,
            Some(s) => Some(def.sub(s)?),
        };
        Some(Target::Attribute {
            extension: Some(e.id()),
            def,
            sub,
        })
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Parses a PatchOp request body and checks every path against `schemas`. A path-less
/// operation becomes one operation per attribute of its value (a whole extension's
/// attributes each their own), so every operation has a checked path; attributes a client
/// echoes but cannot change (`id`, `meta`, `schemas`) are skipped there.
///
/// Fails with `invalidSyntax` when `Operations` is missing or malformed or an `op` is unknown,
/// `invalidPath` or `mutability` for a path, `invalidValue` when add or replace has no value
/// or a path-less operation's value is not an object, `noTarget` for a remove without a path.
pub fn parse_request(
    body: &Map<String, Value>,
    schemas: &ResourceSchemas<'_>,
) -> Result<Vec<PatchOp>, PatchError> {
    if let Some(s) = get_ci(body, "schemas") {
        let ok = s.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
        if !ok {
            return err(
                "invalidSyntax",
                format!("schemas must contain {PATCH_SCHEMA}"),
            );
        }
    }
    let Some(Value::Array(ops)) = get_ci(body, "Operations") else {
        return err("invalidSyntax", "Operations must be an array of operations");
    };
    if ops.is_empty() {
        return err("invalidSyntax", "Operations is empty");
    }
    let mut out = Vec::with_capacity(ops.len());
    for o in ops {
        let Some(o) = o.as_object() else {
            return err("invalidSyntax", "an operation must be an object");
        };
        let op = match get_ci(o, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => OpKind::Add,
            Some("remove") => OpKind::Remove,
            Some("replace") => OpKind::Replace,
            other => return err("invalidSyntax", format!("unknown op {other:?}")),
        };
        let path = match get_ci(o, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.trim().is_empty() => None,
            Some(Value::String(p)) => Some(parse_path(p)?),
            Some(_) => return err("invalidPath", "path must be a string"),
        };
        let value = get_ci(o, "value").filter(|v| !v.is_null()).cloned();
        if op != OpKind::Remove && value.is_none() {
            return err("invalidValue", "add and replace need a value");
        }
        match path {
            Some(path) => {
                let mut value = value;
                if let Some(v) = value.as_mut() {
                    let name = path
                        .sub_after
                        .as_deref()
                        .or(path.attr.sub.as_deref())
                        .unwrap_or(&path.attr.attr);
                    coerce_booleans(name, v);
                }
                out.push(PatchOp {
                    op,
                    path: Some(resolve(path, schemas)?),
                    value,
                });
            }
            None if op == OpKind::Remove => return err("noTarget", "remove needs a path"),
            None => {
                let Some(Value::Object(values)) = value else {
                    return err(
                        "invalidValue",
                        "an operation without a path needs an object value",
                    );
                };
                expand_pathless(op, values, schemas, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// One operation per attribute of a path-less operation's value.
fn expand_pathless(
    op: OpKind,
    values: Map<String, Value>,
    schemas: &ResourceSchemas<'_>,
    out: &mut Vec<PatchOp>,
) -> Result<(), PatchError> {
    for (k, mut v) in values {
        // Clients echo read-only attributes in path-less values (Okta sends the group's `id`
        // with a rename): they name no change.
        if ["id", "meta", "schemas"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&k))
        {
            continue;
        }
        if v.is_null() {
            continue;
        }
        coerce_booleans(&k, &mut v);
        if let Some(ext) = schemas.extension(&k) {
            // A whole extension object: each of its attributes is its own target.
            let Value::Object(attrs) = v else {
                return err("invalidValue", format!("{k} must be an object"));
            };
            for (ak, av) in attrs {
                if ak.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let path = parse_path(&format!("{}:{ak}", ext.id()))?;
                out.push(PatchOp {
                    op,
                    path: Some(resolve(path, schemas)?),
                    value: Some(av),
                });
            }
            continue;
        }
        let path = parse_path(&k)?;
        out.push(PatchOp {
            op,
            path: Some(resolve(path, schemas)?),
            value: Some(v),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
