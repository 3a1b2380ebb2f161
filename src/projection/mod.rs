//! Projections: pure folds of the log into read models, with checkpoints, rebuilds and as-of
//! queries. (Being built under issue 3.) Must never write to the log.

use serde::{Deserialize, Serialize};

use crate::log::Log;
use crate::metrics::Metrics;

/// Projection settings (`[projections]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionConfig {}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("projections: {0}")]
pub struct ProjectionError(pub String);

/// The projection engine: owns every read model's task.
#[derive(Clone)]
pub struct Engine {}

impl Engine {
    /// Loads checkpoints and starts following the log.
    pub fn start(
        _log: Log,
        _config: ProjectionConfig,
        _metrics: &Metrics,
    ) -> Result<Engine, ProjectionError> {
        Ok(Engine {})
    }

    /// Stops following and writes final checkpoints.
    pub async fn shutdown(&self) {}
}
