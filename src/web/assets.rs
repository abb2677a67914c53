//! The page (`web/public/`) and the livekit-client bundle from `web/node_modules/`, both served
//! from disk so nothing is fetched from a CDN at run time.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

/// The UMD build exposes the `LivekitClient` global the page uses.
const LIVEKIT_CLIENT: &str = "node_modules/livekit-client/dist/livekit-client.umd.js";
const INSTALL_HINT: &str = "the page's npm packages are not installed; run `npm ci --prefix web`";

pub fn router(web_dir: &Path) -> Router {
    let bundle = web_dir.join(LIVEKIT_CLIENT);
    Router::new()
        .route("/vendor/livekit-client.umd.js", get(move || livekit_client(bundle.clone())))
        .fallback_service(ServeDir::new(web_dir.join("public")))
}

async fn livekit_client(path: PathBuf) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(path = %path.display(), "cannot serve livekit-client: {e}; {INSTALL_HINT}");
            (StatusCode::SERVICE_UNAVAILABLE, INSTALL_HINT).into_response()
        }
    }
}

/// Says at start-up, not at the first visitor, that the page cannot work.
pub fn warn_if_missing(web_dir: &Path) {
    if !web_dir.join("public/index.html").is_file() {
        tracing::warn!(dir = %web_dir.display(), "no public/index.html under WEB_DIR; the page will not load");
    }
    if !web_dir.join(LIVEKIT_CLIENT).is_file() {
        tracing::warn!(dir = %web_dir.display(), "{INSTALL_HINT}");
    }
}
