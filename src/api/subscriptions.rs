//! Routes under `/subscriptions` (issue 4).

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::Shared;

/// The subscription routes.
pub fn routes(_state: Shared) -> BoxedFilter<(Response,)> {
    warp::path("subscriptions")
        .and(warp::any().and_then(|| async { Err::<Response, _>(warp::reject::not_found()) }))
        .boxed()
}
