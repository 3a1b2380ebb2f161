//! Bearer-key authentication and scope checks. Handlers call [`Auth::require`] first. This
//! module must never log, echo or store the presented key.

use crate::api::problem::Problem;
use crate::keys::{KeyRing, Principal, Scope};
use warp::http::StatusCode;

/// The configured keys plus any process-lifetime key (the `--demo` key).
pub struct Auth {
    ring: KeyRing,
}

impl Auth {
    /// Wraps a key ring.
    pub fn new(ring: KeyRing) -> Auth {
        Auth { ring }
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
        let Some(principal) = self.ring.lookup(key.trim()) else {
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
        Ok(principal.clone())
    }
}
