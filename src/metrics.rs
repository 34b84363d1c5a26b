//! Prometheus metrics, served at `/metrics` in the text exposition format: request rates and
//! latencies per route, log append latency and batch sizes, write outcomes, and how far the
//! views are behind the log.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOutcomeLabels {
    pub provider: String,
    pub outcome: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// The metrics of one kind of snapshot (the views, the audit index).
#[derive(Clone)]
pub struct SnapshotMetrics {
    /// Snapshots written, and those that failed.
    pub written: Counter,
    pub failures: Counter,
    /// Log records (over every partition) the snapshot on disk reflects; start-up reads the
    /// rest from the log.
    pub position: Gauge,
}

impl SnapshotMetrics {
    /// Registers `<prefix>snapshots_written`, `<prefix>snapshot_failures` and
    /// `<prefix>snapshot_position`, described as being about a `what`.
    fn register(registry: &mut Registry, prefix: &str, what: &str) -> SnapshotMetrics {
        let m = SnapshotMetrics {
            written: Counter::default(),
            failures: Counter::default(),
            position: Gauge::default(),
        };
        registry.register(
            format!("{prefix}snapshots_written"),
            format!("Each {what} written to the data directory"),
            m.written.clone(),
        );
        registry.register(
            format!("{prefix}snapshot_failures"),
            format!("Each {what} that could not be written"),
            m.failures.clone(),
        );
        registry.register(
            format!("{prefix}snapshot_position"),
            format!("Log records (all partitions) the {what} on disk reflects; 0 without one"),
            m.position.clone(),
        );
        m
    }
}

/// Every metric Roster exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Latency,
    pub append_duration: Histogram,
    pub batch_commands: Histogram,
    pub commands: Family<OutcomeLabels, Counter>,
    /// Batches whose records lost, at least in part, to another writer of the directory.
    pub lost_races: Counter,
    pub give_ways: Counter,
    pub projected_position: Gauge,
    pub log_end_position: Gauge,
    pub projection_lag: Gauge,
    /// Per provider: records of its directory's partition not yet carried.
    pub provider_lag: Family<ProviderLabels, Gauge>,
    /// Per provider: objects carried, by outcome (ok, failed, parked).
    pub provider_objects: Family<ProviderOutcomeLabels, Counter>,
    /// Per provider: objects parked now.
    pub provider_parked: Family<ProviderLabels, Gauge>,
    /// Per provider: seconds from a change's append to the end of its task.
    pub provider_propagation: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    /// View snapshots, and snapshots of the audit index.
    pub view_snapshots: SnapshotMetrics,
    pub audit_snapshots: SnapshotMetrics,
    /// Reads the PostgreSQL store's cache answered, and those that went to the tables.
    pub pg_cache_hits: Counter,
    pub pg_cache_misses: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("roster");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let request_duration: Latency = Family::new_with_constructor(latency_buckets);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            request_duration.clone(),
        );
        let append_duration = latency_buckets();
        registry.register(
            "log_append_duration_seconds",
            "Time for one batch of records to become durable in the log",
            append_duration.clone(),
        );
        let batch_commands = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "command_batch_size",
            "Commands decided together in one writer batch",
            batch_commands.clone(),
        );
        let commands = Family::<OutcomeLabels, Counter>::default();
        registry.register("commands", "Commands by outcome", commands.clone());
        let lost_races = Counter::default();
        registry.register(
            "write_lost_races",
            "Batches whose records lost to another writer of the directory (then decided again)",
            lost_races.clone(),
        );
        let give_ways = Counter::default();
        registry.register(
            "write_give_ways",
            "Times a writer held its next append back after beating another writer of the \
             directory, to let that writer's retry go first",
            give_ways.clone(),
        );
        let projected_position = Gauge::default();
        registry.register(
            "projection_position",
            "Log position the views reflect",
            projected_position.clone(),
        );
        let log_end_position = Gauge::default();
        registry.register(
            "log_end_position",
            "Durable end of the log",
            log_end_position.clone(),
        );
        let projection_lag = Gauge::default();
        registry.register(
            "projection_lag_records",
            "Records in the log not yet folded into the views",
            projection_lag.clone(),
        );
        let provider_lag = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "provider_lag_records",
            "Records of a provider's partition it has not carried to its remote yet",
            provider_lag.clone(),
        );
        let provider_objects = Family::<ProviderOutcomeLabels, Counter>::default();
        registry.register(
            "provider_objects",
            "Objects a provider carried to its remote, by outcome",
            provider_objects.clone(),
        );
        let provider_parked = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "provider_parked_objects",
            "Objects a provider parked after repeated failures",
            provider_parked.clone(),
        );
        let provider_propagation: Family<ProviderLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_buckets);
        registry.register(
            "provider_propagation_seconds",
            "Time from a change's append to the end of the task that carried it",
            provider_propagation.clone(),
        );
        let view_snapshots = SnapshotMetrics::register(&mut registry, "", "view snapshot");
        let audit_snapshots =
            SnapshotMetrics::register(&mut registry, "audit_", "snapshot of the audit index");
        let pg_cache_hits = Counter::default();
        registry.register(
            "pg_cache_hits",
            "Reads the PostgreSQL store answered from its in-process cache",
            pg_cache_hits.clone(),
        );
        let pg_cache_misses = Counter::default();
        registry.register(
            "pg_cache_misses",
            "Reads of cached kinds the PostgreSQL store answered from its tables",
            pg_cache_misses.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            request_duration,
            append_duration,
            batch_commands,
            commands,
            lost_races,
            give_ways,
            projected_position,
            log_end_position,
            projection_lag,
            provider_lag,
            provider_objects,
            provider_parked,
            provider_propagation,
            view_snapshots,
            audit_snapshots,
            pg_cache_hits,
            pg_cache_misses,
        })
    }

    /// Records the log and projection positions and the store's cache counts, then renders
    /// every metric.
    pub fn render(
        &self,
        projected: u64,
        log_end: u64,
        cache: Option<roster_projections::CacheCounts>,
    ) -> String {
        if let Some(c) = cache {
            for (counter, total) in [
                (&self.pg_cache_hits, c.hits),
                (&self.pg_cache_misses, c.misses),
            ] {
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        self.projected_position.set(projected as i64);
        self.log_end_position.set(log_end as i64);
        self.projection_lag
            .set(log_end.saturating_sub(projected) as i64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
