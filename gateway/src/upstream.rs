//! How the gateway talks to one route: an HTTP JSON-RPC transport (one `reqwest` connection pool
//! per service) that caps the size of what it reads and records per-route metrics. It plugs into
//! the failover transport of lifeline-bindings as its [`Connector`].

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::Instant,
};

use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket},
    transports::{
        TransportError, TransportErrorKind, TransportFut,
        http::reqwest::{self, Url},
    },
};
use lifeline_bindings::transport::Connector;
use tower::Service;

use crate::{
    metrics::{Metrics, RouteLabels},
    rpc::method_label,
};

/// Which registry endpoint a route URL is, for metric labels (`bootstrap` when not in a set).
#[derive(Debug, Default, Clone)]
pub struct RouteNames(Arc<RwLock<HashMap<Url, String>>>);

impl RouteNames {
    /// Replaces the names with those of a new route set.
    pub fn set(&self, names: impl IntoIterator<Item = (Url, String)>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.extend(names);
    }

    fn name(&self, url: &Url) -> String {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
            .unwrap_or_else(|| "bootstrap".into())
    }
}

/// Makes [`Upstream`] transports for one service.
#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    client: reqwest::Client,
    service: String,
    max_response_bytes: usize,
    metrics: Metrics,
    names: RouteNames,
}

impl UpstreamConnector {
    /// A connector for `service`'s routes.
    pub fn new(
        service: &str,
        max_response_bytes: usize,
        metrics: Metrics,
        names: RouteNames,
    ) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Self { client, service: service.to_string(), max_response_bytes, metrics, names }
    }
}

impl Connector for UpstreamConnector {
    type Transport = Upstream;

    fn connect(&self, url: &Url) -> Upstream {
        Upstream { inner: Arc::new((self.clone(), url.clone())) }
    }
}

/// One route: HTTP POST of the JSON-RPC packet, answer read up to `max_response_bytes`.
#[derive(Debug, Clone)]
pub struct Upstream {
    inner: Arc<(UpstreamConnector, Url)>,
}

impl Upstream {
    async fn send(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let (connector, url) = &*self.inner;
        let labels = RouteLabels {
            service: connector.service.clone(),
            endpoint: connector.names.name(url),
            url: url.to_string(),
            method: request.method_names().next().map_or("other", method_label).to_string(),
        };
        let started = Instant::now();
        let result = post(connector, url, &request).await;
        let m = &connector.metrics;
        m.route_requests.get_or_create(&labels).inc();
        m.route_latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            m.route_errors.get_or_create(&labels).inc();
        }
        result
    }
}

async fn post(
    connector: &UpstreamConnector,
    url: &Url,
    request: &RequestPacket,
) -> Result<ResponsePacket, TransportError> {
    let body = serde_json::to_vec(request).map_err(TransportError::ser_err)?;
    let mut resp = connector
        .client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(TransportErrorKind::custom)?;
    let status = resp.status();
    let limit = connector.max_response_bytes;
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(1024, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(TransportErrorKind::custom)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(TransportErrorKind::http_error(
            status.as_u16(),
            String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned(),
        ));
    }
    serde_json::from_slice(&body).map_err(|err| {
        TransportError::deser_err(err, String::from_utf8_lossy(&body[..body.len().min(256)]))
    })
}

fn too_large(limit: usize) -> TransportError {
    TransportErrorKind::custom_str(&format!(
        "answer larger than limits.max_response_bytes ({limit} bytes)"
    ))
}

impl Service<RequestPacket> for Upstream {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}
