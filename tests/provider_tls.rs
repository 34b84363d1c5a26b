//! A provider whose remote sits behind a private CA and requires client certificates (issue
//! 17): scim2-server (PyPI) behind stunnel (Debian) serving TLS with a certificate from the
//! test's own CA and requiring a client certificate from it. The provider's `tls` settings
//! carry the CA bundle and the client certificate; the key is sealed and never shown again.

mod common;

use common::certs::{issue, make_named_ca, Use};
use common::remote::{create_provider, eventually, spawn, status, Remote};
use common::stunnel::{Service, Stunnel};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_reaches_a_remote_behind_a_private_ca_with_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = make_named_ca(dir, "ca");
    let (server_cert, server_key) = issue(
        dir,
        "ca",
        "remote",
        Use::Server("DNS:localhost,IP:127.0.0.1"),
        None,
    );
    let (client_cert, client_key) = issue(dir, "ca", "roster", Use::Client, None);
    let remote = Remote::start().await;
    let tls_port = common::remote::free_port();
    let _stunnel = Stunnel::start(
        dir,
        &[Service {
            accept: tls_port,
            connect: remote.port,
            cert: server_cert.clone(),
            key: server_key,
            client_ca: Some(ca.clone()),
        }],
    );
    let https_base = remote.base.replace(
        &format!("http://127.0.0.1:{}", remote.port),
        &format!("https://127.0.0.1:{tls_port}"),
    );
    assert!(https_base.starts_with("https://"), "{https_base}");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();

    let app = spawn().await;
    let created = create_provider(
        &app,
        "private",
        &remote,
        json!({
            "base_url": https_base,
            "tls": {
                "ca_bundle": read(&ca),
                "client_cert": read(&client_cert),
                "client_key": read(&client_key),
            },
        }),
    )
    .await;
    // The key is sealed: the API says one is set and never shows it.
    assert_eq!(created["tls"]["client_key_set"], true, "{created}");
    assert!(!created.to_string().contains("PRIVATE KEY"), "{created}");
    assert!(created["tls"]["ca_bundle"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    // Without a client certificate the same remote refuses the connection.
    create_provider(
        &app,
        "no-client-cert",
        &remote,
        json!({"base_url": https_base, "tls": {"ca_bundle": read(&ca)}}),
    )
    .await;
    // Without the CA bundle, the remote's certificate does not verify.
    create_provider(&app, "no-ca", &remote, json!({"base_url": https_base})).await;

    let (token, _) = app.tokens();
    let (s, user) = app.create_user("default", &token, "alice").await;
    assert_eq!(s, 201, "{user}");
    eventually(30, || remote.users(), |u| u.contains_key("alice")).await;
    for (name, reason) in [
        ("no-client-cert", "CertificateRequired"),
        ("no-ca", "UnknownIssuer"),
    ] {
        let st = eventually(30, || status(&app, name), |s| !s["error"].is_null()).await;
        let error = st["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{name}: {st}");
    }
    let st = status(&app, "private").await;
    assert!(st["error"].is_null(), "{st}");

    // Why the remote ends a connection that offered no client certificate is found by a
    // handshake of Roster's own and a wait for the remote's first word (its TLS 1.3 alert
    // comes after the handshake, and may come before the HTTP client has sent anything); with
    // the certificate, the handshake succeeds and the remote waits for a request.
    let key = roster::sealing::SecretKey::from_base64(&format!("{}=", "A".repeat(43))).unwrap();
    let url = reqwest::Url::parse(&https_base).unwrap();
    let without = roster_events::ProviderTls {
        ca_bundle: Some(read(&ca)),
        client_cert: None,
        client_key: None,
    };
    let config = roster::provider::tls::client_config(&without, &key).unwrap();
    let found = roster::provider::tls::diagnose(&url, config).await;
    assert!(
        found
            .as_deref()
            .unwrap_or_default()
            .contains("CertificateRequired"),
        "{found:?}"
    );
    let with = roster_events::ProviderTls {
        client_cert: Some(read(&client_cert)),
        client_key: Some(key.seal(&read(&client_key))),
        ..without
    };
    let config = roster::provider::tls::client_config(&with, &key).unwrap();
    assert_eq!(roster::provider::tls::diagnose(&url, config).await, None);

    // Changes: a certificate that does not parse is refused, and leaving the key out keeps it.
    let url = format!("{}/admin/v1/providers/private", app.root);
    let (s, body) = app
        .patch(
            &url,
            &app.admin_token,
            json!({"tls": {"ca_bundle": "not a certificate"}}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = app
        .patch(
            &url,
            &app.admin_token,
            json!({"tls": {"client_cert": read(&client_cert)}}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["tls"]["client_key_set"], true, "{body}");
    let (s, body) = app
        .patch(
            &url,
            &app.admin_token,
            json!({"tls": {"client_key": read(&ca)}}),
        )
        .await;
    assert_eq!(s, 400, "a CA certificate is not the client's key: {body}");
    // A certificate that does not belong to the key kept is refused too.
    let (s, body) = app
        .patch(
            &url,
            &app.admin_token,
            json!({"tls": {"client_cert": read(&server_cert)}}),
        )
        .await;
    assert_eq!(
        s, 400,
        "the remote's certificate is not the client's: {body}"
    );
    assert!(body.to_string().contains("identity"), "{body}");
}
