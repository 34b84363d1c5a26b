//! The `roster` command line as an operator uses it, run as the real binary against a running
//! server: tables for people and JSON for scripts, a closed standard output, errors that say
//! what to do, shell completions, and --wait on a full sync.

mod common;

use common::remote::{eventually, fast_settings, free_port, refusing_remote, status};
use common::TestApp;
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};

/// How long one command may take before the test fails naming it (a `--wait` that never
/// ends must not hold the suite).
const COMMAND_LIMIT_SECS: &str = "120";

/// `roster <args>` with no ROSTER_* variables from the environment the tests run in, killed
/// by coreutils `timeout` when it runs past [`COMMAND_LIMIT_SECS`].
fn roster(args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.args([
        "--kill-after=5",
        COMMAND_LIMIT_SECS,
        env!("CARGO_BIN_EXE_roster"),
    ]);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("ROSTER_") {
            c.env_remove(k);
        }
    }
    c
}

/// `roster <args> --server <app> --admin-token <token>`: success, standard output, and
/// standard error.
fn run(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = roster(args)
        .args(["--server", &app.root, "--admin-token", &app.admin_token])
        .output()
        .unwrap();
    texts(out)
}

fn texts(out: Output) -> (bool, String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !matches!(out.status.code(), Some(124) | Some(137)) && out.status.code().is_some(),
        "roster did not finish within {COMMAND_LIMIT_SECS} s ({:?}): {stderr}",
        out.status
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces every UUID with `<id>`, so that a table can be compared as a whole.
fn without_ids(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((i, len)) = find_uuid(rest) {
        out.push_str(&rest[..i]);
        out.push_str("<id>");
        rest = &rest[i + len..];
    }
    out.push_str(rest);
    out
}

fn find_uuid(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(35)).find_map(|i| {
        let cand = &s.get(i..i + 36)?;
        uuid::Uuid::parse_str(cand).ok().map(|_| (i, 36))
    })
}

