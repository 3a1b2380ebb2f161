//! Annals: an append-only, event-sourced, hash-chained log of sourced diplomatic facts, with an
//! HTTP API. See `ARCHITECTURE.md` for the map and the invariants.

pub mod api;
pub mod audit;
pub mod config;
pub mod event;
pub mod glob;
pub mod keyfile;
pub mod keys;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod projection;
pub mod server;
pub mod web;
pub mod webhook;

pub use config::Config;
pub use server::{Server, StartOptions};
