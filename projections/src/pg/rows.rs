//! Rows and their columns: converting between views and table rows (times, member types,
//! documents) and the column lists of reads. The rows the fold and a rebuild write are
//! `table_row`'s.

use super::sql::Param;
use crate::store::StoreError;
use crate::views::{GroupView, Keys, UserView};
use chrono::{DateTime, Utc};
use roster_events::{fold_case, Document, KeyId, Member, MemberType, ResourceId};
use std::collections::BTreeSet;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

pub(super) fn member_type_code(t: MemberType) -> i16 {
    match t {
        MemberType::User => 0,
        MemberType::Group => 1,
    }
}

pub(super) fn member_type(code: i16) -> MemberType {
    if code == 1 {
        MemberType::Group
    } else {
        MemberType::User
    }
}

pub(super) fn nanos(t: &DateTime<Utc>) -> i64 {
    // Representable until the year 2262.
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The stored time columns of a view: created and modified, in nanoseconds (exact round
/// trip) and in milliseconds (what `meta` shows, for filters and sort).
pub(super) struct Stamps {
    pub(super) created_ns: i64,
    pub(super) modified_ns: i64,
    pub(super) created_ms: i64,
    pub(super) modified_ms: i64,
}

pub(super) fn stamps(created: &DateTime<Utc>, modified: &DateTime<Utc>) -> Stamps {
    Stamps {
        created_ns: nanos(created),
        modified_ns: nanos(modified),
        created_ms: created.timestamp_millis(),
        modified_ms: modified.timestamp_millis(),
    }
}

pub(super) fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

pub(super) fn document(text: String) -> Result<Document, StoreError> {
    serde_json::from_str(&text).map_err(|e| corrupt(format!("stored document: {e}")))
}

pub(super) fn corrupt(why: String) -> StoreError {
    tracing::error!(%why, "unreadable row in the PostgreSQL views");
    StoreError::Corrupt(why)
}

pub(super) const USER_COLUMNS: &str = "u.id, u.owner, u.user_name, u.display_name, u.external_id, \
     u.resource, u.password_hash, u.version, u.created_ns, u.modified_ns, u.data_key";

pub(super) const GROUP_COLUMNS: &str = "u.id, u.owner, u.display_name, u.external_id, u.resource, \
     u.version, u.created_ns, u.modified_ns, mem.ids, mem.types";

/// The members of `u` as two aligned arrays; read in the same statement as the group, so the
/// two are one snapshot.
pub(super) const MEMBERS_JOIN: &str = "LEFT JOIN LATERAL (SELECT \
     array_agg(m.member_id ORDER BY m.member_id, m.member_type) AS ids, \
     array_agg(m.member_type ORDER BY m.member_id, m.member_type) AS types \
     FROM group_members m WHERE m.gen = u.gen AND m.directory = u.directory \
     AND m.group_id = u.id) mem ON TRUE";

pub(super) fn user_from(row: &Row) -> Result<UserView, StoreError> {
    let resource = document(row.get(5))?;
    Ok(UserView {
        id: ResourceId(row.get::<_, Uuid>(0)),
        owner: row.get(1),
        keys: Keys {
            user_name: row.get(2),
            display_name: row.get(3),
            external_id: row.get(4),
        },
        resource,
        password_hash: row.get(6),
        data_key: row.get::<_, Option<Uuid>>(10).map(KeyId),
        version: row.get::<_, i64>(7) as u64,
        created: time(row.get(8)),
        last_modified: time(row.get(9)),
    })
}

pub(super) fn group_from(row: &Row) -> Result<GroupView, StoreError> {
    let resource = document(row.get(4))?;
    let ids: Option<Vec<Uuid>> = row.get(8);
    let types: Option<Vec<i16>> = row.get(9);
    let members = ids
        .unwrap_or_default()
        .into_iter()
        .zip(types.unwrap_or_default())
        .map(|(id, t)| Member {
            value: ResourceId(id),
            kind: member_type(t),
        })
        .collect();
    Ok(GroupView {
        id: ResourceId(row.get::<_, Uuid>(0)),
        owner: row.get(1),
        keys: Keys {
            user_name: None,
            display_name: row.get(2),
            external_id: row.get(3),
        },
        resource,
        members,
        version: row.get::<_, i64>(5) as u64,
        created: time(row.get(6)),
        last_modified: time(row.get(7)),
    })
}

pub(super) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("stored view: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Views are plain data with string keys: serialization cannot fail.
    serde_json::to_string(v).expect("views serialize")
}

pub(super) fn param_ref(p: &Param) -> &(dyn ToSql + Sync) {
    match p {
        Param::Text(s) => s,
        Param::Uuid(u) => u,
        Param::Int(i) => i,
    }
}

pub(super) fn typed_params(params: &[Param]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| {
            let t = match p {
                Param::Text(_) => Type::TEXT,
                Param::Uuid(_) => Type::UUID,
                Param::Int(_) => Type::INT8,
            };
            (param_ref(p), t)
        })
        .collect()
}

/// The folded `emails.value`s of a user, as the in-memory filter sees them.
pub(super) fn email_values(view: &UserView) -> BTreeSet<String> {
    use crate::filter::Attributes;
    let attrs = view.attributes();
    let mut out = BTreeSet::new();
    if let Some(top) = attrs.attribute(None, "emails") {
        let mut vals = Vec::new();
        crate::filter::values_at(&top, Some("value"), &mut vals);
        for v in vals {
            if let serde_json::Value::String(s) = v {
                out.insert(fold_case(s));
            }
        }
    }
    out
}
