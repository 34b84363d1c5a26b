//! The real binary is loaded with concurrent creates, killed with SIGKILL mid-burst, and
//! restarted: every user that got a 201 is there, with the same id and version. Run with the
//! file log and with Kafka (tansu, started by `scripts/test.sh`); with Kafka also: a broker
//! that is unreachable at start is waited for, with a clear message and no crash loop.

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    root: String,
}

/// Where a server keeps its log: the flags that select it.
fn file_backend(data: &std::path::Path) -> Vec<String> {
    vec!["--data-dir".into(), data.display().to_string()]
}

fn kafka_backend(brokers: &str, topic: &str) -> Vec<String> {
    [
        "--log",
        "kafka",
        "--kafka-brokers",
        brokers,
        "--kafka-topic",
        topic,
    ]
    .map(String::from)
    .to_vec()
}

fn spawn_roster(port: u16, backend: &[String], stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(backend)
        .env("ROSTER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Starts `roster serve` with `backend`; returns the server and, on first start (`first`),
/// the SCIM token it printed. A restart must print nothing.
fn start(backend: &[String], first: bool) -> (Server, Option<String>) {
    let port = free_port();
    let mut child = spawn_roster(port, backend, Stdio::inherit());
    let stdout = child.stdout.take().unwrap();
    let root = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let banner = std::thread::spawn(move || {
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
        token
    });
    loop {
        assert!(Instant::now() < deadline, "server did not come up");
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // On first start the banner ends the reader; on a restart it reads until the process
    // dies, and anything it found would be a second bootstrap.
    let token = if first {
        banner.join().unwrap()
    } else {
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !banner.is_finished(),
            "a restart must not print a first-start banner"
        );
        None
    };
    (Server { child, root }, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    sigkill_mid_burst(&file_backend(data.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill_with_kafka() {
    sigkill_mid_burst(&kafka_backend(
        &common::tansu_brokers(),
        &common::unique_topic(),
    ))
    .await;
}

/// The views in PostgreSQL: after each kill, every acknowledged write is there, and the views
/// equal a fresh replay of the log (nothing applied twice, nothing skipped, whatever the kill
/// interrupted between the view write and the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill_with_postgres_views() {
    let data = tempfile::tempdir().unwrap();
    let url = common::fresh_database().await;
    let mut backend = file_backend(data.path());
    backend.extend(["--store", "postgres", "--postgres-url", &url].map(String::from));
    sigkill_mid_burst(&backend).await;

    common::assert_pg_views_equal_a_replay(data.path(), &url).await;
}

async fn sigkill_mid_burst(backend: &[String]) {
    let (mut server, token) = start(backend, true);
    let token = token.expect("first start prints the SCIM token");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();

    for round in 0..2 {
        let users = format!("{}/source/scim/default/v2/Users", server.root);
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let (http, users, token, acked) =
                (http.clone(), users.clone(), token.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("r{round}-w{worker}-{i}@example.com");
                    let r = http
                        .post(&users)
                        .bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .body(json!({"userName": name}).to_string())
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(v) = r.json::<Value>().await else {
                        return;
                    };
                    let id = v["id"].as_str().unwrap().to_owned();
                    let version = v["meta"]["version"].as_str().unwrap().to_owned();
                    acked.lock().unwrap().push((id, name, version));
                }
            }));
        }
        // Let the burst run, then kill -9 in the middle of it.
        let before = acked.lock().unwrap().len();
        while acked.lock().unwrap().len() < before + 300 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        server = start(backend, false).0;

        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 300 * (round + 1));
        let base = format!("{}/source/scim/default/v2/Users", server.root);
        for (id, name, version) in &acked {
            let r = http
                .get(format!("{base}/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "acknowledged user {name} lost");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["userName"], name.as_str());
            assert_eq!(v["meta"]["version"], version.as_str());
        }
        let list: Value = http
            .get(format!("{base}?count=0"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = list["totalResults"].as_u64().unwrap() as usize;
        // Creates in flight at the kill may have landed without an answer: never fewer.
        assert!(total >= acked.len(), "{total} < {}", acked.len());
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_writes_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let backend = file_backend(data.path());
    let (mut server, token) = start(&backend, true);
    let token = token.expect("first start prints the SCIM token");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let users = format!("{}/source/scim/default/v2/Users", server.root);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (http, users, token, acked) =
            (http.clone(), users.clone(), token.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let r = http
                    .post(&users)
                    .bearer_auth(&token)
                    .header("content-type", "application/scim+json")
                    .body(json!({"userName": format!("t{worker}-{i}")}).to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = r.json().await.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_owned());
                    }
                    // Refused or cut off by the shutdown: never acknowledged.
                    _ => return,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    for t in tasks {
        t.await.unwrap();
    }
    let (mut server, _) = start(&backend, false);
    let base = format!("{}/source/scim/default/v2/Users", server.root);
    let acked = acked.lock().unwrap().clone();
    for id in &acked {
        let r = http
            .get(format!("{base}/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged user {id} lost");
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_at_start_is_waited_for_with_a_clear_message() {
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let backend = kafka_backend(&brokers, &common::unique_topic());
    let port = free_port();
    let mut child = spawn_roster(port, &backend, Stdio::piped());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("Roster says why it is waiting");
        if line.contains("cannot reach the Kafka brokers") {
            break line;
        }
    };
    assert!(said.contains(&brokers), "{said}");
    // Still waiting, not crashed and not serving.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "Roster exited instead of waiting"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // The broker comes up: Roster creates its topic, starts, and serves.
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Command::new(
        std::env::var("ROSTER_TEST_TANSU")
            .expect("ROSTER_TEST_TANSU is not set: run the tests with `bash scripts/test.sh`"),
    )
    .current_dir(dir.path())
    .args([
        "broker",
        "--storage-engine",
        "memory://tansu/",
        "--listener-url",
        &format!("tcp://{brokers}"),
        "--advertised-listener-url",
        &format!("tcp://{brokers}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    let ready = loop {
        assert!(
            Instant::now() < deadline,
            "Roster did not start once the broker was up"
        );
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            break r.status();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    broker.kill().unwrap();
    broker.wait().unwrap();
}
