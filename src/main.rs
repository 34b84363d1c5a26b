//! The `roster` binary: parses the command line, sets up logging, and runs a command.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use roster::app::Application;
use roster::cli::{run_rebuild, run_source, Cli, Cmd};
use roster::config::LogFormat;
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ROSTER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Cmd::Serve(args) => {
            let settings = cli.settings(Some(args))?;
            init_tracing(settings.log_format);
            let app = Application::build(settings).await?;
            let addr = app.local_addr();
            if let Some(first) = &app.first_start {
                // Printed once, on standard output, never through the log.
                println!("Roster initialised the `default` directory and source.");
                println!("  SCIM base URL: {}", first.scim_base_url);
                println!("  SCIM token:    {}", first.source_token.expose());
                println!("  Admin token:   {}", first.admin_token.expose());
                println!("Save both tokens now: Roster keeps only their hashes.");
            }
            tracing::info!(%addr, "listening");
            app.run_until_stopped().await
        }
        Cmd::Source { command } => {
            init_tracing(LogFormat::Pretty);
            let settings = cli.settings(None)?;
            run_source(command, &settings).await
        }
        Cmd::Provider { command } => {
            init_tracing(LogFormat::Pretty);
            let settings = cli.settings(None)?;
            roster::cli::run_provider(command, &settings).await
        }
        Cmd::Log { command } => {
            init_tracing(LogFormat::Pretty);
            let settings = cli.settings(None)?;
            roster::cli::run_log(command, &settings)
        }
        Cmd::Rebuild { client } => {
            init_tracing(LogFormat::Pretty);
            let settings = cli.settings(None)?;
            run_rebuild(client, &settings).await
        }
    }
}
