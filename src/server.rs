//! Builds and runs the whole service: the log with its writer, the validator, the keys and the
//! HTTP API, bound to a socket. `main` and the tests both start the service through
//! [`Server::start`], so the tests exercise what production runs. This module must never hold
//! request logic.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, State, auth::Auth};
use crate::audit::import;
use crate::audit::signer::{Signer, SignerError};
use crate::config::Config;
use crate::event::{Schemas, Validator};
use crate::keys::KeyEntry;
use crate::keys::{self, KeyRing, Scope, SharedRing};
use crate::log::nats::Link;
use crate::log::{Backend, Log};
use crate::metrics::Metrics;
use crate::{projection, webhook};

/// The demo data set, compiled in so `serve --demo` works from any folder.
pub const DEMO_NDJSON: &str = include_str!("../examples/moscow-talks.ndjson");

/// The second example data set (the Black Sea Grain Initiative), compiled in like the demo.
pub const BLACK_SEA_GRAIN_NDJSON: &str = include_str!("../examples/black-sea-grain.ndjson");

/// Which example data sets `--demo` loads into an empty log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DemoData {
    /// The Moscow talks demo alone (`--demo`, as before there was a choice).
    #[default]
    MoscowTalks,
    /// The Black Sea Grain Initiative alone.
    BlackSeaGrain,
    /// Both, in one log: the Moscow talks first, so the Black Sea lines that register the
    /// actors they share are answered as no-ops.
    All,
}

