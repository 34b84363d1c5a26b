//! The outbound provider benchmark: seeds users and groups through a source (Bulk), creates a
//! provider to an in-process SCIM target and times its bootstrap full sync, then measures the
//! time from each create's 201 to the user's arrival on the target.

use super::{percentile, scim_user, target};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub struct ProviderBench {
    pub server: String,
    pub admin_token: String,
    pub token: String,
    pub users: usize,
    pub groups: usize,
    pub members: usize,
    pub latency_users: usize,
    pub rate: u64,
    pub prefix: String,
    /// Three property mappings on the provider.
    pub mappings: bool,
}

/// The mappings `--mappings` gives the provider: a display name built from the name, the
/// mail address lower-cased, contractors skipped, and a prefix on group names.
const MAPPINGS: [(&str, &str, &str); 3] = [
    (
        "names",
        "provider_user",
        r#"{"displayName": has(user.name) && has(user.name.givenName) && has(user.name.familyName)
              ? user.name.givenName + " " + user.name.familyName : user.userName,
            "userName": user.userName.lowerAscii()}"#,
    ),
    (
        "no-contractors",
        "provider_user",
        r#"has(user.userType) && user.userType == "Contractor" ? skip : {}"#,
    ),
    (
        "group-names",
        "provider_group",
        r#"{"displayName": "app-" + group.displayName}"#,
    ),
];

async fn bulk_post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    ops: Vec<Value>,
) -> anyhow::Result<Vec<Value>> {
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
    let r: Value = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await?
        .json()
        .await?;
    Ok(r["Operations"].as_array().cloned().unwrap_or_default())
}

pub async fn run(b: ProviderBench) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let scim = format!("{}/source/scim/default/v2", b.server.trim_end_matches('/'));
    let admin = format!("{}/admin/v1", b.server.trim_end_matches('/'));
    let (target, store) = target::start().await?;

    // Seed: users, then groups of `members` users each.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(b.users);
    for chunk in (0..b.users).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                            "data": scim_user(&b.prefix, *i)})
            })
            .collect();
        for op in bulk_post(&http, &format!("{scim}/Bulk"), &b.token, ops).await? {
            if let Some(id) = op["location"].as_str().and_then(|l| l.rsplit('/').next()) {
                ids.push(id.to_owned());
            }
        }
    }
    anyhow::ensure!(
        ids.len() == b.users,
        "seeded {} users of {}",
        ids.len(),
        b.users
    );
    for chunk in (0..b.groups).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|g| {
                let members: Vec<Value> = (0..b.members)
                    .map(|m| json!({"value": ids[(g * b.members + m) % ids.len()]}))
                    .collect();
                json!({"method": "POST", "path": "/Groups", "bulkId": format!("g{g}"),
                       "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                "displayName": format!("{}-group-{g}", b.prefix), "members": members}})
            })
            .collect();
        bulk_post(&http, &format!("{scim}/Bulk"), &b.token, ops).await?;
    }
    println!(
        "seeded {} users and {} groups ({} members each) in {:.1}s",
        b.users,
        b.groups,
        b.members,
        started.elapsed().as_secs_f64()
    );

    // Full sync: the bootstrap of a new provider.
    let name = format!("{}-{}", b.prefix, std::process::id());
    let mut mappings = Vec::new();
    if b.mappings {
        for (m, kind, expression) in MAPPINGS {
            let m = format!("{name}-{m}");
            let r = http
                .post(format!("{admin}/mappings"))
                .bearer_auth(&b.admin_token)
                .json(&json!({"name": m, "kind": kind, "expression": expression}))
                .send()
                .await?;
            anyhow::ensure!(
                r.status().as_u16() == 201,
                "creating mapping {m}: {}",
                r.text().await?
            );
            mappings.push(m);
        }
    }
    let started = Instant::now();
    let r = http
        .post(format!("{admin}/providers"))
        .bearer_auth(&b.admin_token)
        .json(
            &json!({"name": name, "base_url": target, "auth": {"type": "bearer", "token": "bench"},
                      "full_sync_interval_secs": 0, "mappings": mappings}),
        )
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "creating the provider: {}",
        r.text().await?
    );
    let status = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s: Value = http
            .get(format!("{admin}/providers/{name}/status"))
            .bearer_auth(&b.admin_token)
            .send()
            .await?
            .json()
            .await?;
        if s["last_full_sync"]["finished"].is_string() && s["pending"] == 0 {
            break s;
        }
    };
    let elapsed = started.elapsed();
    let objects = (
        status["last_full_sync"]["compared"].as_u64().unwrap_or(0) as usize,
        store.lock().unwrap().requests,
    );
    println!(
        "full sync: {} objects ({} created; {} groups with {} memberships among them) in {:.2}s = {:.0} objects/s, {} operations on the target",
        objects.0,
        status["last_full_sync"]["created"],
        b.groups,
        b.groups * b.members,
        elapsed.as_secs_f64(),
        objects.0 as f64 / elapsed.as_secs_f64(),
        objects.1,
    );

    // Propagation: one create at a time at `rate`/s; the 201's time against the arrival.
    let mut sent: Vec<(String, Instant, Instant)> = Vec::with_capacity(b.latency_users);
    let every = Duration::from_secs_f64(1.0 / b.rate.max(1) as f64);
    let mut next = Instant::now();
    for i in 0..b.latency_users {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let user = scim_user(&format!("{}-lat", b.prefix), i);
        let asked = Instant::now();
        let r = http
            .post(format!("{scim}/Users"))
            .bearer_auth(&b.token)
            .header("content-type", "application/scim+json")
            .body(user.to_string())
            .send()
            .await?;
        let at = Instant::now();
        anyhow::ensure!(r.status().as_u16() == 201, "create: {}", r.status());
        sent.push((
            user["userName"].as_str().unwrap_or("").to_lowercase(),
            asked,
            at,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    // Arrival after the 201 (0 when the user was on the target before the client had its
    // answer) and after the request was sent (the write included).
    let (mut after_201, mut after_request) = loop {
        let done: Option<Vec<(Duration, Duration)>> = {
            let st = store.lock().unwrap();
            sent.iter()
                .map(|(n, asked, at)| {
                    st.arrivals.get(n).map(|t| {
                        (
                            t.saturating_duration_since(*at),
                            t.saturating_duration_since(*asked),
                        )
                    })
                })
                .collect()
        };
        if let Some(l) = done {
            break l.into_iter().unzip::<_, _, Vec<_>, Vec<_>>();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not every user arrived within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    after_201.sort_unstable();
    after_request.sort_unstable();
    let before = after_201.iter().filter(|d| d.is_zero()).count();
    let ms = |v: &[Duration], p: f64| percentile(v, p).as_secs_f64() * 1e3;
    println!(
        "propagation ({} creates at {}/s): after the 201 p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         ({before} arrived before the client had its 201); after the request p50 {:.1} ms, p99 {:.1} ms",
        after_201.len(),
        b.rate,
        ms(&after_201, 0.5),
        ms(&after_201, 0.99),
        ms(&after_201, 1.0),
        ms(&after_request, 0.5),
        ms(&after_request, 0.99),
    );
    Ok(())
}
