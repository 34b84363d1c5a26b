//! TLS to PostgreSQL (issue 17): the test cluster (scripts/postgres.sh) serves TLS with a
//! certificate from a CA of its own, for 127.0.0.1 and localhost, and admits the role
//! `roster_cert` only over TLS with its client certificate. Each sslmode is checked against
//! it, and the server is run with its views there over `verify-full`.

mod common;

use roster_projections::pg::{PgOptions, PgSslMode, PgStore, PgTls};
use std::path::PathBuf;
use std::time::Duration;

fn tls_dir() -> PathBuf {
    PathBuf::from(std::env::var("ROSTER_TEST_PG_TLS").expect(
        "ROSTER_TEST_PG_TLS is not set: run the tests with scripts/test.sh, which starts PostgreSQL",
    ))
}

/// The test cluster's port and a fresh database's name.
async fn fresh() -> (u16, String) {
    let url = common::fresh_database().await;
    let (rest, name) = url.rsplit_once('/').unwrap();
    let port = rest.rsplit_once(':').unwrap().1.parse().unwrap();
    (port, name.to_owned())
}

async fn open(url: String, tls: PgTls) -> Result<PgStore, String> {
    let options = PgOptions {
        url,
        pool_size: 2,
        timeout: Duration::from_secs(5),
        tls,
        cache_bytes: 0,
        folders: Default::default(),
    };
    PgStore::open(&options).await.map_err(|e| e.to_string())
}

fn tls(mode: PgSslMode, root: Option<PathBuf>) -> PgTls {
    PgTls {
        mode: Some(mode),
        root_cert: root,
        ..PgTls::default()
    }
}

/// Whether the connections of application `roster` to `dbname` use TLS, asked over a
/// connection of the test's own.
async fn roster_connections_use_tls(dbname: &str) -> Vec<bool> {
    let (client, conn) = tokio_postgres::connect(&common::pg_admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = $1 AND a.application_name = 'roster'",
            &[&dbname],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn each_sslmode_checks_what_libpq_checks() {
    let dir = tls_dir();
    let ca = Some(dir.join("ca.pem"));
    let (port, db) = fresh().await;
    let at = |host: &str| {
        format!("host={host} hostaddr=127.0.0.1 port={port} user=postgres dbname={db}")
    };

    // verify-full: the chain and the name.
    let store = open(at("localhost"), tls(PgSslMode::VerifyFull, ca.clone()))
        .await
        .unwrap();
    let used = roster_connections_use_tls(&db).await;
    assert!(!used.is_empty() && used.iter().all(|&t| t), "{used:?}");
    drop(store);
    let e = open(at("other.example"), tls(PgSslMode::VerifyFull, ca.clone()))
        .await
        .err()
        .expect("a certificate for another name");
    assert!(e.contains("certificate"), "{e}");
    // verify-ca: the chain only.
    open(at("other.example"), tls(PgSslMode::VerifyCa, ca.clone()))
        .await
        .unwrap();
    // A root the server's certificate does not lead to: refused, in every checking mode.
    let wrong = Some(dir.join("client.pem"));
    for mode in [
        PgSslMode::VerifyFull,
        PgSslMode::VerifyCa,
        PgSslMode::Require,
    ] {
        let e = open(at("localhost"), tls(mode, wrong.clone())).await.err();
        assert!(e.is_some_and(|e| e.contains("certificate")), "{mode:?}");
    }
    // require and prefer without a root: encrypted, not checked.
    open(at("other.example"), tls(PgSslMode::Require, None))
        .await
        .unwrap();
    open(at("other.example"), tls(PgSslMode::Prefer, None))
        .await
        .unwrap();
    // verify-full without a root of its own uses the web PKI roots, which do not hold the
    // test CA.
    assert!(open(at("localhost"), tls(PgSslMode::VerifyFull, None))
        .await
        .is_err());
    // A file that does not hold certificates says which setting and file.
    let e = open(
        at("localhost"),
        tls(PgSslMode::VerifyFull, Some(dir.join("ca.key"))),
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.contains("postgres_ssl_root_cert") && e.contains("ca.key"),
        "{e}"
    );
}

#[tokio::test]
async fn a_client_certificate_authenticates_a_role_that_requires_one() {
    let dir = tls_dir();
    let (port, db) = fresh().await;
    let url = format!("host=localhost hostaddr=127.0.0.1 port={port} user=roster_cert dbname={db}");
    let with_cert = PgTls {
        mode: Some(PgSslMode::VerifyFull),
        root_cert: Some(dir.join("ca.pem")),
        client_cert: Some(dir.join("client.pem")),
        client_key: Some(dir.join("client.key")),
    };
    open(url.clone(), with_cert.clone()).await.unwrap();
    let e = open(
        url.clone(),
        tls(PgSslMode::VerifyFull, Some(dir.join("ca.pem"))),
    )
    .await
    .err()
    .expect("the role requires a client certificate");
    assert!(e.contains("certificate"), "{e}");
    let half = PgTls {
        client_key: None,
        ..with_cert
    };
    let e = open(url, half).await.err().unwrap();
    assert!(
        e.contains("needs both postgres_ssl_cert and postgres_ssl_key"),
        "{e}"
    );
}

#[tokio::test]
async fn the_server_keeps_its_views_in_postgresql_over_verify_full() {
    let dir = tls_dir();
    let (port, db) = fresh().await;
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        postgres_ssl_mode: Some(roster::config::PostgresSslMode::VerifyFull),
        postgres_ssl_root_cert: Some(dir.join("ca.pem")),
        ..common::pg_settings(
            data.path(),
            &format!("postgres://postgres@localhost:{port}/{db}"),
        )
    };
    let app = common::TestApp::spawn_with(settings, data).await;
    let (token, _) = app.tokens();
    let (status, body) = app.create_user("default", &token, "alice").await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let (status, _) = app
        .get(&format!("{}/Users/{id}", app.scim("default")), &token)
        .await;
    assert_eq!(status, 200);
    let used = roster_connections_use_tls(&db).await;
    assert!(!used.is_empty() && used.iter().all(|&t| t), "{used:?}");
    app.stop().await;
}
