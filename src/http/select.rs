//! Query parameters shared by GET lists and POST `.search` (RFC 7644 §3.4.2, §3.4.3), and
//! `attributes` / `excludedAttributes` (§3.4.2.5, §3.9), which shape every response that
//! returns resources.

use super::error::ScimError;
use super::AppState;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use roster_projections::filter::{self, get_ci, AttrPath};
use roster_projections::schema::{self, ResourceSchemas};
use roster_projections::{ListQuery, SortBy};
use serde_json::{Map, Value};

const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// The search parameters, from a query string or a SearchRequest body.
#[derive(Default, Debug)]
pub struct Search {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    pub selection: Selection,
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidValue", detail)
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Search {
    /// From query parameters (names matched case-insensitively).
    ///
    /// Fails with `invalidValue` for non-integer `startIndex` or `count`.
    pub fn from_query(params: &[(String, String)]) -> Result<Search, ScimError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            get(name)
                .map(|v| v.trim().parse::<i64>())
                .transpose()
                .map_err(|_| invalid(format!("{name} must be an integer")))
        };
        Ok(Search {
            filter: get("filter"),
            sort_by: get("sortBy"),
            sort_order: get("sortOrder"),
            start_index: int("startIndex")?,
            count: int("count")?,
            selection: Selection::parse(
                get("attributes").map(|v| list(&v)).unwrap_or_default(),
                get("excludedAttributes")
                    .map(|v| list(&v))
                    .unwrap_or_default(),
            )?,
        })
    }

    /// From a SearchRequest body (RFC 7644 §3.4.3).
    ///
    /// Fails with `invalidValue` when a member has the wrong JSON type or `schemas` does not
    /// name the SearchRequest message.
    pub fn from_body(body: &Map<String, Value>) -> Result<Search, ScimError> {
        super::body::message_schema(body, SEARCH_REQUEST, "invalidValue")?;
        let string = |name: &str| -> Result<Option<String>, ScimError> {
            match get_ci(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(format!("{name} must be a string"))),
            }
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            match get_ci(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("{name} must be an integer"))),
                Some(_) => Err(invalid(format!("{name} must be an integer"))),
            }
        };
        let strings = |name: &str| -> Result<Vec<String>, ScimError> {
            match get_ci(body, name) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| invalid(format!("{name} must hold strings")))
                    })
                    .collect(),
                Some(Value::String(s)) => Ok(list(s)),
                Some(_) => Err(invalid(format!("{name} must be an array of strings"))),
            }
        };
        Ok(Search {
            filter: string("filter")?,
            sort_by: string("sortBy")?,
            sort_order: string("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            selection: Selection::parse(strings("attributes")?, strings("excludedAttributes")?)?,
        })
    }

    /// The list query over resources with these schemas (users, groups, or both for a search
    /// at the root): startIndex below 1 means 1; count is capped at the maximum page size and
    /// 0 gives only the total.
    ///
    /// Fails with `invalidFilter` for a filter that does not parse or compares an attribute
    /// with a value of another type, and `invalidValue` for a sort by something that is no
    /// attribute of the schemas.
    pub fn to_query(
        &self,
        app: &AppState,
        schemas: &[ResourceSchemas<'_>],
    ) -> Result<ListQuery, ScimError> {
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => {
                let bad = |e: filter::FilterError| ScimError::bad_request("invalidFilter", e.0);
                let f = filter::parse(f).map_err(bad)?;
                for s in schemas {
                    s.check_filter(&f).map_err(bad)?;
                }
                Some(f)
            }
        };
        let sort = match self.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let path =
                    filter::parse_attr_path(s).map_err(|e| invalid(format!("sortBy: {}", e.0)))?;
                if let Some(e) = schemas.iter().find_map(|r| r.resolve(&path).err()) {
                    if schemas.iter().all(|r| r.resolve(&path).is_err()) {
                        return Err(invalid(format!("sortBy: {}", e.detail)));
                    }
                }
                let descending = match self
                    .sort_order
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("ascending") => false,
                    Some("descending") => true,
                    Some(other) => {
                        return Err(invalid(format!(
                            "sortOrder {other:?} is not ascending or descending"
                        )))
                    }
                };
                Some(SortBy { path, descending })
            }
        };
        Ok(ListQuery {
            filter,
            sort,
            declared: Vec::new(),
            start_index: self.start_index.unwrap_or(1).max(1) as usize,
            count: self
                .count
                .unwrap_or(app.settings.default_page_size as i64)
                .clamp(0, app.settings.max_page_size as i64) as usize,
            count_up_to: None,
        })
    }
}

/// One entry of `attributes` or `excludedAttributes`.
#[derive(Debug, Clone)]
enum Pick {
    /// A whole extension (`urn:...:enterprise:2.0:User`).
    Extension(&'static str),
    Attribute(AttrPath),
}

/// `attributes` / `excludedAttributes`, parsed.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    include: Vec<Pick>,
    exclude: Vec<Pick>,
}

fn parse_pick(s: &str) -> Result<Pick, ScimError> {
    if let Some(ext) = schema::by_id(s) {
        return Ok(Pick::Extension(ext.id));
    }
    filter::parse_attr_path(s)
        .map(Pick::Attribute)
        .map_err(|e| invalid(format!("attribute path: {}", e.0)))
}

/// Attributes returned whatever the request says (RFC 7643 §3.1, §7: `returned: always`).
const ALWAYS: &[&str] = &["id", "schemas"];

fn key<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a String> {
    m.keys().find(|k| k.eq_ignore_ascii_case(name))
}

