//! The command line: `roster serve`, the commands that talk to a running server's admin API
//! (sources, providers, mappings, admin tokens, directories, rebuild, audit, erasure), the log
//! tools that work on a stopped server's data, and shell completions. Each command's code lives in the module named after it.

mod admin_token;
mod audit;
mod client;
mod directory;
mod erase;
mod kafka_security;
mod log;
mod mapping;
mod provider;
mod rebuild;
mod render;
mod serve;
mod source;
mod watch;

pub use client::{AdminClient, ClientArgs, ClientError};
pub use log::LogCmd;
pub use provider::ProviderCmd;
pub use serve::ServeArgs;
pub use source::SourceCmd;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "Event-sourced SCIM 2.0 identity store",
    after_help = "Commands other than `serve`, `log` and `completion` talk to a running \
                  server: set ROSTER_SERVER (its root URL) and ROSTER_ADMIN_TOKEN."
)]
pub struct Cli {
    /// A TOML settings file (see docs/operations.md); the CLI reads the server's address and
    /// admin token from it too.
    #[arg(long, env = "ROSTER_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage inbound SCIM sources (through a running server's admin API).
    Source {
        #[command(subcommand)]
        command: SourceCmd,
    },
    /// Manage outbound SCIM providers (through a running server's admin API).
    Provider {
        #[command(subcommand)]
        command: ProviderCmd,
    },
    /// Manage property mappings, the expressions that shape what sources write and providers
    /// send, and preview them (through a running server's admin API).
    Mapping {
        #[command(subcommand)]
        command: mapping::MappingCmd,
    },
    /// Issue, list and revoke admin tokens (through a running server's admin API).
    AdminToken {
        #[command(subcommand)]
        command: admin_token::AdminTokenCmd,
    },
    /// Create, list and delete directories (through a running server's admin API).
    Directory {
        #[command(subcommand)]
        command: directory::DirectoryCmd,
    },
    /// Rebuild the PostgreSQL views from the log into fresh tables while the old ones serve,
    /// then swap (through a running server's admin API). With --wait, shows progress until
    /// it is done.
    Rebuild {
        /// Follow the rebuild until it ends, with a progress bar on a terminal.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Search, follow and export the audit trail; a resource's history and its state at any
    /// moment (through a running server's admin API).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCmd,
    },
    /// Erase one person's personal data (GDPR article 17): the user leaves the directory (and
    /// every provider), its data key is destroyed, and what the log holds of the person reads
    /// as erased from then on; the erasure is in the audit trail (through a running server's
    /// admin API).
    Erase {
        /// The user's id.
        #[arg(value_name = "USER_ID")]
        user: uuid::Uuid,
        /// The request the erasure answers (a ticket number), recorded for auditors. Put no
        /// personal data here.
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Inspect or repair the embedded event log (with the server stopped).
    Log {
        #[command(subcommand)]
        command: LogCmd,
    },
    /// Copy the embedded data directory (view snapshot, log, data keys, secret key) into a new
    /// folder, consistently, while the server runs: starting Roster on the copy serves every
    /// change acknowledged before the backup began.
    Backup {
        /// The folder to create (it must not exist).
        #[arg(value_name = "DIR")]
        target: std::path::PathBuf,
        /// The data directory [default: from the settings, ./roster-data].
        #[arg(long, env = "ROSTER_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Print a shell completion script: `roster completion bash > ~/.local/share/bash-completion/completions/roster`.
    Completion {
        /// The shell to complete in.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// Runs a command other than `serve`.
    ///
    /// Fails with what went wrong and, where it can, what to do about it.
    pub async fn run_tool(&self) -> anyhow::Result<()> {
        match &self.command {
            Cmd::Serve(_) => anyhow::bail!("`serve` runs the server, not a tool"),
            Cmd::Source { command } => source::run(command, &self.settings(None)?).await,
            Cmd::Provider { command } => provider::run(command, &self.settings(None)?).await,
            Cmd::Mapping { command } => mapping::run(command, &self.settings(None)?).await,
            Cmd::AdminToken { command } => admin_token::run(command, &self.settings(None)?).await,
            Cmd::Directory { command } => directory::run(command, &self.settings(None)?).await,
            Cmd::Rebuild { wait, client } => {
                let client = AdminClient::new(client, &self.settings(None)?)?;
                rebuild::run(&client, *wait).await
            }
            Cmd::Audit { command } => audit::run(command, &self.settings(None)?).await,
            Cmd::Erase {
                user,
                reference,
                client,
            } => {
                let client = AdminClient::new(client, &self.settings(None)?)?;
                erase::run(&client, *user, reference.as_deref()).await
            }
            Cmd::Log { command } => log::run_log(command, &self.settings(None)?),
            Cmd::Backup { target, data_dir } => {
                let settings = self.settings(None)?;
                let from = data_dir.as_ref().unwrap_or(&settings.data_dir);
                let m = crate::backup::backup(from, target)?;
                render::emit(&format!(
                    "backed up {} records ({} segments, {} bytes of log), {}, {}, {} key files{} into {}",
                    m.records,
                    m.segments,
                    m.log_bytes,
                    if m.snapshot { "the view snapshot" } else { "no view snapshot" },
                    if m.audit_snapshot { "the audit index's snapshot" } else { "no snapshot of the audit index" },
                    m.key_files,
                    if m.secret_key {
                        " and the secret key"
                    } else {
                        "; the secret key is in the settings, not in the data directory: keep it with the backup"
                    },
                    target.display()
                ))?;
                Ok(())
            }
            Cmd::Completion { shell } => {
                let mut out = Vec::new();
                clap_complete::generate(*shell, &mut Cli::command(), "roster", &mut out);
                render::emit(&String::from_utf8_lossy(&out))?;
                Ok(())
            }
        }
    }
}
