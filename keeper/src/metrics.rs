//! Prometheus metrics of one keeper, served as text on `/metrics`, with the `prometheus-client`
//! crate (which escapes label values). Label values are bounded: services come from the
//! configuration, `registry` is the index of the `[[registry]]` entry (0, 1, ...), findings,
//! verdicts, results, kinds and failure reasons come from fixed lists (never from error text).
//! Every engine (one per `[[registry]]`) writes through its own handle
//! ([`Metrics::for_registry`]) into one shared exposition.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `lifeline_probe_latency_seconds` | histogram | |
//! | `lifeline_probe_start_delay_seconds` | histogram | |
//! | `lifeline_probes_total` | counter | service, finding, registry |
//! | `lifeline_verdicts` | gauge | service, verdict, registry |
//! | `lifeline_submissions_total` | counter | result (accepted, superseded, failed), kind, registry |
//! | `lifeline_submission_failures_total` | counter | reason, registry |
//! | `lifeline_gas_used_total` | counter | registry |
//! | `lifeline_onchain_epoch` | gauge | service, registry |
//! | `lifeline_registry_reachable` | gauge (0/1) | registry |
//! | `lifeline_registry_last_success_timestamp_seconds` | gauge | registry |
//! | `lifeline_keeper_in_set` | gauge (0/1) | registry |

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

/// Labels of a per-registry figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    /// Index of the `[[registry]]` entry (`0` for the first or only one).
    pub registry: String,
}

/// Labels of a per-service figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service name, as configured.
    pub service: String,
    /// Index of the `[[registry]]` entry.
    pub registry: String,
}

/// Labels of a probe.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    /// The service name.
    pub service: String,
    /// [`crate::judge::Finding::label`].
    pub finding: &'static str,
    /// Index of the `[[registry]]` entry.
    pub registry: String,
}

/// Labels of a verdict count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// The service name.
    pub service: String,
    /// `healthy`, `unhealthy` or `unknown`.
    pub verdict: &'static str,
    /// Index of the `[[registry]]` entry.
    pub registry: String,
}

/// Labels of a submission.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubmissionLabels {
    /// `accepted`, `superseded` or `failed`.
    pub result: &'static str,
    /// `votes` or `heartbeat`.
    pub kind: &'static str,
    /// Index of the `[[registry]]` entry.
    pub registry: String,
}

/// Labels of a failed submission.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// [`crate::submit::SubmitError::label`]: `not_a_keeper`, `rejected`, `chain`, `no_receipt`.
    pub reason: &'static str,
    /// Index of the `[[registry]]` entry.
    pub registry: String,
}

