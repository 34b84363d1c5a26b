//! The CLI's side of the admin API: which server to talk to and with which admin token, and
//! errors that say what to do when either is wrong or the server does not answer.

use super::render::Format;
use crate::config::Settings;
use clap::Args;
use serde_json::Value;
use std::net::SocketAddr;

/// How a command reaches the server, and how it prints.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The server's root URL, such as http://127.0.0.1:8080 (not a SCIM base URL)
    /// [default: http://<listen> from ROSTER_LISTEN or the settings file; a `--listen` given
    /// on the `roster serve` command line is not visible here].
    #[arg(long, env = "ROSTER_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// An admin token: the one the first `roster serve` printed, one from
    /// `roster admin-token issue`, or the configured `admin_token`.
    #[arg(
        long,
        env = "ROSTER_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// A PEM file of CA certificates to trust, besides the bundled web PKI roots, when the
    /// server is reached over https (a server with a certificate from a private CA).
    #[arg(long, env = "ROSTER_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// A PEM file with a client certificate and its key (or the certificate alone, with
    /// --client-key), for a server whose admin API requires one (`tls_admin_client_ca`).
    #[arg(long, env = "ROSTER_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<std::path::PathBuf>,
    /// A PEM file with the key of --client-cert.
    #[arg(
        long,
        env = "ROSTER_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
    /// `text` (tables and fields, for people) or `json` (the admin API's answer, for scripts).
    #[arg(long, short, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub output: Format,
}

/// Why a command could not get an answer from the admin API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no admin token: set ROSTER_ADMIN_TOKEN or pass --admin-token (the first \
         `roster serve` printed one)"
    )]
    NoToken,
    #[error("the server URL {0:?} needs a scheme: try http://{0}")]
    NoScheme(String),
    #[error(
        "{given:?} is a SCIM base URL; ROSTER_SERVER and --server take the server root, \
         such as {root}"
    )]
    ScimUrl { given: String, root: String },
    #[error("the server URL {given:?} is not a URL: {why}")]
    BadUrl { given: String, why: String },
    #[error(
        "cannot reach Roster at {url}: {cause}; is `roster serve` running there? \
         (set ROSTER_SERVER or --server)"
    )]
    Unreachable { url: String, cause: String },
    #[error("{url} refused the admin token (401): check ROSTER_ADMIN_TOKEN or --admin-token")]
    Refused { url: String },
    #[error("{status}: {detail}")]
    Answer { status: u16, detail: String },
    #[error("reading the CA certificates {path}: {why}")]
    CaCert { path: String, why: String },
    #[error("reading the client certificate and key {path}: {why}")]
    ClientCert { path: String, why: String },
}

/// A client of one server's admin API.
pub struct AdminClient {
    http: reqwest::Client,
    /// The server root, without a trailing slash.
    root: String,
    token: String,
    pub format: Format,
}

impl AdminClient {
    /// The client the arguments and settings describe.
    ///
    /// Fails when there is no admin token or the server URL is not a server root.
    pub fn new(args: &ClientArgs, settings: &Settings) -> Result<AdminClient, ClientError> {
        let token = args
            .admin_token
            .clone()
            .or_else(|| settings.admin_token.as_ref().map(|t| t.expose().to_owned()))
            .filter(|t| !t.is_empty())
            .ok_or(ClientError::NoToken)?;
        let root = match &args.server {
            Some(given) => server_root(given)?,
            None => {
                let listen = std::env::var("ROSTER_LISTEN")
                    .ok()
                    .and_then(|v| v.parse::<SocketAddr>().ok())
                    .unwrap_or(settings.listen);
                format!("{}://{}", settings.scheme(), reachable(listen))
            }
        };
        let mut http = reqwest::Client::builder();
        if let Some(path) = &args.ca_cert {
            let bad = |why: String| ClientError::CaCert {
                path: path.display().to_string(),
                why,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no CERTIFICATE section in the file".into()));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some(cert) = &args.client_cert {
            let bad = |why: String| ClientError::ClientCert {
                path: cert.display().to_string(),
                why,
            };
            let mut pem = std::fs::read(cert).map_err(|e| bad(e.to_string()))?;
            if let Some(key) = &args.client_key {
                pem.push(b'\n');
                pem.extend(std::fs::read(key).map_err(|e| bad(e.to_string()))?);
            }
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
            http = http.identity(identity);
        }
        Ok(AdminClient {
            // A client with roots and an identity added builds (the TLS backend is compiled
            // in, and the identity was checked above).
            http: http.build().expect("the HTTP client builds"),
            root,
            token,
            format: args.output,
        })
    }

    /// The server root this client talks to.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Sends one request to `/admin/v1{path}`; the answer's JSON (null for 204).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let resp = self.request(method, path, body).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /admin/v1{path}`, answered with a success whose body the caller reads as it comes
    /// (an export).
    pub async fn get_streamed(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// Sends one request to `/admin/v1{path}`; the response, if it is a success.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/admin/v1{path}", self.root);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.root.clone(),
            cause: root_cause(&e),
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ClientError::Refused {
                url: self.root.clone(),
            });
        }
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let detail = body.get("detail").and_then(Value::as_str).unwrap_or("");
            return Err(ClientError::Answer {
                status: status.as_u16(),
                detail: detail.to_owned(),
            });
        }
        Ok(resp)
    }
}

/// The server root a `--server` value names, or why it names none.
fn server_root(given: &str) -> Result<String, ClientError> {
    if !given.contains("://") {
        return Err(ClientError::NoScheme(given.to_owned()));
    }
    let url = reqwest::Url::parse(given).map_err(|e| ClientError::BadUrl {
        given: given.to_owned(),
        why: e.to_string(),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ClientError::BadUrl {
            given: given.to_owned(),
            why: "the scheme must be http or https".into(),
        });
    }
    let path = url.path().trim_end_matches('/');
    if path.contains("/scim") || path.ends_with("/v2") || path.contains("/admin/v1") {
        let mut root = url.clone();
        root.set_path("");
        return Err(ClientError::ScimUrl {
            given: given.to_owned(),
            root: root.as_str().trim_end_matches('/').to_owned(),
        });
    }
    Ok(given.trim_end_matches('/').to_owned())
}

/// The address a client on this machine reaches a server listening on `addr` at.
fn reachable(addr: SocketAddr) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The innermost cause of an error, such as "Connection refused (os error 111)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_url_must_be_a_root_with_a_scheme() {
        assert_eq!(
            server_root("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            server_root("https://roster.example.com").unwrap(),
            "https://roster.example.com"
        );
        for given in ["127.0.0.1:8080", "localhost:8080"] {
            let e = server_root(given).unwrap_err().to_string();
            assert!(e.contains(&format!("try http://{given}")), "{e}");
        }
        let e = server_root("http://127.0.0.1:8080/source/scim/default/v2")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server root, such as http://127.0.0.1:8080"),
            "{e}"
        );
    }

    #[test]
    fn a_server_listening_everywhere_is_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            reachable("10.1.2.3:8080".parse().unwrap()),
            "10.1.2.3:8080".parse().unwrap()
        );
    }
}
