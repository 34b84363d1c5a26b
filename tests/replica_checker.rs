//! Two replicas (the real binary) on one Kafka topic (a tansu broker of the test's own, on
//! disk) and one PostgreSQL database, written concurrently through both: creates racing on a
//! small pool of userNames and group names, PATCH with If-Match, PUT, DELETE, groups with
//! members. Mid-run one replica is killed with SIGKILL and started again, then the broker is
//! killed with SIGKILL and started again. Every request carries its own `X-Request-Id`, which
//! Roster records as the correlation id of the events it causes. Afterwards the checker reads
//! the topic back, applies the directory-sequence rule, and compares every answer with the
//! valid record it produced:
//! - a 2xx answer has exactly one valid record with its request id, and the resource and
//!   version it answered are that record's (a write's answer is its own state); a PATCH that
//!   changed nothing has none, and answers a state some valid record left;
//! - a refusal (400, 404, 409, 412) has no valid record;
//! - an answer that did not come (a killed replica) or a 503 has at most one;
//! - no answer is a 5xx other than 503;
//!
//! The PostgreSQL views must equal a fresh replay of the topic.

mod common;

use common::broker::OwnBroker;
use reqwest::StatusCode;
use roster::log::EventLog;
use roster_events::{ChainHead, Event, Record};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writers per replica.
const WRITERS: usize = 4;
/// How long the load runs, in all.
const LOAD: Duration = Duration::from_secs(16);
const USER_NAMES: u64 = 40;
const GROUP_NAMES: u64 = 12;

struct Replica {
    child: Child,
    port: u16,
}

impl Replica {
    fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a replica on `data`; on the first start of the deployment, returns the SCIM token
/// it printed.
fn start_replica(
    data: &Path,
    port: u16,
    brokers: &str,
    topic: &str,
    pg: &str,
    first: bool,
) -> (Replica, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .args(["--log", "kafka", "--kafka-brokers", brokers])
        .args(["--kafka-topic", topic, "--store", "postgres"])
        .args(["--postgres-url", pg])
        .env("ROSTER_LOG", "warn")
        .env("ROSTER_SOURCE_RATE_PER_SECOND", "0")
        .stdout(if first { Stdio::piped() } else { Stdio::null() })
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let token = first.then(|| {
        let stdout = child.stdout.take().unwrap();
        let mut token = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(t) = line.trim().strip_prefix("SCIM token:") {
                token = Some(t.trim().to_owned());
            }
            if line.starts_with("Save both tokens") {
                break;
            }
        }
        token.expect("a first start prints a SCIM token")
    });
    (Replica { child, port }, token)
}

