//! Roster: an event-sourced SCIM 2.0 identity store.
//!
//! The server crate: configuration, start-up and shutdown, the HTTP surface (SCIM sources and
//! the admin API), command handling (the write path), the event-log backends and the CLI.
//! The stored vocabulary lives in `roster-events`; the fold and the views in
//! `roster-projections`.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod domain;
pub mod erasure;
pub mod http;
pub mod keys;
pub mod log;
pub mod mappings;
pub mod metrics;
pub mod oauth;
pub mod passwords;
pub mod patch;
pub mod pipeline;
pub mod provider;
pub mod rebuild;
pub mod sealing;
pub mod snapshot;
pub mod telemetry;
