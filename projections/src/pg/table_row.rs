//! The users and groups tables' rows as the fold and a rebuild write them: one type per table
//! that owns its column list. The COPY's columns and types, the upsert statement and its
//! `UNNEST` arrays all come from that one list, so a column is added in one place.

use super::rows::stamps;
use crate::views::{GroupView, UserView};
use roster_events::fold_case;
use std::sync::LazyLock;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

/// A row of one of the generation-partitioned view tables, its columns after `gen`.
pub(super) trait TableRow: Sync {
    /// The table's name (its partitions are `<table>_g<gen>`).
    const TABLE: &'static str;
    /// The columns after `gen`, in order, with their PostgreSQL types.
    const COLUMNS: &'static [(&'static str, Type)];

    /// The row's values for COPY: `gen`, then the columns.
    fn values<'r>(&'r self, gen: &'r i32) -> Vec<&'r (dyn ToSql + Sync)>;

    /// One array per column of `rows`, in column order, for [`TableRow::upsert`]'s `UNNEST`.
    fn arrays<'r>(rows: &[&'r Self]) -> Vec<Box<dyn ToSql + Send + Sync + 'r>>;

    /// Inserts rows or replaces those with the same generation, directory and id: `$1` the
    /// generation, then one array per column.
    fn upsert() -> &'static str;

    /// The types of a COPY's columns: `gen`'s, then the columns'.
    fn copy_types() -> Vec<Type> {
        std::iter::once(Type::INT4)
            .chain(Self::COLUMNS.iter().map(|(_, t)| t.clone()))
            .collect()
    }

    /// `COPY` into `target` (the table or one of its partitions) of every column, binary.
    fn copy_into(target: &str) -> String {
        format!(
            "COPY {target} (gen, {}) FROM STDIN BINARY",
            names(Self::COLUMNS)
        )
    }
}

fn names(columns: &[(&str, Type)]) -> String {
    columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The upsert of `table`'s `columns`, on the conflict of the key (gen, directory, id).
fn upsert_sql(table: &str, columns: &[(&str, Type)]) -> String {
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{}[]", i + 2, t.name()))
        .collect();
    let set: Vec<String> = columns
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !matches!(*c, "directory" | "id"))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} (gen, {}) SELECT $1, * FROM UNNEST({}) \
         ON CONFLICT (gen, directory, id) DO UPDATE SET {}",
        names(columns),
        arrays.join(", "),
        set.join(", ")
    )
}

