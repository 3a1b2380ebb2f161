//! RFC 9457 problem details: the only shape an error leaves the server in. Typed errors from
//! the inner layers are turned into problems here and nowhere else. This module must never
//! produce a 500 for bad input, and never echo a credential.

use std::convert::Infallible;

use serde_json::{Map, Value, json};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::event::{FieldError, InputError};
use crate::log::{AppendError, LogError};

/// A problem detail document (boxed: it travels in `Result::Err` through every handler, and
/// as a warp rejection out of filters such as `auth::with_scope`).
#[derive(Debug, Clone)]
pub struct Problem(Box<Inner>);

impl warp::reject::Reject for Problem {}

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    extra: Map<String, Value>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Problem {
    /// A problem with a status, a stable slug (its `type`), a title and a detail sentence.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem(Box::new(Inner {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Map::new(),
            headers: Vec::new(),
        }))
    }

    /// Adds field-level errors.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Problem {
        self.0.errors = errors;
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Problem {
        self.0.extra.insert(key.to_string(), value);
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Problem {
        self.0.headers.push((name, value.into()));
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let p = &self.0;
        let mut body = json!({
            "type": format!("https://annals.dev/problems/{}", p.slug),
            "title": p.title,
            "status": p.status.as_u16(),
            "detail": p.detail,
        });
        if let Some(obj) = body.as_object_mut() {
            if !p.errors.is_empty() {
                obj.insert("errors".into(), json!(p.errors));
            }
            for (k, v) in &p.extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// 401 with the Bearer challenge.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or unknown API key",
            detail,
        )
        .header(header::WWW_AUTHENTICATE, "Bearer realm=\"annals\"")
    }

    /// 400 for a bad query parameter.
    pub fn bad_query(param: &str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Invalid query parameter",
            detail,
        )
        .with_errors(vec![FieldError {
            pointer: format!("?{param}"),
            message: "invalid value".into(),
        }])
    }

    /// 404 for something that does not exist.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503 for a storage failure while reading; logged, never shown in detail.
    pub fn storage(err: &LogError) -> Problem {
        tracing::error!(error = %err, "storage error while reading");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-unavailable",
            "Storage unavailable",
            "the store could not be read; see the server log",
        )
        .header(header::RETRY_AFTER, "1")
    }
}

impl Reply for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut resp = Response::new(body.into());
        *resp.status_mut() = self.0.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.0.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

impl From<InputError> for Problem {
    fn from(e: InputError) -> Problem {
        match e {
            InputError::Malformed { .. } => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                e.to_string(),
            ),
            InputError::TooLarge { ref pointer, .. } => {
                let errors = pointer
                    .iter()
                    .map(|p| FieldError {
                        pointer: p.clone(),
                        message: e.to_string(),
                    })
                    .collect();
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "Request too large",
                    e.to_string(),
                )
                .with_errors(errors)
            }
            InputError::Invalid(errors) => {
                let detail = errors
                    .first()
                    .map(FieldError::to_string)
                    .unwrap_or_default();
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation-failed",
                    "The event breaks a schema or rule",
                    detail,
                )
                .with_errors(errors)
            }
        }
    }
}

/// Turns a writer refusal into a problem; `base` maps an event index to its body pointer.
pub fn from_append(e: AppendError, base: impl Fn(usize) -> String) -> Problem {
    let detail = e.to_string();
    let field = |pointer: String| {
        vec![FieldError {
            pointer,
            message: detail.clone(),
        }]
    };
    match e {
        AppendError::WrongExpectedVersion {
            current, expected, ..
        } => Problem::new(
            StatusCode::CONFLICT,
            "wrong-expected-version",
            "Wrong expected version",
            detail.clone(),
        )
        .with("current_version", json!(current))
        .with("expected_version", json!(expected.to_string())),
        AppendError::IdConflict { index, seq, .. } => Problem::new(
            StatusCode::CONFLICT,
            "id-conflict",
            "Event id already used for different content",
            detail.clone(),
        )
        .with_errors(field(format!("{}/id", base(index))))
        .with("seq", json!(seq)),
        AppendError::PartialDuplicate { index, .. } => Problem::new(
            StatusCode::CONFLICT,
            "partial-duplicate",
            "Part of the batch is already in the log",
            detail.clone(),
        )
        .with_errors(field(format!("{}/id", base(index)))),
        AppendError::DuplicateInRequest { index, .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "The event breaks a schema or rule",
            detail.clone(),
        )
        .with_errors(field(format!("{}/id", base(index)))),
        AppendError::MissingReference { pointer, .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "The event breaks a schema or rule",
            format!("{pointer}: {detail}"),
        )
        .with_errors(field(pointer)),
        AppendError::AlreadyDeclared { pointer, .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "The event breaks a schema or rule",
            format!("{pointer}: {detail}"),
        )
        .with_errors(field(pointer)),
        AppendError::Contradicts {
            ref fields,
            ref update_with,
            seq,
            ..
        } => Problem::new(
            StatusCode::CONFLICT,
            "registry-conflict",
            "The registration contradicts the registered entry",
            detail.clone(),
        )
        .with_errors(
            fields
                .iter()
                .map(|pointer| FieldError {
                    pointer: pointer.clone(),
                    message: format!(
                        "differs from the registered entry; append `{update_with}` to change it"
                    ),
                })
                .collect(),
        )
        .with("update_event", json!(update_with))
        .with("seq", json!(seq)),
        AppendError::RestoreMismatch { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "restore-mismatch",
            "Record does not continue the log",
            detail,
        ),
        AppendError::Aborted | AppendError::Unavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The log cannot take appends right now",
            detail,
        )
        .header(header::RETRY_AFTER, "1"),
    }
}

/// 405 naming the methods the path supports in `Allow` (RFC 9110 requires the header).
pub fn method_not_allowed(allow: &str) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("this route accepts {allow} only; see /openapi.json"),
    )
    .header(header::ALLOW, allow)
}

/// Maps rejections to problems: a filter's own problem (a refused key) as it is, then warp's
/// (no route, wrong method...).
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let problem = if let Some(p) = rejection.find::<Problem>() {
        p.clone()
    } else if rejection.is_not_found() {
        Problem::not_found("no such route; see /openapi.json")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept that method; see /openapi.json",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Invalid query string",
            e.to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-header",
            "Invalid header",
            e.to_string(),
        )
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            format!("{rejection:?}"),
        )
    };
    Ok(problem.into_response())
}
