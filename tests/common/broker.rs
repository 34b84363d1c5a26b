//! A tansu broker of a test's own, on disk, that the test can kill -9 and start again; it may
//! advertise another address than it listens on (a TLS terminator's in front of it) and
//! require SASL authentication.

use std::time::{Duration, Instant};

/// A tansu broker of the test's own, with on-disk storage, that can be killed and restarted.
pub struct OwnBroker {
    dir: tempfile::TempDir,
    port: u16,
    /// The port clients are told to connect to: `port`, or a TLS terminator's.
    advertised: u16,
    /// Whether clients must authenticate (SASL).
    pub authentication: bool,
    child: Option<std::process::Child>,
}

fn tansu() -> String {
    std::env::var("ROSTER_TEST_TANSU")
        .expect("ROSTER_TEST_TANSU is not set: run the tests with `bash scripts/test.sh`")
}

pub use super::remote::free_port;

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let mut b = OwnBroker::stopped();
        b.up();
        b
    }

    /// A broker not yet started, advertising its own port.
    pub fn stopped() -> OwnBroker {
        let port = free_port();
        OwnBroker {
            dir: tempfile::tempdir().unwrap(),
            port,
            advertised: port,
            authentication: false,
            child: None,
        }
    }

    /// Tells clients to connect to `port` (a TLS terminator forwarding to this broker).
    pub fn advertise(&mut self, port: u16) {
        self.advertised = port;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stores a SCRAM credential (`scram256` or `scram512`) for `user` (the broker must be
    /// up without authentication: tansu's own client does not authenticate).
    pub fn add_scram_user(&self, user: &str, password: &str, mechanism: &str) {
        let out = std::process::Command::new(tansu())
            .current_dir(self.dir.path())
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--mechanism",
                mechanism,
                user,
                password,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let mut command = std::process::Command::new(tansu());
        command.current_dir(self.dir.path()).args([
            "broker",
            "--storage-engine",
            "sqlite://tansu.db",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
        ]);
        if self.authentication {
            command.arg("--authentication");
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9: whatever tansu acknowledged must be in its database.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
