//! The web console over HTTP: signing in with an admin token and out again, sessions that end
//! when their token is revoked, CSRF and foreign origins refused without a change, the pages'
//! content (escaped), and changes made in the console recorded in the audit trail with the
//! token that signed in as their actor.

mod common;

use common::TestApp;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::{json, Value};
use std::time::Duration;

/// A browser of the console: no redirects followed, the session cookie kept by hand.
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: Option<String>,
}

/// An answer: status, headers, body.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body))
            + "name=\"csrf\" value=\"".len();
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            app,
            http,
            cookie: None,
        }
    }

    async fn answer(&mut self, r: reqwest::RequestBuilder) -> Page {
        let r = match &self.cookie {
            Some(c) => r.header(COOKIE, format!("roster_console={c}")),
            None => r,
        };
        let resp = r.send().await.unwrap();
        let headers = resp.headers().clone();
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let value = set.split(';').next().unwrap().split_once('=').unwrap().1;
            self.cookie = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        Page {
            status: resp.status().as_u16(),
            headers,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self.http.get(format!("{}{path}", self.app.root));
        self.answer(r).await
    }

    /// Posts a form, from a page of the console (its Origin).
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.app.root))
            .header(ORIGIN, &self.app.root)
            .form(form);
        self.answer(r).await
    }

    async fn sign_in(&mut self, token: &str) -> Page {
        self.post(
            "/console/sign-in",
            &[("token", token), ("next", "/console/")],
        )
        .await
    }
}

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The provider `name` as the admin API shows it.
async fn provider(app: &TestApp, name: &str) -> Value {
    let (s, shown) = app
        .get(
            &format!("{}/admin/v1/providers/{name}", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 200, "{shown}");
    shown
}

/// Events matching `filter`, oldest first, polled until `want` of them are there (bounded).
async fn events(app: &TestApp, filter: &str, want: usize) -> Vec<Value> {
    let url = format!(
        "{}/admin/v1/audit/events?limit=1000&filter={}",
        app.root,
        q(filter)
    );
    let mut found = Vec::new();
    for _ in 0..100 {
        let (s, body) = app.get(&url, &app.admin_token).await;
        assert_eq!(s, 200, "{body}");
        found = body["events"].as_array().unwrap().clone();
        if found.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}

#[tokio::test]
async fn signing_in_exchanges_an_admin_token_for_a_session_and_signing_out_ends_it() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);

    let p = b.get("/console/users?q=a").await;
    assert_eq!(p.status, 303);
    assert_eq!(
        p.location(),
        "/console/sign-in?next=%2Fconsole%2Fusers%3Fq%3Da"
    );
    let p = b.get(p.location()).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Admin token"), "{}", p.body);

    // A wrong token: refused, and the refusal is in the audit trail.
    let p = b.sign_in("rsa_not-a-token").await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("not a valid admin token"), "{}", p.body);
    assert!(b.cookie.is_none());
    let refused = events(
        &app,
        "type eq \"access.refused\" and actor.kind eq \"anonymous\"",
        1,
    )
    .await;
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["path"] == "/console/sign-in"),
        "{refused:?}"
    );

    // The admin token: a session, in a strict cookie.
    let p = b.sign_in(&app.admin_token).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location(), "/console/");
    let set = p.headers[SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(
        !set.contains(&app.admin_token),
        "the token is not the session"
    );

    let p = b.get("/console/").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Overview") && p.body.contains("Log position"));
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(p.headers["x-frame-options"], "DENY");
    assert_eq!(p.headers["cache-control"], "no-store");

    // Signing out ends the session for good: the old cookie no longer opens a page.
    let stolen = b.cookie.clone();
    let csrf = p.csrf();
    let p = b.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    assert!(b.cookie.is_none(), "the cookie is cleared");
    b.cookie = stolen;
    let p = b.get("/console/").await;
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/console/sign-in"));
}