impl Selection {
    /// Fails with `invalidValue` on a path that is not an attribute path.
    pub fn parse(include: Vec<String>, exclude: Vec<String>) -> Result<Selection, ScimError> {
        Ok(Selection {
            include: include
                .iter()
                .map(|s| parse_pick(s))
                .collect::<Result<_, _>>()?,
            exclude: exclude
                .iter()
                .map(|s| parse_pick(s))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether the response includes (some of) the top-level attribute `attr` of the core
    /// schema `core`, so that work to compute it can be skipped when it does not.
    pub fn returns(&self, attr: &str, core: &str) -> bool {
        let names = |p: &AttrPath| {
            p.attr.eq_ignore_ascii_case(attr)
                && p.schema
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case(core))
        };
        if !self.include.is_empty()
            && !self
                .include
                .iter()
                .any(|p| matches!(p, Pick::Attribute(p) if names(p)))
        {
            return false;
        }
        !self
            .exclude
            .iter()
            .any(|p| matches!(p, Pick::Attribute(p) if names(p) && p.sub.is_none()))
    }

    /// Shapes one rendered resource (JSON text) for `core` (the resource's core schema).
    pub fn apply(&self, rendered: String, core: &str) -> String {
        if self.is_empty() {
            return rendered;
        }
        let Ok(Value::Object(src)) = serde_json::from_str::<Value>(&rendered) else {
            return rendered;
        };
        let out = if self.include.is_empty() {
            src
        } else {
            self.included(&src, core)
        };
        let out = self.excluded(out, core);
        Value::Object(out).to_string()
    }

    fn included(&self, src: &Map<String, Value>, core: &str) -> Map<String, Value> {
        let mut out = Map::new();
        for a in ALWAYS {
            if let Some(k) = key(src, a) {
                out.insert(k.clone(), src[k].clone());
            }
        }
        for pick in &self.include {
            match pick {
                Pick::Extension(id) => {
                    if let Some(k) = key(src, id) {
                        out.insert(k.clone(), src[k].clone());
                    }
                }
                Pick::Attribute(p) => {
                    let ext = p
                        .schema
                        .as_deref()
                        .filter(|s| !s.eq_ignore_ascii_case(core));
                    let (from, to): (&Map<String, Value>, &mut Map<String, Value>) = match ext {
                        None => (src, &mut out),
                        Some(urn) => {
                            let Some(k) = key(src, urn) else { continue };
                            let Some(from) = src[k].as_object() else {
                                continue;
                            };
                            let to = out
                                .entry(k.clone())
                                .or_insert_with(|| Value::Object(Map::new()));
                            let Some(to) = to.as_object_mut() else {
                                continue;
                            };
                            (from, to)
                        }
                    };
                    copy(from, to, &p.attr, p.sub.as_deref());
                }
            }
        }
        out
    }

    fn excluded(&self, mut out: Map<String, Value>, core: &str) -> Map<String, Value> {
        for pick in &self.exclude {
            match pick {
                Pick::Extension(id) => {
                    if let Some(k) = key(&out, id).cloned() {
                        out.remove(&k);
                    }
                }
                Pick::Attribute(p) => {
                    if p.schema.is_none()
                        && p.sub.is_none()
                        && ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&p.attr))
                    {
                        continue;
                    }
                    let ext = p
                        .schema
                        .as_deref()
                        .filter(|s| !s.eq_ignore_ascii_case(core));
                    let container = match ext {
                        None => Some(&mut out),
                        Some(urn) => key(&out, urn)
                            .cloned()
                            .and_then(|k| out.get_mut(&k))
                            .and_then(Value::as_object_mut),
                    };
                    let Some(c) = container else { continue };
                    let Some(k) = key(c, &p.attr).cloned() else {
                        continue;
                    };
                    match &p.sub {
                        None => {
                            c.remove(&k);
                        }
                        Some(sub) => match c.get_mut(&k) {
                            Some(Value::Object(m)) => {
                                if let Some(sk) = key(m, sub).cloned() {
                                    m.remove(&sk);
                                }
                            }
                            Some(Value::Array(items)) => {
                                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                                    if let Some(sk) = key(item, sub).cloned() {
                                        item.remove(&sk);
                                    }
                                }
                            }
                            _ => {}
                        },
                    }
                }
            }
        }
        out
    }
}

/// Copies `attr` (or only its `sub`) from `from` to `to`, merging with what is there.
fn copy(from: &Map<String, Value>, to: &mut Map<String, Value>, attr: &str, sub: Option<&str>) {
    let Some(k) = key(from, attr) else { return };
    let v = &from[k];
    let Some(sub) = sub else {
        to.insert(k.clone(), v.clone());
        return;
    };
    match v {
        Value::Object(m) => {
            if let Some(sk) = key(m, sub) {
                let slot = to
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(o) = slot.as_object_mut() {
                    o.insert(sk.clone(), m[sk].clone());
                }
            }
        }
        Value::Array(items) => {
            let slot = to.entry(k.clone()).or_insert_with(|| {
                Value::Array(items.iter().map(|_| Value::Object(Map::new())).collect())
            });
            if let Some(out_items) = slot.as_array_mut() {
                for (item, o) in items.iter().zip(out_items.iter_mut()) {
                    if let (Some(m), Some(o)) = (item.as_object(), o.as_object_mut()) {
                        if let Some(sk) = key(m, sub) {
                            o.insert(sk.clone(), m[sk].clone());
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// `attributes` and `excludedAttributes` from the query string of any request.
impl FromRequestParts<AppState> for Selection {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ScimError> {
        let Query(params) = Query::<Vec<(String, String)>>::from_request_parts(parts, app)
            .await
            .map_err(|_| ScimError::bad_request("invalidSyntax", "malformed query string"))?;
        Ok(Search::from_query(&params)?.selection)
    }
}