impl DemoData {
    /// The data sets to load, in order, each as (name, NDJSON).
    pub fn sets(self) -> &'static [(&'static str, &'static str)] {
        const MOSCOW: (&str, &str) = ("moscow-talks", DEMO_NDJSON);
        const BLACK_SEA: (&str, &str) = ("black-sea-grain", BLACK_SEA_GRAIN_NDJSON);
        match self {
            DemoData::MoscowTalks => &[MOSCOW],
            DemoData::BlackSeaGrain => &[BLACK_SEA],
            DemoData::All => &[MOSCOW, BLACK_SEA],
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder could not be created.
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    /// The log could not be opened.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The embedded schemas are broken (a build defect).
    #[error(transparent)]
    Schema(#[from] crate::event::schema::SchemaError),
    /// Metrics could not be registered (a build defect).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, String),
    /// The projection engine could not start.
    #[error(transparent)]
    Projection(#[from] projection::ProjectionError),
    /// The webhook service could not start.
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
    /// The checkpoint signing key could not be loaded.
    #[error(transparent)]
    Checkpoints(#[from] SignerError),
    /// The cluster's shared state (webhooks, keys) could not be reached.
    #[error(transparent)]
    Cluster(#[from] crate::log::nats::NatsError),
    /// The demo data did not load.
    #[error("demo data: {0}")]
    Demo(#[from] import::ImportError),
}

/// What to do beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Load the demo data into an empty log and mint a process-lifetime key.
    pub demo: bool,
    /// Which data sets `demo` loads (the Moscow talks unless told).
    pub demo_data: DemoData,
    /// Extra keys valid for this process only (tests use this).
    pub extra_keys: Vec<KeyEntry>,
}

/// A running service.
pub struct Server {
    addr: SocketAddr,
    log: Log,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<()>,
    projections: projection::Engine,
    webhooks: webhook::Service,
    checkpoints: Signer,
    /// The task following the cluster's API keys (nats backend), ended with the server.
    _key_follower: AbortOnDrop,
    grace: std::time::Duration,
    /// The `--demo` key (read, append, admin), valid for this process.
    pub demo_key: Option<String>,
    /// How many demo events were loaded (0 if the log was not empty).
    pub demo_loaded: u64,
}

impl Server {
    /// Opens the log, loads what is asked and starts serving.
    pub async fn start(config: Config, options: StartOptions) -> Result<Server, StartError> {
        let dir = config.server.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StartError::DataDir(dir.clone(), e))?;
        let metrics = Metrics::new()?;
        // What the runtime serving us has, whoever built it (`annals serve` or a test).
        metrics
            .runtime_worker_threads
            .set(tokio::runtime::Handle::current().metrics().num_workers() as i64);
        let log = Log::open(
            &dir,
            config.log.clone(),
            metrics.clone(),
            crate::event::rules::declarations,
        )?;
        let validator = Validator::new(
            Schemas::load_with(&config.vocabulary)?,
            config.limits.clone(),
        );
        let mut entries = config.auth.keys.clone();
        entries.extend(options.extra_keys.iter().cloned());
        let mut demo_key = None;
        let mut demo_loaded = 0;
        if options.demo {
            let key = keys::generate();
            entries.push(KeyEntry {
                principal: "demo".into(),
                hash: key.hash.clone(),
                scopes: vec![Scope::Read, Scope::Append, Scope::Admin],
            });
            demo_key = Some(key.key);
            if log.head().seq == 0 {
                for (name, ndjson) in options.demo_data.sets() {
                    let imported = import::import(
                        &log,
                        &validator,
                        ndjson.as_bytes(),
                        "demo-loader",
                        None,
                        &config.import,
                    )
                    .await;
                    let summary = match imported {
                        Ok(s) => s,
                        Err(e) => return Err(abandon(e.into(), log, None, None, None).await),
                    };
                    demo_loaded += summary.appended;
                    tracing::info!(
                        data_set = name,
                        events = summary.appended,
                        "demo data loaded"
                    );
                }
            } else {
                tracing::info!(
                    seq = log.head().seq,
                    "data folder is not empty; demo data not loaded"
                );
            }
        }
        let ring = KeyRing::new(&entries);
        if ring.is_empty() {
            tracing::warn!(
                "no API key is configured: every route but /healthz, /openapi.json and /schemas will answer 401; see `annals keys new`"
            );
        }
        // From here on, a failed step stops what already started and closes the log, so an
        // in-process caller gets its data folder back (sled's lock included).
        let projections =
            match projection::Engine::start(log.clone(), config.projections.clone(), &metrics) {
                Ok(p) => p,
                Err(e) => return Err(abandon(e.into(), log, None, None, None).await),
            };
        let (shared, keys) = match cluster(&config).await {
            Ok(Some((webhooks, keys))) => (Some(webhooks), Some(keys)),
            Ok(None) => (None, None),
            Err(e) => return Err(abandon(e, log, Some(&projections), None, None).await),
        };
        let (auth, key_follower) = match keys {
            Some((shared_ring, follower)) => (
                Auth::with_cluster(ring, shared_ring),
                AbortOnDrop(Some(follower)),
            ),
            None => (Auth::new(ring), AbortOnDrop(None)),
        };
        let started =
            webhook::Service::start(log.clone(), config.webhooks.clone(), &dir, &metrics, shared)
                .await;
        let webhooks = match started {
            Ok(w) => w,
            Err(e) => {
                let started = Some(&projections);
                return Err(abandon(e.into(), log, started, None, None).await);
            }
        };
        let checkpoints = match Signer::start(log.clone(), &config.audit, &dir) {
            Ok(c) => c,
            Err(e) => {
                let (p, w) = (Some(&projections), Some(&webhooks));
                return Err(abandon(e.into(), log, p, w, None).await);
            }
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(State {
            checkpoints: checkpoints.clone(),
            projections: projections.clone(),
            webhooks: webhooks.clone(),
            log: log.clone(),
            validator,
            auth,
            metrics,
            live: config.live.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let routes = api::routes(state);
        let mut stop = shutdown_rx;
        let bound =
            warp::serve(routes).try_bind_with_graceful_shutdown(config.server.listen, async move {
                // Either the flag flips or the sender is gone: both mean stop.
                let _ = stop.wait_for(|v| *v).await;
            });
        let (addr, server) = match bound {
            Ok(b) => b,
            Err(e) => {
                let e = StartError::Bind(config.server.listen, e.to_string());
                let (p, w, c) = (Some(&projections), Some(&webhooks), Some(&checkpoints));
                return Err(abandon(e, log, p, w, c).await);
            }
        };
        let http = tokio::spawn(server);
        tracing::info!(%addr, data_dir = %dir.display(), durability = ?config.log.durability, "annals serving");
        Ok(Server {
            addr,
            log,
            shutdown,
            http,
            projections,
            webhooks,
            checkpoints,
            _key_follower: key_follower,
            grace: std::time::Duration::from_secs(config.server.shutdown_grace_secs),
            demo_key,
            demo_loaded,
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The log (for in-process tools and tests).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Stops accepting, ends live feeds, lets in-flight appends finish, and closes the store.
    /// Connections still open after `server.shutdown_grace_secs` (a live reader that stopped
    /// reading holds its response open) do not keep the log from being flushed and closed.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(self.grace, &mut self.http).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "http server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_secs = self.grace.as_secs(),
                    "connections still open after the shutdown grace period; closing the log anyway"
                );
                self.http.abort();
            }
        }
        // Downstream readers stop first (final checkpoints), then the log closes.
        self.checkpoints.shutdown().await;
        self.webhooks.shutdown().await;
        self.projections.shutdown().await;
        self.log.close().await;
    }
}

/// A task ended when its owner is dropped (on a failed start as on a stop).
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The cluster's webhook state and API keys (this node's configured keys published to it),
/// with the nats backend, over their own connection to the cluster.
async fn cluster(
    config: &Config,
) -> Result<Option<(webhook::Shared, (SharedRing, JoinHandle<()>))>, StartError> {
    let Some(nats) = config
        .log
        .nats
        .as_ref()
        .filter(|_| config.log.backend == Backend::Nats)
    else {
        return Ok(None);
    };
    let link = Link::connect(nats)?;
    let webhooks = webhook::Shared::connect(&link, config.webhooks.lease().ttl).await?;
    let keys = SharedRing::share(&link, &config.auth.keys).await?;
    Ok(Some((webhooks, keys)))
}

/// Undoes a start that failed part-way: stops what had started, closes the log, and answers
/// the error that stopped it.
async fn abandon(
    error: StartError,
    log: Log,
    projections: Option<&projection::Engine>,
    webhooks: Option<&webhook::Service>,
    checkpoints: Option<&Signer>,
) -> StartError {
    if let Some(c) = checkpoints {
        c.shutdown().await;
    }
    if let Some(w) = webhooks {
        w.shutdown().await;
    }
    if let Some(p) = projections {
        p.shutdown().await;
    }
    log.close().await;
    error
}
