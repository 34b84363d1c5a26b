//! Resource documents and attribute paths checked against the schemas a source's users or
//! groups have: the core schema, the enterprise extension (users), the extensions the source
//! declared, and, if the source keeps them, attributes under extensions it did not declare.
//!
//! `ResourceSchemas::check` turns a client's document into the one Roster stores: attribute
//! names spelled as the schemas spell them, values of the schema's types (booleans sent as
//! `"True"` read as booleans; Entra's bare-id and one-element-array `manager` read as the
//! object), nulls and empty values dropped, read-only attributes ignored, `schemas` naming
//! exactly the schemas whose attributes are present. Anything else is refused with a detail
//! that names the attribute. `resolve` says what an attribute path (PATCH, sort, filter) names.

use super::{
    Attribute, Mutability, Schema, Type, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA,
};
use crate::filter::{AttrPath, Filter, FilterError, Op};
use crate::names::{check_name, NameError};
use roster_events::{fold_case, DeclaredAttribute, DeclaredSchema, UndeclaredExtensions};
use serde_json::{Map, Value};

/// The most values one multi-valued attribute of a user or group document may hold (group
/// members are not part of the document and are not bound by it).
pub const MAX_VALUES: usize = 100;

/// Why a document or path was refused, with its RFC 7644 §3.12 scimType.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Invalid {
    pub scim_type: &'static str,
    pub detail: String,
}

fn invalid<T>(detail: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        scim_type: "invalidValue",
        detail: detail.into(),
    })
}

impl Type {
    /// The type named in an RFC 7643 §7 definition (`string` for anything unknown, as
    /// declarations are checked when they are made).
    pub fn parse(s: &str) -> Type {
        match s {
            "boolean" => Type::Boolean,
            "decimal" => Type::Decimal,
            "integer" => Type::Integer,
            "dateTime" => Type::DateTime,
            "binary" => Type::Binary,
            "reference" => Type::Reference,
            "complex" => Type::Complex,
            _ => Type::String,
        }
    }
}

fn parse_mutability(s: &str) -> Mutability {
    match s {
        "readOnly" => Mutability::ReadOnly,
        "immutable" => Mutability::Immutable,
        "writeOnly" => Mutability::WriteOnly,
        _ => Mutability::ReadWrite,
    }
}

/// One attribute definition: built in, or declared by a source.
#[derive(Clone, Copy, Debug)]
pub enum Def<'a> {
    Builtin(&'static Attribute),
    Declared(&'a DeclaredAttribute),
}

impl<'a> Def<'a> {
    pub fn name(&self) -> &'a str {
        match self {
            Def::Builtin(a) => a.name,
            Def::Declared(a) => &a.name,
        }
    }

    pub fn kind(&self) -> Type {
        match self {
            Def::Builtin(a) => a.kind,
            Def::Declared(a) => Type::parse(&a.kind),
        }
    }

    pub fn multi_valued(&self) -> bool {
        match self {
            Def::Builtin(a) => a.multi_valued,
            Def::Declared(a) => a.multi_valued,
        }
    }

    pub fn mutability(&self) -> Mutability {
        match self {
            Def::Builtin(a) => a.mutability,
            Def::Declared(a) => parse_mutability(&a.mutability),
        }
    }

    pub fn required(&self) -> bool {
        match self {
            Def::Builtin(a) => a.required,
            Def::Declared(_) => false,
        }
    }

    /// Unique per directory (userName, group displayName): a name compared by its key.
    fn is_name(&self) -> bool {
        matches!(self, Def::Builtin(a) if a.uniqueness == "server")
    }

    /// The sub-attribute called `name` (case-insensitively).
    pub fn sub(&self, name: &str) -> Option<Def<'a>> {
        match self {
            Def::Builtin(a) => a.sub(name).map(Def::Builtin),
            Def::Declared(a) => a
                .sub_attributes
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(name))
                .map(Def::Declared),
        }
    }
}

