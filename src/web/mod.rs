//! The web page at `/`: HTML, CSS and plain JavaScript modules from `src/web/assets/`, embedded
//! in the binary with `include_dir!` (no build step, no CDN), served with their content type,
//! an `ETag` and `Cache-Control: no-cache` (a reload revalidates, an unchanged asset is a 304).
//! The assets are public: the page asks the reader for a key and sends it from JavaScript as
//! `Authorization: Bearer`. Any other method on these paths is a 405 with `Allow: GET`. This
//! module must never serve data from the log, hold business rules, or need a key: everything
//! the page shows comes through the JSON API.

use std::collections::HashMap;
use std::sync::OnceLock;

use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::api::problem::{self, Problem};

static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/src/web/assets");

/// The page's security policy: everything from this origin, nothing inline, nothing else.
/// Inline `style` attributes are refused too, so the page sets geometry through the DOM.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file, ready to answer: its bytes, type and strong `ETag`.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: String,
}

/// Every asset by its path under `assets/`, hashed once on first use.
fn assets() -> &'static HashMap<String, Asset> {
    static MAP: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = HashMap::new();
        collect(&ASSETS, &mut map);
        map
    })
}

fn collect(dir: &'static Dir<'static>, map: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        let body = file.contents();
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(body)[..16]));
        map.insert(
            path.clone(),
            Asset {
                body,
                content_type: content_type(&path),
                etag,
            },
        );
    }
    for sub in dir.dirs() {
        collect(sub, map);
    }
}

/// The type of an asset by its extension. JavaScript modules must be served as JavaScript,
/// or the browser refuses to run them.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /` (the page) and `GET /web/{path}` (its assets). No key: the page itself holds no
/// data. Any other method on these paths is a 405 naming GET (RFC 9110 asks for `Allow`), and
/// a file the page does not have is a 404 problem.
pub fn routes() -> BoxedFilter<(Response,)> {
    let index = warp::path::end()
        .and(warp::get())
        .and(if_none_match())
        .and_then(|tag: Option<String>| async move { serve("index.html", tag.as_deref()) });
    let index_other = warp::path::end().and(only_get());
    let asset = warp::path("web")
        .and(warp::path::tail())
        .and(warp::get())
        .and(if_none_match())
        .and_then(|tail: warp::path::Tail, tag: Option<String>| async move {
            serve(tail.as_str(), tag.as_deref())
        });
    let asset_other = warp::path("web")
        .and(warp::path::tail())
        .and(only_get())
        .map(|_: warp::path::Tail, r: Response| r);
    index
        .or(index_other)
        .unify()
        .or(asset)
        .unify()
        .or(asset_other)
        .unify()
        .boxed()
}

/// Put last on a path: any method but GET is a 405 with `Allow: GET`; GET steps aside, so the
/// GET route's own answer (an asset, or its 404) is the one given.
fn only_get() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method().and_then(|method: Method| async move {
        if method == Method::GET {
            Err(warp::reject::not_found())
        } else {
            Ok(warp::Reply::into_response(problem::method_not_allowed(
                "GET",
            )))
        }
    })
}

fn if_none_match()
-> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("if-none-match")
        .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) })
}

/// The asset at `path`, or a 304 when the client's `If-None-Match` names its tag. An unknown
/// asset is a 404 problem that names it.
fn serve(path: &str, if_none_match: Option<&str>) -> Result<Response, warp::Rejection> {
    let Some(asset) = assets().get(path) else {
        return Err(warp::reject::custom(Problem::not_found(format!(
            "the page has no file `{path}`"
        ))));
    };
    let fresh = if_none_match.is_some_and(|tags| {
        tags.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == asset.etag)
    });
    let mut resp = if fresh {
        let mut r = Response::new(warp::hyper::Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(asset.body.into())
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(tag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, tag);
    }
    // Assets are not fingerprinted, so a reader always revalidates; the ETag makes that cheap.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_content_type() {
        for path in assets().keys() {
            assert_ne!(
                content_type(path),
                "application/octet-stream",
                "{path} would be served without a type"
            );
        }
        assert!(assets().contains_key("index.html"));
    }

    #[test]
    fn the_openapi_document_lists_every_file_of_the_page() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/openapi.json")).unwrap();
        let param = &doc["paths"]["/web/{file}"]["get"]["parameters"][0];
        assert_eq!(param["name"], "file");
        let mut documented: Vec<&str> = param["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        documented.sort_unstable();
        let mut served: Vec<&str> = assets().keys().map(String::as_str).collect();
        served.sort_unstable();
        assert_eq!(documented, served);
    }

    #[test]
    fn a_matching_if_none_match_is_a_304_without_body() {
        let tag = assets()["index.html"].etag.clone();
        let resp = serve("index.html", Some(&tag)).unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let resp = serve("index.html", Some("\"other\"")).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