/// The keeper's metrics. Cheap to clone (clones share the same series).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// The `registry` label this handle writes (see [`Metrics::for_registry`]).
    scope: String,
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
    /// Gas used by accepted attestations whose receipt was seen, by registry.
    pub gas_used: Family<RegistryLabels, Counter>,
    /// Last topology epoch read from the registry, by service.
    pub onchain_epoch: Family<ServiceLabels, Gauge>,
    /// 1 while the registry RPC answers, 0 while it does not, by registry.
    pub registry_reachable: Family<RegistryLabels, Gauge>,
    /// Unix time of the last successful registry read, by registry.
    pub registry_last_success: Family<RegistryLabels, Gauge>,
    /// 1 while this keeper's key is in the registry's keeper set, else 0, by registry.
    pub keeper_in_set: Family<RegistryLabels, Gauge>,
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
        let gas_used = Family::<RegistryLabels, Counter>::default();
        let onchain_epoch = Family::<ServiceLabels, Gauge>::default();
        let registry_reachable = Family::<RegistryLabels, Gauge>::default();
        let registry_last_success = Family::<RegistryLabels, Gauge>::default();
        let keeper_in_set = Family::<RegistryLabels, Gauge>::default();
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
            scope: "0".into(),
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
    /// A handle on the same series that labels what it writes `registry="<index>"`: one per
    /// engine, so several registries' figures stay apart in one exposition.
    pub fn for_registry(&self, index: usize) -> Self {
        Self { scope: index.to_string(), ..self.clone() }
    }

    fn labels(&self) -> RegistryLabels {
        RegistryLabels { registry: self.scope.clone() }
    }

    /// Records an answered probe's latency.
    pub fn observe_probe(&self, seconds: f64) {
        self.probe_latency.observe(seconds);
    }

    /// Counts one probe of `service` with `finding` (a [`crate::judge::Finding::label`]).
    pub fn probe(&self, service: &str, finding: &'static str) {
        let registry = self.scope.clone();
        self.probes
            .get_or_create(&FindingLabels { service: service.to_string(), finding, registry })
            .inc();
    }

    /// Sets the number of endpoints of `service` with `verdict`.
    pub fn set_verdicts(&self, service: &str, verdict: &'static str, count: u32) {
        let registry = self.scope.clone();
        self.verdicts
            .get_or_create(&VerdictLabels { service: service.to_string(), verdict, registry })
            .set(i64::from(count));
    }

    /// Counts one submission.
    pub fn submission(&self, result: &'static str, kind: &'static str) {
        let registry = self.scope.clone();
        self.submissions.get_or_create(&SubmissionLabels { result, kind, registry }).inc();
    }

    /// Counts one failed submission, by reason ([`crate::submit::SubmitError::label`]).
    pub fn submission_failure(&self, reason: &'static str) {
        let registry = self.scope.clone();
        self.submission_failures.get_or_create(&FailureLabels { reason, registry }).inc();
    }

    /// Adds gas used by an accepted attestation.
    pub fn add_gas_used(&self, gas: u64) {
        self.gas_used.get_or_create(&self.labels()).inc_by(gas);
    }

    /// Sets the epoch last read for `service`.
    pub fn set_epoch(&self, service: &str, epoch: u32) {
        let registry = self.scope.clone();
        self.onchain_epoch
            .get_or_create(&ServiceLabels { service: service.to_string(), registry })
            .set(i64::from(epoch));
    }

    /// Records whether the registry RPC answered; an answer also sets the last-success time.
    pub fn set_registry_reachable(&self, reachable: bool) {
        self.registry_reachable.get_or_create(&self.labels()).set(i64::from(reachable));
        if reachable {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.registry_last_success.get_or_create(&self.labels()).set(now as i64);
        }
    }

    /// Records whether this keeper's key is in the registry's keeper set.
    pub fn set_keeper_in_set(&self, in_set: bool) {
        self.keeper_in_set.get_or_create(&self.labels()).set(i64::from(in_set));
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
        m.add_gas_used(55_000);
        m.set_registry_reachable(true);
        m.set_keeper_in_set(false);
        m.for_registry(1).set_keeper_in_set(true);
        let text = m.render();
        assert!(text.contains("# TYPE lifeline_submissions counter"), "{text}");
        assert!(
            text.contains(
                r#"lifeline_submissions_total{result="accepted",kind="votes",registry="0"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"lifeline_probe_latency_seconds_bucket{le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"lifeline_probe_latency_seconds_bucket{le="0.0025"} 0"#), "{text}");
        assert!(text.contains("lifeline_probe_latency_seconds_count 1"), "{text}");
        assert!(text.contains(r#"lifeline_gas_used_total{registry="0"} 55000"#), "{text}");
        assert!(text.contains(r#"lifeline_registry_reachable{registry="0"} 1"#), "{text}");
        assert!(text.contains(r#"lifeline_keeper_in_set{registry="0"} 0"#), "{text}");
        assert!(text.contains(r#"lifeline_keeper_in_set{registry="1"} 1"#), "{text}");
        assert_eq!(text.matches("# TYPE lifeline_keeper_in_set").count(), 1, "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.probe("a\"b\nc\\d", "ok");
        let text = m.render();
        assert!(
            text.contains(
                r#"lifeline_probes_total{service="a\"b\nc\\d",finding="ok",registry="0"} 1"#
            ),
            "{text}"
        );
    }
}
