//! Prometheus metrics of the gateway (`GET /metrics` on the admin listener), with the
//! `prometheus-client` crate. Label values are bounded: services come from the config, routes
//! are the registry's endpoint index and URL as registered, methods outside a fixed list of
//! standard methods are counted as `other`.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of a client-facing call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The service name.
    pub service: String,
    /// The method (or `other`).
    pub method: String,
}

/// Labels of one upstream attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The service name.
    pub service: String,
    /// The endpoint index in the registry (`bootstrap` for a bootstrap route).
    pub endpoint: String,
    /// The route's URL as registered.
    pub url: String,
    /// The method (or `other`).
    pub method: String,
}

/// Labels of a route skipped for reads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// The service name.
    pub service: String,
    /// The route's URL as registered.
    pub url: String,
    /// Why: lagging, stalled, ahead, wrong_chain, forked, no_head.
    pub reason: String,
}

/// Labels of a per-service figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service name.
    pub service: String,
}

/// Labels of a per-service subscription figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The service name.
    pub service: String,
    /// `newHeads`, `logs` or `newPendingTransactions`.
    pub kind: String,
}

/// Every metric of the gateway. Cheap to clone (handles share the same series).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Client calls answered, by service and method.
    pub requests: Family<CallLabels, Counter>,
    /// Client calls answered with an error the gateway made (no route answered, timeout,
    /// refused method, limit); upstream JSON-RPC errors such as reverts are answers, not errors.
    pub errors: Family<CallLabels, Counter>,
    /// Latency of client calls through the gateway, seconds.
    pub latency: Family<CallLabels, Histogram>,
    /// Upstream attempts, by route and method.
    pub route_requests: Family<RouteLabels, Counter>,
    /// Upstream attempts that failed (transport error, HTTP error, oversized answer).
    pub route_errors: Family<RouteLabels, Counter>,
    /// Latency of upstream attempts, seconds.
    pub route_latency: Family<RouteLabels, Histogram>,
    /// Calls that needed more than one route (per-request failover).
    pub failovers: Family<ServiceLabels, Counter>,
    /// Slow reads also sent to a second route.
    pub hedges: Family<ServiceLabels, Counter>,
    /// Routes skipped for reads right now (1 per route and reason).
    pub route_skipped: Family<SkipLabels, Gauge>,
    /// Reads refused because no route was fresh.
    pub stale_refusals: Family<ServiceLabels, Counter>,
    /// Consensus answers a route disagreed with.
    pub dissents: Family<ServiceLabels, Counter>,
    /// The registry epoch each service routes by.
    pub epoch: Family<ServiceLabels, Gauge>,
    /// Index of the registry whose set each service routes by (0 = the primary).
    pub registry_in_force: Family<ServiceLabels, Gauge>,
    /// Times live registries of a service disagreed on its route set for longer than
    /// `registry_choice.disagree_after_ms`.
    pub registry_disagreements: Family<ServiceLabels, Counter>,
    /// Authorised routes each service routes by.
    pub routes: Family<ServiceLabels, Gauge>,
    /// Subscriptions open now.
    pub subscriptions: Family<KindLabels, Gauge>,
    /// Times a subscription's head follower moved to another route or recovered from a gap.
    pub resubscribes: Family<ServiceLabels, Counter>,
    /// Heads and logs delivered to subscribers from a catch-up (backfill) after a gap.
    pub backfilled: Family<KindLabels, Counter>,
    /// Reorged-out blocks seen by the head follower.
    pub reorged_blocks: Family<ServiceLabels, Counter>,
    /// Client connections open now.
    pub connections: Gauge,
    /// Requests refused by the per-IP rate limit.
    pub rate_limited: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lifeline_gateway");
        let requests = Family::<CallLabels, Counter>::default();
        let errors = Family::<CallLabels, Counter>::default();
        let latency = Family::<CallLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let route_requests = Family::<RouteLabels, Counter>::default();
        let route_errors = Family::<RouteLabels, Counter>::default();
        let route_latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let failovers = Family::<ServiceLabels, Counter>::default();
        let hedges = Family::<ServiceLabels, Counter>::default();
        let epoch = Family::<ServiceLabels, Gauge>::default();
        let route_skipped = Family::<SkipLabels, Gauge>::default();
        let stale_refusals = Family::<ServiceLabels, Counter>::default();
        let dissents = Family::<ServiceLabels, Counter>::default();
        let registry_in_force = Family::<ServiceLabels, Gauge>::default();
        let registry_disagreements = Family::<ServiceLabels, Counter>::default();
        let routes = Family::<ServiceLabels, Gauge>::default();
        let subscriptions = Family::<KindLabels, Gauge>::default();
        let resubscribes = Family::<ServiceLabels, Counter>::default();
        let backfilled = Family::<KindLabels, Counter>::default();
        let reorged_blocks = Family::<ServiceLabels, Counter>::default();
        let connections = Gauge::default();
        let rate_limited = Counter::default();
        registry.register("requests", "Client calls answered", requests.clone());
        registry.register("errors", "Client calls answered with a gateway error", errors.clone());
        registry.register("request_duration_seconds", "Client call latency", latency.clone());
        registry.register("route_requests", "Upstream attempts", route_requests.clone());
        registry.register("route_errors", "Upstream attempts that failed", route_errors.clone());
        registry.register(
            "route_duration_seconds",
            "Upstream attempt latency",
            route_latency.clone(),
        );
        registry.register("failovers", "Calls that needed more than one route", failovers.clone());
        registry.register("hedges", "Slow reads also sent to a second route", hedges.clone());
        registry.register(
            "route_skipped",
            "Routes skipped for reads, by reason",
            route_skipped.clone(),
        );
        registry.register(
            "stale_refusals",
            "Reads refused: no fresh route",
            stale_refusals.clone(),
        );
        registry.register("dissents", "Consensus answers a route disagreed with", dissents.clone());
        registry.register(
            "registry_in_force",
            "Index of the registry whose route set the service routes by (0 = primary)",
            registry_in_force.clone(),
        );
        registry.register(
            "registry_disagreements",
            "Times live registries disagreed on the route set for longer than disagree_after",
            registry_disagreements.clone(),
        );
        registry.register("epoch", "Registry epoch of the route set in use", epoch.clone());
        registry.register("authorised_routes", "Routes in the set in use", routes.clone());
        registry.register("subscriptions", "Open subscriptions", subscriptions.clone());
        registry.register(
            "resubscribes",
            "Head follower route changes and gap recoveries",
            resubscribes.clone(),
        );
        registry.register(
            "backfilled",
            "Items delivered from a catch-up after a gap",
            backfilled.clone(),
        );
        registry.register("reorged_blocks", "Reorged-out blocks seen", reorged_blocks.clone());
        registry.register("connections", "Open client connections", connections.clone());
        registry.register(
            "rate_limited",
            "Requests refused by the per-IP rate limit",
            rate_limited.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            errors,
            latency,
            route_requests,
            route_errors,
            route_latency,
            failovers,
            hedges,
            route_skipped,
            stale_refusals,
            dissents,
            registry_in_force,
            registry_disagreements,
            epoch,
            routes,
            subscriptions,
            resubscribes,
            backfilled,
            reorged_blocks,
            connections,
            rate_limited,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The series of one labelled call figure, looked up once and reused: the hot path then does
/// no label allocation or map lookup per request.
#[derive(Clone, Debug)]
pub struct Series {
    /// Requests (or attempts).
    pub requests: Counter,
    /// Errors.
    pub errors: Counter,
    /// Latency, seconds.
    pub latency: Histogram,
}

/// A small cache of [`Series`] by method label.
#[derive(Debug, Default)]
pub struct SeriesCache(std::sync::RwLock<std::collections::HashMap<&'static str, Series>>);

impl SeriesCache {
    /// The series for `method`, made by `make` the first time.
    pub fn get(&self, method: &'static str, make: impl FnOnce() -> Series) -> Series {
        if let Some(series) = self.0.read().unwrap_or_else(|p| p.into_inner()).get(method) {
            return series.clone();
        }
        let series = make();
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(method, series.clone());
        series
    }
}

impl Metrics {
    /// The client-call series of (service, method).
    pub fn call_series(&self, service: &str, method: &str) -> Series {
        let labels = CallLabels { service: service.to_string(), method: method.to_string() };
        Series {
            requests: self.requests.get_or_create(&labels).clone(),
            errors: self.errors.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
        }
    }

    /// The upstream-attempt series of one route and method.
    pub fn route_series(&self, labels: &RouteLabels) -> Series {
        Series {
            requests: self.route_requests.get_or_create(labels).clone(),
            errors: self.route_errors.get_or_create(labels).clone(),
            latency: self.route_latency.get_or_create(labels).clone(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Labels of a service figure.
    pub fn service(service: &str) -> ServiceLabels {
        ServiceLabels { service: service.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_by_the_crate() {
        let metrics = Metrics::default();
        metrics
            .requests
            .get_or_create(&CallLabels { service: "a\"b\nc".into(), method: "eth_call".into() })
            .inc();
        let text = metrics.render();
        assert!(text.contains(r#"service="a\"b\nc""#), "{text}");
        assert!(text.contains("lifeline_gateway_requests_total"), "{text}");
    }
}
