//! TLS and SASL to Kafka (issue 17). tansu speaks plain TCP only, so each test puts stunnel
//! (Debian's TLS terminator) in front of a tansu of its own and has tansu advertise
//! stunnel's port: every connection librdkafka makes, the bootstrap one and those to the
//! advertised broker, is TLS. Certificates come from the openssl command line. SASL is
//! checked against tansu's own SCRAM implementation (credentials stored with `tansu user
//! create`).

mod common;

use common::broker::{free_port, OwnBroker};
use common::certs::{issue, make_named_ca, Use};
use common::stunnel::{Service, Stunnel};
use roster::app::Application;
use roster::config::{Settings, StoreBackend};
use roster::log::{EventLog, KafkaLog, KafkaOptions, KafkaProtocol, KafkaSecurity, SaslMechanism};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOCAL: &str = "DNS:localhost,IP:127.0.0.1";

/// A tansu behind stunnel: `tls_port` is the port it advertises.
struct TlsBroker {
    broker: OwnBroker,
    _stunnel: Stunnel,
    tls_port: u16,
}

impl TlsBroker {
    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }
}

/// Starts tansu (with SASL if `users` are given: each `(name, password, mechanism)` is
/// stored first) behind stunnel on a TLS port with `cert`, requiring client certificates from
/// `client_ca` if set, plus `extra` TLS ports (refusal cases) forwarding to the same tansu.
fn tls_broker(
    dir: &Path,
    cert: (PathBuf, PathBuf),
    client_ca: Option<PathBuf>,
    users: &[(&str, &str, &str)],
    extra: Vec<Service>,
) -> TlsBroker {
    let tls_port = free_port();
    let mut broker = OwnBroker::stopped();
    broker.advertise(tls_port);
    if !users.is_empty() {
        broker.up();
        for (user, password, mechanism) in users {
            broker.add_scram_user(user, password, mechanism);
        }
        broker.kill();
        broker.authentication = true;
    }
    broker.up();
    let mut services = vec![Service {
        accept: tls_port,
        connect: broker.port(),
        cert: cert.0,
        key: cert.1,
        client_ca,
    }];
    services.extend(extra.into_iter().map(|s| Service {
        connect: broker.port(),
        ..s
    }));
    let stunnel = Stunnel::start(dir, &services);
    TlsBroker {
        broker,
        _stunnel: stunnel,
        tls_port,
    }
}

fn options(brokers: &str, security: KafkaSecurity) -> KafkaOptions {
    KafkaOptions {
        security,
        ..common::kafka_options(brokers, &common::unique_topic(), 2)
    }
}

/// Opens the log, failing the test if opening takes longer than a minute either way.
async fn open(options: KafkaOptions) -> Result<KafkaLog, String> {
    tokio::time::timeout(Duration::from_secs(60), KafkaLog::open(options))
        .await
        .expect("opening the log neither succeeded nor gave up within a minute")
        .map_err(|e| e.to_string())
}

