//! Integration tests: the real server on loopback, real sled in temp folders, real HTTP.

mod helpers;

mod append;
mod audit;
mod auth;
mod bad_input;
mod cli;
mod coding_guide;
mod concurrency;
mod config;
mod contract;
mod demo;
mod demo_server;
mod domain_ids;
mod dry_run;
mod durability;
mod export_online;
mod export_route;
mod idempotency;
mod import_bulk;
mod live;
mod log_close;
mod log_errors;
mod openapi;
mod projections;
mod provisions;
mod recorded_at;
mod registries;
mod schemathesis;
mod status_by_world_time;
mod store_cache;
mod store_disk;
mod stream_runs;
mod upcast;
mod vocabulary;
mod webhooks;
