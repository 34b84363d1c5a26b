//! Following a provider request until it is carried out (`--wait`): polls the provider's
//! status twice a second, draws a progress bar on standard error when it is a terminal, and
//! hands back the last status.

use super::client::{AdminClient, ClientError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often the status is asked for.
const POLL: Duration = Duration::from_millis(500);
/// How long the server may be unreachable before following gives up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// What one look at the status says.
enum Seen {
    /// Still going: how far (objects or positions), out of how many if known.
    Going {
        done: u64,
        total: Option<u64>,
        what: String,
    },
    Done,
}

/// A provider request recorded in the log, to follow.
pub struct Request<'a> {
    api: &'a AdminClient,
    name: String,
    /// The request's position in the directory's partition: the status's `requests_below`
    /// passes it when the consumer has taken the request.
    at: u64,
}

impl<'a> Request<'a> {
    /// The request whose 202 answer is `answer`.
    ///
    /// Fails when the answer does not say where the request is in the log.
    pub fn new(api: &'a AdminClient, name: &str, answer: &Value) -> anyhow::Result<Request<'a>> {
        let at = answer["position"].as_u64().ok_or_else(|| {
            anyhow::anyhow!("the server did not say where the request is: {answer}")
        })?;
        Ok(Request {
            api,
            name: name.to_owned(),
            at,
        })
    }

    /// The request's position in the log.
    pub fn position(&self) -> u64 {
        self.at
    }

    /// Follows a full sync until one planned after the request was taken has finished: the
    /// status it ended with.
    ///
    /// Fails when the server stays unreachable, the provider is disabled, or the sync
    /// failed for some objects (naming the first errors).
    pub async fn sync(&self) -> anyhow::Result<Value> {
        let end = self
            .follow(|s| {
                if !self.taken(s) {
                    return self.reaching(s);
                }
                let r = &s["last_full_sync"];
                let ours = r["requests_below"].as_u64().unwrap_or(0) > self.at;
                if ours && !r["finished"].is_null() {
                    return Seen::Done;
                }
                match s.get("full_sync").filter(|r| !r.is_null()) {
                    Some(run) => Seen::Going {
                        done: run["carried"].as_u64().unwrap_or(0),
                        total: run["objects"].as_u64(),
                        what: if ours {
                            "full sync: objects carried".into()
                        } else {
                            "waiting for the running full sync to finish".into()
                        },
                    },
                    None => Seen::Going {
                        done: 0,
                        total: None,
                        what: "full sync starting".into(),
                    },
                }
            })
            .await?;
        let r = &end["last_full_sync"];
        if r["failed"].as_u64().unwrap_or(0) > 0 {
            let errors: Vec<String> = r["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(super::render::text)
                .collect();
            anyhow::bail!(
                "full sync of {} ended with {} failed: {}",
                self.name,
                r["failed"],
                errors.join("; ")
            );
        }
        Ok(end)
    }

    /// Follows a request until the consumer has taken it and has nothing pending or in flight.
    ///
    /// Fails when the server stays unreachable or the provider is disabled.
    pub async fn carried(&self, what: &str) -> anyhow::Result<Value> {
        self.follow(|s| {
            if !self.taken(s) {
                return self.reaching(s);
            }
            match busy(s) {
                0 => Seen::Done,
                n => Seen::Going {
                    done: 0,
                    total: None,
                    what: format!("{what}: {n} objects pending or in flight"),
                },
            }
        })
        .await
    }

    /// Follows a replay from `from` until the consumer, rewound by it, is past the request
    /// again with nothing pending or in flight.
    ///
    /// Fails when the server stays unreachable or the provider is disabled.
    pub async fn replay(&self, from: u64) -> anyhow::Result<Value> {
        self.follow(|s| {
            let at = s["position"].as_u64().unwrap_or(0);
            if self.taken(s) && at > self.at && busy(s) == 0 {
                return Seen::Done;
            }
            Seen::Going {
                done: if self.taken(s) {
                    at.saturating_sub(from)
                } else {
                    0
                },
                total: Some(self.at + 1 - from.min(self.at + 1)),
                what: "replay: positions carried".into(),
            }
        })
        .await
    }

    /// Whether the consumer has taken the request.
    fn taken(&self, s: &Value) -> bool {
        s["requests_below"].as_u64().unwrap_or(0) > self.at
    }

    fn reaching(&self, s: &Value) -> Seen {
        Seen::Going {
            done: s["position"].as_u64().unwrap_or(0),
            total: Some(self.at + 1),
            what: "reaching the request in the log".into(),
        }
    }

    /// Polls the status until `look` says done; the last status.
    async fn follow(&self, mut look: impl FnMut(&Value) -> Seen) -> anyhow::Result<Value> {
        let bar = ProgressBar::new_spinner();
        let mut unreachable_since: Option<Instant> = None;
        let path = format!("/providers/{}/status", self.name);
        loop {
            let s = match self.api.get(&path).await {
                Ok(s) => {
                    unreachable_since = None;
                    s
                }
                Err(e @ ClientError::Unreachable { .. }) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > UNREACHABLE_FOR {
                        bar.finish_and_clear();
                        return Err(e.into());
                    }
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(e.into());
                }
            };
            if s["enabled"] == false {
                bar.finish_and_clear();
                anyhow::bail!(
                    "provider {} is disabled: the request is carried out when it is enabled",
                    self.name
                );
            }
            match look(&s) {
                Seen::Done => {
                    bar.finish_and_clear();
                    return Ok(s);
                }
                Seen::Going { done, total, what } => show(&bar, done, total, what),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Draws how far a followed request is: a bar when the total is known, else a spinner.
pub fn show(bar: &ProgressBar, done: u64, total: Option<u64>, what: String) {
    match total {
        Some(t) => {
            if bar.length() != Some(t) {
                bar.set_length(t);
                bar.set_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
            }
            bar.set_position(done.min(t));
        }
        None => {
            bar.unset_length();
            bar.set_style(ProgressStyle::default_spinner());
            bar.tick();
        }
    }
    bar.set_message(what);
}

/// Objects pending or in flight in a status.
fn busy(s: &Value) -> u64 {
    s["pending"].as_u64().unwrap_or(0) + s["in_flight"].as_u64().unwrap_or(0)
}
