//! HTTPS served by Roster itself (issue 17): certificates made by the `openssl` command line,
//! requests from reqwest (rustls) and from curl (OpenSSL), renewal without a restart, and a
//! certificate that does not load refused at start.

mod common;

use common::certs::{make_ca, make_server_cert};

use roster::app::Application;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// A client that trusts the test CA and opens a new connection for every request.
fn client(ca: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The certificate the server presents to a new client (a client of its own: one that had
/// connected before would resume its session, and the certificate is not sent again).
async fn served_certificate(ca: &Path, root: &str) -> Vec<u8> {
    let r = client(ca)
        .get(format!("{root}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

/// Replaces `to` with `from` in one rename, as certificate tools do.
fn install(from: &Path, to: &Path) {
    let staged = to.with_extension("staged");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(staged, to).unwrap();
}

#[tokio::test]
async fn scim_and_admin_are_served_over_https_and_a_renewed_certificate_is_served_without_a_restart(
) {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    make_ca(dir);
    let (first_pem, first_key) = make_server_cert(dir, "first");
    let (second_pem, second_key) = make_server_cert(dir, "second");
    let (cert, key) = (dir.join("tls.pem"), dir.join("tls.key"));
    install(&first_pem, &cert);
    install(&first_key, &key);

    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key.clone()),
        tls_reload_ms: 100,
        ..common::settings(data.path())
    };
    let app = Application::build(settings).await.unwrap();
    let first = app.first_start.as_ref().unwrap();
    let (scim_token, admin_token) = (
        first.source_token.expose().to_owned(),
        first.admin_token.expose().to_owned(),
    );
    assert!(
        first.scim_base_url.starts_with("https://"),
        "{}",
        first.scim_base_url
    );
    let port = app.local_addr().port();
    let root = format!("https://127.0.0.1:{port}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let http = client(&dir.join("ca.pem"));
    // SCIM over HTTPS, with the Location of the new user on https.
    let r = http
        .post(format!("{root}/source/scim/default/v2/Users"))
        .bearer_auth(&scim_token)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "https://127.0.0.1:{port}/source/scim/default/v2/Users/"
        )),
        "{location}"
    );
    // The admin API too.
    let r = http
        .get(format!("{root}/admin/v1/sources"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        served_certificate(&dir.join("ca.pem"), &root).await,
        der(&first_pem)
    );

    // An independent client (curl, OpenSSL) agrees, and plain HTTP is not served.
    let (ca, token) = (dir.join("ca.pem"), scim_token.clone());
    // Off the runtime's thread: the server answers on it.
    let curl = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
            .arg(ca)
            .arg(format!(
                "https://localhost:{port}/source/scim/default/v2/Users?filter=userName%20eq%20%22alice%22"
            ))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(listed["totalResults"], 1);
    // The CLI, with the private CA, and refused without it.
    let cli = |ca: Option<PathBuf>| {
        let (root, token) = (format!("https://localhost:{port}"), admin_token.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
            c.args(["source", "list", "--server", &root])
                .env("ROSTER_ADMIN_TOKEN", token)
                .env_remove("ROSTER_CA_CERT");
            if let Some(ca) = ca {
                c.arg("--ca-cert").arg(ca);
            }
            c.output().unwrap()
        })
    };
    let out = cli(Some(dir.join("ca.pem"))).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("default"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(None).await.unwrap();
    assert!(
        !out.status.success(),
        "a certificate from an unknown CA was trusted"
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // A renewal: the new certificate is served to the next connections, without a restart.
    install(&second_key, &key);
    install(&second_pem, &cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(&dir.join("ca.pem"), &root).await != der(&second_pem) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A renewal that does not load (a key of another certificate) leaves the last one serving.
    install(&first_key, &key);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        served_certificate(&dir.join("ca.pem"), &root).await,
        der(&second_pem)
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_certificate_that_does_not_load_stops_start_up_and_says_why() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    make_ca(dir);
    let (pem, _) = make_server_cert(dir, "one");
    let (_, other_key) = make_server_cert(dir, "two");
    let start = |cert: Option<PathBuf>, key: Option<PathBuf>| async move {
        let data = tempfile::tempdir().unwrap();
        let settings = roster::config::Settings {
            tls_cert: cert,
            tls_key: key,
            ..common::settings(data.path())
        };
        match Application::build(settings).await {
            Ok(_) => panic!("started"),
            Err(e) => format!("{e:#}"),
        }
    };
    let e = start(Some(pem.clone()), Some(other_key)).await;
    assert!(e.contains("does not belong to the certificate"), "{e}");
    let e = start(Some(pem.clone()), Some(dir.join("missing.key"))).await;
    assert!(
        e.contains("reading the TLS private key") && e.contains("missing.key"),
        "{e}"
    );
    let e = start(Some(dir.join("ca.key")), Some(dir.join("one.key"))).await;
    assert!(e.contains("no CERTIFICATE section"), "{e}");
    let e = start(Some(pem), None).await;
    assert!(e.contains("needs both tls_cert and tls_key"), "{e}");
}

/// With `tls_admin_client_ca`, the admin API answers only over connections that presented a
/// certificate from that CA (besides the admin token); SCIM clients need none; a certificate
/// from another CA fails the handshake; the refusal is in the audit trail.
#[tokio::test]
async fn the_admin_api_requires_a_client_certificate_when_an_admin_client_ca_is_set() {
    use common::certs::{issue, make_named_ca, Use};
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    make_ca(dir);
    let (cert, key) = make_server_cert(dir, "server");
    let admin_ca = make_named_ca(dir, "admins");
    make_named_ca(dir, "others");
    let (operator_cert, operator_key) = issue(dir, "admins", "operator", Use::Client, None);
    let identity = |ca: &str, name: &str| {
        let (cert, key) = issue(dir, ca, name, Use::Client, None);
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    };
    let trusted = |identity: Option<reqwest::Identity>| {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap());
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca.unwrap())
            .pool_max_idle_per_host(0);
        if let Some(identity) = identity {
            b = b.identity(identity);
        }
        b.build().unwrap()
    };

    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        tls_cert: Some(cert),
        tls_key: Some(key),
        tls_admin_client_ca: Some(admin_ca),
        ..common::settings(data.path())
    };
    let app = Application::build(settings).await.unwrap();
    let first = app.first_start.as_ref().unwrap();
    let (scim_token, admin_token) = (
        first.source_token.expose().to_owned(),
        first.admin_token.expose().to_owned(),
    );
    let root = format!("https://127.0.0.1:{}", app.local_addr().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let anonymous = trusted(None);
    let operator = trusted(Some(identity("admins", "operator")));
    let stranger = trusted(Some(identity("others", "stranger")));
    let sources = format!("{root}/admin/v1/sources");

    // The token alone is not enough.
    let r = anonymous
        .get(&sources)
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("requires a client certificate"),
        "{body}"
    );
    // The certificate alone is not enough either.
    let r = operator.get(&sources).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Both: served.
    let r = operator
        .get(&sources)
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A certificate from another CA does not get past the handshake.
    assert!(stranger
        .get(&sources)
        .bearer_auth(&admin_token)
        .send()
        .await
        .is_err());
    // SCIM clients present no certificate and are served.
    let r = anonymous
        .get(format!("{root}/source/scim/default/v2/Users"))
        .bearer_auth(&scim_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The CLI presents the operator's certificate when told to, and says why when not.
    let cli = |with_cert: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.args([
            "source",
            "list",
            "--server",
            &root,
            "--admin-token",
            &admin_token,
        ])
        .arg("--ca-cert")
        .arg(dir.join("ca.pem"));
        if with_cert {
            c.arg("--client-cert")
                .arg(&operator_cert)
                .arg("--client-key")
                .arg(&operator_key);
        }
        c
    };
    let (mut with, mut without) = (cli(true), cli(false));
    let (with, without) =
        tokio::task::spawn_blocking(move || (with.output().unwrap(), without.output().unwrap()))
            .await
            .unwrap();
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("default"));
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("requires a client certificate"), "{said}");
    // The refusal is in the audit trail.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = operator
            .get(format!(
                "{root}/admin/v1/audit/events?filter=type%20eq%20%22access.refused%22"
            ))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        if text.contains("no_client_certificate") {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal recorded: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
