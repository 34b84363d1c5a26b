//! A tansu broker of a test's own, on disk, that the test can kill -9 and start again.

use std::time::{Duration, Instant};

/// A tansu broker of the test's own, with on-disk storage, that can be killed and restarted.
pub struct OwnBroker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = OwnBroker {
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        b.up();
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(
            std::env::var("ROSTER_TEST_TANSU")
                .expect("ROSTER_TEST_TANSU is not set: run the tests with `bash scripts/test.sh`"),
        )
        .current_dir(self.dir.path())
        .args([
            "broker",
            "--storage-engine",
            "sqlite://tansu.db",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
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
