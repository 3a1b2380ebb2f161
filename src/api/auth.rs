//! Bearer-key authentication and scope checks. Every protected route puts [`with_scope`] right
//! after its path and method, so no handler checks a key by hand. This module must never log,
//! echo or store the presented key.

use std::convert::Infallible;

use warp::Filter;
use warp::http::StatusCode;

use super::{Shared, with_state};
use crate::api::problem::Problem;
use crate::keys::{KeyRing, Principal, Scope, SharedRing};

/// The `Authorization` header, if any (an unreadable one counts as absent: a 401, not a 400).
fn authorization() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or_else(|_| async { Ok::<_, Infallible>((None,)) })
}

/// Yields the principal behind the request's key if it has `scope`; otherwise rejects with the
/// 401 or 403 problem of [`Auth::require`], which `problem::recover` answers.
pub fn with_scope(
    state: Shared,
    scope: Scope,
) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    authorization().and(with_state(state)).and_then(
        move |auth: Option<String>, st: Shared| async move {
            st.auth
                .require(auth.as_deref(), scope)
                .map_err(warp::reject::custom)
        },
    )
}

/// The configured keys plus any process-lifetime key (the `--demo` key), and with the nats
/// backend the keys the cluster holds.
pub struct Auth {
    ring: KeyRing,
    shared: Option<SharedRing>,
}

impl Auth {
    /// Wraps a key ring.
    pub fn new(ring: KeyRing) -> Auth {
        Auth { ring, shared: None }
    }

    /// Wraps a key ring and the cluster's keys.
    pub fn with_cluster(ring: KeyRing, shared: SharedRing) -> Auth {
        Auth {
            ring,
            shared: Some(shared),
        }
    }

    /// The principal behind an `Authorization` header, if it has `scope`: 401 without a
    /// usable key, 403 with a key that lacks the scope.
    pub fn require(&self, header: Option<&str>, scope: Scope) -> Result<Principal, Problem> {
        let Some(value) = header else {
            return Err(Problem::unauthorized(
                "send `Authorization: Bearer <key>`; make a key with `annals keys new`",
            ));
        };
        let Some(key) = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key)
        else {
            return Err(Problem::unauthorized(
                "the Authorization header must use the Bearer scheme",
            ));
        };
        let key = key.trim();
        // A key revoked in the cluster is refused even where this node's config holds it.
        let revoked = self.shared.as_ref().is_some_and(|s| s.is_revoked(key));
        let found = self
            .ring
            .lookup(key)
            .cloned()
            .or_else(|| self.shared.as_ref().and_then(|s| s.lookup(key)))
            .filter(|_| !revoked);
        let Some(principal) = found else {
            return Err(Problem::unauthorized("the API key is not known"));
        };
        if !principal.allows(scope) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Missing scope",
                format!(
                    "the key of `{}` lacks the `{}` scope this route needs",
                    principal.name,
                    scope.as_str()
                ),
            )
            .with("required_scope", serde_json::json!(scope.as_str())));
        }
        Ok(principal)
    }
}
