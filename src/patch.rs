//! SCIM PATCH (RFC 7644 §3.5.2): parsing operations and applying them to a document.
//!
//! Pure: takes a document (a JSON object) and returns the patched one or a SCIM error; the
//! write path turns the result into events (the outcome, never the operations), so replay
//! never re-runs this code. All operations of a request apply to one copy, so they take
//! effect together or not at all.
//!
//! What real clients send is accepted: operation names in any case (`Replace`), booleans as
//! strings (`"False"`), attribute names in any case, path-less operations whose keys are
//! dotted (`name.givenName`) or URN-qualified, value-filtered paths that match nothing yet
//! (`add`/`replace` of `emails[type eq "work"].value` creates that email), member removal as
//! `path: "members"` with a value array or as `members[value eq "..."]`.

use roster_events::fold_case;
use roster_projections::filter::{self, get_ci, AttrPath, Attributes, Filter, Op};
use serde_json::{Map, Value};
use std::borrow::Cow;

pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

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

/// `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, optionally URN-qualified.
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

/// Parses a PATCH path.
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

/// Parses a PatchOp request body.
///
/// Fails with `invalidSyntax` when `Operations` is missing or malformed or an `op` is unknown,
/// `invalidPath` for a bad path, and `invalidValue` when add or replace has no value.
pub fn parse_request(body: &Map<String, Value>) -> Result<Vec<PatchOp>, PatchError> {
    if let Some(schemas) = get_ci(body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
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
    ops.iter()
        .map(|o| {
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
            if op == OpKind::Remove && path.is_none() {
                return err("noTarget", "remove needs a path");
            }
            Ok(PatchOp { op, path, value })
        })
        .collect()
}

/// What the document is, for its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    fn core(self) -> &'static str {
        match self {
            Kind::User => schema::USER,
            Kind::Group => schema::GROUP,
        }
    }

    /// Attributes a client may not change (RFC 7643: readOnly, or assigned by Roster).
    fn read_only(self, attr: &str) -> bool {
        ["id", "meta"].iter().any(|a| a.eq_ignore_ascii_case(attr))
            || (self == Kind::User && attr.eq_ignore_ascii_case("groups"))
    }
}

/// Attributes whose values are booleans: clients that send `"True"` mean `true`.
const BOOLEAN_ATTRIBUTES: &[&str] = &["active", "primary"];

/// Turns `"True"`/`"false"` into booleans wherever a boolean attribute is set, at any depth.
pub fn coerce_booleans(name: &str, v: &mut Value) {
    match v {
        Value::String(s)
            if BOOLEAN_ATTRIBUTES
                .iter()
                .any(|b| b.eq_ignore_ascii_case(name)) =>
        {
            match fold_case(s.trim()).as_str() {
                "true" => *v = Value::Bool(true),
                "false" => *v = Value::Bool(false),
                _ => {}
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                coerce_booleans(k, x);
            }
        }
        Value::Array(items) => {
            for x in items {
                coerce_booleans(name, x);
            }
        }
        _ => {}
    }
}

/// The key under which `name` is stored in `map`, matching case-insensitively; `name` itself
/// if absent.
fn key_in(map: &Map<String, Value>, name: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

struct Element<'a>(&'a Map<String, Value>);

impl Attributes for Element<'_> {
    fn attribute(&self, _schema: Option<&str>, attr: &str) -> Option<Cow<'_, Value>> {
        get_ci(self.0, attr).map(Cow::Borrowed)
    }
}

fn matches(f: &Filter, v: &Value) -> bool {
    v.as_object().is_some_and(|m| f.matches(&Element(m)))
}

/// The `attr eq "value"` pairs of a filter made only of `eq` and `and`, to build the element
/// an add or replace creates when nothing matches.
fn eq_pairs(f: &Filter, out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::Compare {
            path,
            op: Op::Eq,
            value,
        } if path.schema.is_none() && path.sub.is_none() => {
            out.insert(path.attr.clone(), value.clone());
            true
        }
        Filter::And(a, b) => eq_pairs(a, out) && eq_pairs(b, out),
        _ => false,
    }
}

