//! `roster log check` and `roster log repair`: the embedded log's damage, found and cut
//! with the server stopped.

use super::render::emit;
use crate::config::Settings;
use anyhow::Context as _;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// Read every segment and report how many whole records it holds and the first damage;
    /// changes nothing. Exits with status 1 when the log is damaged.
    Check {
        /// The data directory [default: from the settings, ./roster-data].
        #[arg(long, env = "ROSTER_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Cut the log at its first damage when start-up refuses it. Without --yes, only says
    /// what the cut would be. The cut bytes and every later segment are moved, not deleted,
    /// into a `cut-<time>` folder beside the log; records after the cut are gone from the
    /// views. Restoring a backup loses less: prefer it when you have one.
    Repair {
        /// The data directory [default: from the settings, ./roster-data].
        #[arg(long, env = "ROSTER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Make the cut.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs `roster log check` or `roster log repair` on the data directory and prints what it
/// found or did.
///
/// Fails when the log cannot be read, a server holds it (repair), or it is damaged (check,
/// so that scripts can tell).
pub fn run_log(cmd: &LogCmd, settings: &Settings) -> anyhow::Result<()> {
    let (LogCmd::Check { data_dir } | LogCmd::Repair { data_dir, .. }) = cmd;
    let dir = data_dir.as_ref().unwrap_or(&settings.data_dir).join("log");
    match cmd {
        LogCmd::Check { .. } => {
            let report = crate::log::check(&dir)?;
            for s in &report.segments {
                let state = match &s.damage {
                    None => "whole".to_owned(),
                    Some(d) => format!("DAMAGED at byte {} ({})", d.offset, d.why),
                };
                emit(&format!(
                    "{}  from position {}  {} records  {} bytes  {state}",
                    s.path.display(),
                    s.first,
                    s.records,
                    s.bytes
                ))?;
            }
            if report.in_use {
                emit("(a server holds this log: a damaged end may be a write in progress)")?;
            }
            match report
                .first_damage()
                .and_then(|s| s.damage.as_ref().map(|d| (s, d)))
            {
                None => {
                    emit(&format!("{} records, no damage", report.records()))?;
                    Ok(())
                }
                Some((s, d)) => {
                    if let Some(at) = d.next_whole {
                        emit(&format!(
                            "{} whole records follow the damage from byte {at}: \
                             not a torn last write",
                            d.whole_after
                        ))?;
                    }
                    anyhow::bail!(
                        "{} is damaged at byte {}: restore a backup, or see \
                         `roster log repair --data-dir {}`",
                        s.path.display(),
                        d.offset,
                        dir.parent().unwrap_or(&dir).display()
                    )
                }
            }
        }
        LogCmd::Repair { yes, .. } => {
            let Some(r) = crate::log::repair(&dir, *yes)? else {
                emit("no damage: nothing to repair")?;
                return Ok(());
            };
            let verb = if *yes { "cut" } else { "would cut" };
            emit(&format!(
                "{verb} {} at byte {}: the log keeps records 0..{} and sets aside {} whole \
                 records found after the damage ({} later segments) in {}",
                r.segment.display(),
                r.offset,
                r.kept,
                r.set_aside,
                r.later_segments,
                r.cut_dir.display()
            ))?;
            // The snapshots reflect records the cut removes: they go with them, and the next
            // start reads the log that is left.
            let snapshots = dir.parent().unwrap_or(&dir).join("snapshots");
            for (file, what) in [
                ("views.snap", "the view snapshot"),
                ("audit.snap", "the audit index's snapshot"),
            ] {
                let snapshot = snapshots.join(file);
                if !snapshot.exists() {
                    continue;
                }
                let cut = r.cut_dir.file_name().unwrap_or_default().to_string_lossy();
                let aside = snapshot.with_file_name(format!("{file}.{cut}"));
                if *yes {
                    std::fs::rename(&snapshot, &aside).with_context(|| {
                        format!("moving {} to {}", snapshot.display(), aside.display())
                    })?;
                }
                let verb = if *yes { "moved" } else { "would move" };
                emit(&format!(
                    "{verb} {what} {} to {}: it reflects records past the cut; the next start \
                     reads the log",
                    snapshot.display(),
                    aside.display()
                ))?;
            }
            if !yes {
                emit("run again with --yes to make the cut")?;
            }
            Ok(())
        }
    }
}
