//! stunnel (from Debian), the TLS terminator the Kafka TLS tests put in front of tansu, which
//! speaks only plain TCP: each service accepts TLS on a loopback port with a certificate of
//! the test's choosing (and, if asked, requires a client certificate from a CA) and forwards
//! the bytes to a plain port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One TLS port.
pub struct Service {
    pub accept: u16,
    pub connect: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require a client certificate that leads to this CA.
    pub client_ca: Option<PathBuf>,
}

/// A running stunnel, stopped when dropped.
pub struct Stunnel {
    child: std::process::Child,
    log: PathBuf,
}

impl Stunnel {
    /// Starts stunnel with `services`, its configuration and log in `dir`, and waits until
    /// every port accepts connections.
    pub fn start(dir: &Path, services: &[Service]) -> Stunnel {
        let log = dir.join("stunnel.log");
        let mut config = format!("foreground = yes\npid =\noutput = {}\n", log.display());
        for (i, s) in services.iter().enumerate() {
            config.push_str(&format!(
                "[s{i}]\naccept = 127.0.0.1:{}\nconnect = 127.0.0.1:{}\ncert = {}\nkey = {}\n",
                s.accept,
                s.connect,
                s.cert.display(),
                s.key.display()
            ));
            if let Some(ca) = &s.client_ca {
                config.push_str(&format!(
                    "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
                    ca.display()
                ));
            }
        }
        let path = dir.join("stunnel.conf");
        std::fs::write(&path, config).unwrap();
        let binary = std::env::var("ROSTER_TEST_STUNNEL").unwrap_or_else(|_| "stunnel".into());
        let child = std::process::Command::new(&binary)
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} does not start ({e}): run scripts/test.sh"));
        let stunnel = Stunnel { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        for s in services {
            while std::net::TcpStream::connect(("127.0.0.1", s.accept)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "stunnel did not start: {}",
                    std::fs::read_to_string(&stunnel.log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        stunnel
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
