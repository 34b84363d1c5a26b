//! The `roster` binary: parses the command line, sets up logging, and runs a command.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use roster::app::Application;
use roster::cli::{Cli, Cmd};
use roster::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ROSTER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that went away (`roster provider list | head -1`) is not an error.
        Err(e) if closed_output(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn closed_output(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cmd::Serve(args) = &cli.command else {
        init_tracing(LogFormat::Pretty);
        return cli.run_tool().await;
    };
    let settings = cli.settings(Some(args))?;
    init_tracing(settings.log_format);
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    if let Some(first) = &app.first_start {
        // Printed once, on standard output, never through the log.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Roster initialised the `default` directory and source.\n  \
             SCIM base URL: {}\n  SCIM token:    {}\n  Admin token:   {}\n\
             Save both tokens now: Roster keeps only their hashes.",
            first.scim_base_url,
            first.source_token.expose(),
            first.admin_token.expose()
        )?;
        out.flush()?;
    }
    tracing::info!(%addr, "listening");
    app.run_until_stopped().await
}
