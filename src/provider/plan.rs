//! The SCIM requests that carry one change to a remote (RFC 7644 §3). Requests are data: the
//! client sends them, a dry run lists them, and the tests compare them exactly.

use super::compat::{Capabilities, MemberRemoval, Mode};
use reqwest::{Method, Url};
use roster_events::MemberType;
use serde_json::{json, Map, Value};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// At most this many members change in one PATCH request: servers limit request sizes
/// (AWS Identity Center refuses more than 100 member changes per request), and a failure
/// then repeats less.
pub const MEMBERS_PER_PATCH: usize = 100;

/// Users or groups.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    /// The kind as the status API names it: `user` or `group`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
        }
    }
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}

/// One request to the remote, relative to its base URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: Method,
    /// Path segments below the base URL, not yet percent-encoded (a remote id may hold any
    /// character).
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Request {
    fn new(method: Method, path: Vec<String>, body: Option<Value>) -> Request {
        Request {
            method,
            path,
            query: Vec::new(),
            body,
        }
    }

    /// The absolute URL under `base` (the remote's SCIM base URL), every segment and query
    /// value percent-encoded.
    pub fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(&self.path);
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        url
    }
}

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// One operation of a Bulk request (RFC 7644 §3.7): `bulk_id` set for a POST.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkOperation {
    pub bulk_id: Option<String>,
    pub request: Request,
}

/// A Bulk request (RFC 7644 §3.7) carrying `operations`; they are independent (no
/// `failOnErrors`: one refusal does not stop the others).
pub fn bulk(operations: &[BulkOperation]) -> Request {
    let ops: Vec<Value> = operations
        .iter()
        .map(|o| {
            let mut op = json!({
                "method": o.request.method.as_str(),
                "path": format!("/{}", o.request.path.join("/")),
            });
            if let Some(id) = &o.bulk_id {
                op["bulkId"] = json!(id);
            }
            if let Some(body) = &o.request.body {
                op["data"] = body.clone();
            }
            op
        })
        .collect();
    Request::new(
        Method::POST,
        vec!["Bulk".into()],
        Some(json!({"schemas": [BULK_REQUEST], "Operations": ops})),
    )
}

/// A SCIM filter string literal (RFC 7644 §3.4.2.2: a JSON string): quoted, with quotes,
/// backslashes and control characters escaped.
pub fn filter_literal(value: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(value).expect("a string serializes")
}

/// POST a new object (RFC 7644 §3.3).
pub fn create(kind: Kind, document: Value) -> Request {
    Request::new(Method::POST, vec![kind.collection().into()], Some(document))
}

/// PUT an object whole (RFC 7644 §3.5.1).
pub fn replace(kind: Kind, remote_id: &str, document: Value) -> Request {
    Request::new(
        Method::PUT,
        vec![kind.collection().into(), remote_id.into()],
        Some(document),
    )
}

/// DELETE an object (RFC 7644 §3.6).
pub fn delete(kind: Kind, remote_id: &str) -> Request {
    Request::new(
        Method::DELETE,
        vec![kind.collection().into(), remote_id.into()],
        None,
    )
}

/// Deactivates a user instead of deleting it: a PATCH of `active` where the remote supports
/// PATCH, otherwise a PUT of `document` with `active: false`.
pub fn deactivate(caps: Capabilities, remote_id: &str, document: &Map<String, Value>) -> Request {
    if caps.patch {
        let body = json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        });
        return Request::new(
            Method::PATCH,
            vec![Kind::User.collection().into(), remote_id.into()],
            Some(body),
        );
    }
    let mut document = document.clone();
    document.insert("active".into(), Value::Bool(false));
    replace(Kind::User, remote_id, Value::Object(document))
}

/// Reads one remote object.
pub fn get(kind: Kind, remote_id: &str) -> Request {
    Request::new(
        Method::GET,
        vec![kind.collection().into(), remote_id.into()],
        None,
    )
}

/// One page of a remote collection (RFC 7644 §3.4.2.4), `start` counting from 1.
pub fn list(kind: Kind, start: usize, count: usize) -> Request {
    let mut r = Request::new(Method::GET, vec![kind.collection().into()], None);
    r.query = vec![
        ("startIndex".into(), start.to_string()),
        ("count".into(), count.to_string()),
    ];
    r
}

/// Looks an object up by the attribute that identifies it on the remote: `userName` for a
/// user, `displayName` for a group (after a 409 on create, or in a full resync).
pub fn find(kind: Kind, name: &str) -> Request {
    let attribute = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    find_by(kind, attribute, name)
}

