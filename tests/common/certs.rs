//! Certificates for TLS tests, made by the `openssl` command line: private CAs, server
//! certificates for a name, client certificates, and certificates already expired.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (`ca.pem`, `ca.key`) in `dir`.
pub fn make_ca(dir: &Path) {
    make_named_ca(dir, "ca");
}

/// A private CA (`<name>.pem`, `<name>.key`) in `dir`.
pub fn make_named_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=Roster test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// What a certificate is for.
pub enum Use<'a> {
    /// A server's, for the subjectAltName entries given (`DNS:localhost,IP:127.0.0.1`).
    Server(&'a str),
    /// A client's (extendedKeyUsage clientAuth), with this common name.
    Client,
}

/// A certificate and key signed by the CA `ca` (made by [`make_named_ca`]), as `<name>.pem`
/// and `<name>.key`, valid from `from` to `until` (`YYYYMMDDHHMMSSZ`; None: from now for two
/// days).
pub fn issue(
    dir: &Path,
    ca: &str,
    name: &str,
    usage: Use<'_>,
    dates: Option<(&str, &str)>,
) -> (PathBuf, PathBuf) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    let extensions = match usage {
        Use::Server(names) => format!(
            "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
        Use::Client => "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                        extendedKeyUsage=clientAuth\n"
            .to_owned(),
    };
    // `openssl ca` rather than `x509 -req`: it takes any validity period, past ones too.
    let db = dir.join(format!("{name}.db"));
    std::fs::write(&db, "").unwrap();
    std::fs::write(
        dir.join(format!("{name}.cnf")),
        format!(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = {name}.db\nnew_certs_dir = .\n\
             rand_serial = yes\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n[ext]\n{extensions}"
        ),
    )
    .unwrap();
    let (config, ca_pem, ca_key) = (
        format!("{name}.cnf"),
        format!("{ca}.pem"),
        format!("{ca}.key"),
    );
    let mut args = vec![
        "ca",
        "-batch",
        "-notext",
        "-config",
        &config,
        "-cert",
        &ca_pem,
        "-keyfile",
        &ca_key,
        "-in",
        &csr,
        "-out",
        &pem,
        "-extensions",
        "ext",
    ];
    if let Some((from, until)) = dates {
        args.extend(["-startdate", from, "-enddate", until]);
    } else {
        args.extend(["-days", "2"]);
    }
    openssl(dir, &args);
    (dir.join(pem), dir.join(key))
}

/// A server certificate and key for localhost and 127.0.0.1 signed by `ca.pem`, as
/// `<name>.pem` and `<name>.key`.
pub fn make_server_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    issue(
        dir,
        "ca",
        name,
        Use::Server("DNS:localhost,IP:127.0.0.1"),
        None,
    )
}
