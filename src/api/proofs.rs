//! Routes under `/audit`: Merkle roots, inclusion and consistency proofs (RFC 9162 paths, hex
//! encoded), signed checkpoints, the public key, and replay of a span with proofs. (Named for
//! what it serves; `src/audit/` is the offline tooling and the signer.) They must never
//! answer for a size beyond the durable head.

use std::convert::Infallible;

use serde_json::json;
use warp::Filter;
use warp::Reply;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::auth::with_scope;
use super::problem::Problem;
use super::{Query, Shared, json_response, other_methods, query, reply, with_state};
use crate::keys::{Principal, Scope};
use crate::log::LogError;

fn proof_error(e: LogError) -> Problem {
    match e {
        LogError::BeyondHead { size, head } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "beyond-head",
            "Beyond the log",
            format!(
                "{size} is out of range: the log holds {head} records (1 <= seq <= size <= head)"
            ),
        ),
        other => Problem::storage(&other),
    }
}

fn u64_param(q: &Query, name: &str) -> Result<Option<u64>, Problem> {
    match q.get(name) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            Problem::bad_query(name, format!("`{name}` must be an integer (got `{s}`)"))
        }),
    }
}

fn required(q: &Query, name: &str) -> Result<u64, Problem> {
    u64_param(q, name)?.ok_or_else(|| Problem::bad_query(name, format!("`{name}` is required")))
}

fn hexes(path: &[[u8; 32]]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

/// `GET /audit/root?size=`.
fn root(st: &Shared, q: &Query) -> Response {
    reply((|| {
        let size = u64_param(q, "size")?.unwrap_or_else(|| st.log.head().seq);
        let root = st.log.merkle_root(size).map_err(proof_error)?;
        Ok(json_response(
            StatusCode::OK,
            json!({"tree_size": size, "root": hex::encode(root)}).to_string(),
        ))
    })())
}

/// `GET /audit/proof/inclusion?seq=&size=`.
fn inclusion(st: &Shared, q: &Query) -> Response {
    reply((|| {
        let seq = required(q, "seq")?;
        let size = u64_param(q, "size")?.unwrap_or_else(|| st.log.head().seq);
        let path = st.log.inclusion_proof(seq, size).map_err(proof_error)?;
        let root = st.log.merkle_root(size).map_err(proof_error)?;
        let leaf = st
            .log
            .get(seq)
            .map_err(|e| Problem::storage(&e))?
            .map(|r| hex::encode(crate::log::merkle::leaf_hash(&r.bytes)));
        Ok(json_response(
            StatusCode::OK,
            json!({
                "seq": seq,
                "leaf_index": seq - 1,
                "tree_size": size,
                "leaf_hash": leaf,
                "inclusion_path": hexes(&path),
                "root": hex::encode(root),
            })
            .to_string(),
        ))
    })())
}

/// `GET /audit/proof/consistency?from=&to=`.
fn consistency(st: &Shared, q: &Query) -> Response {
    reply((|| {
        let from = required(q, "from")?;
        let to = u64_param(q, "to")?.unwrap_or_else(|| st.log.head().seq);
        let path = st.log.consistency_proof(from, to).map_err(proof_error)?;
        let first = st.log.merkle_root(from).map_err(proof_error)?;
        let second = st.log.merkle_root(to).map_err(proof_error)?;
        Ok(json_response(
            StatusCode::OK,
            json!({
                "tree_size_1": from,
                "tree_size_2": to,
                "first_root": hex::encode(first),
                "second_root": hex::encode(second),
                "consistency_path": hexes(&path),
            })
            .to_string(),
        ))
    })())
}

/// `GET /audit/checkpoint`: the latest signed checkpoint.
fn latest(st: &Shared) -> Response {
    reply(match st.checkpoints.latest() {
        Ok(Some(cp)) => Ok(json_response(StatusCode::OK, json!(cp).to_string())),
        Ok(None) => Err(Problem::not_found(
            "no checkpoint yet: POST /audit/checkpoint (admin) makes one",
        )),
        Err(e) => {
            tracing::error!(error = %e, "reading checkpoint");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-unavailable",
                "Storage unavailable",
                "the checkpoint could not be read; see the server log",
            ))
        }
    })
}