/// Looks an object up by `externalId`.
pub fn find_by_external_id(kind: Kind, external_id: &str) -> Request {
    find_by(kind, "externalId", external_id)
}

fn find_by(kind: Kind, attribute: &str, value: &str) -> Request {
    let mut r = Request::new(Method::GET, vec![kind.collection().into()], None);
    r.query = vec![(
        "filter".into(),
        format!("{attribute} eq {}", filter_literal(value)),
    )];
    r
}

/// A member change: the member's id on the remote, and its kind.
pub type RemoteMember = (String, MemberType);

/// The requests that change a group's members on the remote.
///
/// With PATCH: `add` operations carrying the new members, and for the members that leave, as
/// `removal` says: one `remove` per member addressed with a value filter
/// (`members[value eq "..."]`; a `remove` of the bare `members` path would empty the whole
/// group, RFC 7644 §3.5.2.2), or `remove` of `members` with a value list (Entra's form); at
/// most [`MEMBERS_PER_PATCH`] members per request. Without PATCH, or when the remote takes
/// no removal by PATCH: one PUT of `full` (the group with all its members as the remote
/// should have them).
pub fn change_members(
    mode: Mode,
    caps: Capabilities,
    removal: MemberRemoval,
    remote_id: &str,
    add: &[RemoteMember],
    remove: &[RemoteMember],
    full: impl FnOnce() -> Value,
) -> Vec<Request> {
    if add.is_empty() && remove.is_empty() {
        return Vec::new();
    }
    if !caps.patch || (removal == MemberRemoval::Replace && !remove.is_empty()) {
        return vec![replace(Kind::Group, remote_id, full())];
    }
    let listed = |op: &str, members: &[RemoteMember]| -> Vec<(usize, Value)> {
        members
            .chunks(MEMBERS_PER_PATCH)
            .map(|chunk| {
                let values: Vec<Value> = chunk.iter().map(|(id, k)| mode.member(id, *k)).collect();
                (
                    chunk.len(),
                    json!({"op": op, "path": "members", "value": values}),
                )
            })
            .collect()
    };
    let mut operations = listed("add", add);
    match removal {
        MemberRemoval::Filter => operations.extend(remove.iter().map(|(id, _)| {
            (
                1,
                json!({"op": "remove", "path": format!("members[value eq {}]", filter_literal(id))}),
            )
        })),
        _ => operations.extend(listed("remove", remove)),
    }
    let mut requests = Vec::new();
    let mut batch: Vec<Value> = Vec::new();
    let mut members = 0;
    for (n, op) in operations {
        if members + n > MEMBERS_PER_PATCH && !batch.is_empty() {
            requests.push(patch_group(remote_id, std::mem::take(&mut batch)));
            members = 0;
        }
        members += n;
        batch.push(op);
    }
    if !batch.is_empty() {
        requests.push(patch_group(remote_id, batch));
    }
    requests
}

