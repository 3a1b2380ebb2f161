//! Integration tests: the real server on loopback, real sled in temp folders, real HTTP.

mod helpers;

mod append;
mod audit;
mod auth;
mod bad_input;
mod cli;
mod concurrency;
mod config;
mod contract;
mod demo;
mod durability;
mod export_route;
mod idempotency;
mod live;
mod openapi;
mod projections;
mod schemathesis;
mod webhooks;
