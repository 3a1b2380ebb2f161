//! Routes under `/projections` (issue 3).

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::Shared;

/// The projection routes.
pub fn routes(_state: Shared) -> BoxedFilter<(Response,)> {
    warp::path("projections")
        .and(warp::any().and_then(|| async { Err::<Response, _>(warp::reject::not_found()) }))
        .boxed()
}