fn patch_group(remote_id: &str, operations: Vec<Value>) -> Request {
    Request::new(
        Method::PATCH,
        vec![Kind::Group.collection().into(), remote_id.into()],
        Some(json!({"schemas": [PATCH_OP], "Operations": operations})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patching() -> Capabilities {
        Capabilities {
            patch: true,
            ..Capabilities::default()
        }
    }

    #[test]
    fn filter_literals_are_json_strings() {
        assert_eq!(filter_literal("alice"), r#""alice""#);
        assert_eq!(filter_literal(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(filter_literal("tab\there"), r#""tab\there""#);
        let r = find(Kind::User, r#"o"brien@example.com"#);
        let url = r.url(&Url::parse("https://remote.example/scim/v2").unwrap());
        assert_eq!(url.path(), "/scim/v2/Users");
        let (k, v) = url.query_pairs().next().unwrap();
        assert_eq!(k, "filter");
        assert_eq!(v, r#"userName eq "o\"brien@example.com""#);
        assert_eq!(
            find(Kind::Group, "Eng").query,
            [("filter".to_owned(), r#"displayName eq "Eng""#.to_owned())]
        );
        assert_eq!(
            find_by_external_id(Kind::User, "x1").query[0].1,
            r#"externalId eq "x1""#
        );
    }

    #[test]
    fn ids_in_paths_are_percent_encoded() {
        let base = Url::parse("https://remote.example/scim/v2/").unwrap();
        let url = delete(Kind::User, "a/b c?d").url(&base);
        assert_eq!(
            url.as_str(),
            "https://remote.example/scim/v2/Users/a%2Fb%20c%3Fd"
        );
        assert_eq!(delete(Kind::Group, "g").method, Method::DELETE);
    }

    #[test]
    fn deactivation_patches_where_it_can_and_puts_otherwise() {
        let doc: Map<String, Value> = json!({"userName": "a", "active": true})
            .as_object()
            .unwrap()
            .clone();
        let r = deactivate(patching(), "r1", &doc);
        assert_eq!(r.method, Method::PATCH);
        assert_eq!(
            r.body.unwrap()["Operations"],
            json!([{"op": "replace", "path": "active", "value": false}])
        );
        let r = deactivate(Capabilities::default(), "r1", &doc);
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.path, ["Users", "r1"]);
        assert_eq!(r.body.unwrap(), json!({"userName": "a", "active": false}));
    }

    #[test]
    fn member_removal_addresses_each_member_never_the_whole_list() {
        let rs = change_members(
            Mode::Default,
            patching(),
            MemberRemoval::Filter,
            "g1",
            &[("u1".into(), MemberType::User)],
            &[
                ("u2".into(), MemberType::User),
                ("x\"y".into(), MemberType::Group),
            ],
            || unreachable!("no PUT with PATCH"),
        );
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].method, Method::PATCH);
        assert_eq!(rs[0].path, ["Groups", "g1"]);
        assert_eq!(
            rs[0].body.as_ref().unwrap()["Operations"],
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1", "type": "User"}]},
                {"op": "remove", "path": "members[value eq \"u2\"]"},
                {"op": "remove", "path": "members[value eq \"x\\\"y\"]"},
            ])
        );
    }

    #[test]
    fn large_member_changes_are_split_and_webex_members_are_typed() {
        let add: Vec<RemoteMember> = (0..250)
            .map(|i| (format!("u{i}"), MemberType::User))
            .collect();
        let remove: Vec<RemoteMember> = (0..30)
            .map(|i| (format!("old{i}"), MemberType::User))
            .collect();
        let rs = change_members(
            Mode::Webex,
            patching(),
            MemberRemoval::Filter,
            "g",
            &add,
            &remove,
            || unreachable!(),
        );
        let counts: Vec<usize> = rs
            .iter()
            .map(|r| {
                r.body.as_ref().unwrap()["Operations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|op| op["value"].as_array().map_or(1, Vec::len))
                    .sum()
            })
            .collect();
        assert_eq!(counts, [100, 100, 80]);
        assert_eq!(
            rs[0].body.as_ref().unwrap()["Operations"][0]["value"][0],
            json!({"value": "u0", "type": "user"})
        );
    }

    #[test]
    fn without_patch_a_group_is_replaced_whole() {
        let full = json!({"displayName": "Eng", "members": [{"value": "u1"}]});
        let rs = change_members(
            Mode::Aws,
            Mode::Aws.effective(patching()),
            MemberRemoval::Filter,
            "g1",
            &[("u1".into(), MemberType::User)],
            &[],
            || full.clone(),
        );
        assert_eq!(rs, [replace(Kind::Group, "g1", full)]);
        let none = change_members(
            Mode::Default,
            patching(),
            MemberRemoval::Filter,
            "g",
            &[],
            &[],
            || unreachable!(),
        );
        assert!(none.is_empty());
    }

    #[test]
    fn removals_take_the_form_the_remote_accepts() {
        let remove = [
            ("u2".to_owned(), MemberType::User),
            ("u3".to_owned(), MemberType::User),
        ];
        let add = [("u1".to_owned(), MemberType::User)];
        let rs = change_members(
            Mode::Default,
            patching(),
            MemberRemoval::ValueList,
            "g1",
            &add,
            &remove,
            || unreachable!("PATCH still works"),
        );
        assert_eq!(
            rs[0].body.as_ref().unwrap()["Operations"],
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1", "type": "User"}]},
                {"op": "remove", "path": "members", "value": [
                    {"value": "u2", "type": "User"}, {"value": "u3", "type": "User"}
                ]},
            ])
        );
        let full = json!({"displayName": "G"});
        let rs = change_members(
            Mode::Default,
            patching(),
            MemberRemoval::Replace,
            "g1",
            &add,
            &remove,
            || full.clone(),
        );
        assert_eq!(rs, [replace(Kind::Group, "g1", full.clone())]);
        // Adds alone still go by PATCH whatever removals take.
        let rs = change_members(
            Mode::Default,
            patching(),
            MemberRemoval::Replace,
            "g1",
            &add,
            &[],
            || full.clone(),
        );
        assert_eq!(rs[0].method, Method::PATCH);
    }
}
