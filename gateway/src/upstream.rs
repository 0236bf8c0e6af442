//! How the gateway talks to one route: a JSON-RPC transport that caps the size of what it reads
//! and records per-route metrics, on hyper's pooled HTTP/1.1 client for `http://` routes (the
//! lean path) and on reqwest (TLS) for `https://` routes. It plugs into the failover transport of
//! lifeline-bindings as its [`Connector`].

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
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, header};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use lifeline_bindings::transport::Connector;
use tower::Service;

use crate::{
    metrics::{Metrics, RouteLabels, SeriesCache},
    rpc::method_label,
};

/// Which registry endpoint a route URL is, for metric labels (`bootstrap` when not in a set).
#[derive(Debug, Default, Clone)]
pub struct RouteNames(Arc<RwLock<HashMap<Url, String>>>);

impl RouteNames {
    /// Adds (or renames) the routes of a new route set.
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
    client: Client<HttpConnector, Full<Bytes>>,
    tls: reqwest::Client,
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
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build(connector);
        let tls = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Self { client, tls, service: service.to_string(), max_response_bytes, metrics, names }
    }
}

impl Connector for UpstreamConnector {
    type Transport = Upstream;

    fn connect(&self, url: &Url, target: &Url) -> Upstream {
        Upstream {
            inner: Arc::new(Inner {
                uri: target
                    .as_str()
                    .parse()
                    .map_err(|e: hyper::http::uri::InvalidUri| e.to_string()),
                connector: self.clone(),
                url: url.clone(),
                target: target.clone(),
                endpoint: self.names.name(url),
                series: SeriesCache::default(),
            }),
        }
    }
}

/// One route: HTTP POST of the JSON-RPC packet, answer read up to `max_response_bytes`.
#[derive(Debug, Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: UpstreamConnector,
    /// The route as registered (a template shows no secret): for labels and messages.
    url: Url,
    /// Where requests go (the resolved URL).
    target: Url,
    uri: Result<hyper::Uri, String>,
    /// The registry endpoint index when the route was made (or `bootstrap`).
    endpoint: String,
    series: SeriesCache,
}

impl Upstream {
    async fn send(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let inner = &*self.inner;
        let method = request.method_names().next().map_or("other", method_label);
        let series = inner.series.get(method, || {
            inner.connector.metrics.route_series(&RouteLabels {
                service: inner.connector.service.clone(),
                endpoint: inner.endpoint.clone(),
                url: inner.url.to_string(),
                method: method.to_string(),
            })
        });
        let started = Instant::now();
        let result = inner.post(&request).await;
        series.requests.inc();
        series.latency.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            series.errors.inc();
        }
        result
    }
}

impl Inner {
    async fn post(&self, request: &RequestPacket) -> Result<ResponsePacket, TransportError> {
        let body = serde_json::to_vec(request).map_err(TransportError::ser_err)?;
        if self.url.scheme() == "https" {
            return self.post_tls(body).await;
        }
        let uri = self.uri.clone().map_err(|e| TransportErrorKind::custom_str(&e))?;
        let http = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(TransportErrorKind::custom)?;
        let resp = self.connector.client.request(http).await.map_err(TransportErrorKind::custom)?;
        let status = resp.status();
        let limit = self.connector.max_response_bytes;
        let body = match Limited::new(resp.into_body(), limit).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(TransportErrorKind::custom_str(&format!(
                    "answer larger than limits.max_response_bytes ({limit} bytes)"
                )));
            }
            Err(e) => return Err(TransportErrorKind::custom_str(&e.to_string())),
        };
        let preview = || String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
        if !status.is_success() {
            return Err(TransportErrorKind::http_error(status.as_u16(), preview()));
        }
        serde_json::from_slice(&body).map_err(|err| TransportError::deser_err(err, preview()))
    }
}

impl Inner {
    /// The same over TLS, with reqwest.
    async fn post_tls(&self, body: Vec<u8>) -> Result<ResponsePacket, TransportError> {
        let mut resp = self
            .connector
            .tls
            .post(self.target.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            // reqwest names the URL in its errors: the resolved one may carry a secret.
            .map_err(|e| TransportErrorKind::custom(e.without_url()))?;
        let status = resp.status();
        let limit = self.connector.max_response_bytes;
        let too_large = || {
            TransportErrorKind::custom_str(&format!(
                "answer larger than limits.max_response_bytes ({limit} bytes)"
            ))
        };
        if resp.content_length().is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| TransportErrorKind::custom(e.without_url()))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let preview = || String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
        if !status.is_success() {
            return Err(TransportErrorKind::http_error(status.as_u16(), preview()));
        }
        serde_json::from_slice(&body).map_err(|err| TransportError::deser_err(err, preview()))
    }
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
