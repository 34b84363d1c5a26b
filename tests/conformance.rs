//! scim2-tester (PyPI `scim2-tester`, through `scim2-cli`), an RFC 7643/7644 compliance checker
//! Roster did not write, run against a running server: every check passes but the ones that
//! compare a group's `members` field by field after a PATCH, where Roster fills in the
//! read-only `display` the client did not send (RFC 7643 §4.2, §7); those are allowed only if
//! the two lists differ in nothing else.

mod common;

use common::TestApp;

/// The `scim2` command that `scripts/test.sh` installs. Tests that need it fail loudly without it.
fn scim2_cli() -> String {
    std::env::var("ROSTER_TEST_SCIM2_CLI").expect(
        "ROSTER_TEST_SCIM2_CLI is not set: run the tests with `bash scripts/test.sh`, which \
         installs scim2-cli and scim2-tester from PyPI",
    )
}

/// A `Members(...)` list with every `display='...'` or `display=None` taken out.
fn without_display(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("display=") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "display=".len()..];
        let end = if let Some(quoted) = after.strip_prefix('\'') {
            1 + quoted.find('\'').map_or(quoted.len(), |i| i + 1)
        } else {
            after.find([',', ')']).unwrap_or(after.len())
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_finds_nothing_but_the_server_filled_member_display() {
    let app = TestApp::spawn().await;
    let url = app.scim("default");
    let header = format!("Authorization: Bearer {}", app.scim_token);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(scim2_cli())
            .args(["--url", &url, "test"])
            .env("SCIM_CLI_HEADERS", header)
            .output()
            .expect("scim2-cli runs")
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    let successes = lines.iter().filter(|l| l.starts_with("SUCCESS")).count();
    assert!(successes > 100, "the checks ran: {text}");
    for (i, line) in lines.iter().enumerate() {
        if !["ERROR", "CRITICAL", "WARNING"]
            .iter()
            .any(|level| line.starts_with(level))
        {
            continue;
        }
        let detail = lines.get(i + 1).copied().unwrap_or("");
        let patched = lines.get(i + 2).copied().unwrap_or("");
        let returned = lines.get(i + 3).copied().unwrap_or("");
        let display_only = detail.contains("returned unexpected value for 'members'")
            && patched.starts_with("Patched value:")
            && returned.starts_with("Returned value:")
            && without_display(patched.trim_start_matches("Patched value:"))
                == without_display(returned.trim_start_matches("Returned value:"));
        assert!(
            display_only,
            "scim2-tester reports a failure:\n{line}\n{detail}\n{patched}\n{returned}"
        );
    }
}

#[test]
fn display_is_taken_out_whatever_its_value() {
    assert_eq!(
        without_display("[Members(value='a', display=None, type='User')]"),
        without_display("[Members(value='a', display='x, y', type='User')]")
    );
    assert_ne!(
        without_display("[Members(value='a', display=None, type='User')]"),
        without_display("[Members(value='b', display=None, type='User')]")
    );
}
