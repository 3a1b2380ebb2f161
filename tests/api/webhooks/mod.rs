//! Webhook tests (issue 4): real receivers (small warp servers on loopback) and the real
//! server. Each file is one concern; `support` holds the receiver and the helpers.

mod at_rest;
mod bad_url;
mod crash_budget;
mod dead_letters;
mod delivery;
mod delivery_threads;
mod failures;
mod filters;
mod follower;
mod guard;
mod held_writes;
mod keep_alive;
mod message_cache;
mod restart;
mod rotation;
mod signing;
mod stage_metrics;
pub mod support;
mod type_globs;
mod verifier;
