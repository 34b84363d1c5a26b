//! Checked PATCH operations applied to a copy of a document, which is then checked as a whole
//! against the schemas (types, multi-valued sizes, a single primary) exactly as a PUT body is.

use super::{err, OpKind, PatchError, PatchOp, PatchPath};
use roster_events::fold_case;
use roster_projections::filter::{get_ci, Attributes, Filter, Op};
use roster_projections::schema::{Checked, ResourceSchemas};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Applies every operation, in order, to `doc` and checks the result.
///
/// Fails with the scimType RFC 7644 gives: `noTarget` when a filtered replace finds nothing it
/// can act on, `invalidPath` when the document's shape does not fit the path (a filter on a
/// value that is not a list), `invalidValue` when the result does not fit the schemas.
pub fn apply(
    mut doc: Map<String, Value>,
    ops: &[PatchOp],
    schemas: &ResourceSchemas<'_>,
) -> Result<Checked, PatchError> {
    for op in ops {
        let Some(path) = &op.path else {
            // parse_request gives every operation a path.
            return err("invalidPath", "an operation without a path");
        };
        apply_one(&mut doc, op.op, path, op.value.clone())?;
    }
    schemas.check(doc).map_err(|e| PatchError {
        scim_type: e.scim_type,
        detail: e.detail,
    })
}

/// Attributes whose values are booleans: clients that send `"True"` mean `true`. Done here as
/// well as in the schema check so that `primary` is a boolean while operations run.
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

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|m| get_ci(m, "primary"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Keeps `primary: true` on at most one element: the one at `keep`.
fn single_primary(items: &mut [Value], keep: usize) {
    if !items.get(keep).is_some_and(is_primary) {
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

fn apply_one(
    doc: &mut Map<String, Value>,
    op: OpKind,
    path: &PatchPath,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let attr = &path.attr;
    // The object that holds the attribute: the document, or the extension's object in it.
    let container: &mut Map<String, Value> = match attr.schema.as_deref() {
        None => doc,
        Some(urn) => {
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
    if let Some(urn) = attr.schema.as_deref() {
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

/// `add`, `replace` or `remove` of a whole attribute (or a whole extension).
fn whole(
    c: &mut Map<String, Value>,
    key: &str,
    op: OpKind,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let v = value.unwrap_or(Value::Null);
    match (op, c.get_mut(key), v) {
        // `remove` with a value array removes those values (Entra, Okta).
        (OpKind::Remove, Some(Value::Array(items)), gone) if !gone.is_null() => {
            let gone: Vec<Value> = match gone {
                Value::Array(a) => a,
                one => vec![one],
            };
            items.retain(|x| !gone.iter().any(|g| same_value(x, g)));
            if items.is_empty() {
                c.remove(key);
            }
        }
        (OpKind::Remove, _, _) => {
            c.remove(key);
        }
        (_, _, Value::Null) if op == OpKind::Replace => {
            c.remove(key);
        }
        // RFC 7644 §3.5.2.1 and §3.5.2.3: a complex value's sub-attributes are merged in; the
        // ones not named stay as they are.
        (_, Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                let k2 = key_in(existing, &k);
                if v.is_null() {
                    existing.remove(&k2);
                } else {
                    existing.insert(k2, v);
                }
            }
        }
        (OpKind::Add, Some(Value::Array(items)), new) => {
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
        (_, _, new) => {
            c.insert(key.to_owned(), new);
            if let Some(Value::Array(items)) = c.get_mut(key) {
                let keep = items
                    .iter()
                    .rposition(is_primary)
                    .unwrap_or(items.len().saturating_sub(1));
                single_primary(items, keep);
            }
        }
    }
    Ok(())
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

/// `emails[type eq "work"]`, `emails[type eq "work"].value`, or a filter on a single-valued
/// complex attribute (`manager[value eq "..."]`), which acts on it when it matches.
fn filtered(
    c: &mut Map<String, Value>,
    key: &str,
    f: &Filter,
    sub: Option<&str>,
    op: OpKind,
    value: Option<Value>,
) -> Result<(), PatchError> {
    if let Some(Value::Object(_)) = c.get(key) {
        let hit = c.get(key).is_some_and(|v| matches(f, v));
        return match (op, hit) {
            (_, false) if op == OpKind::Remove => Ok(()),
            (_, false) => err("noTarget", format!("{key} does not match the filter")),
            (OpKind::Remove, true) => match sub {
                None => {
                    c.remove(key);
                    Ok(())
                }
                Some(s) => sub_attribute(c, key, s, OpKind::Remove, None),
            },
            (_, true) => match sub {
                Some(s) => sub_attribute(c, key, s, op, value),
                None => whole(c, key, op, value),
            },
        };
    }
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