/// `POST /audit/checkpoint`: sign the current head now.
fn make(st: &Shared) -> Response {
    reply(match st.checkpoints.checkpoint_now() {
        Ok(cp) => Ok(json_response(StatusCode::CREATED, json!(cp).to_string())),
        Err(e) => {
            tracing::error!(error = %e, "signing checkpoint");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-unavailable",
                "Checkpoint failed",
                "the checkpoint could not be written; see the server log",
            ))
        }
    })
}

/// `GET /audit/public-key` (public: auditors need it before anything else).
fn public_key(st: &Shared) -> Response {
    let key = st.checkpoints.public_key();
    json_response(
        StatusCode::OK,
        json!({
            "algorithm": "ed25519",
            "public_key": hex::encode(key.as_bytes()),
            "key_id": crate::audit::checkpoint::key_id(&key),
            "signed_text": "annals-checkpoint/v1\\n{origin}\\n{size}\\n{root hex}\\n{timestamp}\\n",
        })
        .to_string(),
    )
}

/// `GET /audit/replay?from=&to=`: NDJSON, one line per record with its inclusion proof in the
/// tree of size `to`.
fn replay(st: Shared, q: &Query) -> Response {
    let prepared = (|| {
        let head = st.log.head().seq;
        let from = u64_param(q, "from")?.unwrap_or(1).max(1);
        let to = u64_param(q, "to")?.unwrap_or(head);
        if to > head || from > to {
            return Err(proof_error(LogError::BeyondHead { size: to, head }));
        }
        Ok((from, to))
    })();
    let (from, to) = match prepared {
        Ok(x) => x,
        Err(p) => return p.into_response(),
    };
    let stream = async_stream::stream! {
        let mut next = from;
        while next <= to {
            let (records, after) = match st.log.read_range(next, 256, |_| true) {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "replay read failed");
                    return;
                }
            };
            for rec in records.into_iter().filter(|r| r.seq <= to) {
                let path = match st.log.inclusion_proof(rec.seq, to) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "replay proof failed");
                        return;
                    }
                };
                let line = format!(
                    "{{\"record\":{},\"proof\":{}}}\n",
                    rec.envelope_json(),
                    json!({"leaf_index": rec.seq - 1, "tree_size": to, "inclusion_path": hexes(&path)})
                );
                yield Ok::<_, Infallible>(line);
            }
            next = after;
        }
    };
    let mut resp = Response::new(warp::hyper::Body::wrap_stream(stream));
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Every `/audit` route.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let read = || with_scope(state.clone(), Scope::Read);
    let st = || with_state(state.clone());
    let get_root = warp::path!("audit" / "root")
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .map(|_: Principal, q: Query, st: Shared| root(&st, &q))
        .or(warp::path!("audit" / "root").and(other_methods("GET")))
        .unify();
    let get_inclusion = warp::path!("audit" / "proof" / "inclusion")
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .map(|_: Principal, q: Query, st: Shared| inclusion(&st, &q))
        .or(warp::path!("audit" / "proof" / "inclusion").and(other_methods("GET")))
        .unify();
    let get_consistency = warp::path!("audit" / "proof" / "consistency")
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .map(|_: Principal, q: Query, st: Shared| consistency(&st, &q))
        .or(warp::path!("audit" / "proof" / "consistency").and(other_methods("GET")))
        .unify();
    let get_checkpoint = warp::path!("audit" / "checkpoint")
        .and(warp::get())
        .and(read())
        .and(st())
        .map(|_: Principal, st: Shared| latest(&st));
    let post_checkpoint = warp::path!("audit" / "checkpoint")
        .and(warp::post())
        .and(with_scope(state.clone(), Scope::Admin))
        .and(st())
        .map(|_: Principal, st: Shared| make(&st));
    let checkpoint = get_checkpoint
        .or(post_checkpoint)
        .unify()
        .or(warp::path!("audit" / "checkpoint").and(other_methods("GET, POST")))
        .unify();
    let get_key = warp::path!("audit" / "public-key")
        .and(warp::get())
        .and(st())
        .map(|st: Shared| public_key(&st))
        .or(warp::path!("audit" / "public-key").and(other_methods("GET")))
        .unify();
    let get_replay = warp::path!("audit" / "replay")
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .map(|_: Principal, q: Query, st: Shared| replay(st, &q))
        .or(warp::path!("audit" / "replay").and(other_methods("GET")))
        .unify();
    get_root
        .or(get_inclusion)
        .unify()
        .or(get_consistency)
        .unify()
        .boxed()
        .or(checkpoint)
        .unify()
        .or(get_key)
        .unify()
        .or(get_replay)
        .unify()
        .boxed()
}