/// Keeps `primary: true` on at most one element: the one at `keep`.
fn single_primary(items: &mut [Value], keep: usize) {
    let keeps = items
        .get(keep)
        .and_then(|v| get_ci(v.as_object()?, "primary"))
        .and_then(Value::as_bool)
        == Some(true);
    if !keeps {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if i != keep {
            if let Some(m) = item.as_object_mut() {
                let k = key_in(m, "primary");
                if m.get(&k).and_then(Value::as_bool) == Some(true) {
                    m.insert(k, Value::Bool(false));
                }
            }
        }
    }
}

/// Equality of multi-valued elements: complex values are the same value when their `value`
/// sub-attributes are equal (and present); anything else compares whole.
fn same_value(a: &Value, b: &Value) -> bool {
    match (
        a.as_object().and_then(|m| get_ci(m, "value")),
        b.as_object().and_then(|m| get_ci(m, "value")),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Applies every operation, in order, to `doc`.
///
/// Fails (leaving the caller's original untouched, since it works on the value passed in) with
/// the scimType RFC 7644 gives: `mutability` for read-only attributes, `noTarget` when a
/// filtered replace or a remove finds nothing it can act on, `invalidPath`, `invalidValue`.
pub fn apply(doc: &mut Map<String, Value>, ops: &[PatchOp], kind: Kind) -> Result<(), PatchError> {
    apply_ops(doc, ops, kind)?;
    // New attributes named in any case are stored as the schema spells them.
    let core = match kind {
        Kind::User => &schema::USER_SCHEMA,
        Kind::Group => &schema::GROUP_SCHEMA,
    };
    *doc = schema::canonicalize(std::mem::take(doc), core);
    Ok(())
}

fn apply_ops(doc: &mut Map<String, Value>, ops: &[PatchOp], kind: Kind) -> Result<(), PatchError> {
    for op in ops {
        let mut value = op.value.clone();
        match &op.path {
            None => {
                let Some(Value::Object(values)) = value.take() else {
                    return err(
                        "invalidValue",
                        "an operation without a path needs an object value",
                    );
                };
                for (k, mut v) in values {
                    // Clients echo read-only attributes in path-less values (Okta sends the
                    // group's `id` with a rename): they name no change, so they are skipped.
                    if ["id", "meta", "schemas"]
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(&k))
                    {
                        continue;
                    }
                    coerce_booleans(&k, &mut v);
                    if is_schema_urn(&k, doc) {
                        // A whole extension object: each of its attributes is its own target.
                        let Value::Object(ext) = v else {
                            return err("invalidValue", format!("{k} must be an object"));
                        };
                        for (ek, ev) in ext {
                            let path = parse_path(&format!("{k}:{ek}"))?;
                            apply_one(doc, op.op, &path, Some(ev), kind)?;
                        }
                    } else {
                        let path = parse_path(&k)?;
                        apply_one(doc, op.op, &path, Some(v), kind)?;
                    }
                }
            }
            Some(path) => {
                if let Some(v) = value.as_mut() {
                    let name = path
                        .sub_after
                        .as_deref()
                        .or(path.attr.sub.as_deref())
                        .unwrap_or(&path.attr.attr);
                    coerce_booleans(name, v);
                }
                apply_one(doc, op.op, path, value, kind)?;
            }
        }
    }
    Ok(())
}

/// True if `key` names a schema (the core one or an extension the document uses or that is
/// well known), not an attribute.
fn is_schema_urn(key: &str, doc: &Map<String, Value>) -> bool {
    if !key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return false;
    }
    let listed = get_ci(doc, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(key)))
        });
    listed || key.eq_ignore_ascii_case(ENTERPRISE_USER)
}

use roster_projections::schema;
pub use roster_projections::schema::ENTERPRISE_USER;

/// Puts a user document in the shape Roster stores, whatever dialect it came in: booleans
/// sent as strings become booleans, and the enterprise `manager` sent as a bare id (Entra
/// does) becomes `{"value": id}` (RFC 7643 §4.3).
pub fn normalize_user(doc: &mut Map<String, Value>) {
    for (k, v) in doc.iter_mut() {
        coerce_booleans(k, v);
    }
    let key = key_in(doc, ENTERPRISE_USER);
    if let Some(Value::Object(ext)) = doc.get_mut(&key) {
        let mk = key_in(ext, "manager");
        if let Some(Value::String(id)) = ext.get(&mk) {
            let id = id.clone();
            ext.insert(mk, serde_json::json!({"value": id}));
        }
    }
}