#[tokio::test]
async fn revoking_an_admin_token_ends_the_console_sessions_it_opened() {
    let app = TestApp::spawn().await;
    let url = format!("{}/admin/v1/admin-tokens", app.root);
    let (s, issued) = app.post(&url, &app.admin_token, json!({})).await;
    assert_eq!(s, 201, "{issued}");
    let mut b = Browser::new(&app);
    assert_eq!(
        b.sign_in(issued["token"].as_str().unwrap()).await.status,
        303
    );
    assert_eq!(b.get("/console/sources").await.status, 200);

    let id = issued["id"].as_str().unwrap();
    let s = app.delete(&format!("{url}/{id}"), &app.admin_token).await;
    assert_eq!(s, 204);
    let p = b.get("/console/sources").await;
    assert_eq!(p.status, 303, "a revoked token's session is over");
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_or_from_another_site_change_nothing() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    let page = b.get("/console/sources").await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();

    let p = b.post("/console/sources", &[("slug", "okta")]).await;
    assert_eq!(p.status, 403, "no token: {}", p.body);
    let p = b
        .post("/console/sources", &[("slug", "okta"), ("csrf", "forged")])
        .await;
    assert_eq!(p.status, 403, "a forged token: {}", p.body);
    let from_elsewhere = b
        .http
        .post(format!("{}/console/sources", app.root))
        .header(ORIGIN, "https://evil.example")
        .form(&[("slug", "okta"), ("csrf", csrf.as_str())]);
    let p = b.answer(from_elsewhere).await;
    assert_eq!(p.status, 403, "another site: {}", p.body);
    let mut anonymous = Browser::new(&app);
    let p = anonymous
        .post("/console/sources", &[("slug", "okta"), ("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303, "no session: sent to sign in");

    let (_, sources) = app
        .get(&format!("{}/admin/v1/sources", app.root), &app.admin_token)
        .await;
    let slugs: Vec<&str> = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slug"].as_str().unwrap())
        .collect();
    assert!(!slugs.contains(&"okta"), "nothing was created: {slugs:?}");
}

#[tokio::test]
async fn a_source_made_in_the_console_works_and_its_making_is_in_the_audit_trail() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    let csrf = b.get("/console/sources").await.csrf();

    let p = b
        .post(
            "/console/sources",
            &[
                ("slug", "okta"),
                ("directory", "default"),
                ("ownership", "owned"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    assert!(p.body.contains("/source/scim/okta/v2"), "{}", p.body);
    let at = p.body.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
    let token = p.body[at..].split('<').next().unwrap().to_owned();
    assert!(token.starts_with("rst_"), "{token}");

    let (s, user) = app.create_user("okta", &token, "made.in@console").await;
    assert_eq!(s, 201, "the token works: {user}");

    // The same slug again: refused with the admin API's answer, and recorded as refused.
    let p = b
        .post("/console/sources", &[("slug", "okta"), ("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 409, "{}", p.body);
    assert!(
        p.body.contains("source &quot;okta&quot; exists"),
        "{}",
        p.body
    );

    let (_, source) = app
        .get(
            &format!("{}/admin/v1/sources/okta", app.root),
            &app.admin_token,
        )
        .await;
    let made = events(
        &app,
        &format!(
            "type eq \"source.created\" and resource.id eq \"{}\"",
            source["id"].as_str().unwrap()
        ),
        1,
    )
    .await;
    let made = made.first().expect("source.created of okta");
    assert_eq!(made["actor"]["kind"], "admin", "{made}");
    let (_, tokens) = app
        .get(
            &format!("{}/admin/v1/admin-tokens", app.root),
            &app.admin_token,
        )
        .await;
    let current = tokens["admin_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == true)
        .unwrap()["id"]
        .clone();
    assert_eq!(
        made["actor"]["id"], current,
        "the token that signed in acted"
    );

    let refused = events(
        &app,
        "type eq \"access.refused\" and actor.kind eq \"admin\"",
        1,
    )
    .await;
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["path"] == "/console/sources" && e["details"]["status"] == 409),
        "{refused:?}"
    );

    // Revoking the first token from the source's page.
    let page = b.get("/console/sources/okta").await;
    assert_eq!(page.status, 200);
    let token_id = source["tokens"][0]["id"].as_str().unwrap().to_owned();
    let p = b
        .post(
            &format!("/console/sources/okta/tokens/{token_id}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (s, _) = app
        .create_user("okta", &token, "after.revoke@console")
        .await;
    assert_eq!(s, 401, "the revoked token is refused");
}

#[tokio::test]
async fn pages_show_users_groups_and_their_history_as_text() {
    let app = TestApp::spawn().await;
    let token = app.create_source("entra").await;
    let evil = "<script>alert(1)</script>@example.com";
    let (s, user) = app.create_user("entra", &token, evil).await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    let users = format!("{}/Users/{id}", app.scim("entra"));
    let (s, _) = app
        .patch(
            &users,
            &token,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "displayName", "value": "Mallory <b>"}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, group) = app
        .post(
            &format!("{}/Groups", app.scim("entra")),
            &token,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                   "displayName": "Sales", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();

    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    // The search box finds names that start with what was typed, in any case, userName or
    // displayName.
    let list = b.get("/console/users?q=%3CSCRIPT").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<script>alert"), "never as markup");
    assert!(list.body.contains("1 found"), "{}", list.body);
    let by_display = b.get("/console/users?q=mallory").await;
    assert!(by_display.body.contains("1 found"), "{}", by_display.body);
    let inside = b.get("/console/users?q=example.com").await;
    assert!(inside.body.contains("0 found"), "{}", inside.body);
    let none = b
        .get("/console/users?filter=userName%20eq%20%22nobody%22")
        .await;
    assert!(none.body.contains("0 found"), "{}", none.body);
    let bad = b.get("/console/users?filter=userName%20zz").await;
    assert_eq!(bad.status, 200);
    assert!(bad.body.contains("Invalid filter"), "{}", bad.body);
    // A page far past the end is an empty page, not an overflow.
    for q in ["", "&q=mallory"] {
        let far = b.get(&format!("/console/users?page={}{q}", u64::MAX)).await;
        assert_eq!(far.status, 200, "{}", far.body);
        assert!(q.is_empty() || far.body.contains("1 found"), "{}", far.body);
        assert!(!far.body.contains("rel=\"next\""), "{}", far.body);
    }

    let detail = b.get(&format!("/console/users/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    for shown in [
        "Mallory &lt;b&gt;",
        "Sales",
        "Add user",
        "Update user",
        "displayName",
    ] {
        assert!(detail.body.contains(shown), "{shown}: {}", detail.body);
    }
    let before = b
        .get(&format!("/console/users/{id}?as_of=2000-01-01T00:00:00Z"))
        .await;
    assert!(before.body.contains("did not exist yet"), "{}", before.body);

    let g = b.get(&format!("/console/groups/{gid}")).await;
    assert_eq!(g.status, 200);
    assert!(
        g.body.contains("Members (1)") && g.body.contains("&lt;script&gt;"),
        "{}",
        g.body
    );

    let audit = b
        .get(&format!(
            "/console/audit?filter={}",
            q(&format!("resource.id eq \"{id}\""))
        ))
        .await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("Add user"), "{}", audit.body);
    let export = b
        .get("/console/audit/export?filter=type%20eq%20%22user.created%22")
        .await;
    assert_eq!(export.status, 200);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    assert_eq!(export.body.lines().count(), 1, "{}", export.body);

    assert_eq!(b.get("/console/users/not-a-uuid").await.status, 404);
    let missing = b
        .get(&format!("/console/users/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn a_providers_page_shows_its_status_and_takes_a_full_sync_a_replay_and_a_dry_run() {
    let app = TestApp::spawn().await;
    let (s, created) = app
        .post(
            &format!("{}/admin/v1/providers", app.root),
            &app.admin_token,
            json!({"name": "slack", "base_url": "http://127.0.0.1:9/scim/v2",
                   "auth": {"type": "bearer", "token": "t"}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    let list = b.get("/console/providers").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("/console/providers/slack"),
        "{}",
        list.body
    );
    // The manager samples each provider's lag as soon as it sees the provider, then every
    // minute: the status has this hour, and the pages chart it.
    let status_path = format!("{}/admin/v1/providers/slack/status", app.root);
    let mut sampled = Value::Null;
    for _ in 0..100 {
        let (_, status) = app.get(&status_path, &app.admin_token).await;
        sampled = status["lag_history"].clone();
        if sampled.as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let hours = sampled.as_array().expect("lag_history is a list");
    assert_eq!(hours.len(), 1, "{sampled}");
    assert!(hours[0]["samples"].as_u64() >= Some(1), "{sampled}");
    assert!(
        hours[0]["hour"]
            .as_str()
            .is_some_and(|h| h.ends_with(":00:00Z")),
        "{sampled}"
    );
    let page = b.get("/console/providers/slack").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Full sync") && page.body.contains("Parked"));
    assert!(page.body.contains("Lag, last 24 hours"), "{}", page.body);
    assert!(
        page.body.contains(" records behind</title>"),
        "{}",
        page.body
    );
    let overview = b.get("/console/").await;
    assert!(
        overview
            .body
            .contains("slack: the most records it was behind in each of the last 24 hours"),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains(" records behind</title>"),
        "{}",
        overview.body
    );
    let p = b
        .post("/console/providers/slack/sync", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let asked = events(&app, "type eq \"provider.sync_requested\"", 1).await;
    assert_eq!(asked.len(), 1, "{asked:?}");

    // A replay from a position: past the log's end or not a number, it is refused and nothing
    // is asked; from 0, it is recorded.
    let csrf = page.csrf();
    for bad in ["1000000", "-1", "two"] {
        let refused = b
            .post(
                "/console/providers/slack/replay",
                &[("csrf", &csrf), ("from", bad)],
            )
            .await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
        assert!(refused.body.contains("position"), "{}", refused.body);
    }
    // A full sync asked after the refusals: once it is in the audit index, so is everything
    // before it, and no replay is.
    let p = b
        .post("/console/providers/slack/sync", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let asked = events(&app, "type eq \"provider.sync_requested\"", 2).await;
    assert_eq!(asked.len(), 2, "{asked:?}");
    let replays = events(&app, "type eq \"provider.replay_requested\"", 0).await;
    assert!(replays.is_empty(), "{replays:?}");
    let replayed = b
        .post(
            "/console/providers/slack/replay",
            &[("csrf", &csrf), ("from", "0")],
        )
        .await;
    assert_eq!(replayed.status, 303, "{}", replayed.body);
    let asked = events(&app, "type eq \"provider.replay_requested\"", 1).await;
    assert_eq!(asked.len(), 1, "{asked:?}");

    // Dry run on: the provider's settings say so, the page lists what it plans; then off.
    assert!(page.body.contains("value=\"on\"") && page.body.contains(">Dry run<"));
    let on = b
        .post(
            "/console/providers/slack/dry-run",
            &[("csrf", &csrf), ("dry_run", "on")],
        )
        .await;
    assert_eq!(on.status, 303, "{}", on.body);
    let shown = provider(&app, "slack").await;
    assert_eq!(shown["dry_run"], true, "{shown}");
    let page = b.get("/console/providers/slack").await;
    assert!(
        page.body.contains("Planned by the dry run") && page.body.contains("Turn dry run off"),
        "{}",
        page.body
    );
    let off = b
        .post(
            "/console/providers/slack/dry-run",
            &[("csrf", &csrf), ("dry_run", "off")],
        )
        .await;
    assert_eq!(off.status, 303, "{}", off.body);
    let shown = provider(&app, "slack").await;
    assert_eq!(shown["dry_run"], false, "{shown}");
    let odd = b
        .post(
            "/console/providers/slack/dry-run",
            &[("csrf", &csrf), ("dry_run", "maybe")],
        )
        .await;
    assert_eq!(odd.status, 400, "{}", odd.body);
    assert_eq!(b.get("/console/providers/nope").await.status, 404);
}

#[tokio::test]
async fn a_mapping_is_made_previewed_as_edited_saved_and_deleted_in_the_console() {
    let app = TestApp::spawn().await;
    let (s, user) = app
        .create_user("default", &app.scim_token, "grace@example.com")
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    let csrf = b.get("/console/mappings").await.csrf();

    let expression = r#"{"title": "was " + user.userName}"#;
    let p = b
        .post(
            "/console/mappings",
            &[
                ("csrf", &csrf),
                ("name", "titled"),
                ("kind", "provider_user"),
                ("directory", "default"),
                ("expression", expression),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location(), "/console/mappings/titled");
    let editor = b.get("/console/mappings/titled").await;
    assert_eq!(editor.status, 200);
    assert!(editor.body.contains("provider_user"), "{}", editor.body);

    // The preview runs the expression as edited, not as saved.
    let edited = r#"{"title": "now " + user.userName}"#;
    let p = b
        .post(
            "/console/mappings/titled/preview",
            &[("csrf", &csrf), ("expression", edited), ("object_id", &id)],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("now grace@example.com"), "{}", p.body);
    let (_, saved) = app
        .get(
            &format!("{}/admin/v1/mappings/titled", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(saved["expression"], expression, "a preview saves nothing");
    let broken = b
        .post(
            "/console/mappings/titled/preview",
            &[
                ("csrf", &csrf),
                ("expression", "{\"title\": "),
                ("object_id", &id),
            ],
        )
        .await;
    assert_eq!(broken.status, 200);
    assert!(broken.body.contains("badge bad"), "{}", broken.body);

    // Saving: checked as the admin API checks it.
    let p = b
        .post(
            "/console/mappings/titled",
            &[("csrf", &csrf), ("expression", "{\"title\": ")],
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    let p = b
        .post(
            "/console/mappings/titled",
            &[
                ("csrf", &csrf),
                ("expression", edited),
                ("description", "Titles"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (_, saved) = app
        .get(
            &format!("{}/admin/v1/mappings/titled", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(saved["expression"], edited);
    assert_eq!(saved["description"], "Titles");

    let p = b
        .post("/console/mappings/titled/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/console/mappings/titled").await.status, 404);
}

#[tokio::test]
async fn a_provider_is_made_and_changed_in_the_console_with_its_secrets_never_shown() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    let csrf = b.get("/console/providers/new").await.csrf();
    let secret = "remote-token-never-shown";
    let p = b
        .post(
            "/console/providers",
            &[
                ("csrf", &csrf),
                ("name", "slack"),
                ("directory", "default"),
                ("base_url", "http://127.0.0.1:9/scim/v2"),
                ("mode", "slack"),
                ("auth_type", "bearer"),
                ("token", secret),
                ("concurrency", "4"),
                ("full_sync_interval_secs", "0"),
                ("mappings", ""),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    assert!(
        p.body.contains("did not answer as a SCIM server"),
        "the check's warning: {}",
        p.body
    );
    let shown = provider(&app, "slack").await;
    assert_eq!(shown["mode"], "slack");
    assert_eq!(shown["concurrency"], 4);

    // Scope and TLS: a private CA and a client certificate, its key write-only.
    let certs = tempfile::tempdir().unwrap();
    let ca = std::fs::read_to_string(common::certs::make_named_ca(certs.path(), "ca")).unwrap();
    let (cert, key) = common::certs::issue(
        certs.path(),
        "ca",
        "roster",
        common::certs::Use::Client,
        None,
    );
    let (cert, key) = (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    );
    let token = app.create_source("entra").await;
    let (s, group) = app
        .post(
            &format!("{}/Groups", app.scim("entra")),
            &token,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"}),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let p = b
        .post(
            "/console/providers/slack",
            &[
                ("csrf", &csrf),
                ("base_url", "http://127.0.0.1:9/scim/v2"),
                ("mode", "slack"),
                ("auth_type", "bearer"),
                ("concurrency", "4"),
                ("enabled", "on"),
                ("exclude_service_accounts", "on"),
                ("access_groups", &format!("{group}, {group}")),
                ("ca_bundle", &ca),
                ("client_cert", &cert),
                ("client_key", &key),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let shown = provider(&app, "slack").await;
    assert_eq!(shown["scope"]["exclude_service_accounts"], true);
    assert_eq!(shown["scope"]["access_groups"], json!([group]));
    assert_eq!(
        shown["tls"]["ca_bundle"],
        ca.trim(),
        "saved as given, trimmed"
    );
    assert_eq!(shown["tls"]["client_key_set"], true);
    let bad = b
        .post(
            "/console/providers/slack",
            &[
                ("csrf", &csrf),
                ("base_url", "http://127.0.0.1:9/scim/v2"),
                ("auth_type", "bearer"),
                ("ca_bundle", "not a certificate"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("ca_bundle"), "{}", bad.body);

    let edit = b.get("/console/providers/slack/edit").await;
    assert_eq!(edit.status, 200);
    assert!(!edit.body.contains(secret), "a secret is write-only");
    assert!(
        edit.body.contains("BEGIN CERTIFICATE") && !edit.body.contains("PRIVATE KEY"),
        "certificates are shown, the key never: {}",
        edit.body
    );
    assert!(edit.body.contains("one is saved, left empty it is kept"));
    // Saved with the token left empty: the token is kept, the rest changes.
    let p = b
        .post(
            "/console/providers/slack",
            &[
                ("csrf", &csrf),
                ("name", "slack"),
                ("base_url", "http://127.0.0.1:9/scim/v2"),
                ("mode", "slack"),
                ("auth_type", "bearer"),
                ("token", ""),
                ("concurrency", "2"),
                ("dry_run", "on"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let shown = provider(&app, "slack").await;
    assert_eq!(shown["concurrency"], 2);
    assert_eq!(shown["dry_run"], true);
    assert_eq!(
        shown["tls"],
        json!({"ca_bundle": null, "client_cert": null, "client_key_set": false}),
        "emptied certificate fields clear them, and the key with the certificate"
    );
    assert_eq!(shown["scope"]["access_groups"], json!([]));
    assert_eq!(shown["enabled"], false, "an unticked box is false");
    let p = b
        .post(
            "/console/providers/slack",
            &[
                ("csrf", &csrf),
                ("base_url", "http://127.0.0.1:9/v2"),
                ("auth_type", "basic"),
            ],
        )
        .await;
    assert_eq!(p.status, 400, "basic needs a username: {}", p.body);

    let p = b
        .post("/console/providers/slack/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/console/providers/slack").await.status, 404);
}

#[tokio::test]
async fn the_overview_charts_the_activity_and_the_rebuild_page_says_what_it_needs() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_token).await;
    let p = b.get("/console/").await;
    assert!(
        p.body.contains("<svg") && p.body.contains("events recorded in the last 24 hours"),
        "{}",
        p.body
    );
    let rebuild = b.get("/console/rebuild").await;
    assert_eq!(rebuild.status, 200);
    assert!(
        rebuild.body.contains("rebuilt from the log at every start"),
        "{}",
        rebuild.body
    );
    let p = b
        .post("/console/rebuild", &[("csrf", &rebuild.csrf())])
        .await;
    assert_eq!(p.status, 409, "{}", p.body);
}
