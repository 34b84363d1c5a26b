//! Remote SCIM servers for the provider tests, started per test on a free loopback port and
//! stopped when dropped: scim2-server from PyPI (`ROSTER_TEST_SCIM2_SERVER`) and django-scim2
//! in the small project in `tests/django_scim_remote` (`ROSTER_TEST_DJANGO_PYTHON`), both
//! installed by `scripts/test.sh`; and the helpers the provider tests share.

use super::TestApp;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REMOTE_TOKEN: &str = "remote-secret-token";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running remote SCIM server, killed when dropped.
pub struct Remote {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    http: reqwest::Client,
    /// The remote's own files (django-scim2's database), removed with it.
    _dir: Option<tempfile::TempDir>,
}

impl Remote {
    pub async fn start() -> Remote {
        Self::start_on(free_port()).await
    }

    /// django-scim2 0.23 in `tests/django_scim_remote`: a remote that takes less than RFC 7644
    /// (see the README there).
    pub async fn django() -> Remote {
        let python = std::env::var("ROSTER_TEST_DJANGO_PYTHON").expect(
            "ROSTER_TEST_DJANGO_PYTHON is not set: run the tests with `bash scripts/test.sh`, \
             which installs django-scim2",
        );
        let project =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django_scim_remote");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let env = |c: &mut Command| {
            c.current_dir(&project)
                .env("SCIM_REMOTE_DB", dir.path().join("remote.sqlite3"))
                .env("SCIM_REMOTE_TOKEN", REMOTE_TOKEN)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        };
        let mut migrate = Command::new(&python);
        migrate.args(["manage.py", "migrate", "--noinput"]);
        env(&mut migrate);
        assert!(migrate.status().unwrap().success(), "django migrate failed");
        let mut serve = Command::new(&python);
        serve.args([
            "manage.py",
            "runserver",
            &format!("127.0.0.1:{port}"),
            "--noreload",
        ]);
        env(&mut serve);
        let child = serve.spawn().expect("starting django-scim2");
        let remote = Remote {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}/scim/v2"),
            http: reqwest::Client::new(),
            _dir: Some(dir),
        };
        remote.wait_up().await;
        remote
    }

    pub async fn start_on(port: u16) -> Remote {
        let bin = std::env::var("ROSTER_TEST_SCIM2_SERVER").expect(
            "ROSTER_TEST_SCIM2_SERVER is not set: run the tests with `bash scripts/test.sh`, \
             which installs scim2-server",
        );
        let child = Command::new(bin)
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                REMOTE_TOKEN,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting scim2-server");
        let remote = Remote {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}/v2"),
            http: reqwest::Client::new(),
            _dir: None,
        };
        remote.wait_up().await;
        remote
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = self
                .http
                .get(format!("{}/ServiceProviderConfig", self.base))
                .bearer_auth(REMOTE_TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "the remote did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every resource of `collection` (`Users` or `Groups`).
    pub async fn all(&self, collection: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let r: Value = self
                .http
                .get(format!(
                    "{}/{collection}?startIndex={start}&count=1000",
                    self.base
                ))
                .bearer_auth(REMOTE_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let page = r["Resources"].as_array().cloned().unwrap_or_default();
            let total = r["totalResults"].as_u64().unwrap_or(0) as usize;
            start += page.len();
            let empty = page.is_empty();
            out.extend(page);
            if empty || start > total {
                return out;
            }
        }
    }

    /// Creates a resource on the remote directly (as another provisioning client would).
    pub async fn create(&self, collection: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/{collection}", self.base))
            .bearer_auth(REMOTE_TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// Users by userName.
    pub async fn users(&self) -> BTreeMap<String, Value> {
        self.all("Users")
            .await
            .into_iter()
            .map(|u| (u["userName"].as_str().unwrap().to_owned(), u))
            .collect()
    }

    /// Groups by displayName, with their members' userNames / displayNames.
    pub async fn groups(&self) -> BTreeMap<String, (Value, BTreeSet<String>)> {
        // Groups first: a member a group lists was created before it was added, so the users
        // read after it hold every member (read before, a user created in between would be
        // missing).
        let groups = self.all("Groups").await;
        let users: BTreeMap<String, String> = self
            .all("Users")
            .await
            .into_iter()
            .map(|u| {
                (
                    u["id"].as_str().unwrap().to_owned(),
                    u["userName"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let names: BTreeMap<String, String> = groups
            .iter()
            .map(|g| {
                (
                    g["id"].as_str().unwrap().to_owned(),
                    g["displayName"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        groups
            .into_iter()
            .map(|g| {
                let members = g["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let v = m["value"].as_str().unwrap();
                        users
                            .get(v)
                            .or_else(|| names.get(v))
                            .cloned()
                            .unwrap_or_else(|| format!("unknown:{v}"))
                    })
                    .collect();
                (g["displayName"].as_str().unwrap().to_owned(), (g, members))
            })
            .collect()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `check` holds, or fails after `secs` with what it last saw.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(
    secs: u64,
    mut probe: F,
    check: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = probe().await;
        if check(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("not reached in {secs} s; last: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn fast_settings(data: &std::path::Path) -> roster::config::Settings {
    fast(super::settings(data))
}

/// `settings` with the provider's retries and timeouts cut short for tests.
pub fn fast(settings: roster::config::Settings) -> roster::config::Settings {
    roster::config::Settings {
        provider_retry_base_ms: 100,
        provider_retry_cap_ms: 1_000,
        provider_max_attempts: 50,
        provider_request_attempts: 2,
        provider_request_timeout_ms: 5_000,
        ..settings
    }
}

pub async fn spawn() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    TestApp::spawn_with(fast_settings(data.path()), data).await
}

pub async fn create_provider(app: &TestApp, name: &str, remote: &Remote, extra: Value) -> Value {
    let mut body = json!({
        "name": name,
        "base_url": remote.base,
        "auth": {"type": "bearer", "token": REMOTE_TOKEN},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = app
        .post(
            &format!("{}/admin/v1/providers", app.root),
            &app.admin_token,
            body,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

pub async fn status(app: &TestApp, name: &str) -> Value {
    let (s, body) = app
        .get(
            &format!("{}/admin/v1/providers/{name}/status", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

/// The provider's status once nothing is in flight or pending: what it learned and counted
/// from the tasks it carried.
pub async fn settled(app: &TestApp, name: &str) -> Value {
    eventually(
        30,
        || status(app, name),
        |st| st["in_flight"] == 0 && st["pending"] == 0,
    )
    .await
}

pub async fn create_group(app: &TestApp, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    let (s, g) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &app.scim_token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": name,
                "members": members,
            }),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    g
}

pub async fn patch(app: &TestApp, path: &str, ops: Value) -> Value {
    let r = app
        .http
        .patch(format!("{}/{path}", app.scim("default")))
        .bearer_auth(&app.scim_token)
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let (s, body) = super::parse(r).await;
    assert!(s == 200 || s == 204, "{s} {body}");
    body
}

/// A small remote that keeps users in memory and refuses (400 "refused by policy") any whose
/// userName starts with `bad`: its base URL and its users.
pub async fn refusing_remote() -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::extract::State;
    use axum::routing::get;
    type Users = Arc<Mutex<Vec<Value>>>;
    async fn config() -> axum::Json<Value> {
        axum::Json(json!({"patch": {"supported": true}, "filter": {"supported": true}}))
    }
    async fn list(State(users): State<Users>) -> axum::Json<Value> {
        let all = users.lock().unwrap().clone();
        axum::Json(json!({"totalResults": all.len(), "startIndex": 1, "Resources": all}))
    }
    async fn groups() -> axum::Json<Value> {
        axum::Json(json!({"totalResults": 0, "Resources": []}))
    }
    async fn create(
        State(users): State<Users>,
        axum::Json(mut body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        if body["userName"].as_str().unwrap_or("").starts_with("bad") {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"status": "400", "detail": "refused by policy"})),
            );
        }
        let mut users = users.lock().unwrap();
        body["id"] = json!(format!("r{}", users.len()));
        users.push(body.clone());
        (axum::http::StatusCode::CREATED, axum::Json(body))
    }
    let users: Users = Arc::default();
    let app = axum::Router::new()
        .route("/ServiceProviderConfig", get(config))
        .route("/Users", get(list).post(create))
        .route("/Groups", get(groups))
        .with_state(users.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, users)
}