/// Appends a record and reads it back through a fresh consumer.
async fn round_trip(log: &KafkaLog) {
    let record = common::record("acme", 0, "tls", 1);
    let partition = log.partition("acme");
    let at = log.append(vec![record]).await.unwrap()[0];
    let read = log.read(partition, at, 1).await.unwrap();
    assert_eq!(read.len(), 1, "the record appended over TLS reads back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_serves_https_with_its_log_on_kafka_over_mutual_tls_and_its_views_on_postgresql_over_verify_full(
) {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = make_named_ca(dir, "ca");
    let broker = tls_broker(
        dir,
        issue(dir, "ca", "broker", Use::Server(LOCAL), None),
        Some(ca.clone()),
        &[],
        vec![],
    );
    let (client_cert, client_key) = issue(dir, "ca", "roster", Use::Client, None);
    let (https_cert, https_key) = issue(dir, "ca", "https", Use::Server(LOCAL), None);

    // PostgreSQL's own CA and server certificate (scripts/postgres.sh).
    let pg_tls = PathBuf::from(std::env::var("ROSTER_TEST_PG_TLS").unwrap());
    let url = common::fresh_database().await;
    let (rest, db) = url.rsplit_once('/').unwrap();
    let port = rest.rsplit_once(':').unwrap().1;

    let data = tempfile::tempdir().unwrap();
    let topic = common::unique_topic();
    let settings = Settings {
        tls_cert: Some(https_cert),
        tls_key: Some(https_key),
        kafka_security_protocol: KafkaProtocol::Ssl,
        kafka_ssl_ca: Some(ca.clone()),
        kafka_ssl_cert: Some(client_cert.clone()),
        kafka_ssl_key: Some(client_key.clone()),
        store: StoreBackend::Postgres,
        postgres_url: Some(roster::auth::Secret::new(format!(
            "postgres://postgres@localhost:{port}/{db}"
        ))),
        postgres_ssl_mode: Some(roster::config::PostgresSslMode::VerifyFull),
        postgres_ssl_root_cert: Some(pg_tls.join("ca.pem")),
        ..common::kafka_settings(data.path(), &broker.brokers(), &topic)
    };
    let app = Application::build(settings).await.unwrap();
    let first = app.first_start.as_ref().unwrap();
    let (scim_token, admin_token) = (
        first.source_token.expose().to_owned(),
        first.admin_token.expose().to_owned(),
    );
    let root = format!("https://localhost:{}", app.local_addr().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let users = format!("{root}/source/scim/default/v2/Users");
    let r = http
        .post(&users)
        .bearer_auth(&scim_token)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .get(format!("{users}?filter=userName%20eq%20%22alice%22"))
        .bearer_auth(&scim_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["totalResults"], 1, "{body}");
    let r = http
        .get(format!("{root}/admin/v1/sources"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // The records are on the broker: read them over TLS with the same client certificate.
    let log = open(KafkaOptions {
        topic,
        partitions: 3,
        ..options(
            &broker.brokers(),
            KafkaSecurity {
                protocol: KafkaProtocol::Ssl,
                ca: Some(ca),
                cert: Some(client_cert),
                key: Some(client_key),
                ..KafkaSecurity::default()
            },
        )
    })
    .await
    .unwrap();
    let mut records = 0;
    for p in 0..log.partitions() {
        records += log.read(p, 0, 1000).await.unwrap().len();
    }
    assert!(
        records >= 2,
        "the first start and alice's creation: {records}"
    );
    log.close().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_an_expired_certificate_a_wrong_name_or_no_client_certificate_is_refused_at_start(
) {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = make_named_ca(dir, "ca");
    make_named_ca(dir, "other");
    let (expired, wrong_ca, wrong_name, needs_client) =
        (free_port(), free_port(), free_port(), free_port());
    let service = |accept: u16, cert: (PathBuf, PathBuf), client_ca: Option<PathBuf>| Service {
        accept,
        connect: 0,
        cert: cert.0,
        key: cert.1,
        client_ca,
    };
    let extra = vec![
        service(
            expired,
            issue(
                dir,
                "ca",
                "expired",
                Use::Server(LOCAL),
                Some(("20200101000000Z", "20200102000000Z")),
            ),
            None,
        ),
        service(
            wrong_ca,
            issue(dir, "other", "stranger", Use::Server(LOCAL), None),
            None,
        ),
        service(
            wrong_name,
            issue(
                dir,
                "ca",
                "elsewhere",
                Use::Server("DNS:kafka.example.com"),
                None,
            ),
            None,
        ),
        service(
            needs_client,
            issue(dir, "ca", "strict", Use::Server(LOCAL), None),
            Some(ca.clone()),
        ),
    ];
    let broker = tls_broker(
        dir,
        issue(dir, "ca", "broker", Use::Server(LOCAL), None),
        None,
        &[],
        extra,
    );
    let ssl = KafkaSecurity {
        protocol: KafkaProtocol::Ssl,
        ca: Some(ca.clone()),
        ..KafkaSecurity::default()
    };
    // The good port works with this configuration.
    let log = open(options(&broker.brokers(), ssl.clone())).await.unwrap();
    round_trip(&log).await;
    log.close().await;

    for (port, case, words) in [
        (expired, "an expired certificate", "certificate expired"),
        (wrong_ca, "a certificate from another CA", "UnknownIssuer"),
        (
            wrong_name,
            "a certificate for another name",
            "not valid for name",
        ),
        (
            needs_client,
            "no client certificate",
            "alert certificate required",
        ),
    ] {
        let e = open(options(&format!("127.0.0.1:{port}"), ssl.clone()))
            .await
            .err()
            .unwrap_or_else(|| panic!("{case}: started"));
        assert!(
            e.contains("TLS handshake with a Kafka broker failed") && e.contains(words),
            "{case}: {e}"
        );
        assert!(
            e.contains("kafka_ssl_"),
            "{case}: the message names the settings: {e}"
        );
    }

    // The whole server refuses to start too, and says why.
    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        kafka_security_protocol: KafkaProtocol::Ssl,
        kafka_ssl_ca: Some(ca),
        ..common::kafka_settings(
            data.path(),
            &format!("127.0.0.1:{expired}"),
            &common::unique_topic(),
        )
    };
    let e = match tokio::time::timeout(Duration::from_secs(60), Application::build(settings))
        .await
        .expect("start-up gave up within a minute")
    {
        Ok(_) => panic!("started against an expired certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("TLS handshake with a Kafka broker failed"),
        "{e}"
    );
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_with_scram_authenticates_and_wrong_credentials_are_refused() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = make_named_ca(dir, "ca");
    let broker = tls_broker(
        dir,
        issue(dir, "ca", "broker", Use::Server(LOCAL), None),
        None,
        &[
            ("roster", "correct horse", "scram512"),
            ("replica", "battery staple", "scram256"),
        ],
        vec![],
    );
    assert!(broker.broker.authentication);
    let sasl = |mechanism, user: &str, password: &str| KafkaSecurity {
        protocol: KafkaProtocol::SaslSsl,
        ca: Some(ca.clone()),
        sasl_mechanism: Some(mechanism),
        sasl_username: Some(user.into()),
        sasl_password: Some(password.into()),
        ..KafkaSecurity::default()
    };
    for (mechanism, user, password) in [
        (SaslMechanism::ScramSha512, "roster", "correct horse"),
        (SaslMechanism::ScramSha256, "replica", "battery staple"),
    ] {
        let log = open(options(&broker.brokers(), sasl(mechanism, user, password)))
            .await
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}"));
        round_trip(&log).await;
        log.close().await;
    }

    for (security, case) in [
        (
            sasl(SaslMechanism::ScramSha512, "roster", "wrong"),
            "a wrong password",
        ),
        (
            sasl(SaslMechanism::ScramSha512, "nobody", "correct horse"),
            "an unknown user",
        ),
    ] {
        let e = open(options(&broker.brokers(), security))
            .await
            .err()
            .unwrap_or_else(|| panic!("{case}: started"));
        assert!(
            e.contains("a Kafka broker refused Roster's credentials"),
            "{case}: {e}"
        );
    }
    // Without credentials, a broker that requires them answers nothing: not a start either.
    let plain_tls = KafkaSecurity {
        protocol: KafkaProtocol::Ssl,
        ca: Some(ca),
        ..KafkaSecurity::default()
    };
    let refused = tokio::time::timeout(
        Duration::from_secs(8),
        KafkaLog::open(options(&broker.brokers(), plain_tls)),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a broker that requires SASL was used without it"
    );
}

/// What the token endpoint was sent: the `Authorization` header and the form body.
type TokenRequests = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// An OpenID Connect token endpoint for the client `roster` with the secret `s3cret`: its
/// tokens are JWTs with `sub` and `exp`, which is all librdkafka reads of them.
async fn token_endpoint() -> (String, TokenRequests) {
    use axum::http::{HeaderMap, StatusCode};
    use base64::Engine;
    let seen = TokenRequests::default();
    let record = seen.clone();
    let handler = move |headers: HeaderMap, body: String| {
        let record = record.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            record.lock().unwrap().push((auth.clone(), body));
            let b64 = base64::engine::general_purpose::STANDARD;
            if auth != format!("Basic {}", b64.encode("roster:s3cret")) {
                let refused = serde_json::json!({"error": "invalid_client"});
                return (StatusCode::UNAUTHORIZED, axum::Json(refused));
            }
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let exp = chrono::Utc::now().timestamp() + 3600;
            let token = format!(
                "{}.{}.{}",
                url.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
                url.encode(format!(r#"{{"sub":"roster","exp":{exp}}}"#)),
                url.encode("signature")
            );
            let body = serde_json::json!({
                "access_token": token, "token_type": "Bearer", "expires_in": 3600
            });
            (StatusCode::OK, axum::Json(body))
        }
    };
    let app = axum::Router::new().route("/token", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// OAUTHBEARER as far as it can be tested here: no Kafka-protocol broker that runs on this
/// machine accepts it (tansu checks PLAIN and SCRAM credentials only and refuses an
/// OAUTHBEARER token), so the test checks that Roster gets a token from the OpenID Connect
/// endpoint with its client credentials and scope, that it then authenticates to the broker
/// with it, and that both a refused token request and a broker that refuses the token stop
/// the start with the reason instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_gets_its_token_from_the_oidc_endpoint_and_refusals_stop_the_start() {
    use base64::Engine;
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca = make_named_ca(dir, "ca");
    let broker = tls_broker(
        dir,
        issue(dir, "ca", "broker", Use::Server(LOCAL), None),
        None,
        &[("roster", "correct horse", "scram512")],
        vec![],
    );
    let (token_url, seen) = token_endpoint().await;
    let oauth = |secret: &str| KafkaSecurity {
        protocol: KafkaProtocol::SaslSsl,
        ca: Some(ca.clone()),
        sasl_mechanism: Some(SaslMechanism::OAuthBearer),
        oauth: roster::log::OAuthClient {
            token_url: Some(token_url.clone()),
            client_id: Some("roster".into()),
            client_secret: Some(secret.into()),
            scope: Some("kafka".into()),
        },
        ..KafkaSecurity::default()
    };

    let e = open(options(&broker.brokers(), oauth("s3cret")))
        .await
        .err()
        .expect("a broker without OAUTHBEARER let Roster in");
    // Refused in the SASL exchange, after the token was sent: not waited on as an outage.
    assert!(
        e.contains("a Kafka broker refused Roster's credentials") && e.contains("AUTH_REQ"),
        "{e}"
    );
    {
        let seen = seen.lock().unwrap();
        let (auth, body) = seen.first().expect("no token was asked for");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(auth, &format!("Basic {}", b64.encode("roster:s3cret")));
        assert!(body.contains("grant_type=client_credentials"), "{body}");
        assert!(body.contains("scope=kafka"), "{body}");
    }

    let e = open(options(&broker.brokers(), oauth("wrong")))
        .await
        .err()
        .expect("a refused token request let Roster in");
    assert!(
        e.contains("no OAUTHBEARER token could be had from kafka_oauth_token_url")
            && e.contains("invalid_client"),
        "{e}"
    );
}
