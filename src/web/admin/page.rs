//! The operator's page: HTML, script and style built into the binary, so it works whatever
//! WEB_DIR holds, under the same Content-Security-Policy as the public page (scripts and styles
//! from this server only, no inline code). It is served only when ADMIN_TOKEN is set.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

const HTML: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("admin.js");
const STYLE: &str = include_str!("admin.css");

fn serve(state: &AppState, content_type: &'static str, body: &'static str) -> Response {
    if state.settings.web.admin_token.is_none() {
        return (StatusCode::NOT_FOUND, "the admin page is disabled; set ADMIN_TOKEN to enable it").into_response();
    }
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub async fn html(State(state): State<Arc<AppState>>) -> Response {
    serve(&state, "text/html; charset=utf-8", HTML)
}

pub async fn script(State(state): State<Arc<AppState>>) -> Response {
    serve(&state, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style(State(state): State<Arc<AppState>>) -> Response {
    serve(&state, "text/css; charset=utf-8", STYLE)
}