/// Declares a row type and its [`TableRow`] from one list of columns (`name: Rust type =
/// PostgreSQL type`), which must begin with `directory` and `id`.
macro_rules! table_row {
    (
        $(#[$doc:meta])*
        $name:ident<$lt:lifetime> in $table:literal {
            $($col:ident: $ty:ty = $pg:ident),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        pub(super) struct $name<$lt> {
            $(pub(super) $col: $ty,)+
        }

        impl<$lt> TableRow for $name<$lt> {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [(&'static str, Type)] =
                &[$((stringify!($col), Type::$pg)),+];

            fn values<'r>(&'r self, gen: &'r i32) -> Vec<&'r (dyn ToSql + Sync)> {
                vec![gen, $(&self.$col),+]
            }

            fn arrays<'r>(rows: &[&'r Self]) -> Vec<Box<dyn ToSql + Send + Sync + 'r>> {
                vec![$(Box::new(rows.iter().map(|r| &r.$col).collect::<Vec<&'r $ty>>())),+]
            }

            fn upsert() -> &'static str {
                static SQL: LazyLock<String> = LazyLock::new(|| {
                    upsert_sql($table, <$name<'static> as TableRow>::COLUMNS)
                });
                &SQL
            }
        }
    };
}

table_row! {
    /// A row of `users`: the view's keys, its document and its stamps.
    UserRow<'a> in "users" {
        directory: &'a str = TEXT,
        id: Uuid = UUID,
        owner: Option<&'a str> = TEXT,
        user_name: Option<&'a str> = TEXT,
        user_name_ci: Option<String> = TEXT,
        display_name: Option<&'a str> = TEXT,
        display_name_ci: Option<String> = TEXT,
        external_id: Option<&'a str> = TEXT,
        resource: &'a str = TEXT,
        password_hash: Option<&'a str> = TEXT,
        version: i64 = INT8,
        created_ns: i64 = INT8,
        modified_ns: i64 = INT8,
        created_ms: i64 = INT8,
        modified_ms: i64 = INT8,
        data_key: Option<Uuid> = UUID,
    }
}

table_row! {
    /// A row of `groups` (their members are rows of `group_members`).
    GroupRow<'a> in "groups" {
        directory: &'a str = TEXT,
        id: Uuid = UUID,
        owner: Option<&'a str> = TEXT,
        display_name: Option<&'a str> = TEXT,
        display_name_ci: Option<String> = TEXT,
        external_id: Option<&'a str> = TEXT,
        resource: &'a str = TEXT,
        version: i64 = INT8,
        created_ns: i64 = INT8,
        modified_ns: i64 = INT8,
        created_ms: i64 = INT8,
        modified_ms: i64 = INT8,
    }
}

impl<'a> UserRow<'a> {
    /// The row of `u` in `directory`.
    pub(super) fn of(directory: &'a str, u: &'a UserView) -> Self {
        let t = stamps(&u.created, &u.last_modified);
        UserRow {
            directory,
            id: u.id.0,
            owner: u.owner.as_deref(),
            user_name: u.keys.user_name.as_deref(),
            user_name_ci: u.keys.user_name.as_deref().map(fold_case),
            display_name: u.keys.display_name.as_deref(),
            display_name_ci: u.keys.display_name.as_deref().map(fold_case),
            external_id: u.keys.external_id.as_deref(),
            resource: u.resource.as_str(),
            password_hash: u.password_hash.as_deref(),
            version: u.version as i64,
            created_ns: t.created_ns,
            modified_ns: t.modified_ns,
            created_ms: t.created_ms,
            modified_ms: t.modified_ms,
            data_key: u.data_key.map(|k| k.0),
        }
    }
}

impl<'a> GroupRow<'a> {
    /// The row of `g` in `directory`.
    pub(super) fn of(directory: &'a str, g: &'a GroupView) -> Self {
        let t = stamps(&g.created, &g.last_modified);
        GroupRow {
            directory,
            id: g.id.0,
            owner: g.owner.as_deref(),
            display_name: g.keys.display_name.as_deref(),
            display_name_ci: g.keys.display_name.as_deref().map(fold_case),
            external_id: g.keys.external_id.as_deref(),
            resource: g.resource.as_str(),
            version: g.version as i64,
            created_ns: t.created_ns,
            modified_ns: t.modified_ns,
            created_ms: t.created_ms,
            modified_ms: t.modified_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upsert_names_every_column_once_and_casts_its_array() {
        let sql = UserRow::upsert();
        assert!(sql.starts_with(
            "INSERT INTO users (gen, directory, id, owner, user_name, user_name_ci, \
             display_name, display_name_ci, external_id, resource, password_hash, version, \
             created_ns, modified_ns, created_ms, modified_ms, data_key) SELECT $1, * FROM \
             UNNEST($2::text[], $3::uuid[], $4::text[]"
        ));
        assert!(sql.contains("$17::uuid[])"));
        assert!(sql.ends_with("data_key = EXCLUDED.data_key"));
        assert!(!sql.contains("directory = EXCLUDED") && !sql.contains(" id = EXCLUDED"));
        assert_eq!(UserRow::copy_types().len(), 17);
        assert_eq!(
            GroupRow::copy_into("groups_g3"),
            "COPY groups_g3 (gen, directory, id, owner, display_name, display_name_ci, \
             external_id, resource, version, created_ns, modified_ns, created_ms, modified_ms) \
             FROM STDIN BINARY"
        );
    }
}
