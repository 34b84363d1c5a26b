//! `roster-load seed-log`: a data directory (or a Kafka topic) whose log holds a directory of
//! N users, their replacements and groups, written through the real write path (decide, batch,
//! append, project) without HTTP, for start-up, replay and audit benchmarks.

use super::{drive, scim_user, sealed_with};
use roster::domain::{Command, Context, MemberRef, NewToken};
use roster::keys::file::FileKeys;
use roster::keys::kafka::KafkaKeys;
use roster::keys::KeyStore;
use roster::log::{EventLog, FileLog, FileLogOptions, KafkaLog, KafkaOptions};
use roster::pipeline::{Pipeline, Writer};
use roster_events::{Actor, Client, ResourceId};
use roster_projections::schema::{Checked, ResourceSchemas};
use roster_projections::{ListQuery, MemoryStore, ProjectionStore, UserView, Visibility};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// What `seed-log` writes, and where.
#[derive(clap::Args)]
pub(crate) struct Seed {
    #[arg(long)]
    dir: PathBuf,
    /// Kafka brokers (`host:port`) to seed instead of the data directory's file log.
    #[arg(long)]
    kafka_brokers: Option<String>,
    #[arg(long, default_value = "roster-events")]
    kafka_topic: String,
    #[arg(long)]
    users: usize,
    #[arg(long, default_value = "seed")]
    prefix: String,
    /// Groups to create after the users, each with `members` of them (spread evenly).
    #[arg(long, default_value_t = 0)]
    groups: usize,
    #[arg(long, default_value_t = 0)]
    members: usize,
    /// Replacements of each user after they are all created (its title changes each
    /// time, and every fifth one deactivates it): a log of `users * (1 + updates)`
    /// user events, for histories longer than one event.
    #[arg(long, default_value_t = 0)]
    updates: usize,
}

/// Writes what `seed` asks into the default directory, bootstrapping it first on an empty
/// log (and printing the tokens it made).
pub(crate) async fn run(seed: Seed) -> anyhow::Result<()> {
    let (log, keys) = open(&seed).await?;
    let store: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
    // Sealed with the secret key of the data directory the server will run on.
    let (log, sealer) = sealed_with(&seed.dir, log, keys).await?;
    let mut pipeline = Pipeline::start(log, store.clone(), None, sealer).await?;
    let stopper = pipeline.stopper();
    let w = pipeline.writers.get("default").await?;
    if store.directories().await?.is_empty() {
        bootstrap(&w).await?;
    }
    // One token for every request, as one client's.
    let token: Arc<str> = ResourceId::new().to_string().into();
    users(&w, &seed, &token).await;
    if seed.updates > 0 {
        let all = every_user(store.as_ref()).await?;
        updates(&w, &seed, &token, &all).await;
    }
    if seed.groups > 0 {
        groups(&w, &seed, &every_user(store.as_ref()).await?).await;
    }
    drop(w);
    stopper.stop().await;
    Ok(())
}

/// The log and the data keys `seed` goes to: the data directory's, or a Kafka topic's.
async fn open(seed: &Seed) -> anyhow::Result<(Arc<dyn EventLog>, Arc<dyn KeyStore>)> {
    Ok(match &seed.kafka_brokers {
        None => (
            Arc::new(FileLog::open(
                seed.dir.join("log"),
                FileLogOptions::default(),
            )?),
            Arc::new(FileKeys::new(&seed.dir)),
        ),
        Some(brokers) => {
            let options = KafkaOptions {
                brokers: brokers.clone(),
                topic: seed.kafka_topic.clone(),
                ..KafkaOptions::default()
            };
            (
                Arc::new(KafkaLog::open(options.clone()).await?),
                Arc::new(KafkaKeys::open(&options).await?),
            )
        }
    })
}

/// The first start's bootstrap: an admin token and the `default` source with its token.
async fn bootstrap(w: &Writer) -> anyhow::Result<()> {
    let token = roster::auth::generate("rst_");
    let admin = roster::auth::generate("rsa_");
    let t = |x: &roster::auth::IssuedToken| NewToken {
        id: ResourceId::new(),
        hash: x.hash.clone(),
        prefix: x.prefix.clone(),
    };
    let sys = Context {
        actor: Actor::System,
        source: None,
        correlation_id: None,
        client: None,
    };
    w.execute(
        Command::Bootstrap {
            admin: t(&admin),
            source_slug: "default".into(),
            source_token: t(&token),
        },
        sys,
    )
    .await?;
    println!("SCIM token: {}", token.token.expose());
    println!("Admin token: {}", admin.token.expose());
    Ok(())
}

