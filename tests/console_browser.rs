//! The console in a real browser: Debian's Chromium driven through its WebDriver
//! (`ROSTER_TEST_CHROMIUM`, `ROSTER_TEST_CHROMEDRIVER`; `.ci/run` installs both and
//! `scripts/test.sh` finds them), against a real Roster
//! and scim2-server as a provider's remote. Sign in, create a source and copy its token,
//! provision a user over SCIM with it and find the user in the console, open its history,
//! watch a provider's full sync carry it, ask for a retry, sign out; a page without a session
//! leads to the sign-in page. With `ROSTER_CONSOLE_SCREENSHOTS` set to a directory, the main
//! pages are saved there as PNG (docs/console/ holds the ones docs/console.md shows).

mod common;

use common::remote::{self, Remote};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let path = std::env::var("ROSTER_TEST_CHROMEDRIVER")
        .unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
    let port = remote::free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{path} could not start ({e}): install Debian's chromium-driver (.ci/run does)")
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let chromium =
        std::env::var("ROSTER_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=en-US"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Saves the page as `name`.png when screenshots are asked for.
async fn screenshot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("ROSTER_CONSOLE_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.unwrap();
    std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!("no {css} ({e}) in {}", c.source().await.unwrap()),
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(value)
        .await
        .unwrap();
}

/// Checks that the browser is on the page whose path ends with `path`.
async fn assert_at(c: &Client, path: &str) {
    let url = c.current_url().await.unwrap();
    assert!(url.path().ends_with(path), "at {url}, not {path}");
}

/// Clicks what `locator` finds and waits until the browser has left the page for the one the
/// click loads (a click returns before a form's submission has replaced the document, so the
/// next lookup could otherwise see the old page).
async fn follow(c: &Client, locator: Locator<'_>) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(locator).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the click loaded no page in 20 s: {}",
            c.source().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, css: &str) {
    follow(c, Locator::Css(css)).await;
}

/// Reloads the page until its source holds `want` (bounded).
async fn until_page_holds(c: &Client, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let source = c.source().await.unwrap();
        if source.contains(want) {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "{want:?} not shown in {secs} s: {source}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.refresh().await.unwrap();
    }
}

#[tokio::test]
async fn an_operator_sets_up_a_source_finds_a_user_and_watches_a_provider_carry_it() {
    let app = remote::spawn().await;
    let target = Remote::start().await;
    let driver = driver().await;
    let c = browser(&driver).await;
    let console = format!("{}/console/", app.root);

    // Without a session, the console leads to its sign-in page.
    c.goto(&format!("{console}users")).await.unwrap();
    assert_at(&c, "/console/sign-in").await;
    fill(&c, "#token", "rsa_wrong").await;
    click(&c, "button[type=submit]").await;
    assert!(text(&c, "#sign-in-error")
        .await
        .contains("not a valid admin token"));
    screenshot(&c, "sign-in").await;
    fill(&c, "#token", &app.admin_token).await;
    click(&c, "button[type=submit]").await;
    assert_at(&c, "/console/users").await; // back where it was going

    // A source, and its token shown once.
    c.goto(&format!("{console}sources")).await.unwrap();
    fill(&c, "#slug", "okta").await;
    click(&c, "form[action='/console/sources'] button[type=submit]").await;
    let token = text(&c, "#new-token").await;
    assert!(token.starts_with("rst_"), "{token}");
    let copy = c
        .find(Locator::Css("button[data-copy='new-token']"))
        .await
        .unwrap();
    assert!(
        copy.is_displayed().await.unwrap(),
        "the script shows the copy button"
    );
    screenshot(&c, "source-created").await;

    // A user provisioned over SCIM with it appears in the console.
    let (s, user) = app.create_user("okta", &token, "ada@example.com").await;
    assert_eq!(s, 201, "{user}");
    c.goto(&format!("{console}users")).await.unwrap();
    fill(&c, "#q", "ada").await;
    click(&c, "form.search button[type=submit]").await;
    screenshot(&c, "users").await;
    follow(&c, Locator::LinkText("ada@example.com")).await;
    let history = text(&c, "ol.timeline").await;
    assert!(
        history.contains("Add user") && history.contains("source okta"),
        "{history}"
    );
    screenshot(&c, "user").await;

    // A mapping's editor previews the expression as it is typed, on the user just found.
    let (s, made) = app
        .post(
            &format!("{}/admin/v1/mappings", app.root),
            &app.admin_token,
            json!({"name": "titled", "kind": "provider_user", "expression": "{\"title\": user.userName}"}),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let id = user["id"].as_str().unwrap();
    c.goto(&format!("{console}mappings/titled")).await.unwrap();
    fill(&c, "#object_id", id).await;
    let editor = c.find(Locator::Css("#expression")).await.unwrap();
    editor.clear().await.unwrap();
    editor
        .send_keys("{\"title\": \"live \" + user.userName}")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = text(&c, "#preview").await;
        if shown.contains("live ada@example.com") {
            break;
        }
        assert!(Instant::now() < deadline, "no live preview: {shown:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot(&c, "mapping").await;

    // A provider to scim2-server: its full sync, asked for from its page, carries the user.
    remote::create_provider(&app, "scim2", &target, json!({})).await;
    c.goto(&format!("{console}providers/scim2")).await.unwrap();
    click(&c, "form[action$='/sync'] button").await;
    until_page_holds(&c, "Compared", 60).await;
    let users = target.users().await;
    assert!(users.contains_key("ada@example.com"), "{users:?}");
    click(&c, "form[action$='/retry'] button").await;
    assert_at(&c, "/console/providers/scim2").await;
    screenshot(&c, "provider").await;

    c.goto(&console).await.unwrap();
    screenshot(&c, "overview").await;
    c.goto(&format!("{console}audit")).await.unwrap();
    assert!(text(&c, "ol.timeline").await.contains("Request full sync"));
    screenshot(&c, "audit").await;

    // Signing out: the console is closed again.
    click(&c, "form.who button").await;
    assert_at(&c, "/console/sign-in").await;
    c.goto(&format!("{console}sources")).await.unwrap();
    assert_at(&c, "/console/sign-in").await;
    c.close().await.unwrap();
}