/// An extension schema a resource may carry.
#[derive(Clone, Copy, Debug)]
pub enum Extension<'a> {
    Builtin(&'static Schema),
    Declared(&'a DeclaredSchema),
}

impl<'a> Extension<'a> {
    pub fn id(&self) -> &'a str {
        match self {
            Extension::Builtin(s) => s.id,
            Extension::Declared(d) => &d.id,
        }
    }

    pub fn attribute(&self, name: &str) -> Option<Def<'a>> {
        match self {
            Extension::Builtin(s) => s.attribute(name).map(Def::Builtin),
            Extension::Declared(d) => d.attribute(name).map(Def::Declared),
        }
    }
}

/// The attributes every resource has (RFC 7643 §3.1) besides its schema's.
static COMMON: [Attribute; 3] = [
    Attribute {
        mutability: Mutability::ReadOnly,
        case_exact: true,
        ..super::s("id", "A unique identifier assigned by Roster.")
    },
    Attribute {
        case_exact: true,
        ..super::s(
            "externalId",
            "An identifier assigned by the provisioning client.",
        )
    },
    Attribute {
        mutability: Mutability::ReadOnly,
        ..super::complex(
            "meta",
            "Resource metadata.",
            &[
                super::s("resourceType", "The resource type."),
                super::attr("created", Type::DateTime, "When the resource was created."),
                super::attr("lastModified", Type::DateTime, "When it was last changed."),
                super::attr("location", Type::Reference, "The resource's URI."),
                Attribute {
                    case_exact: true,
                    ..super::s("version", "The resource's version (its ETag).")
                },
            ],
        )
    },
];

/// What an attribute path names.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// An attribute of the core schema, a common attribute (`id`, `externalId`, `meta`), or
    /// an attribute of an extension (`extension` is its URN), with the sub-attribute the path
    /// names, if any.
    Attribute {
        extension: Option<&'a str>,
        def: Def<'a>,
        sub: Option<Def<'a>>,
    },
    /// A whole extension, by its URN.
    Extension(&'a str),
    /// `schemas` itself.
    Schemas,
    /// An attribute under an extension the source did not declare but keeps as sent.
    Undeclared,
}

/// A resource document that passed [`ResourceSchemas::check`]: what Roster stores.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked(Map<String, Value>);

impl Checked {
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

/// The schemas one resource type has for one source.
#[derive(Clone, Copy, Debug)]
pub struct ResourceSchemas<'a> {
    pub core: &'static Schema,
    pub declared: &'a [DeclaredSchema],
    pub undeclared: UndeclaredExtensions,
}

