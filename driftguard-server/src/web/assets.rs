//! The dashboard's static files, compiled into the binary (`include_bytes!`): no CDN, no
//! external font, nothing fetched at run time, no npm step at build time. Three small files
//! do not need an embedding crate; their URLs carry a hash of their content, so that browsers
//! may keep them for a year and still never use a stale one.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// File name (the URL is `/assets/{name}?v={hash}`).
    pub name: &'static str,
    /// Media type.
    pub content_type: &'static str,
    /// Content.
    pub body: &'static [u8],
}

/// Every embedded file.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

/// The scripts and styles every page loads (what a first load costs).
pub const PAGE_ASSETS: &[&str] = &["app.css", "app.js"];

fn urls() -> &'static Vec<(&'static str, String)> {
    static URLS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    URLS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let hash = hex::encode(&Sha256::digest(a.body)[..6]);
                (a.name, format!("/assets/{}?v={hash}", a.name))
            })
            .collect()
    })
}

/// The versioned URL of an embedded file (`/assets/app.css?v=…`).
pub fn url(name: &str) -> &'static str {
    urls()
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("/assets/missing", |(_, u)| u.as_str())
}

/// Bytes of scripts and styles a page loads.
pub fn page_bytes() -> usize {
    ASSETS
        .iter()
        .filter(|a| PAGE_ASSETS.contains(&a.name))
        .map(|a| a.body.len())
        .sum()
}

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