fn apply_one(
    doc: &mut Map<String, Value>,
    op: OpKind,
    path: &PatchPath,
    value: Option<Value>,
    kind: Kind,
) -> Result<(), PatchError> {
    let attr = &path.attr;
    let extension = attr
        .schema
        .as_deref()
        .filter(|s| !s.eq_ignore_ascii_case(kind.core()));
    if extension.is_none() && kind.read_only(&attr.attr) {
        return err("mutability", format!("{} is read-only", attr.attr));
    }
    if extension.is_none() && attr.attr.eq_ignore_ascii_case("schemas") {
        return err("mutability", "schemas is managed by Roster");
    }
    // The object that holds the attribute: the document, or the extension's object in it.
    let container: &mut Map<String, Value> = match extension {
        None => doc,
        Some(urn) => {
            if op != OpKind::Remove {
                add_schema(doc, urn);
            }
            let key = key_in(doc, urn);
            if op == OpKind::Remove && !doc.contains_key(&key) {
                return Ok(());
            }
            let slot = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(m) => m,
                _ => return err("invalidValue", format!("{urn} is not an object")),
            }
        }
    };
    let key = key_in(container, &attr.attr);
    let result = match (&path.filter, &attr.sub) {
        (None, None) => whole(container, &key, op, value),
        (None, Some(sub)) => sub_attribute(container, &key, sub, op, value),
        (Some(f), None) => filtered(container, &key, f, path.sub_after.as_deref(), op, value),
        (Some(_), Some(_)) => err(
            "invalidPath",
            "a filter applies to a multi-valued attribute",
        ),
    };
    // An extension left without attributes is no longer used.
    if let Some(urn) = extension {
        let k = key_in(doc, urn);
        if doc
            .get(&k)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            doc.remove(&k);
        }
    }
    result
}

fn add_schema(doc: &mut Map<String, Value>, urn: &str) {
    let key = key_in(doc, "schemas");
    let schemas = doc.entry(key).or_insert_with(|| Value::Array(vec![]));
    if let Value::Array(a) = schemas {
        if !a
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        {
            a.push(Value::String(urn.to_owned()));
        }
    }
}

