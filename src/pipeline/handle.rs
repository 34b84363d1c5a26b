//! The way into a directory's writer: the handle callers hold ([`Writer`]), which queues a
//! command within its source's share and waits for the answer; the answer itself
//! ([`Written`]) and why a write was not done ([`WriteError`]). The writer task that decides
//! and appends is in `writer`.

use super::writer::MAX_BATCH;
use crate::domain::{Command, Context, DomainError, Outcome};
use crate::log::LogError;
use roster_projections::{Directory, GroupView, StoreError, UserView};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The most commands of one source queued or running on a directory's writer at once; the
/// queue holds four times as many, so a flood from one source leaves room for the others.
const SOURCE_SHARE: usize = MAX_BATCH;

/// Why a write was not done. Whatever the reason, nothing was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The command does not fit the directory (a conflict, a missing resource, a failed
    /// precondition, an invalid value).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The log could not take or show the write.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The views could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write path cannot take the write now: it is stopping, or this process has not read
    /// the log as far as the views shared with other processes.
    #[error("{0}")]
    Unavailable(String),
}

impl WriteError {
    /// Whether the same command may succeed later without anyone acting: not for a command
    /// the directory refuses, nor for data that cannot be read.
    pub fn transient(&self) -> bool {
        match self {
            WriteError::Domain(_) => false,
            WriteError::Log(e) => e.transient(),
            WriteError::Store(e) => e.transient(),
            WriteError::Unavailable(_) => true,
        }
    }
}

/// What a command left: for a user or group, the resource exactly as the command's own events
/// made it (its version is the command's ETag), never a later state; for anything else, the
/// outcome.
#[derive(Clone, Debug)]
pub enum Written {
    User(Arc<UserView>),
    Group(Arc<GroupView>),
    Other(Outcome),
}

impl Written {
    /// The command's outcome, by id.
    pub fn outcome(&self) -> Outcome {
        match self {
            Written::User(u) => Outcome::User(u.id),
            Written::Group(g) => Outcome::Group(g.id),
            Written::Other(o) => o.clone(),
        }
    }

    /// What `outcome` left in `state`, which has just folded the command's events.
    pub(super) fn of(outcome: Outcome, state: &Directory) -> Written {
        match outcome {
            Outcome::User(id) => state
                .user(id)
                .map_or(Written::Other(outcome), |u| Written::User(u.clone())),
            Outcome::Group(id) => state
                .group(id)
                .map_or(Written::Other(outcome), |g| Written::Group(g.clone())),
            other => Written::Other(other),
        }
    }
}

/// A command's answer: what it left, and where its record is in the directory's partition
/// (`None` when it recorded nothing).
pub(super) struct Receipt {
    pub(super) written: Written,
    pub(super) position: Option<u64>,
}

/// One command on its way to the writer, with where to answer.
pub(super) struct Job {
    pub(super) cmd: Command,
    pub(super) ctx: Context,
    pub(super) reply: oneshot::Sender<Result<Receipt, WriteError>>,
    /// The span of the request that sent it: the command's span is its child.
    pub(super) span: tracing::Span,
}

/// A handle to one directory's writer.
#[derive(Clone)]
pub struct Writer {
    pub(super) tx: mpsc::Sender<Job>,
    /// Per source (`""` for admin and system commands), how many more of its commands may be
    /// queued or running: one busy source cannot fill the writer's queue ahead of the others.
    pub(super) shares: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>>,
}

impl Writer {
    /// Runs `cmd` and answers once its events are durable and visible to reads.
    ///
    /// Fails with the domain's refusal, or `Unavailable` when the log or views could not take
    /// the write (then nothing was acknowledged).
    pub async fn execute(&self, cmd: Command, ctx: Context) -> Result<Outcome, WriteError> {
        self.submit(cmd, ctx).await.map(|r| r.written.outcome())
    }

    /// Like [`Self::execute`], also answering with the position of the command's record in
    /// the directory's partition (`None` when the command recorded nothing): what a reader of
    /// the log, such as a provider consumer, is past once it has taken the command.
    ///
    /// Fails as `execute` does.
    pub async fn execute_at(
        &self,
        cmd: Command,
        ctx: Context,
    ) -> Result<(Outcome, Option<u64>), WriteError> {
        let r = self.submit(cmd, ctx).await?;
        Ok((r.written.outcome(), r.position))
    }

    /// Like [`Self::execute`], answering with the resource as the command left it.
    ///
    /// Fails as `execute` does.
    pub async fn write(&self, cmd: Command, ctx: Context) -> Result<Written, WriteError> {
        self.submit(cmd, ctx).await.map(|r| r.written)
    }

    async fn submit(&self, cmd: Command, ctx: Context) -> Result<Receipt, WriteError> {
        let share = {
            let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
            let source = ctx.source.as_deref().unwrap_or_default();
            match shares.get(source) {
                Some(s) => s.clone(),
                None => shares
                    .entry(source.to_owned())
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(SOURCE_SHARE)))
                    .clone(),
            }
        };
        // Closed never: the semaphore lives in the map for the writer's life.
        let _turn = share
            .acquire_owned()
            .await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                cmd,
                ctx,
                reply,
                span: tracing::Span::current(),
            })
            .await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?
    }
}
