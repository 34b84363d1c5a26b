//! The `roster` binary: parses the command line, sets up logging and tracing, and runs a
//! command.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use roster::app::Application;
use roster::cli::{Cli, Cmd};
use roster::config::LogFormat;
use roster::telemetry;

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
        telemetry::init(LogFormat::Pretty, None)?;
        return cli.run_tool().await;
    };
    let settings = cli.settings(Some(args))?;
    let telemetry = telemetry::init(settings.log_format, settings.otlp_endpoint.as_deref())?;
    if telemetry.exporting() {
        tracing::info!("exporting spans over OTLP");
    }
    let served = serve(settings).await;
    // Spans of the last requests, and of the shutdown itself, are still buffered.
    telemetry.shutdown().await;
    served
}

async fn serve(settings: roster::config::Settings) -> anyhow::Result<()> {
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