/// The default source as a SCIM client's request would leave it in a record: with a fresh
/// request id, the token `token_id` and a client address and agent.
fn scim_client(token_id: &str) -> Context {
    Context {
        actor: Actor::Source("source:default".into()),
        source: Some("default".into()),
        correlation_id: Some(uuid::Uuid::new_v4().to_string()),
        client: Some(Client {
            token_id: Some(token_id.to_owned()),
            ip: Some(std::net::Ipv4Addr::new(10, 1, 2, 3).into()),
            user_agent: Some("Azure Active Directory SCIM Client".into()),
        }),
    }
}

/// Creates users `0..seed.users`, 256 at a time, as the client holding `token`.
async fn users(w: &Writer, seed: &Seed, token: &Arc<str>) {
    let (w, prefix, token) = (w.clone(), seed.prefix.clone(), token.clone());
    drive("seeded users", 256, seed.users, move |i| {
        let (w, ctx) = (w.clone(), scim_client(&token));
        let resource = checked_user(scim_user(&prefix, i));
        async move {
            let create = Command::CreateUser {
                resource,
                password_hash: None,
            };
            w.execute(create, ctx).await.is_ok()
        }
    })
    .await;
}

/// Replaces each seeded user among `all` `seed.updates` times, as the client holding `token`.
async fn updates(w: &Writer, seed: &Seed, token: &Arc<str>, all: &[Arc<UserView>]) {
    let prefix = seed.prefix.clone();
    // Each seeded user's id and number (from its userName).
    let seeded: Arc<Vec<(ResourceId, usize)>> = Arc::new(
        all.iter()
            .filter_map(|u| {
                let name = u.keys.user_name.as_deref()?;
                let n = name
                    .strip_prefix(&format!("{prefix}-"))?
                    .strip_suffix("@example.com")?
                    .parse()
                    .ok()?;
                Some((u.id, n))
            })
            .collect(),
    );
    let (w, token) = (w.clone(), token.clone());
    let total = seeded.len() * seed.updates;
    drive("seeded updates", 256, total, move |j| {
        let (w, seeded, ctx) = (w.clone(), seeded.clone(), scim_client(&token));
        // Round-major: one user's replacements are far apart, as in a directory.
        let (id, n) = seeded[j % seeded.len()];
        let round = j / seeded.len();
        let mut doc = scim_user(&prefix, n);
        doc["title"] = json!(format!("Title {round}"));
        doc["active"] = json!(round % 5 != 4);
        let resource = checked_user(doc);
        async move {
            let replace = Command::ReplaceUser {
                id,
                resource,
                password_hash: None,
                if_match: None,
            };
            w.execute(replace, ctx).await.is_ok()
        }
    })
    .await;
}

/// Creates `seed.groups` groups of `seed.members` users each among `all`, 16 at a time.
async fn groups(w: &Writer, seed: &Seed, all: &[Arc<UserView>]) {
    let ids: Arc<Vec<String>> = Arc::new(all.iter().map(|u| u.id.to_string()).collect());
    let ctx = Context {
        actor: Actor::Source("source:default".into()),
        source: Some("default".into()),
        correlation_id: None,
        client: None,
    };
    let (w, groups, members) = (w.clone(), seed.groups, seed.members);
    drive("seeded groups", 16, groups, move |g| {
        let (w, ctx, ids) = (w.clone(), ctx.clone(), ids.clone());
        // Group g takes every `groups`-th user from g on, so memberships spread.
        let refs = (0..members)
            .map(|j| MemberRef {
                value: ids[(g + j * groups) % ids.len()].clone(),
                kind: None,
            })
            .collect();
        let resource = checked_group(json!({"displayName": format!("group-{g}")}));
        async move {
            let create = Command::CreateGroup {
                resource,
                members: refs,
            };
            w.execute(create, ctx).await.is_ok()
        }
    })
    .await;
}

/// A seeded user as the edge would store it (the seed bodies are valid by construction).
fn checked_user(v: Value) -> Checked {
    let schemas = ResourceSchemas::user(&[], Default::default());
    schemas
        .check(v.as_object().cloned().unwrap_or_default())
        .expect("a seeded user is valid")
}

/// A seeded group as the edge would store it.
fn checked_group(v: Value) -> Checked {
    let schemas = ResourceSchemas::group(&[], Default::default());
    schemas
        .check(v.as_object().cloned().unwrap_or_default())
        .expect("a seeded group is valid")
}

/// Every user of the default directory.
async fn every_user(store: &dyn ProjectionStore) -> anyhow::Result<Vec<Arc<UserView>>> {
    let query = ListQuery {
        filter: None,
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: usize::MAX,
        count_up_to: None,
    };
    let page = store.list_users("default", Visibility::All, &query).await?;
    Ok(page.items)
}
