//! Prometheus metrics of one keeper, served as text on `/metrics`, with the `prometheus-client`
//! crate (which escapes label values). Label values are bounded: services come from the
//! configuration, findings, verdicts, results, kinds and failure reasons from fixed lists (never
//! from error text).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `lifeline_probe_latency_seconds` | histogram | |
//! | `lifeline_probe_start_delay_seconds` | histogram | |
//! | `lifeline_probes_total` | counter | service, finding |
//! | `lifeline_verdicts` | gauge | service, verdict |
//! | `lifeline_submissions_total` | counter | result (accepted, superseded, failed), kind |
//! | `lifeline_submission_failures_total` | counter | reason |
//! | `lifeline_gas_used_total` | counter | |
//! | `lifeline_onchain_epoch` | gauge | service |
//! | `lifeline_registry_reachable` | gauge (0/1) | |
//! | `lifeline_registry_last_success_timestamp_seconds` | gauge | |
//! | `lifeline_keeper_in_set` | gauge (0/1) | |

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Upper bounds of the probe-latency histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Probe start delays: fine at the bottom, where an evenly spread schedule keeps them.
const START_DELAY_BUCKETS: [f64; 12] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0];

/// Labels of a per-service figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service name, as configured.
    pub service: String,
}

/// Labels of a probe.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    /// The service name.
    pub service: String,
    /// [`crate::judge::Finding::label`].
    pub finding: &'static str,
}

/// Labels of a verdict count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// The service name.
    pub service: String,
    /// `healthy`, `unhealthy` or `unknown`.
    pub verdict: &'static str,
}

/// Labels of a submission.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubmissionLabels {
    /// `accepted`, `superseded` or `failed`.
    pub result: &'static str,
    /// `votes` or `heartbeat`.
    pub kind: &'static str,
}

/// Labels of a failed submission.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// [`crate::submit::SubmitError::label`]: `not_a_keeper`, `rejected`, `chain`, `no_receipt`.
    pub reason: &'static str,
}

