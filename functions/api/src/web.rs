//! The dashboard's static files (compiled into the function, so one
//! deployment serves both).

use crate::Reply;

const INDEX: &str = include_str!("../../../web/index.html");
const APP: &str = include_str!("../../../web/app.js");
const STYLE: &str = include_str!("../../../web/style.css");

static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Serve the dashboard's files from this directory, read at each request,
/// instead of the copies compiled in (`mktg serve` on a checkout: edit and
/// reload).
pub fn serve_files_from(dir: std::path::PathBuf) {
    let _ = DIR.set(dir);
}

/// The file at `path`, if it is one of the dashboard's.
pub fn file(path: &str) -> Option<Reply> {
    let (content_type, name, compiled) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", "index.html", INDEX),
        "/app.js" => ("text/javascript; charset=utf-8", "app.js", APP),
        "/style.css" => ("text/css; charset=utf-8", "style.css", STYLE),
        _ => return None,
    };
    let body = DIR
        .get()
        .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
        .unwrap_or_else(|| compiled.to_string());
    Some(Reply {
        status: 200,
        content_type,
        headers: vec![("cache-control", "no-cache".into())],
        body,
    })
}