/// `add`, `replace` or `remove` of a whole attribute.
fn whole(
    c: &mut Map<String, Value>,
    key: &str,
    op: OpKind,
    value: Option<Value>,
) -> Result<(), PatchError> {
    match op {
        OpKind::Remove => {
            match (value, c.get_mut(key)) {
                // `remove members` with a value array: remove those values (Entra, Okta).
                (Some(v), Some(Value::Array(items))) => {
                    let gone: Vec<Value> = match v {
                        Value::Array(a) => a,
                        one => vec![one],
                    };
                    items.retain(|x| !gone.iter().any(|g| same_value(x, g)));
                    if items.is_empty() {
                        c.remove(key);
                    }
                }
                _ => {
                    c.remove(key);
                }
            }
            Ok(())
        }
        OpKind::Replace => {
            let v = value.unwrap_or(Value::Null);
            if v.is_null() {
                c.remove(key);
            } else {
                c.insert(key.to_owned(), v);
                if let Some(Value::Array(items)) = c.get_mut(key) {
                    let last = items.len().saturating_sub(1);
                    if let Some(i) = items.iter().rposition(is_primary) {
                        single_primary(items, i);
                    } else {
                        single_primary(items, last);
                    }
                }
            }
            Ok(())
        }
        OpKind::Add => {
            let v = value.unwrap_or(Value::Null);
            match (c.get_mut(key), v) {
                (Some(Value::Array(items)), new) => {
                    let new_items = match new {
                        Value::Array(a) => a,
                        one => vec![one],
                    };
                    for n in new_items {
                        let primary = is_primary(&n);
                        let at = match items.iter().position(|x| same_value(x, &n)) {
                            Some(i) => {
                                items[i] = n;
                                i
                            }
                            None => {
                                items.push(n);
                                items.len() - 1
                            }
                        };
                        if primary {
                            single_primary(items, at);
                        }
                    }
                }
                (Some(Value::Object(existing)), Value::Object(new)) => {
                    for (k, v) in new {
                        let k2 = key_in(existing, &k);
                        existing.insert(k2, v);
                    }
                }
                (_, new) => {
                    c.insert(key.to_owned(), new);
                }
            }
            Ok(())
        }
    }
}

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|m| get_ci(m, "primary"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// `name.givenName` and the like: a sub-attribute of a single-valued complex attribute.
fn sub_attribute(
    c: &mut Map<String, Value>,
    key: &str,
    sub: &str,
    op: OpKind,
    value: Option<Value>,
) -> Result<(), PatchError> {
    match op {
        OpKind::Remove => {
            match c.get_mut(key) {
                Some(Value::Object(m)) => {
                    let k = key_in(m, sub);
                    m.remove(&k);
                    if m.is_empty() {
                        c.remove(key);
                    }
                }
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Some(m) = item.as_object_mut() {
                            let k = key_in(m, sub);
                            m.remove(&k);
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        }
        OpKind::Add | OpKind::Replace => {
            let slot = c
                .entry(key.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(m) => {
                    let k = key_in(m, sub);
                    m.insert(k, value.unwrap_or(Value::Null));
                    Ok(())
                }
                Value::Array(_) => err(
                    "invalidPath",
                    format!(
                        "{key} is multi-valued: select elements with a filter, {key}[...].{sub}"
                    ),
                ),
                _ => err("invalidPath", format!("{key} has no sub-attributes")),
            }
        }
    }
}

/// `emails[type eq "work"]` or `emails[type eq "work"].value`.
fn filtered(
    c: &mut Map<String, Value>,
    key: &str,
    f: &Filter,
    sub: Option<&str>,
    op: OpKind,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let items = match c.get_mut(key) {
        Some(Value::Array(items)) => items,
        Some(_) => return err("invalidPath", format!("{key} is not multi-valued")),
        None if op == OpKind::Remove => return Ok(()),
        None => {
            c.insert(key.to_owned(), Value::Array(vec![]));
            match c.get_mut(key) {
                Some(Value::Array(items)) => items,
                _ => return err("invalidPath", format!("{key} is not multi-valued")),
            }
        }
    };
    let hits: Vec<usize> = (0..items.len())
        .filter(|&i| matches(f, &items[i]))
        .collect();
    match op {
        OpKind::Remove => {
            // Removing what is not there changes nothing: member removals are idempotent.
            match sub {
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !hits.contains(&i);
                        i += 1;
                        keep
                    });
                }
                Some(s) => {
                    for &i in &hits {
                        if let Some(m) = items[i].as_object_mut() {
                            let k = key_in(m, s);
                            m.remove(&k);
                        }
                    }
                }
            }
            if items.is_empty() {
                c.remove(key);
            }
            Ok(())
        }
        OpKind::Add | OpKind::Replace => {
            let value = value.unwrap_or(Value::Null);
            let targets = if hits.is_empty() {
                // Nothing matches yet: create the element the filter describes (Entra adds a
                // work email with `emails[type eq "work"].value`).
                let mut fresh = Map::new();
                if !eq_pairs(f, &mut fresh) {
                    return err(
                        "noTarget",
                        "the filter matches no value and does not describe one to create",
                    );
                }
                items.push(Value::Object(fresh));
                vec![items.len() - 1]
            } else {
                hits
            };
            for &i in &targets {
                match (sub, &value) {
                    (Some(s), v) => {
                        if let Some(m) = items[i].as_object_mut() {
                            let k = key_in(m, s);
                            m.insert(k, v.clone());
                        }
                    }
                    (None, Value::Object(new)) => {
                        if let Some(m) = items[i].as_object_mut() {
                            if op == OpKind::Replace {
                                m.clear();
                            }
                            for (k, v) in new {
                                let k2 = key_in(m, k);
                                m.insert(k2, v.clone());
                            }
                        }
                    }
                    (None, _) => {
                        return err(
                            "invalidValue",
                            "a filtered path without a sub-attribute needs an object value",
                        )
                    }
                }
            }
            if let Some(&last) = targets.last() {
                if targets.iter().any(|&i| is_primary(&items[i])) {
                    let keep = targets
                        .iter()
                        .copied()
                        .rfind(|&i| is_primary(&items[i]))
                        .unwrap_or(last);
                    single_primary(items, keep);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn run(doc: Value, body: Value, kind: Kind) -> Result<Value, PatchError> {
        let mut d = doc.as_object().unwrap().clone();
        let ops = parse_request(body.as_object().unwrap())?;
        apply(&mut d, &ops, kind)?;
        Ok(Value::Object(d))
    }

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.com", "active": true, "title": "eng",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"type": "work", "value": "ada@work.example", "primary": true}]
        })
    }

    fn ops(list: Value) -> Value {
        json!({"schemas": [PATCH_SCHEMA], "Operations": list})
    }

    #[test]
    fn entra_replace_add_with_filter_and_string_booleans() {
        let out = run(user(), ops(json!([
            {"op": "Replace", "path": "title", "value": "tester"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@work.example"},
            {"op": "Replace", "path": "name.familyName", "value": "Byron"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-1"}
        ])), Kind::User).unwrap();
        assert_eq!(out["title"], "tester");
        assert_eq!(
            out["emails"],
            json!([{"type": "work", "value": "new@work.example", "primary": true}])
        );
        assert_eq!(
            out["name"],
            json!({"givenName": "Ada", "familyName": "Byron"})
        );
        assert_eq!(out["active"], false);
        assert_eq!(out[ENTERPRISE_USER]["department"], "R&D");
        assert!(out["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == ENTERPRISE_USER));
    }

    #[test]
    fn a_filtered_add_that_matches_nothing_creates_the_element() {
        let out = run(user(), ops(json!([
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "ada@home.example"},
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}
        ])), Kind::User).unwrap();
        assert_eq!(out["emails"].as_array().unwrap().len(), 2);
        assert_eq!(
            out["emails"][1],
            json!({"type": "home", "value": "ada@home.example"})
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555"}])
        );
    }

    #[test]
    fn pathless_operations_take_dotted_and_urn_keys() {
        let out = run(user(), ops(json!([
            {"op": "replace", "value": {"active": false}},
            {"op": "Replace", "value": {
                "name.givenName": "Augusta",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
                "DISPLAYNAME": "Ada L."
            }},
            {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "7"}}}
        ])), Kind::User).unwrap();
        assert_eq!(out["active"], false);
        assert_eq!(out["name"]["givenName"], "Augusta");
        assert_eq!(
            out[ENTERPRISE_USER],
            json!({"employeeNumber": "42", "costCenter": "7"})
        );
        assert_eq!(
            out["displayName"], "Ada L.",
            "a new attribute is stored as the schema spells it"
        );
    }

    #[test]
    fn attribute_names_match_existing_ones_case_insensitively() {
        let out = run(
            user(),
            ops(json!([{"op": "replace", "path": "NAME.GIVENNAME", "value": "A"}])),
            Kind::User,
        )
        .unwrap();
        assert_eq!(
            out["name"],
            json!({"givenName": "A", "familyName": "Lovelace"})
        );
    }

    #[test]
    fn member_changes_in_every_dialect() {
        let group = json!({"displayName": "G", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]});
        let out = run(
            group.clone(),
            ops(json!([
                {"op": "Add", "path": "members", "value": [{"value": "d"}, {"value": "a"}]},
                {"op": "Remove", "path": "members", "value": [{"value": "b"}]},
                {"op": "remove", "path": "members[value eq \"c\"]"},
                {"op": "remove", "path": "members[value eq \"not-there\"]"}
            ])),
            Kind::Group,
        )
        .unwrap();
        let values: Vec<&str> = out["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["a", "d"]);
        let out = run(
            group,
            ops(json!([{"op": "replace", "path": "members", "value": [{"value": "z"}]}])),
            Kind::Group,
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "z"}]));
    }

    #[test]
    fn only_one_primary_remains() {
        let out = run(user(), ops(json!([
            {"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@x", "primary": "True"}]}
        ])), Kind::User).unwrap();
        let prim: Vec<bool> = out["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["primary"].as_bool().unwrap_or(false))
            .collect();
        assert_eq!(prim, [false, true]);
    }

    #[test]
    fn errors_carry_the_rfc_scim_type() {
        let cases = [
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
                "mutability",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "emails[type zz \"work\"]", "value": {}}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "a.b.c", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "jump", "path": "title", "value": 1}]),
                "invalidSyntax",
            ),
            (json!([{"op": "add", "path": "title"}]), "invalidValue"),
            (
                json!([{"op": "add", "value": "not an object"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "emails.value", "value": "x"}]),
                "invalidPath",
            ),
        ];
        for (list, want) in cases {
            let r = run(user(), ops(list.clone()), Kind::User);
            assert_eq!(r.map_err(|e| e.scim_type), Err(want), "{list}");
        }
        // A filter that is not only `eq` is fine when it matches: it changes that element.
        let matched = run(
            user(),
            ops(
                json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].value", "value": "x"}]),
            ),
            Kind::User,
        );
        assert_eq!(matched.unwrap()["emails"][0]["value"], "x");
        let no_target = run(
            user(),
            ops(json!([{"op": "replace", "path": "emails[value co \"zzz\"].value", "value": "x"}])),
            Kind::User,
        );
        assert_eq!(no_target.unwrap_err().scim_type, "noTarget");
        assert_eq!(
            parse_request(json!({"Operations": "x"}).as_object().unwrap())
                .unwrap_err()
                .scim_type,
            "invalidSyntax"
        );
        assert_eq!(
            parse_request(
                json!({"schemas": ["urn:nope"], "Operations": []})
                    .as_object()
                    .unwrap()
            )
            .unwrap_err()
            .scim_type,
            "invalidSyntax"
        );
    }

    fn arb_patch_path() -> impl Strategy<Value = PatchPath> {
        let name = || {
            "[a-zA-Z][a-zA-Z0-9]{0,8}".prop_filter("not a keyword", |n: &String| {
                !["not", "and", "or", "pr"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(n))
            })
        };
        let schema = prop_oneof![Just(None), Just(Some(ENTERPRISE_USER.to_owned()))];
        let value = "\\PC{0,10}";
        let filter = (name(), value).prop_map(|(a, v)| Filter::Compare {
            path: AttrPath {
                schema: None,
                attr: a,
                sub: None,
            },
            op: Op::Eq,
            value: Value::String(v),
        });
        prop_oneof![
            (schema.clone(), name(), prop::option::of(name())).prop_map(|(schema, attr, sub)| {
                PatchPath {
                    attr: AttrPath { schema, attr, sub },
                    filter: None,
                    sub_after: None,
                }
            }),
            (schema, name(), filter, prop::option::of(name())).prop_map(
                |(schema, attr, f, sub_after)| PatchPath {
                    attr: AttrPath {
                        schema,
                        attr,
                        sub: None
                    },
                    filter: Some(f),
                    sub_after,
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_path(p in arb_patch_path()) {
            let text = p.to_string();
            prop_assert_eq!(parse_path(&text).map_err(|e| format!("{text}: {e}")), Ok(p));
        }

        #[test]
        fn the_path_parser_never_panics(s in "\\PC{0,60}") {
            let _ = parse_path(&s);
        }

        #[test]
        fn the_path_parser_never_panics_on_path_like_text(s in r#"[a-zA-Z:.\[\]" ]{0,12}(\[[a-z]{1,5} (eq|co|pr) "[a-z]{0,4}"\])?(\.[a-zA-Z]{0,5})?"#) {
            if let Ok(p) = parse_path(&s) {
                let mut doc = user().as_object().unwrap().clone();
                for op in [OpKind::Add, OpKind::Replace, OpKind::Remove] {
                    let _ = apply(&mut doc, &[PatchOp { op, path: Some(p.clone()), value: Some(json!("v")) }], Kind::User);
                }
            }
        }
    }
}