/// The keeper's metrics. Cheap to clone (clones share the same series).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Latency of answered probes, seconds.
    pub probe_latency: Histogram,
    /// How late probes start after their round's scheduled time (concurrency limit, a busy
    /// runtime), seconds.
    pub probe_start_delay: Histogram,
    /// Probes run, by service and finding.
    pub probes: Family<FindingLabels, Counter>,
    /// Endpoints per stable verdict, by service.
    pub verdicts: Family<VerdictLabels, Gauge>,
    /// Submissions, by result and kind.
    pub submissions: Family<SubmissionLabels, Counter>,
    /// Failed submissions, by reason.
    pub submission_failures: Family<FailureLabels, Counter>,
    /// Gas used by accepted attestations whose receipt was seen.
    pub gas_used: Counter,
    /// Last topology epoch read from the registry, by service.
    pub onchain_epoch: Family<ServiceLabels, Gauge>,
    /// 1 while the registry RPC answers, 0 while it does not.
    pub registry_reachable: Gauge,
    /// Unix time of the last successful registry read.
    pub registry_last_success: Gauge,
    /// 1 while this keeper's key is in the registry's keeper set, else 0.
    pub keeper_in_set: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lifeline");
        let probe_latency = Histogram::new(BUCKETS);
        let probe_start_delay = Histogram::new(START_DELAY_BUCKETS);
        let probes = Family::<FindingLabels, Counter>::default();
        let verdicts = Family::<VerdictLabels, Gauge>::default();
        let submissions = Family::<SubmissionLabels, Counter>::default();
        let submission_failures = Family::<FailureLabels, Counter>::default();
        let gas_used = Counter::default();
        let onchain_epoch = Family::<ServiceLabels, Gauge>::default();
        let registry_reachable = Gauge::default();
        let registry_last_success = Gauge::default();
        let keeper_in_set = Gauge::default();
        registry.register(
            "probe_latency_seconds",
            "Latency of answered probes",
            probe_latency.clone(),
        );
        registry.register(
            "probe_start_delay_seconds",
            "How late probes start after their round's scheduled time",
            probe_start_delay.clone(),
        );
        registry.register(
            "probes",
            "Probes run, by service and finding (ok, timeout, lagging, ...)",
            probes.clone(),
        );
        registry.register(
            "verdicts",
            "Endpoints per stable verdict (healthy, unhealthy, unknown), by service",
            verdicts.clone(),
        );
        registry.register(
            "submissions",
            "Attestations submitted, by result (accepted, superseded, failed) and kind",
            submissions.clone(),
        );
        registry.register(
            "submission_failures",
            "Failed submissions, by reason",
            submission_failures.clone(),
        );
        registry.register("gas_used", "Gas used by accepted attestations", gas_used.clone());
        registry.register(
            "onchain_epoch",
            "Last topology epoch read from the registry, by service",
            onchain_epoch.clone(),
        );
        registry.register(
            "registry_reachable",
            "1 while the registry RPC answers, else 0",
            registry_reachable.clone(),
        );
        registry.register(
            "registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry read",
            registry_last_success.clone(),
        );
        registry.register(
            "keeper_in_set",
            "1 while this keeper's key is in the registry's keeper set, else 0",
            keeper_in_set.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            probe_latency,
            probe_start_delay,
            probes,
            verdicts,
            submissions,
            submission_failures,
            gas_used,
            onchain_epoch,
            registry_reachable,
            registry_last_success,
            keeper_in_set,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Records an answered probe's latency.
    pub fn observe_probe(&self, seconds: f64) {
        self.probe_latency.observe(seconds);
    }

    /// Counts one probe of `service` with `finding` (a [`crate::judge::Finding::label`]).
    pub fn probe(&self, service: &str, finding: &'static str) {
        self.probes.get_or_create(&FindingLabels { service: service.to_string(), finding }).inc();
    }

    /// Sets the number of endpoints of `service` with `verdict`.
    pub fn set_verdicts(&self, service: &str, verdict: &'static str, count: u32) {
        self.verdicts
            .get_or_create(&VerdictLabels { service: service.to_string(), verdict })
            .set(i64::from(count));
    }

    /// Counts one submission.
    pub fn submission(&self, result: &'static str, kind: &'static str) {
        self.submissions.get_or_create(&SubmissionLabels { result, kind }).inc();
    }

    /// Sets the epoch last read for `service`.
    pub fn set_epoch(&self, service: &str, epoch: u32) {
        self.onchain_epoch
            .get_or_create(&ServiceLabels { service: service.to_string() })
            .set(i64::from(epoch));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
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
                            let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
                            r.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static(
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                ),
                            );
                            r
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
        m.submission("accepted", "votes");
        m.submission("accepted", "votes");
        m.observe_probe(0.003);
        m.gas_used.inc_by(55_000);
        m.registry_reachable.set(1);
        let text = m.render();
        assert!(text.contains("# TYPE lifeline_submissions counter"), "{text}");
        assert!(
            text.contains(r#"lifeline_submissions_total{result="accepted",kind="votes"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"lifeline_probe_latency_seconds_bucket{le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"lifeline_probe_latency_seconds_bucket{le="0.0025"} 0"#), "{text}");
        assert!(text.contains("lifeline_probe_latency_seconds_count 1"), "{text}");
        assert!(text.contains("lifeline_gas_used_total 55000"), "no empty label set: {text}");
        assert!(text.contains("lifeline_registry_reachable 1"), "{text}");
        assert!(text.contains("lifeline_keeper_in_set 0"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.probe("a\"b\nc\\d", "ok");
        let text = m.render();
        assert!(
            text.contains(r#"lifeline_probes_total{service="a\"b\nc\\d",finding="ok"} 1"#),
            "{text}"
        );
    }
}
