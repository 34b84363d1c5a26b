//! The shell blocks of README.md and docs/operations.md, run as written and in order, so
//! that the docs cannot drift from the binary.
//!
//! Each file is read as an operator follows it: in a fresh working directory, with one shell
//! session whose variables carry from block to block (`set -eo pipefail`: a failing command
//! fails the test, naming the block). A block that runs `serve` starts the server in the
//! background, as the reader's first shell would, and replaces the one started before;
//! the next block runs once it answers /readyz. What the reader supplies is supplied:
//! - `cargo run --release -- ARGS` runs the binary under test (a `cargo` on PATH that knows
//!   only that form), and `roster` is the binary under test;
//! - the placeholders `'rst_...'` and `'rsa_...'` ("paste yours") are the tokens the most
//!   recent first start printed, `HOST:9092` and the other broker examples are the test's
//!   tansu broker, the PostgreSQL URLs a fresh database of the test's cluster, and
//!   ROSTER_KAFKA_TOPIC a topic of the file's own;
//! - the downstream SCIM server the README has the reader start (`scim2-server --port 9000
//!   --bearer-token downstream`) is started on loopback.
//!
//! `bash scripts/test.sh`, the command that runs this test, is the one block not run. The
//! README's sample first-start output must match what the binary prints, and no SCIM request
//! in the docs may answer with an error.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The block that runs this test.
const NOT_RUN: &str = "bash scripts/test.sh";

const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// A fenced block of a Markdown file.
struct Block {
    line: usize,
    lang: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    line: i + 1,
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn is_serve(text: &str) -> bool {
    text.contains("-- serve") || text.contains("roster serve")
}

/// The tokens a first start printed, by label.
fn first_start_tokens(out: &str) -> Option<(String, String)> {
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_owned())
    };
    Some((field("SCIM token:")?, field("Admin token:")?))
}

/// `s` with every token (`rst_`/`rsa_` and what follows) written as the docs write it.
fn masked(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("rst_").into_iter().chain(rest.find("rsa_")).min() {
        out.push_str(&rest[..i + 4]);
        out.push_str("...");
        rest = rest[i + 4..]
            .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    }
    out.push_str(rest);
    out
}

/// One file's walk-through: its working directory, shell, server and substitutions.
struct Walk {
    file: &'static str,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    shell: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    server: Option<Child>,
    first_starts: Vec<String>,
    substitutions: BTreeMap<String, String>,
    outputs: Vec<(usize, String)>,
}

impl Walk {
    fn new(file: &'static str, postgres_url: &str) -> Walk {
        let dir = tempfile::tempdir().unwrap();
        let shims = dir.path().join(".shims");
        std::fs::create_dir(&shims).unwrap();
        let cargo = shims.join("cargo");
        std::fs::write(
            &cargo,
            "#!/bin/sh\n\
             if [ \"$1\" = run ] && [ \"$2\" = --release ] && [ \"$3\" = -- ]; then\n\
             shift 3; exec roster \"$@\"; fi\n\
             echo \"the docs test runs only 'cargo run --release -- ...', not: cargo $*\" >&2\n\
             exit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_roster")).parent().unwrap();
        let path = format!(
            "{}:{}:{}",
            shims.display(),
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let topic = common::unique_topic();
        let env = vec![
            ("PATH".to_owned(), path),
            ("ROSTER_KAFKA_TOPIC".to_owned(), topic),
            ("ROSTER_LOG".to_owned(), "warn".to_owned()),
        ];
        let brokers = common::tansu_brokers();
        let mut substitutions = BTreeMap::new();
        for example in [
            "HOST:9092",
            "kafka1:9092,kafka2:9092,kafka3:9092",
            "kafka:9092",
        ] {
            substitutions.insert(example.to_owned(), brokers.clone());
        }
        for example in [
            "postgres://roster:secret@HOST:5432/roster",
            "postgres://roster:secret@db:5432/roster",
        ] {
            substitutions.insert(example.to_owned(), postgres_url.to_owned());
        }
        let mut shell = Self::command("bash", dir.path(), &env)
            .args(["--norc", "--noprofile"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = shell.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(shell.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(shell.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    if tx.send(line.unwrap_or_default()).is_err() {
                        return;
                    }
                }
            });
        }
        let mut walk = Walk {
            file,
            dir,
            env,
            shell,
            stdin,
            lines,
            server: None,
            first_starts: Vec::new(),
            substitutions,
            outputs: Vec::new(),
        };
        walk.send("set -eo pipefail\n");
        walk
    }

