//! `mktg serve`: the API function's router and the dashboard on a local
//! port, over the emulator's table and queues, for the laptop. The same
//! `api::serve` answers here and behind the Lambda function URL.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mktg_boot::Deps;
use std::net::SocketAddr;
use std::sync::Arc;

async fn answer(
    deps: Arc<Deps>,
    keys: Arc<api::ApiKeys>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let body = match Limited::new(body, api::MAX_BODY + 1).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(json_error(
                413,
                &format!("the body is larger than {} bytes", api::MAX_BODY),
            ))
        }
    };
    let reply = api::serve(
        &deps,
        &keys,
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        header("authorization").as_deref(),
        header("last-event-id").as_deref(),
        &body,
    )
    .await;
    tracing::info!(method = %parts.method, path = parts.uri.path(), status = reply.status, "request");
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    for (k, v) in &reply.headers {
        response = response.header(*k, v);
    }
    Ok(response
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| json_error(500, "could not build the response")))
}

fn json_error(status: u16, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"code": "bad_request", "message": message}).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    r
}

/// Serves until `shutdown` resolves.
pub async fn run(
    deps: Deps,
    keys: api::ApiKeys,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (deps, keys) = (Arc::new(deps), Arc::new(keys));
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let (deps, keys) = (deps.clone(), keys.clone());
        tokio::spawn(async move {
            let service = service_fn(move |r| answer(deps.clone(), keys.clone(), r));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}
