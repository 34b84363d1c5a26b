//! Writes through several replicas of one deployment at once (the same directory, the same
//! log): each replica gets its own clients, each client creates a user and then replaces its
//! display name with a PATCH, for a bounded time. Per replica it prints the writes
//! acknowledged, those refused with 503 (a replica that gives up on the race for the
//! directory), any other failure, and the latency of the acknowledged ones.

use serde_json::json;
use std::time::{Duration, Instant};

/// One replica's tally.
#[derive(Default)]
struct Tally {
    ok: usize,
    unavailable: usize,
    other: usize,
    latencies: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.unavailable += other.unavailable;
        self.other += other.other;
        self.latencies.extend(other.latencies);
    }

    fn count(&mut self, status: Option<u16>, expected: u16, took: Duration) {
        match status {
            Some(s) if s == expected => {
                self.ok += 1;
                self.latencies.push(took);
            }
            Some(503) => self.unavailable += 1,
            _ => self.other += 1,
        }
    }
}

/// Runs `clients` clients against each of `urls` (SCIM base URLs of one source on different
/// replicas) for `seconds`, and prints each replica's figures.
pub async fn run(
    urls: Vec<String>,
    token: String,
    clients: usize,
    seconds: u64,
    prefix: String,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut replicas = Vec::new();
    for (r, url) in urls.iter().enumerate() {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (http, token) = (http.clone(), token.clone());
            let users = format!("{}/Users", url.trim_end_matches('/'));
            let prefix = format!("{prefix}-r{r}c{c}");
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                // Bounded by time, and by count in case the server answers instantly.
                for i in 0..1_000_000usize {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let body = json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("{prefix}-{i}@example.com"),
                        "active": true,
                    });
                    let t = Instant::now();
                    let r = http
                        .post(&users)
                        .bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .body(body.to_string())
                        .send()
                        .await;
                    let (status, id) = match r {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            (Some(s), v["id"].as_str().map(str::to_owned))
                        }
                        Err(_) => (None, None),
                    };
                    tally.count(status, 201, t.elapsed());
                    let Some(id) = id else { continue };
                    let patch = json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "displayName",
                                        "value": format!("User {i}")}],
                    });
                    let t = Instant::now();
                    let r = http
                        .patch(format!("{users}/{id}"))
                        .bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .body(patch.to_string())
                        .send()
                        .await;
                    tally.count(r.ok().map(|r| r.status().as_u16()), 200, t.elapsed());
                }
                tally
            }));
        }
        replicas.push(tasks);
    }
    let mut all = Vec::new();
    for tasks in replicas {
        let mut tally = Tally::default();
        for t in tasks {
            tally.add(t.await?);
        }
        all.push(tally);
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (url, mut t) in urls.iter().zip(all) {
        t.latencies.sort_unstable();
        let ms = |p: f64| super::percentile(&t.latencies, p).as_secs_f64() * 1e3;
        println!(
            "{url}: {} writes acknowledged ({:.0}/s), {} answered 503, {} other failures; \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            t.ok,
            t.ok as f64 / elapsed,
            t.unavailable,
            t.other,
            ms(0.5),
            ms(0.99),
            t.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        );
    }
    Ok(())
}