fn is_urn(k: &str) -> bool {
    k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// The tolerated entries of `schemas` that name no schema of Roster's: Entra's group create
/// lists this one with no attributes under it.
const TOLERATED_SCHEMA_URIS: &[&str] =
    &["http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"];

impl<'a> ResourceSchemas<'a> {
    pub fn user(declared: &'a [DeclaredSchema], undeclared: UndeclaredExtensions) -> Self {
        ResourceSchemas {
            core: &USER_SCHEMA,
            declared,
            undeclared,
        }
    }

    pub fn group(declared: &'a [DeclaredSchema], undeclared: UndeclaredExtensions) -> Self {
        ResourceSchemas {
            core: &GROUP_SCHEMA,
            declared,
            undeclared,
        }
    }

    /// Every extension this resource type may carry: the built-in ones, then the declared.
    pub fn extensions(&self) -> impl Iterator<Item = Extension<'a>> + '_ {
        static USER_EXTENSIONS: [&Schema; 1] = [&ENTERPRISE_USER_SCHEMA];
        let builtin: &'static [&'static Schema] = if std::ptr::eq(self.core, &USER_SCHEMA) {
            &USER_EXTENSIONS
        } else {
            &[]
        };
        builtin
            .iter()
            .map(|s| Extension::Builtin(s))
            .chain(self.declared.iter().map(Extension::Declared))
    }

    /// The extension with this URN (case-insensitively).
    pub fn extension(&self, urn: &str) -> Option<Extension<'a>> {
        self.extensions().find(|e| e.id().eq_ignore_ascii_case(urn))
    }

    fn core_attribute(&self, name: &str) -> Option<Def<'a>> {
        self.core
            .attribute(name)
            .or_else(|| COMMON.iter().find(|a| a.name.eq_ignore_ascii_case(name)))
            .map(Def::Builtin)
    }

    /// What `path` names.
    ///
    /// Fails with `invalidPath` when it names no attribute of these schemas.
    pub fn resolve(&self, path: &AttrPath) -> Result<Target<'a>, Invalid> {
        let unknown = || Invalid {
            scim_type: "invalidPath",
            detail: format!("{path} is not an attribute of {}", self.names()),
        };
        let with_sub = |extension, def: Def<'a>| -> Result<Target<'a>, Invalid> {
            let sub = match &path.sub {
                None => None,
                Some(s) => Some(def.sub(s).ok_or_else(unknown)?),
            };
            Ok(Target::Attribute {
                extension,
                def,
                sub,
            })
        };
        match path.schema.as_deref() {
            None => {}
            Some(urn) if urn.eq_ignore_ascii_case(self.core.id) => {}
            Some(urn) => {
                let whole = format!("{urn}:{}", path.attr);
                if let Some(e) = self.extension(&whole) {
                    return match path.sub {
                        None => Ok(Target::Extension(e.id())),
                        Some(_) => Err(unknown()),
                    };
                }
                if let Some(e) = self.extension(urn) {
                    let def = e.attribute(&path.attr).ok_or_else(unknown)?;
                    return with_sub(Some(e.id()), def);
                }
                return match self.undeclared {
                    UndeclaredExtensions::Keep => Ok(Target::Undeclared),
                    UndeclaredExtensions::Refuse => Err(unknown()),
                };
            }
        }
        if path.attr.eq_ignore_ascii_case("schemas") && path.sub.is_none() {
            return Ok(Target::Schemas);
        }
        let def = self.core_attribute(&path.attr).ok_or_else(unknown)?;
        with_sub(None, def)
    }

    fn names(&self) -> String {
        let mut names = vec![self.core.id];
        names.extend(self.extensions().map(|e| e.id()));
        names.join(", ")
    }

    /// Checks a whole resource document (the body of a POST or PUT, or the result of a
    /// PATCH, without `password` and group `members`) and returns it as Roster stores it.
    ///
    /// Fails with `invalidValue` naming the attribute: an unknown attribute, a value of the
    /// wrong type, a single value for a multi-valued attribute, more than [`MAX_VALUES`]
    /// values, two primary values, a missing or unusable userName / displayName, an
    /// extension the source did not declare (unless it keeps them), or `schemas` without
    /// the core schema.
    pub fn check(&self, doc: Map<String, Value>) -> Result<Checked, Invalid> {
        self.check_over(doc, None)
    }

    /// As [`Self::check`], for a document made from `base` (a document this check passed):
    /// members with the same name and value as in `base` are taken as they are, unchecked
    /// again. What a property mapping changed in a checked document is checked this way.
    ///
    /// Fails as `check` does.
    pub fn check_changes(
        &self,
        doc: Map<String, Value>,
        base: &Checked,
    ) -> Result<Checked, Invalid> {
        self.check_over(doc, Some(base.as_map()))
    }

    fn check_over(
        &self,
        doc: Map<String, Value>,
        base: Option<&Map<String, Value>>,
    ) -> Result<Checked, Invalid> {
        let mut out = Map::new();
        let mut kept = Vec::new();
        let mut listed: Option<Vec<Value>> = None;
        for (k, v) in doc {
            if v.is_null() {
                continue;
            }
            if k.eq_ignore_ascii_case("schemas") {
                let Value::Array(items) = v else {
                    return invalid("schemas must be an array of schema URIs");
                };
                if !items.iter().all(Value::is_string) {
                    return invalid("schemas must be an array of schema URIs");
                }
                listed = Some(items);
                continue;
            }
            if base.and_then(|b| b.get(&k)) == Some(&v) {
                // Stored names are the schemas' own: an extension's whole URN, or a core
                // attribute.
                if is_urn(&k) && self.extension(&k).is_none() {
                    kept.push(k.clone());
                }
                out.insert(k, v);
                continue;
            }
            if is_urn(&k) {
                if let Some(e) = self.extension(&k) {
                    let Value::Object(m) = v else {
                        return invalid(format!("{} must be an object", e.id()));
                    };
                    for (ak, av) in m {
                        self.set_extension_attribute(&mut out, e, &ak, av)?;
                    }
                    continue;
                }
                // A URN-qualified attribute (`...:enterprise:2.0:User:department`).
                if let Some((urn, attr)) = k.rsplit_once(':') {
                    if urn.eq_ignore_ascii_case(self.core.id) {
                        self.set_core_attribute(&mut out, attr, v)?;
                        continue;
                    }
                    if let Some(e) = self.extension(urn) {
                        self.set_extension_attribute(&mut out, e, attr, v)?;
                        continue;
                    }
                }
                match self.undeclared {
                    UndeclaredExtensions::Keep => {
                        let Value::Object(mut m) = v else {
                            return invalid(format!("{k} must be an object"));
                        };
                        drop_nulls(&mut m);
                        if !m.is_empty() {
                            kept.push(k.clone());
                            out.insert(k, Value::Object(m));
                        }
                        continue;
                    }
                    UndeclaredExtensions::Refuse => {
                        return invalid(format!(
                            "{k} is not an extension schema of this source ({}): declare it \
                             with `roster source schema`, or create the source with \
                             undeclared_extensions = keep",
                            self.names()
                        ))
                    }
                }
            }
            self.set_core_attribute(&mut out, &k, v)?;
        }
        if let Some(items) = &listed {
            let names_core = items.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(self.core.id))
            });
            if !names_core {
                return invalid(format!("schemas must include {}", self.core.id));
            }
            for s in items.iter().filter_map(Value::as_str) {
                let known = s.eq_ignore_ascii_case(self.core.id)
                    || self.extension(s).is_some()
                    || TOLERATED_SCHEMA_URIS
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(s))
                    || self.undeclared == UndeclaredExtensions::Keep;
                if !known {
                    return invalid(format!(
                        "schemas names {s}, which is not a schema of this source ({})",
                        self.names()
                    ));
                }
            }
        }
        for def in self.core.attributes.iter().filter(|a| a.required) {
            if !out.contains_key(def.name) {
                return invalid(format!("{} is required", def.name));
            }
        }
        let mut schemas = vec![Value::String(self.core.id.to_owned())];
        for e in self.extensions() {
            if out.contains_key(e.id()) {
                schemas.push(Value::String(e.id().to_owned()));
            }
        }
        kept.sort();
        schemas.extend(kept.into_iter().map(Value::String));
        out.insert("schemas".into(), Value::Array(schemas));
        Ok(Checked(out))
    }

    fn set_core_attribute(
        &self,
        out: &mut Map<String, Value>,
        name: &str,
        v: Value,
    ) -> Result<(), Invalid> {
        let Some(def) = self.core_attribute(name) else {
            return invalid(format!("{name} is not an attribute of {}", self.names()));
        };
        if def.mutability() == Mutability::ReadOnly {
            // RFC 7643 §2.2: read-only values a client sends are ignored.
            return Ok(());
        }
        if let Some(v) = value(def, &At::top(None, def.name()), v)? {
            out.insert(def.name().to_owned(), v);
        }
        Ok(())
    }

    fn set_extension_attribute(
        &self,
        out: &mut Map<String, Value>,
        e: Extension<'a>,
        name: &str,
        v: Value,
    ) -> Result<(), Invalid> {
        // Clients that model an extension as its own resource send its `schemas` with it.
        if v.is_null() || name.eq_ignore_ascii_case("schemas") {
            return Ok(());
        }
        let Some(def) = e.attribute(name) else {
            return invalid(format!("{name} is not an attribute of {}", e.id()));
        };
        if def.mutability() == Mutability::ReadOnly {
            return Ok(());
        }
        if let Some(v) = value(def, &At::top(Some(e.id()), def.name()), v)? {
            let slot = out
                .entry(e.id().to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = slot {
                m.insert(def.name().to_owned(), v);
            }
        }
        Ok(())
    }

    /// Checks a filter's comparisons against the attributes' types: a dateTime compared with
    /// something that is not a date, a boolean with something that is not one, a number with
    /// text, or an ordering or substring operator on a boolean or a complex attribute.
    /// Attributes no schema defines are left alone (they match nothing).
    ///
    /// Fails with a message fit for the client's 400 `invalidFilter`.
    pub fn check_filter(&self, f: &Filter) -> Result<(), FilterError> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                self.check_filter(a)?;
                self.check_filter(b)
            }
            Filter::Not(a) => self.check_filter(a),
            Filter::Present(_) => Ok(()),
            Filter::ValuePath { path, filter } => {
                let Ok(Target::Attribute { def, .. }) = self.resolve(path) else {
                    return Ok(());
                };
                self.check_element_filter(def, filter)
            }
            Filter::Compare { path, op, value } => {
                let Ok(Target::Attribute { def, sub, .. }) = self.resolve(path) else {
                    return Ok(());
                };
                let compared = sub.or_else(|| {
                    (def.kind() == Type::Complex)
                        .then(|| def.sub("value"))
                        .flatten()
                });
                check_comparison(&path.to_string(), compared.unwrap_or(def), *op, value)
            }
        }
    }

    fn check_element_filter(&self, def: Def<'a>, f: &Filter) -> Result<(), FilterError> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                self.check_element_filter(def, a)?;
                self.check_element_filter(def, b)
            }
            Filter::Not(a) => self.check_element_filter(def, a),
            Filter::Compare { path, op, value } if path.schema.is_none() && path.sub.is_none() => {
                match def.sub(&path.attr) {
                    Some(s) => check_comparison(&path.attr, s, *op, value),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

fn check_comparison(name: &str, def: Def<'_>, op: Op, value: &Value) -> Result<(), FilterError> {
    let bad = |why: &str| Err(FilterError(format!("{name} {why}")));
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    match def.kind() {
        Type::DateTime => match value {
            Value::String(s) if substring => {
                let _ = s;
                Ok(())
            }
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
            Value::Null if !ordering => Ok(()),
            _ => bad(&format!(
                "is a dateTime: {value} is not an RFC 3339 date and time"
            )),
        },
        Type::Boolean => match value {
            _ if ordering || substring => bad("is a boolean: compare it with eq or ne"),
            Value::Bool(_) | Value::Null => Ok(()),
            Value::String(s) if matches!(fold_case(s).as_str(), "true" | "false") => Ok(()),
            _ => bad(&format!("is a boolean: {value} is not true or false")),
        },
        Type::Integer | Type::Decimal => match value {
            Value::Number(_) | Value::Null if !substring => Ok(()),
            _ => bad(&format!("is a number: {value} is not one")),
        },
        Type::Complex => bad("is complex: compare one of its sub-attributes"),
        Type::String | Type::Reference | Type::Binary => match value {
            Value::String(_) | Value::Null => Ok(()),
            _ if substring || ordering => bad(&format!("is a string: {value} is not one")),
            _ => bad(&format!("is a string: {value} is not one")),
        },
    }
}

/// Nulls mean absent (RFC 7643 §2.5), at any depth.
fn drop_nulls(m: &mut Map<String, Value>) {
    m.retain(|_, v| !v.is_null());
    for v in m.values_mut() {
        match v {
            Value::Object(o) => drop_nulls(o),
            Value::Array(items) => {
                items.retain(|x| !x.is_null());
                for x in items.iter_mut() {
                    if let Value::Object(o) = x {
                        drop_nulls(o);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Where a value is, for messages: spelled out only when one is needed.
struct At<'a> {
    schema: Option<&'a str>,
    parent: Option<&'a At<'a>>,
    name: &'a str,
}

impl<'a> At<'a> {
    fn top(schema: Option<&'a str>, name: &'a str) -> At<'a> {
        At {
            schema,
            parent: None,
            name,
        }
    }

    fn sub(&'a self, name: &'a str) -> At<'a> {
        At {
            schema: None,
            parent: Some(self),
            name,
        }
    }
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}.")?;
        }
        if let Some(s) = self.schema {
            write!(f, "{s}:")?;
        }
        f.write_str(self.name)
    }
}

/// A checked value of `def` at `at` (for messages), or None when it is unassigned (null, an
/// empty array or object).
fn value(def: Def<'_>, at: &At<'_>, v: Value) -> Result<Option<Value>, Invalid> {
    if def.multi_valued() {
        let items = match v {
            Value::Array(items) => items,
            Value::Null => return Ok(None),
            _ => return invalid(format!("{at} is multi-valued: send an array")),
        };
        if items.len() > MAX_VALUES {
            return invalid(format!(
                "{at} has {} values; at most {MAX_VALUES} are accepted",
                items.len()
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(x) = single(def, at, item)? {
                out.push(x);
            }
        }
        let primaries = out.iter().filter(|x| is_primary(x)).count();
        if primaries > 1 {
            return invalid(format!("{at}: at most one value may be primary"));
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    // Entra sets `manager` with a bare id, or with a one-element array of the object.
    let v = match v {
        Value::String(id) if def.name() == "manager" => serde_json::json!({ "value": id }),
        Value::Array(mut items) if def.name() == "manager" && items.len() == 1 => items.remove(0),
        other => other,
    };
    single(def, at, v)
}

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|m| m.get("primary"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// One value (of a single-valued attribute, or one element of a multi-valued one).
fn single(def: Def<'_>, at: &At<'_>, v: Value) -> Result<Option<Value>, Invalid> {
    let wrong = |what: &str, v: &Value| {
        let mut shown = v.to_string();
        if shown.len() > 40 {
            shown = format!("{}…", shown.chars().take(40).collect::<String>());
        }
        invalid(format!("{at} must be {what}, not {shown}"))
    };
    Ok(Some(match def.kind() {
        Type::Complex => {
            let Value::Object(m) = v else {
                return wrong("an object", &v);
            };
            let mut out = Map::new();
            for (k, x) in m {
                if x.is_null() {
                    continue;
                }
                let Some(sub) = def.sub(&k) else {
                    return invalid(format!("{k} is not a sub-attribute of {at}"));
                };
                if sub.mutability() == Mutability::ReadOnly {
                    continue;
                }
                if let Some(x) = value(sub, &at.sub(sub.name()), x)? {
                    out.insert(sub.name().to_owned(), x);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        Type::Boolean => match v {
            Value::Bool(_) => v,
            Value::String(ref s) => match fold_case(s.trim()).as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return wrong("true or false", &v),
            },
            _ => return wrong("true or false", &v),
        },
        Type::Integer => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v,
            _ => return wrong("an integer", &v),
        },
        Type::Decimal => match &v {
            Value::Number(_) => v,
            _ => return wrong("a number", &v),
        },
        Type::DateTime => match &v {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => v,
            _ => return wrong("an RFC 3339 date and time", &v),
        },
        Type::Binary => match &v {
            Value::String(s) if is_base64(s) => v,
            _ => return wrong("base64 text", &v),
        },
        Type::String | Type::Reference => match &v {
            Value::String(s) => {
                if def.is_name() {
                    check_name(s).map_err(|e: NameError| Invalid {
                        scim_type: "invalidValue",
                        detail: format!("{at} {e}"),
                    })?;
                } else if s.is_empty() && def.required() {
                    return invalid(format!("{at} is required"));
                }
                v
            }
            _ => return wrong("a string", &v),
        },
    }))
}

fn is_base64(s: &str) -> bool {
    s.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
            || b.is_ascii_whitespace()
    })
}

#[cfg(test)]
mod tests;