    /// A command in the walk's directory with its environment and none of the test's
    /// ROSTER_* variables.
    fn command(program: &str, dir: &Path, env: &[(String, String)]) -> Command {
        let mut c = Command::new(program);
        c.current_dir(dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("ROSTER_") {
                c.env_remove(k);
            }
        }
        c.envs(env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn send(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn substituted(&self, text: &str) -> String {
        let mut text = text.to_owned();
        // Longest first: a PostgreSQL URL holds `HOST`, but not `HOST:9092`.
        let mut subs: Vec<_> = self.substitutions.iter().collect();
        subs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for (from, to) in subs {
            text = text.replace(from.as_str(), to);
        }
        text
    }

    fn run(&mut self, block: &Block) {
        if block.text.trim() == NOT_RUN {
            return;
        }
        let text = self.substituted(&block.text);
        if is_serve(&text) {
            return self.serve(block.line, &text);
        }
        let script = self.dir.path().join(format!(".block-{}.sh", block.line));
        std::fs::write(&script, &text).unwrap();
        let marker = format!("@@ block {} done", block.line);
        self.send(&format!(
            "source {} < /dev/null\necho '{marker}'\n",
            script.display()
        ));
        let deadline = Instant::now() + BLOCK_TIMEOUT;
        let mut output = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // Output without a final newline (curl's) ends on the marker's line.
                Ok(line) if line.ends_with(&marker) => {
                    output.push_str(&line[..line.len() - marker.len()]);
                    break;
                }
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(_) => panic!(
                    "{}:{}: the block failed or did not end within {BLOCK_TIMEOUT:?}:\n{}\n\
                     its output:\n{output}\nthe server's log:\n{}",
                    self.file,
                    block.line,
                    block.text,
                    self.server_log()
                ),
            }
        }
        assert!(
            !output.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
            "{}:{}: a request in the block answered with an error:\n{output}",
            self.file,
            block.line
        );
        self.outputs.push((block.line, output));
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(".server.err")).unwrap_or_default()
    }

    /// Starts a `serve` block in the background in place of the running server, and waits
    /// until it is ready; a first start's tokens become the placeholders' values.
    fn serve(&mut self, line: usize, text: &str) {
        self.stop_server();
        let out = self.dir.path().join(".server.out");
        let err = self.dir.path().join(".server.err");
        let child = Self::command("bash", self.dir.path(), &self.env)
            .args(["-c", &format!("exec {}", text.trim())])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        self.server = Some(child);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = rt.block_on(async {
                reqwest::get("http://127.0.0.1:8080/readyz")
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if ready {
                break;
            }
            let exited = self.server.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{}:{line}: the server did not come up ({exited:?}):\n{text}\n{}",
                self.file,
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let printed = std::fs::read_to_string(&out).unwrap();
        if let Some((scim, admin)) = first_start_tokens(&printed) {
            self.substitutions
                .insert("'rst_...'".into(), format!("'{scim}'"));
            self.substitutions
                .insert("'rsa_...'".into(), format!("'{admin}'"));
            self.first_starts.push(printed);
        }
    }

    fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs every shell block of the file, and checks its `console` samples of a first start.
    fn all(file: &'static str, postgres_url: &str) -> Walk {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut walk = Walk::new(file, postgres_url);
        let mut samples = Vec::new();
        for block in blocks(&text) {
            match block.lang.as_str() {
                "sh" | "bash" | "shell" => walk.run(&block),
                "console" => samples.push(block),
                _ => {}
            }
        }
        for sample in samples {
            let printed = walk.first_starts.first().map(|p| masked(p));
            let printed = printed.unwrap_or_default();
            for line in sample.text.lines().filter(|l| !l.starts_with("$ ")) {
                assert!(
                    printed.lines().any(|p| p == line),
                    "{file}:{}: the sample line {line:?} is not what a first start prints:\n{printed}",
                    sample.line
                );
            }
        }
        walk
    }

    fn output_of(&self, needle: &str) -> &str {
        &self
            .outputs
            .iter()
            .find(|(_, o)| o.contains(needle))
            .unwrap_or_else(|| panic!("no block printed {needle:?}"))
            .1
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.stop_server();
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

/// The downstream SCIM server the README has the reader start, on loopback.
struct Downstream(Child);

impl Downstream {
    fn start() -> Downstream {
        let bin = std::env::var("ROSTER_TEST_SCIM2_SERVER").expect(
            "ROSTER_TEST_SCIM2_SERVER is not set: run the tests with `bash scripts/test.sh`",
        );
        let child = Command::new(bin)
            .args(["--hostname", "127.0.0.1", "--port", "9000"])
            .args(["--bearer-token", "downstream"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect("127.0.0.1:9000").is_err() {
            assert!(Instant::now() < deadline, "scim2-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Downstream(child)
    }

    /// The userNames on the downstream server.
    fn user_names(&self, rt: &tokio::runtime::Runtime) -> Vec<String> {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get("http://127.0.0.1:9000/v2/Users")
                .bearer_auth("downstream")
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            body["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u["userName"].as_str().map(str::to_owned))
                .collect()
        })
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Both files in one test: they use the same fixed ports (8080, 9000), as the docs do.
#[test]
fn every_shell_block_of_the_readme_and_the_operations_guide_runs_as_written() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let downstream = Downstream::start();
    let readme = Walk::all("README.md", &rt.block_on(common::fresh_database()));
    let echoed = readme.output_of("ada@example.com");
    assert!(
        echoed.contains("\"userName\":\"ada@example.com\""),
        "{echoed}"
    );
    assert!(readme
        .output_of("Engineering")
        .contains("\"displayName\":\"Engineering\""));
    assert!(readme.output_of("source/scim/okta/v2").contains("SOURCE"));
    // The provider's first full sync copies the user downstream, as the README says.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !downstream
        .user_names(&rt)
        .contains(&"ada@example.com".to_owned())
    {
        assert!(
            Instant::now() < deadline,
            "the README's provider did not copy the user downstream"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(readme);
    drop(downstream);

    let downstream = Downstream::start();
    let ops = Walk::all("docs/operations.md", &rt.block_on(common::fresh_database()));
    assert!(ops
        .output_of("deleted directory hr")
        .contains("deleted directory hr"));
    drop(ops);
    drop(downstream);
}