async fn wait_ready(root: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = reqwest::get(format!("{root}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{root} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one request was answered.
#[derive(Debug)]
struct Answer {
    request: String,
    what: &'static str,
    /// None: no answer (the connection failed).
    status: Option<u16>,
    /// The resource the answer is about.
    id: Option<String>,
    /// The version its ETag names.
    version: Option<u64>,
}

/// Ids and ETag versions of the users and groups the writers know of.
#[derive(Default)]
struct Known {
    users: Vec<(String, u64)>,
    groups: Vec<(String, u64)>,
}

fn pick(list: &[(String, u64)], r: u64) -> Option<(String, u64)> {
    (!list.is_empty()).then(|| list[r as usize % list.len()].clone())
}

fn forget(list: &mut Vec<(String, u64)>, id: &str) {
    list.retain(|(i, _)| i != id);
}

fn remember(list: &mut Vec<(String, u64)>, id: &str, version: u64) {
    forget(list, id);
    list.push((id.to_owned(), version));
}

/// A small deterministic generator (xorshift), one per writer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn version_of(r: &reqwest::Response) -> Option<u64> {
    let etag = r.headers().get("etag")?.to_str().ok()?;
    etag.trim_start_matches("W/").trim_matches('"').parse().ok()
}

/// One writer: requests until `until`, against `base` (a SCIM base URL).
async fn writer(
    n: usize,
    base: String,
    token: String,
    known: Arc<Mutex<Known>>,
    until: Instant,
) -> Vec<Answer> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
    let mut answers = Vec::new();
    for i in 0..100_000 {
        if Instant::now() >= until {
            break;
        }
        let request = format!("chk-{n}-{i}");
        let r = rng.next() % 100;
        let (users, groups) = {
            let k = known.lock().unwrap();
            (pick(&k.users, rng.next()), pick(&k.groups, rng.next()))
        };
        let member = pick(&known.lock().unwrap().users, rng.next());
        let scim = "application/scim+json";
        let (what, req, target) = match r {
            0..=29 => (
                "create user",
                http.post(format!("{base}/Users"))
                    .body(json!({"userName": format!("u{}", rng.next() % USER_NAMES)}).to_string()),
                None,
            ),
            30..=49 => {
                let Some((id, v)) = users else { continue };
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "displayName",
                                    "value": format!("D {i}")}],
                });
                (
                    "patch user",
                    http.patch(format!("{base}/Users/{id}"))
                        .header("if-match", format!("W/\"{v}\""))
                        .body(body.to_string()),
                    Some(id),
                )
            }
            50..=61 => {
                let Some((id, _)) = users else { continue };
                let body = json!({"userName": format!("u{}", rng.next() % USER_NAMES),
                                  "displayName": format!("P {i}")});
                (
                    "put user",
                    http.put(format!("{base}/Users/{id}"))
                        .body(body.to_string()),
                    Some(id),
                )
            }
            62..=73 => {
                let Some((id, _)) = users else { continue };
                (
                    "delete user",
                    http.delete(format!("{base}/Users/{id}")),
                    Some(id),
                )
            }
            74..=89 => {
                let members: Vec<Value> = users
                    .iter()
                    .chain(member.iter())
                    .map(|(id, _)| json!({"value": id}))
                    .collect();
                let body = json!({"displayName": format!("g{}", rng.next() % GROUP_NAMES),
                                  "members": members});
                (
                    "create group",
                    http.post(format!("{base}/Groups")).body(body.to_string()),
                    None,
                )
            }
            _ => {
                let (Some((gid, _)), Some((uid, _))) = (groups, users) else {
                    continue;
                };
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                });
                (
                    "add member",
                    http.patch(format!("{base}/Groups/{gid}"))
                        .body(body.to_string()),
                    Some(gid),
                )
            }
        };
        let sent = req
            .bearer_auth(&token)
            .header("content-type", scim)
            .header("x-request-id", &request)
            .send()
            .await;
        let (status, version, body) = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let version = version_of(&resp);
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                (Some(status), version, body)
            }
            Err(_) => {
                // The replica is down (killed): wait for it a little.
                tokio::time::sleep(Duration::from_millis(50)).await;
                (None, None, Value::Null)
            }
        };
        let id = target.or_else(|| body["id"].as_str().map(str::to_owned));
        {
            let mut k = known.lock().unwrap();
            let groups = what.contains("group") || what == "add member";
            let list = if groups { &mut k.groups } else { &mut k.users };
            match (status, &id, version) {
                (Some(200 | 201), Some(id), Some(v)) => remember(list, id, v),
                (Some(204 | 404), Some(id), _) => forget(list, id),
                _ => {}
            }
        }
        answers.push(Answer {
            request,
            what,
            status,
            id,
            version,
        });
    }
    answers
}

/// Every record of the topic, in log order per partition, with whether it is valid.
async fn read_back(log: &roster::log::KafkaLog) -> Vec<(bool, Arc<Record>)> {
    let mut out = Vec::new();
    let mut heads: HashMap<String, ChainHead> = HashMap::new();
    for partition in 0..log.partitions() {
        let mut next = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "reading the topic back timed out"
            );
            let entries = log.read(partition, next, 4096).await.unwrap();
            if entries.is_empty() {
                if log.caught_up(partition, next).await.unwrap() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            for e in entries {
                next = e.position + 1;
                let valid = heads
                    .entry(e.record.directory.clone())
                    .or_default()
                    .admit(&e.record, e.digest);
                out.push((valid, e.record));
            }
        }
    }
    out
}

