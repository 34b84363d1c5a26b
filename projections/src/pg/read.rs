//! Queries on the views: SCIM list pages (SQL where it gives the memory store's answer, the
//! rest of the filter in memory), memberships, members' display names, a directory's whole
//! state for the write path, and the repeatable-read transaction they use.

use super::cache::Membership;
use super::heads;
use super::rows::{
    group_from, json, member_type_code, user_from, GROUP_COLUMNS, MEMBERS_JOIN, USER_COLUMNS,
};
use super::sql::{Kind, Param, Translator};
use super::PgStore;
use crate::directory::Directory;
use crate::filter::{self, Filter, Op};
use crate::query::{self, ListQuery, Page, Visibility};
use crate::store::{DirectorySnapshot, StoreError};
use crate::views::{ProviderView, SourceView, UserView};
use roster_events::{fold_case, ChainHead, Member, MemberType, ResourceId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::Row;
use uuid::Uuid;

impl PgStore {
    /// Several users, in `ids`' order: from the cache where it has them, the rest in one
    /// statement (and kept).
    pub(super) async fn users_cached(
        &self,
        dir: &str,
        ids: &[ResourceId],
    ) -> Result<Vec<Option<Arc<UserView>>>, StoreError> {
        let seen = match &self.cache {
            Some(cache) => cache.seen().await,
            None => None,
        };
        let cached = |id: &ResourceId| {
            let (cache, seen) = (self.cache.as_ref()?, seen.as_deref()?);
            cache.user(dir, *id, seen)
        };
        let mut found: Vec<Option<Arc<UserView>>> = ids.iter().map(cached).collect();
        let missing: Vec<Uuid> = ids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(id, _)| id.0)
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let client = self.client().await?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.gen = {} AND u.directory = $1 \
             AND u.id = ANY($2)",
            self.gen_sql()
        );
        let mut read: HashMap<Uuid, Arc<UserView>> = HashMap::new();
        for r in self.query(&client, &sql, &[&dir, &missing]).await? {
            let u = Arc::new(user_from(&r)?);
            if let (Some(cache), Some(seen)) = (&self.cache, &seen) {
                cache.keep_user(dir, u.clone(), seen);
            }
            read.insert(u.id.0, u);
        }
        for (id, f) in ids.iter().zip(found.iter_mut()) {
            if f.is_none() {
                *f = read.get(&id.0).cloned();
            }
        }
        Ok(found)
    }

    /// `filter=userName eq "..."`, what Entra ID and Okta ask before every create, answered
    /// from the users holding that name (cached, else read by the name's index) with the memory
    /// store's evaluation of the query. None for any other query, or without a cache.
    pub(super) async fn list_by_user_name(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Option<Page<UserView>>, StoreError> {
        let (Some(cache), Some(name)) = (&self.cache, user_name_eq(q)) else {
            return Ok(None);
        };
        let Some(seen) = cache.seen().await else {
            return Ok(None);
        };
        let folded = fold_case(name);
        let mut users = match cache.holders(dir, &folded, &seen) {
            Some(users) => users,
            None => {
                let users = self.users_holding(dir, &folded).await?;
                cache.keep_holders(dir, &folded, &users, &seen);
                users
            }
        };
        // Without a sort a list is in id order.
        users.sort_unstable_by_key(|u| u.id.0.as_u128());
        let candidates = users.into_iter().filter(|u| vis.admits(&u.owner));
        Ok(Some(query::page(
            candidates,
            |u| query::select(&u.attributes(), q),
            q,
        )))
    }

    /// Every user whose folded userName is `folded`, whoever owns it.
    async fn users_holding(
        &self,
        dir: &str,
        folded: &str,
    ) -> Result<Vec<Arc<UserView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.gen = {} AND u.directory = $1 \
             AND u.user_name_ci COLLATE \"C\" = $2",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&dir, &folded]).await?;
        rows.iter().map(|r| user_from(r).map(Arc::new)).collect()
    }

    /// One source by slug: from the cache where it has it, else from the table (and kept).
    pub(super) async fn source_cached(
        &self,
        slug: &str,
    ) -> Result<Option<Arc<SourceView>>, StoreError> {
        let Some(cache) = &self.cache else {
            return self.source_row(slug).await;
        };
        let seen = cache.seen().await;
        if let Some(found) = seen.as_deref().and_then(|s| cache.source(slug, s)) {
            return Ok(found);
        }
        let source = self.source_row(slug).await?;
        if let (Some(seen), Some(found)) = (&seen, &source) {
            cache.keep_source(slug, found.clone(), seen);
        }
        Ok(source)
    }

    async fn source_row(&self, slug: &str) -> Result<Option<Arc<SourceView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT view FROM sources WHERE gen = {} AND slug = $1",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&slug]).await?;
        rows.first()
            .map(|r| json::<SourceView>(r.get(0)).map(Arc::new))
            .transpose()
    }

    /// The groups of each of `members` as `vis` sees them (see
    /// [`crate::ProjectionStore::groups_of`]), in `members`' order: from the cache where it has
    /// them, the rest in one statement.
    pub(super) async fn memberships_each(
        &self,
        dir: &str,
        members: &[ResourceId],
        vis: Visibility<'_>,
    ) -> Result<Vec<Vec<(ResourceId, String, bool)>>, StoreError> {
        let seen = match &self.cache {
            Some(cache) => cache.seen().await,
            None => None,
        };
        let cached = |id: &ResourceId| {
            let (cache, seen) = (self.cache.as_ref()?, seen.as_deref()?);
            cache.memberships(dir, *id, seen)
        };
        let mut found: Vec<Option<Arc<[Membership]>>> = members.iter().map(cached).collect();
        let missing: Vec<ResourceId> = members
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(m, _)| *m)
            .collect();
        if !missing.is_empty() {
            let read = self.memberships(dir, &missing).await?;
            for (m, f) in members.iter().zip(found.iter_mut()) {
                if f.is_none() {
                    let groups: Arc<[Membership]> =
                        read.get(&m.0).cloned().unwrap_or_default().into();
                    if let (Some(cache), Some(seen)) = (&self.cache, &seen) {
                        cache.keep_memberships(dir, *m, groups.clone(), seen);
                    }
                    *f = Some(groups);
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|groups| {
                groups
                    .iter()
                    .flat_map(|g| g.iter())
                    .filter(|g| vis.admits(&g.owner))
                    .map(|g| (g.group, g.display.clone(), g.direct))
                    .collect()
            })
            .collect())
    }

    /// The groups of each of `members` in the tables, whoever owns them, in one statement:
    /// with `= $2` for one member (its plan is the same for every member) and `= ANY($2)` for
    /// a page.
    async fn memberships(
        &self,
        dir: &str,
        members: &[ResourceId],
    ) -> Result<HashMap<Uuid, Vec<Membership>>, StoreError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.0).collect();
        let member = if ids.len() == 1 { "= $2" } else { "= ANY($2)" };
        // RFC 7643 §4.1.2: direct groups, then the groups those are members of, and so on,
        // for every member at once; UNION (not UNION ALL) makes cycles harmless: a group
        // appears at most twice per member, once reached directly and once through another.
        // The planner cannot estimate the recursion's (small) size and would hash-join every
        // group of the directory: `OFFSET 0` keeps the lookup of each group a primary-key
        // probe (7.8 ms against 0.13 ms at 10,000 groups).
        let sql = format!(
            "WITH RECURSIVE up(member, group_id, direct) AS ( \
               SELECT member_id, group_id, true FROM group_members WHERE gen = {gen} \
                 AND directory = $1 AND member_id {member} \
               UNION \
               SELECT up.member, m.group_id, false FROM group_members m \
                 JOIN up ON m.member_id = up.group_id WHERE m.gen = {gen} AND m.directory = $1) \
             SELECT up.member, g.id, g.display_name, g.owner, bool_or(up.direct) \
             FROM up CROSS JOIN LATERAL (SELECT id, display_name, owner FROM groups \
               WHERE gen = {gen} AND directory = $1 AND id = up.group_id OFFSET 0) g \
             GROUP BY up.member, g.id, g.display_name, g.owner ORDER BY up.member, g.id",
            gen = self.gen_sql()
        );
        let rows = if let [one] = ids[..] {
            self.query(&client, &sql, &[&dir, &one]).await?
        } else {
            self.query(&client, &sql, &[&dir, &ids]).await?
        };
        let mut by_member: HashMap<Uuid, Vec<Membership>> = HashMap::new();
        for r in &rows {
            let name: Option<String> = r.get(2);
            by_member.entry(r.get(0)).or_default().push(Membership {
                group: ResourceId(r.get::<_, Uuid>(1)),
                display: name.unwrap_or_default(),
                owner: r.get(3),
                direct: r.get(4),
            });
        }
        Ok(by_member)
    }

    pub(super) async fn read_tx<'a>(
        &self,
        client: &'a mut deadpool_postgres::Object,
    ) -> Result<deadpool_postgres::Transaction<'a>, StoreError> {
        let r = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await;
        self.track(r)
    }

    /// A page of a scan over the users or groups `vis` admits, in id order, after `after`:
    /// found by key, so each page costs the same however far the scan has gone.
    pub(super) async fn list_after<T>(
        &self,
        kind: Kind,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<Arc<T>>, StoreError> {
        let (table, columns, join) = match kind {
            Kind::User => ("users", USER_COLUMNS, ""),
            Kind::Group => ("groups", GROUP_COLUMNS, MEMBERS_JOIN),
        };
        let mut params = vec![Param::Text(dir.to_owned())];
        let mut wh = format!("u.gen = {} AND u.directory = $1::text", self.gen_sql());
        if let Visibility::Owner(o) = vis {
            params.push(Param::Text(o.to_owned()));
            wh.push_str(&format!(" AND u.owner = ${}::text", params.len()));
        }
        if let Some(a) = after {
            params.push(Param::Uuid(a.0));
            wh.push_str(&format!(" AND u.id > ${}::uuid", params.len()));
        }
        params.push(Param::Int(count.min(i64::MAX as usize) as i64));
        let sql = format!(
            "SELECT {columns} FROM {table} u {join} WHERE {wh} ORDER BY u.id ASC LIMIT ${}::int8",
            params.len()
        );
        let client = self.client().await?;
        let rows = self.query_params(&client, &sql, &params).await?;
        rows.iter().map(|r| decode(r).map(Arc::new)).collect()
    }

    /// A list query over users or groups; `decode` turns a row into a view.
    pub(super) async fn list<T: query::HasId + Send + Sync>(
        &self,
        kind: Kind,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
        decode: fn(&Row) -> Result<T, StoreError>,
        select: fn(&T, &ListQuery) -> Option<query::SortKey>,
    ) -> Result<Page<T>, StoreError> {
        let (table, columns, join) = match kind {
            Kind::User => ("users", USER_COLUMNS, ""),
            Kind::Group => ("groups", GROUP_COLUMNS, MEMBERS_JOIN),
        };
        let t = Translator {
            kind,
            alias: "u",
            declared: &q.declared,
        };
        let mut params = vec![Param::Text(dir.to_owned())];
        let mut wh = format!("u.gen = {} AND u.directory = $1::text", self.gen_sql());
        if let Visibility::Owner(o) = vis {
            params.push(Param::Text(o.to_owned()));
            wh.push_str(&format!(" AND u.owner = ${}::text", params.len()));
        }
        let cond = q.filter.as_ref().map(|f| t.condition(f));
        let exact = cond.as_ref().is_none_or(|c| c.exact);
        if let Some(c) = cond.filter(|c| c.narrows) {
            wh.push_str(" AND ");
            c.sql.render(&mut wh, &mut params);
        }
        let order = match &q.sort {
            None => Some("u.id ASC".to_owned()),
            Some(s) => t.order_by(s),
        };
        let mut client = self.client().await?;
        let skip = q.start_index.max(1) - 1;
        let decode_all = |rows: Vec<Row>| {
            rows.iter()
                .map(|r| decode(r).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()
        };
        if let (true, Some(order)) = (exact, order) {
            let mut page_params = params.clone();
            page_params.push(Param::Int(q.count.min(i64::MAX as usize) as i64));
            page_params.push(Param::Int(skip as i64));
            let n = page_params.len();
            let page_sql = format!(
                "SELECT {columns} FROM {table} u {join} WHERE {wh} ORDER BY {order} \
                 LIMIT ${}::int8 OFFSET ${n}::int8",
                n - 1
            );
            if skip == 0 && q.count > 0 {
                // A first page that is not full holds every match: one statement answers
                // (the common lookups: `userName eq`, `externalId eq`, members of a group).
                let rows = self.query_params(&client, &page_sql, &page_params).await?;
                if rows.len() < q.count {
                    let items = decode_all(rows)?;
                    return Ok(Page {
                        total: q.counted(items.len()),
                        items,
                    });
                }
            }
            // SQL answers the whole query: count and page in one snapshot. Without a filter
            // the fold's counts give the total; a filter's matches are counted, up to one
            // more than the query asks for when it sets a bound.
            let mut count_params = params.clone();
            let count_sql = if q.filter.is_none() {
                let owner = match vis {
                    Visibility::Owner(_) => " AND owner = $2::text",
                    Visibility::All => "",
                };
                let kind = match kind {
                    Kind::User => "user",
                    Kind::Group => "group",
                };
                format!(
                    "SELECT coalesce(sum(n), 0)::int8 FROM view_counts \
                     WHERE gen = {} AND directory = $1::text AND kind = '{kind}'{owner}",
                    self.gen_sql()
                )
            } else if let Some(most) = q.count_up_to {
                count_params.push(Param::Int(
                    most.saturating_add(1).min(i64::MAX as usize) as i64
                ));
                format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {table} u WHERE {wh} LIMIT ${}::int8) c",
                    count_params.len()
                )
            } else {
                format!("SELECT count(*) FROM {table} u WHERE {wh}")
            };
            let tx = self.read_tx(&mut client).await?;
            let (total, rows) = tokio::join!(
                self.query_dynamic(&tx, &count_sql, &count_params),
                self.query_dynamic(&tx, &page_sql, &page_params)
            );
            let total: i64 = total?.first().map_or(0, |r| r.get(0));
            let items = decode_all(rows?)?;
            self.track(tx.commit().await)?;
            return Ok(Page {
                total: q.counted(total as usize),
                items,
            });
        }
        let tx = self.read_tx(&mut client).await?;
        // Part of the filter or the sort is evaluated here, on the rows SQL narrowed to.
        let sql = format!("SELECT {columns} FROM {table} u {join} WHERE {wh} ORDER BY u.id ASC");
        let rows = self.query_dynamic(&tx, &sql, &params).await?;
        self.track(tx.commit().await)?;
        let candidates = decode_all(rows)?;
        Ok(query::page(candidates.into_iter(), |v| select(v, q), q))
    }

    /// One directory's views as the last transaction left them, with the chain head and the
    /// next log position of `partition` they reflect, read in one repeatable-read
    /// transaction (users and groups streamed: a directory may hold millions).
    pub(super) async fn directory_snapshot(
        &self,
        directory: &str,
        partition: u32,
    ) -> Result<DirectorySnapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = self.read_tx(&mut client).await?;
        let gen = self.gen_sql();
        let pos = self
            .query(
                &tx,
                &format!(
                    "SELECT next_position FROM positions WHERE gen = {gen} AND log_partition = $1"
                ),
                &[&(partition as i32)],
            )
            .await?;
        let head = self
            .query(
                &tx,
                &format!(
                    "SELECT seq, record_id, digest FROM chain_heads WHERE gen = {gen} AND directory = $1"
                ),
                &[&directory],
            )
            .await?;
        let mut state = Directory::new(directory);
        let meta = self
            .query(
                &tx,
                &format!("SELECT meta FROM directories WHERE gen = {gen} AND name = $1"),
                &[&directory],
            )
            .await?;
        if let Some(m) = meta.first().and_then(|r| r.get::<_, Option<String>>(0)) {
            state.restore_meta(json(&m)?);
        }
        // Streamed: a directory may hold millions of users.
        let users =
            format!("SELECT {USER_COLUMNS} FROM users u WHERE u.gen = {gen} AND u.directory = $1");
        self.stream(&tx, &users, directory, |r| {
            state.restore_user(Arc::new(user_from(r)?));
            Ok(())
        })
        .await?;
        let groups = format!(
            "SELECT {GROUP_COLUMNS} FROM groups u {MEMBERS_JOIN} WHERE u.gen = {gen} \
             AND u.directory = $1"
        );
        self.stream(&tx, &groups, directory, |r| {
            state.restore_group(Arc::new(group_from(r)?));
            Ok(())
        })
        .await?;
        let sources = self
            .query(
                &tx,
                &format!("SELECT view FROM sources WHERE gen = {gen} AND directory = $1"),
                &[&directory],
            )
            .await?;
        for r in &sources {
            state.restore_source(Arc::new(json::<SourceView>(r.get(0))?));
        }
        let tokens = self
            .query(
                &tx,
                &format!("SELECT id, view FROM admin_tokens WHERE gen = {gen} AND directory = $1"),
                &[&directory],
            )
            .await?;
        for r in &tokens {
            state.restore_admin_token(ResourceId(r.get::<_, Uuid>(0)), json(r.get(1))?);
        }
        let providers = self
            .query(
                &tx,
                &format!("SELECT view FROM providers WHERE gen = {gen} AND directory = $1"),
                &[&directory],
            )
            .await?;
        for r in &providers {
            state.restore_provider(Arc::new(json::<ProviderView>(r.get(0))?));
        }
        self.track(tx.commit().await)?;
        Ok(DirectorySnapshot {
            state,
            head: head
                .first()
                .map_or_else(ChainHead::default, heads::head_from),
            next_position: pos.first().map_or(0, |r| r.get::<_, i64>(0) as u64),
        })
    }

    /// The userName or displayName of each member that `vis` shows, in `members`' order
    /// (None where it is gone or hidden), in one statement.
    pub(super) async fn displays(
        &self,
        dir: &str,
        members: &[Member],
        vis: Visibility<'_>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let users: Vec<Uuid> = members
            .iter()
            .filter(|m| m.kind == MemberType::User)
            .map(|m| m.value.0)
            .collect();
        let groups: Vec<Uuid> = members
            .iter()
            .filter(|m| m.kind == MemberType::Group)
            .map(|m| m.value.0)
            .collect();
        let client = self.client().await?;
        let gen = self.gen_sql();
        let owner: Option<&str> = match vis {
            Visibility::All => None,
            Visibility::Owner(o) => Some(o),
        };
        let sql = format!(
            "SELECT 0::int2, id, user_name FROM users WHERE gen = {gen} AND directory = $1 \
             AND id = ANY($2) AND ($4::text IS NULL OR owner = $4) UNION ALL \
             SELECT 1::int2, id, display_name FROM groups WHERE gen = {gen} AND directory = $1 \
             AND id = ANY($3) AND ($4::text IS NULL OR owner = $4)"
        );
        let rows = self
            .query(&client, &sql, &[&dir, &users, &groups, &owner])
            .await?;
        let found: HashMap<(i16, Uuid), String> = rows
            .iter()
            .map(|r| {
                let name: Option<String> = r.get(2);
                ((r.get(0), r.get(1)), name.unwrap_or_default())
            })
            .collect();
        Ok(members
            .iter()
            .map(|m| found.get(&(member_type_code(m.kind), m.value.0)).cloned())
            .collect())
    }
}

/// The name a query asks for when it is exactly `userName eq "<name>"` (a name that reads as a
/// time compares as one, which no index of names answers).
fn user_name_eq(q: &ListQuery) -> Option<&str> {
    match q.filter.as_ref()? {
        Filter::Compare {
            path,
            op: Op::Eq,
            value: serde_json::Value::String(s),
        } if path.is("userName") && !filter::looks_like_time(s) => Some(s),
        _ => None,
    }
}