async fn app_with_a_refusing_provider() -> TestApp {
    let (base, _users) = refusing_remote().await;
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        provider_max_attempts: 3,
        ..fast_settings(data.path())
    };
    let app = TestApp::spawn_with(settings, data).await;
    for name in ["bad@example.com", "good@example.com"] {
        let (s, _) = app.create_user("default", &app.scim_token, name).await;
        assert_eq!(s, 201);
    }
    let file = app.data.path().join("provider.json");
    std::fs::write(
        &file,
        json!({"name": "strict", "base_url": base, "mode": "default",
               "auth": {"type": "bearer", "token": "remote-secret"}})
        .to_string(),
    )
    .unwrap();
    let (ok, out, err) = run(
        &app,
        &["provider", "create", "--file", file.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert!(!out.contains("remote-secret"), "{out}");
    assert!(
        out.contains("name           strict") && out.contains("full sync      every 1h"),
        "{out}"
    );
    eventually(
        30,
        || status(&app, "strict"),
        |s| s["parked"].as_array().is_some_and(|p| p.len() == 1) && s["in_flight"] == 0,
    )
    .await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_tables_for_people_and_json_for_scripts() {
    let app = app_with_a_refusing_provider().await;

    let (ok, out, err) = run(&app, &["provider", "list"]);
    assert!(ok, "{err}");
    assert_eq!(
        without_ids(&out),
        "NAME    DIRECTORY  MODE     STATE    LAG  PENDING  PARKED  LAST ERROR\n\
         strict  default    default  running    0        0       1  1 objects parked \
         (`roster provider retry` tries them again); user <id>: 400 Bad Request: \
         refused by policy\n"
    );

    let (ok, out, err) = run(&app, &["provider", "list", "--output", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["providers"][0]["status"]["parked"], 1, "{v}");

    let (ok, out, err) = run(&app, &["provider", "status", "strict"]);
    assert!(ok, "{err}");
    assert!(out.contains("state            running"), "{out}");
    assert!(
        out.contains("last full sync ") && out.contains("2 compared: 0 unchanged, 1 created"),
        "{out}"
    );
    let parked = out.split("Parked objects\n").nth(1).unwrap_or_default();
    let mut lines = parked.lines().map(without_ids);
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("KIND  ID") && header.ends_with("ATTEMPTS  ERROR"),
        "{out}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(
        row.starts_with("user  <id>") && row.ends_with("  3  400 Bad Request: refused by policy"),
        "{out}"
    );
    assert!(!out.contains("4.2"), "no raw float durations: {out}");

    let (ok, out, err) = run(&app, &["source", "list"]);
    assert!(ok, "{err}");
    let port = app.root.rsplit(':').next().unwrap();
    let first = out.lines().take(2).collect::<Vec<_>>().join("\n");
    assert_eq!(
        first,
        format!(
            "SOURCE   DIRECTORY  OWNERSHIP  TOKENS  SCIM BASE URL\n\
             default  default    owned           1  http://127.0.0.1:{port}/source/scim/default/v2"
        )
    );
    assert!(out.contains("\n\nSOURCE   TOKEN ID"), "{out}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_followed_with_wait_ends_with_its_outcome() {
    let app = app_with_a_refusing_provider().await;
    let (ok, out, err) = run(&app, &["provider", "sync", "strict"]);
    assert!(ok, "{err}");
    assert!(out.contains("add --wait"), "{out}");
    let (ok, out, err) = run(&app, &["provider", "sync", "strict", "--wait"]);
    assert!(!ok, "a sync with a failed object fails: {out}");
    assert!(
        err.contains("full sync of strict ended with 1 failed")
            && err.contains("refused by policy"),
        "{err}"
    );
    let (ok, out, err) = run(&app, &["provider", "retry", "strict", "--wait"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "retried 1 parked objects: 0 carried, 1 parked again"
    );
    let st = status(&app, "strict").await;
    let (ok, out, err) = run(
        &app,
        &["provider", "replay", "strict", "--from", "0", "--wait"],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("replayed positions 0.."), "{out} {st}");
    // The replay carried the changes again, not the sync and retry requests it read again.
    let end = status(&app, "strict").await;
    assert_eq!(
        end["last_full_sync"]["started"], st["last_full_sync"]["started"],
        "{end}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_standard_output_ends_the_command_quietly() {
    let app = TestApp::spawn().await;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = roster(&["source", "list"])
        .args(["--server", &app.root, "--admin-token", &app.admin_token])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do() {
    let app = TestApp::spawn().await;
    let error = |args: &[&str]| {
        let (ok, out, err) = texts(roster(args).output().unwrap());
        assert!(!ok, "{out}");
        err
    };
    let err = error(&["source", "list", "--server", &app.root]);
    assert!(err.contains("ROSTER_ADMIN_TOKEN"), "{err}");
    let down = format!("http://127.0.0.1:{}", free_port());
    let err = error(&["source", "list", "--server", &down, "--admin-token", "x"]);
    assert!(
        err.contains(&format!("cannot reach Roster at {down}"))
            && err.contains("is `roster serve` running there?"),
        "{err}"
    );
    let bare = app.root.trim_start_matches("http://").to_owned();
    let err = error(&["source", "list", "--server", &bare, "--admin-token", "x"]);
    assert!(err.contains(&format!("try http://{bare}")), "{err}");
    let scim = app.scim("default");
    let err = error(&["source", "list", "--server", &scim, "--admin-token", "x"]);
    assert!(
        err.contains("take the server root, such as http://127.0.0.1"),
        "{err}"
    );
    let err = error(&[
        "source",
        "list",
        "--server",
        &app.root,
        "--admin-token",
        "wrong",
    ]);
    assert!(err.contains("refused the admin token (401)"), "{err}");
    app.stop().await;
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_roster()"),
        ("zsh", "#compdef roster"),
        ("fish", "complete -c roster"),
    ] {
        let (ok, out, err) = texts(roster(&["completion", shell]).output().unwrap());
        assert!(ok, "{err}");
        assert!(
            out.contains(marker),
            "{shell}: {}",
            &out[..out.len().min(200)]
        );
        assert!(out.contains("provider"), "{shell}");
    }
}

#[test]
fn every_argument_has_help() {
    for cmd in [
        vec!["source", "create"],
        vec!["source", "revoke"],
        vec!["provider", "create"],
        vec!["provider", "replay"],
        vec!["rebuild"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let (ok, out, err) = texts(roster(&args).output().unwrap());
        assert!(ok, "{err}");
        for line in out.lines().filter(|l| l.trim_start().starts_with('<')) {
            assert!(
                line.trim().contains("  "),
                "{cmd:?}: an argument without help: {line}"
            );
        }
    }
    let (_, out, _) = texts(roster(&["provider", "create", "--help"]).output().unwrap());
    assert!(out.contains(r#""auth": {"type": "bearer""#), "{out}");
    let (_, out, _) = texts(roster(&["provider", "replay", "--help"]).output().unwrap());
    assert!(out.contains("roster provider status"), "{out}");
}

/// `roster <args> --server <app> --admin-token <token>` with another admin token.
fn run_as(app: &TestApp, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = roster(args)
        .args(["--server", &app.root, "--admin-token", token])
        .output()
        .unwrap();
    texts(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_rotate_and_directories_and_sources_are_created_and_deleted() {
    let app = TestApp::spawn().await;

    // Rotation: issue a new token, switch to it, revoke the old one.
    let (ok, out, err) = run(&app, &["admin-token", "issue"]);
    assert!(ok, "{err}");
    let field = |out: &str, label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in {out}"))
    };
    let new = field(&out, "token   ");
    assert!(new.starts_with("rsa_"), "{out}");
    assert!(out.contains("shown only now"), "{out}");
    let (ok, out, err) = run_as(&app, &new, &["admin-token", "list"]);
    assert!(ok, "{err}");
    let rows: Vec<String> = out.lines().map(without_ids).collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["TOKEN", "ID", "PREFIX", "ISSUED", "STATE"],
        "{out}"
    );
    assert!(rows[1].starts_with("<id>  rsa_") && rows[1].ends_with("active"));
    assert!(rows[2].ends_with("active (this token)"), "{out}");
    assert!(
        !out.contains(&new) && !out.contains(&app.admin_token),
        "{out}"
    );
    assert!(out.ends_with("no configured admin_token\n"), "{out}");
    let old_id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let (ok, out, err) = run_as(&app, &new, &["admin-token", "revoke", old_id]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("revoked admin token {old_id}\n"));
    let (ok, _, err) = run(&app, &["admin-token", "list"]);
    assert!(
        !ok && err.contains("refused the admin token (401)"),
        "{err}"
    );
    let (ok, out, _) = run_as(&app, &new, &["admin-token", "list", "-o", "json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    let new_id = v["admin_tokens"][1]["id"].as_str().unwrap().to_owned();
    let (ok, _, err) = run_as(&app, &new, &["admin-token", "revoke", &new_id]);
    assert!(!ok && err.contains("last valid admin token"), "{err}");

    // Directories and sources.
    let (ok, out, err) = run_as(&app, &new, &["directory", "create", "hr"]);
    assert!(ok, "{err}");
    assert_eq!(out, "created directory hr\n");
    let (ok, out, err) = run_as(
        &app,
        &new,
        &["source", "create", "workday", "--directory", "hr"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("directory      hr"), "{out}");
    let (ok, out, _) = run_as(&app, &new, &["directory", "list"]);
    assert!(ok);
    assert_eq!(out, "DIRECTORY\ndefault\nhr\n");
    let (ok, _, err) = run_as(&app, &new, &["directory", "delete", "hr"]);
    assert!(!ok && err.contains("still holds 1 sources"), "{err}");
    let (ok, out, err) = run_as(&app, &new, &["source", "delete", "workday"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("deleted source workday"), "{out}");
    let (ok, out, err) = run_as(&app, &new, &["directory", "delete", "hr", "-o", "json"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"deleted": "hr"})
    );
    let (ok, out, _) = run_as(&app, &new, &["directory", "list", "-o", "json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"directories": ["default"]})
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_before_the_first_full_sync_is_answered_by_it() {
    let (base, _users) = refusing_remote().await;
    let app = TestApp::spawn().await;
    let (s, _) = app
        .create_user("default", &app.scim_token, "ada@example.com")
        .await;
    assert_eq!(s, 201);
    let file = app.data.path().join("provider.json");
    let write = |body: Value| std::fs::write(&file, body.to_string()).unwrap();
    write(json!({"name": "later", "base_url": base, "enabled": false,
                 "auth": {"type": "bearer", "token": "remote-secret"}}));
    let f = file.to_str().unwrap();
    let (ok, _, err) = run(&app, &["provider", "create", "--file", f]);
    assert!(ok, "{err}");
    // Asked for while the provider is disabled: the request is in the log below the cut the
    // first full sync starts from once it is enabled, and that sync answers it.
    let (ok, out, err) = run(&app, &["provider", "sync", "later", "-o", "json"]);
    assert!(ok, "{err}");
    let at = serde_json::from_str::<Value>(&out).unwrap()["position"]
        .as_u64()
        .unwrap();
    write(json!({"enabled": true}));
    let (ok, _, err) = run(&app, &["provider", "update", "later", "--file", f]);
    assert!(ok, "{err}");
    let s = eventually(
        30,
        || status(&app, "later"),
        |s| s["requests_below"].as_u64() > Some(at) && s["last_full_sync"]["finished"].is_string(),
    )
    .await;
    assert!(
        s["last_full_sync"]["requests_below"].as_u64() > Some(at),
        "{s}"
    );
    app.stop().await;
}

/// `roster audit search` fills its page from the pages after one that the server's scan limit
/// cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_search_fills_its_page_past_the_servers_scan_limit() {
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        audit_scan_limit: 2,
        ..common::settings(data.path())
    };
    let app = TestApp::spawn_with(settings, data).await;
    for name in [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ] {
        let (s, _) = app.create_user("default", &app.scim_token, name).await;
        assert_eq!(s, 201);
    }
    let filter = "name eq \"a@example.com\" or name eq \"d@example.com\"";
    let args = ["audit", "search", "--filter", filter, "--output", "json"];
    let (ok, out, err) = run(&app, &args);
    assert!(ok, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a@example.com", "d@example.com"], "{out}");
    assert!(body["next"].is_null(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_searched_followed_and_exported_from_the_command_line() {
    let app = TestApp::spawn().await;
    let (_, user) = app
        .create_user("default", &app.scim_token, "erin@example.com")
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .patch(
            &format!("{}/Users/{id}", app.scim("default")),
            &app.scim_token,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(s, 200);

    let (ok, out, err) = run(
        &app,
        &[
            "audit",
            "search",
            "--filter",
            "type eq \"user.replaced\"",
            "--since",
            "1h",
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("TIME")
            && lines[0].contains("ACTIVITY")
            && lines[0].contains("CHANGES"),
        "{out}"
    );
    for part in [
        "Update user",
        "user erin@example.com",
        "source default",
        "active: true → false",
    ] {
        assert!(lines[1].contains(part), "{part}: {out}");
    }

    let (ok, out, err) = run(&app, &["audit", "history", &id]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("Add user"), "{out}");

    let (ok, out, err) = run(&app, &["audit", "as-of", &id, "--time", "0s"]);
    assert!(ok, "{err}");
    let now: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(now["active"], false, "{out}");
    let (ok, _, err) = run(&app, &["audit", "as-of", &id, "--time", "1h"]);
    assert!(!ok);
    assert!(err.contains("existed at that moment"), "{err}");

    // The export holds every event of the log, one JSON object a line, oldest first.
    let (ok, out, err) = run(&app, &["audit", "export"]);
    assert!(ok, "{err}");
    let exported: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (ok, all, _) = run(
        &app,
        &["audit", "search", "--limit", "1000", "--output", "json"],
    );
    assert!(ok);
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(&exported, all["events"].as_array().unwrap());
    // The export's own read was recorded before it was answered: it is the last event, and
    // the last change is before it.
    let last = exported.last().unwrap();
    assert_eq!(last["type"], "audit.read", "{last}");
    assert_eq!(last["details"]["path"], "/admin/v1/audit/export", "{last}");
    let last_change = exported
        .iter()
        .rev()
        .find(|e| e["type"] != "audit.read")
        .unwrap();
    assert_eq!(last_change["type"], "user.replaced");

    // The log checks out, with each directory's head to keep elsewhere.
    let (ok, out, err) = run(&app, &["audit", "verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("directory default: ok"), "{out}");
    assert!(out.contains("head: sequence "), "{out}");

    // `tail` prints each event as it is appended.
    let mut tail = roster(&["audit", "tail", "--filter", "type eq \"user.created\""])
        .args(["--server", &app.root, "--admin-token", &app.admin_token])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.create_user("default", &app.scim_token, "frank@example.com")
        .await;
    let line = rx.recv_timeout(std::time::Duration::from_secs(30));
    // SIGTERM to `timeout`, which passes it on to roster (SIGKILL would leave roster running).
    let killed = Command::new("kill")
        .args(["-TERM", &tail.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = tail.wait();
    let line = line.expect("tail printed the new event");
    assert!(
        line.contains("user frank@example.com created by source default"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_is_erased_from_the_command_line_and_a_repeat_says_so() {
    let app = TestApp::spawn().await;
    let (_, user) = app
        .create_user("default", &app.scim_token, "frida@example.com")
        .await;
    let id = user["id"].as_str().unwrap().to_owned();

    let (ok, out, err) = run(&app, &["erase", &id, "--reference", "DSAR-7"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "erased the personal data of user {id} in directory default"
        )),
        "{out}"
    );
    assert!(
        out.contains("data key") && out.contains("destroyed"),
        "{out}"
    );
    let (s, _) = app
        .get(
            &format!("{}/Users/{id}", app.scim("default")),
            &app.scim_token,
        )
        .await;
    assert_eq!(s, 404);

    let (ok, out, err) = run(&app, &["erase", &id, "--output", "json"]);
    assert!(ok, "{err}");
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["recorded"], false, "{out}");

    let (ok, _, err) = run(&app, &["erase", &uuid::Uuid::now_v7().to_string()]);
    assert!(!ok);
    assert!(err.contains("404") || err.contains("no user"), "{err}");
    let (ok, _, err) = run(&app, &["erase", "not-an-id"]);
    assert!(!ok);
    assert!(err.contains("USER_ID"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_is_created_from_a_file_previewed_and_a_broken_one_refused_with_its_place() {
    let app = TestApp::spawn().await;
    let (_, user) = app
        .create_user("default", &app.scim_token, "Ada.Lovelace@Example.com")
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("names.cel");
    std::fs::write(&file, r#"{"userName": user.userName.lowerAscii()}"#).unwrap();
    let file = file.to_str().unwrap();

    let (ok, out, err) = run(
        &app,
        &[
            "mapping",
            "create",
            "names",
            "--kind",
            "provider_user",
            "--file",
            file,
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("provider_user") && out.contains("lowerAscii"),
        "{out}"
    );
    let (ok, out, err) = run(&app, &["mapping", "preview", "names", "--id", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("\"ada.lovelace@example.com\""), "{out}");
    let (ok, out, err) = run(&app, &["mapping", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("names") && out.contains("provider_user"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("broken.cel"),
        "{\n\"a\": user.userName +\n}",
    )
    .unwrap();
    let broken = dir.path().join("broken.cel");
    let (ok, _, err) = run(
        &app,
        &[
            "mapping",
            "update",
            "names",
            "--file",
            broken.to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("400") && err.contains("mapping \"names\": 3:"),
        "{err}"
    );
    let (ok, out, err) = run(&app, &["mapping", "delete", "names"]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted mapping names"), "{out}");

    // Ready-made mappings: listed, and a mapping created from one is an ordinary mapping.
    let (ok, out, err) = run(&app, &["mapping", "templates"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("aws-identity-center-user") && out.contains("slack-user"),
        "{out}"
    );
    let (ok, out, err) = run(
        &app,
        &[
            "mapping",
            "create",
            "aws",
            "--template",
            "aws-identity-center-user",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("provider_user") && out.contains("givenName"),
        "{out}"
    );
    let (ok, out, err) = run(&app, &["mapping", "preview", "aws", "--id", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("\"familyName\": \"Ada.Lovelace\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_given_mappings_and_what_it_wrote_is_re_mapped() {
    let app = TestApp::spawn().await;
    let (_, user) = app
        .create_user("default", &app.scim_token, "Ada.Lovelace@Example.com")
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lower.cel");
    std::fs::write(&file, r#"{"userName": user.userName.lowerAscii()}"#).unwrap();
    let file = file.to_str().unwrap();
    let (ok, _, err) = run(
        &app,
        &[
            "mapping",
            "create",
            "lower",
            "--kind",
            "source_user",
            "--file",
            file,
        ],
    );
    assert!(ok, "{err}");

    let (ok, out, err) = run(&app, &["source", "mappings", "default", "lower"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("source default runs, in order: lower"),
        "{out}"
    );
    let (ok, _, err) = run(&app, &["source", "mappings", "default", "nowhere"]);
    assert!(!ok);
    assert!(err.contains("400") && err.contains("nowhere"), "{err}");

    let sent = dir.path().join("user.json");
    std::fs::write(&sent, r#"{"userName": "Grace.Hopper@Example.com"}"#).unwrap();
    let sent = sent.to_str().unwrap();
    let (ok, out, err) = run(&app, &["source", "preview", "default", "--file", sent]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("stored:") && out.contains("\"grace.hopper@example.com\""),
        "{out}"
    );

    let (ok, out, err) = run(&app, &["source", "remap", "default"]);
    assert!(ok, "{err}");
    let users = out
        .lines()
        .find(|l| l.starts_with("users"))
        .unwrap_or_default();
    let counts: Vec<&str> = users.split_whitespace().collect();
    assert_eq!(counts, ["users", "1", "1", "0"], "{out}");
    let (_, stored) = app
        .get(
            &format!("{}/Users/{id}", app.scim("default")),
            &app.scim_token,
        )
        .await;
    assert_eq!(stored["userName"], "ada.lovelace@example.com");

    let (ok, out, err) = run(&app, &["source", "mappings", "default"]);
    assert!(ok, "{err}");
    assert!(out.contains("source default runs no mappings"), "{out}");
}