/// The highest version `record` gives resource `id`.
fn version_in(record: &Record, id: &str) -> Option<u64> {
    record
        .events
        .iter()
        .filter(|e| e.resource_id.to_string() == id)
        .map(|e| e.resource_version)
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_log_across_two_replicas_a_replica_kill_and_a_broker_kill() {
    let mut broker = OwnBroker::start();
    let brokers = broker.brokers();
    let topic = common::unique_topic();
    let pg = common::fresh_database().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, token) = start_replica(da.path(), free_port(), &brokers, &topic, &pg, true);
    let token = token.unwrap();
    wait_ready(&a.root()).await;
    // The replicas share the key that seals secrets.
    std::fs::copy(da.path().join("secret.key"), db.path().join("secret.key")).unwrap();
    let b_port = free_port();
    let (b, _) = start_replica(db.path(), b_port, &brokers, &topic, &pg, false);
    wait_ready(&b.root()).await;

    let known = Arc::new(Mutex::new(Known::default()));
    let until = Instant::now() + LOAD;
    let mut tasks = Vec::new();
    for n in 0..2 * WRITERS {
        let port = if n % 2 == 0 { a.port } else { b_port };
        let base = format!("http://127.0.0.1:{port}/source/scim/default/v2");
        tasks.push(tokio::spawn(writer(
            n,
            base,
            token.clone(),
            known.clone(),
            until,
        )));
    }
    // Faults: kill -9 replica B and start it again; then kill -9 the broker and start it
    // again. Replica B is moved out to be killed (dropping it kills it).
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(b);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b, _) = start_replica(db.path(), b_port, &brokers, &topic, &pg, false);
    // The broker is killed once B is serving again (a replica starting while no broker is
    // reachable is another case: crash_recovery.rs).
    wait_ready(&b.root()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.up();

    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap());
    }
    wait_ready(&a.root()).await;
    wait_ready(&b.root()).await;

    let log = common::kafka_log(&brokers, &topic, 3).await;
    let records = read_back(&log).await;
    let mut by_request: HashMap<String, Vec<(bool, Arc<Record>)>> = HashMap::new();
    for (valid, record) in &records {
        if let Some(c) = record.events.first().and_then(|e| e.correlation_id.clone()) {
            by_request
                .entry(c)
                .or_default()
                .push((*valid, record.clone()));
        }
    }
    // Every (resource, version) a valid record left.
    let mut states = std::collections::HashSet::new();
    for (_, record) in records.iter().filter(|(v, _)| *v) {
        for e in &record.events {
            states.insert((e.resource_id.to_string(), e.resource_version));
        }
    }
    let mut problems = Vec::new();
    let mut tally: HashMap<String, usize> = HashMap::new();
    for ans in &answers {
        *tally
            .entry(format!(
                "{} {}",
                ans.what,
                ans.status.map_or("-".into(), |s| s.to_string())
            ))
            .or_default() += 1;
        let valid: Vec<&Arc<Record>> = by_request
            .get(&ans.request)
            .into_iter()
            .flatten()
            .filter(|(v, _)| *v)
            .map(|(_, r)| r)
            .collect();
        match ans.status {
            // A PATCH or PUT that changes nothing (a member already there, a value already
            // set, the same body another writer put just before) writes no record: its answer
            // must be a state some valid record left.
            Some(200)
                if valid.is_empty()
                    && matches!(ans.what, "patch user" | "put user" | "add member") =>
            {
                let id = ans.id.clone().unwrap_or_default();
                if !states.contains(&(id, ans.version.unwrap_or_default())) {
                    problems.push(format!("{ans:?}: no record, and no record left that state"));
                }
            }
            Some(200..=299) => {
                let [record] = valid[..] else {
                    problems.push(format!("{ans:?}: {} valid records", valid.len()));
                    continue;
                };
                let id = ans.id.as_deref().unwrap_or_default();
                if ans.what == "delete user" {
                    let deleted = record.events.iter().any(|e| {
                        e.resource_id.to_string() == id && matches!(e.event, Event::UserDeleted)
                    });
                    if !deleted {
                        problems.push(format!("{ans:?}: its record deletes nothing"));
                    }
                } else if version_in(record, id) != ans.version {
                    problems.push(format!(
                        "{ans:?}: its record leaves version {:?}",
                        version_in(record, id)
                    ));
                }
            }
            Some(400 | 404 | 409 | 412) if !valid.is_empty() => {
                problems.push(format!(
                    "{ans:?}: refused, yet {} valid records",
                    valid.len()
                ));
            }
            Some(400 | 404 | 409 | 412) => {}
            Some(503) | None if valid.len() > 1 => {
                problems.push(format!("{ans:?}: {} valid records", valid.len()));
            }
            Some(503) | None => {}
            Some(other) => problems.push(format!("{ans:?}: unexpected status {other}")),
        }
    }
    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort();
    eprintln!("answers: {tally:?}");
    assert!(
        problems.is_empty(),
        "{} problems: {problems:#?}",
        problems.len()
    );
    let acknowledged = answers
        .iter()
        .filter(|a| {
            a.status
                .is_some_and(|s| StatusCode::from_u16(s).unwrap().is_success())
        })
        .count();
    assert!(acknowledged > 200, "too little load: {acknowledged} writes");

    // The shared views equal a fresh replay of the topic.
    let replay = Arc::new(roster_projections::MemoryStore::new());
    let log: Arc<dyn EventLog> = Arc::new(log);
    let secret = roster::sealing::SecretKey::load(None, da.path()).unwrap();
    let keys = common::topic_keys(&brokers, &topic, Some(secret)).await;
    let log = roster::keys::opening::OpeningLog::wrap(log, keys);
    roster::pipeline::Pipeline::start(log, replay.clone(), None, common::test_key())
        .await
        .unwrap();
    let store = common::pg_store(&pg).await;
    assert!(
        common::canonical(store.as_ref()).await == common::canonical(replay.as_ref()).await,
        "the PostgreSQL views differ from a fresh replay of the topic"
    );
    drop((a, b));
}
