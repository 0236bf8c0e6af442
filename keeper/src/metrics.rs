//! Prometheus metrics of one keeper, served as text on `/metrics`.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Upper bounds of the probe-latency histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Every metric, with its one-line help.
const HELP: &[(&str, &str, &str)] = &[
    ("lifeline_probe_latency_seconds", "histogram", "Latency of answered probes."),
    (
        "lifeline_probes_total",
        "counter",
        "Probes run, by service and finding (ok, timeout, lagging, ...).",
    ),
    (
        "lifeline_verdicts",
        "gauge",
        "Endpoints per stable verdict (healthy, unhealthy, unknown), by service.",
    ),
    (
        "lifeline_submissions_total",
        "counter",
        "Attestations submitted, by result (accepted, superseded, failed).",
    ),
    ("lifeline_submission_failures_total", "counter", "Failed submission attempts, by reason."),
    ("lifeline_gas_used_total", "counter", "Gas used by accepted attestations."),
    ("lifeline_onchain_epoch", "gauge", "Last topology epoch read from the registry, by service."),
];

#[derive(Debug, Default)]
struct Inner {
    values: BTreeMap<(&'static str, String), f64>,
    buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
}

/// The keeper's metrics. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: String, by: f64) {
        self.with(|m| *m.values.entry((name, labels)).or_default() += by);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: String, value: f64) {
        self.with(|m| {
            m.values.insert((name, labels), value);
        });
    }

    /// Records an answered probe's latency.
    pub fn observe_probe(&self, seconds: f64) {
        self.with(|m| {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    m.buckets[i] += 1;
                }
            }
            m.latency_count += 1;
            m.latency_sum += seconds;
        });
    }

    /// A counter's or gauge's current value (0 when never set).
    pub fn value(&self, name: &'static str, labels: &str) -> f64 {
        self.with(|m| m.values.get(&(name, labels.to_string())).copied().unwrap_or(0.0))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            for (name, kind, help) in HELP {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                if *name == "lifeline_probe_latency_seconds" {
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        out.push_str(&format!(
                            "{name}_bucket{{le=\"{bound}\"}} {}\n",
                            m.buckets[i]
                        ));
                    }
                    out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {}\n", m.latency_count));
                    out.push_str(&format!(
                        "{name}_sum {}\n{name}_count {}\n",
                        m.latency_sum, m.latency_count
                    ));
                    continue;
                }
                for ((metric, labels), value) in &m.values {
                    if metric == name {
                        out.push_str(&format!("{name}{{{labels}}} {value}\n"));
                    }
                }
            }
            out
        })
    }

    /// Serves `/metrics` on `addr` until the task is dropped.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        info!(target: "keeper::metrics", addr = %listener.local_addr()?, "serving /metrics");
        loop {
            let (stream, _) = listener.accept().await?;
            let metrics = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let resp = if req.uri().path() == "/metrics" {
                            Response::new(Full::new(Bytes::from(metrics.render())))
                        } else {
                            let mut r =
                                Response::new(Full::new(Bytes::from_static(b"see /metrics\n")));
                            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                            r
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                if let Err(e) =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                {
                    warn!(target: "keeper::metrics", error = %e, "metrics connection failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_values() {
        let m = Metrics::default();
        m.add("lifeline_submissions_total", "result=\"accepted\"".into(), 2.0);
        m.observe_probe(0.003);
        let text = m.render();
        assert!(text.contains("# TYPE lifeline_submissions_total counter"));
        assert!(text.contains("lifeline_submissions_total{result=\"accepted\"} 2"));
        assert!(text.contains("lifeline_probe_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("lifeline_probe_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("lifeline_probe_latency_seconds_count 1"));
    }
}
