//! Per-route health as the client sees it: latency and error-rate EWMAs, and a circuit breaker.
//! Pure logic (no I/O), so ranking and breaker behaviour are unit-tested directly.

use std::time::{Duration, Instant};

/// Weight of the newest sample in the EWMAs.
const ALPHA: f64 = 0.3;
/// How much a 100% error rate multiplies a route's score.
const ERROR_PENALTY: f64 = 8.0;
/// How much the registry's `degraded` flag multiplies a route's score.
const DEGRADED_PENALTY: f64 = 4.0;

/// Circuit-breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker keeps the route out of rotation before a trial request.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 3, open_for: Duration::from_secs(5) }
    }
}

/// What the client has learned about one route.
#[derive(Debug, Clone)]
pub struct RouteHealth {
    latency_ms: f64,
    error_rate: f64,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// Flagged degraded by the registry (a quorum judged it unhealthy; it stays for the floor).
    pub degraded: bool,
}

impl RouteHealth {
    /// A route with no history yet; `prior_latency_ms` (e.g. the latency keepers attested)
    /// seeds the ranking until the client has measured it.
    pub fn new(prior_latency_ms: f64, degraded: bool) -> Self {
        Self {
            latency_ms: prior_latency_ms.max(0.1),
            error_rate: 0.0,
            consecutive_failures: 0,
            open_until: None,
            degraded,
        }
    }

    /// A request succeeded in `latency`.
    pub fn record_success(&mut self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1e3;
        self.latency_ms = ALPHA * ms + (1.0 - ALPHA) * self.latency_ms;
        self.error_rate *= 1.0 - ALPHA;
        self.consecutive_failures = 0;
        self.open_until = None;
    }

    /// A request failed at `now`; opens the breaker after enough consecutive failures.
    pub fn record_failure(&mut self, now: Instant, breaker: &BreakerConfig) {
        self.error_rate = ALPHA + (1.0 - ALPHA) * self.error_rate;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= breaker.failure_threshold {
            self.open_until = Some(now + breaker.open_for);
        }
    }

    /// The route answered, but behind what the client has already served (a lagging node, not a
    /// down one): its error rate rises, so it ranks lower, but it does not count toward the
    /// breaker.
    pub fn record_lag(&mut self) {
        self.error_rate = ALPHA + (1.0 - ALPHA) * self.error_rate;
    }

    /// True while the breaker keeps the route out of rotation.
    pub fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|until| now < until)
    }

    /// Lower is better: latency, inflated by the error rate and the registry's degraded flag.
    pub fn score(&self) -> f64 {
        let degraded = if self.degraded { DEGRADED_PENALTY } else { 1.0 };
        self.latency_ms * (1.0 + ERROR_PENALTY * self.error_rate) * degraded
    }

    /// Latency EWMA in milliseconds.
    pub fn latency_ms(&self) -> f64 {
        self.latency_ms
    }

    /// Error-rate EWMA, 0..1.
    pub fn error_rate(&self) -> f64 {
        self.error_rate
    }
}

/// Orders routes for one request: closed breakers by score, then open ones (a last resort when
/// everything is failing, soonest to close first). Returns indices into `routes`.
pub fn rank(routes: &[&RouteHealth], now: Instant) -> Vec<usize> {
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (routes[a], routes[b]);
        match (ra.is_open(now), rb.is_open(now)) {
            (false, true) => std::cmp::Ordering::Less,
            (true, false) => std::cmp::Ordering::Greater,
            (true, true) => ra.open_until.cmp(&rb.open_until),
            (false, false) => ra.score().total_cmp(&rb.score()),
        }
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const BREAKER: BreakerConfig =
        BreakerConfig { failure_threshold: 3, open_for: Duration::from_secs(5) };

    #[test]
    fn faster_route_ranks_first() {
        let mut slow = RouteHealth::new(10.0, false);
        let mut fast = RouteHealth::new(10.0, false);
        for _ in 0..5 {
            slow.record_success(Duration::from_millis(80));
            fast.record_success(Duration::from_millis(5));
        }
        assert_eq!(rank(&[&slow, &fast], Instant::now()), vec![1, 0]);
    }

    #[test]
    fn errors_outweigh_a_small_latency_edge() {
        let now = Instant::now();
        let mut flaky = RouteHealth::new(5.0, false);
        flaky.record_failure(now, &BREAKER);
        flaky.record_success(Duration::from_millis(5));
        let steady = RouteHealth::new(8.0, false);
        assert_eq!(rank(&[&flaky, &steady], now), vec![1, 0]);
    }

    #[test]
    fn breaker_opens_after_threshold_and_closes_after_cooldown() {
        let now = Instant::now();
        let mut route = RouteHealth::new(5.0, false);
        route.record_failure(now, &BREAKER);
        route.record_failure(now, &BREAKER);
        assert!(!route.is_open(now), "two failures: still closed");
        route.record_failure(now, &BREAKER);
        assert!(route.is_open(now), "third failure opens it");
        assert!(!route.is_open(now + Duration::from_secs(6)), "half-open after the cooldown");
        route.record_success(Duration::from_millis(5));
        assert!(!route.is_open(now), "a success closes it");
    }

    #[test]
    fn open_routes_rank_last_but_stay_reachable() {
        let now = Instant::now();
        let mut broken = RouteHealth::new(1.0, false);
        for _ in 0..3 {
            broken.record_failure(now, &BREAKER);
        }
        let slow = RouteHealth::new(500.0, false);
        assert_eq!(rank(&[&broken, &slow], now), vec![1, 0], "broken last, not dropped");
    }

    #[test]
    fn lagging_answers_rank_a_route_lower_but_never_open_the_breaker() {
        let now = Instant::now();
        let mut lagging = RouteHealth::new(5.0, false);
        for _ in 0..10 {
            lagging.record_lag();
        }
        assert!(!lagging.is_open(now), "a lagging node is not down");
        let steady = RouteHealth::new(8.0, false);
        assert_eq!(rank(&[&lagging, &steady], now), vec![1, 0]);
    }

    #[test]
    fn degraded_routes_are_deprioritised() {
        let degraded = RouteHealth::new(5.0, true);
        let healthy = RouteHealth::new(15.0, false);
        assert_eq!(rank(&[&degraded, &healthy], Instant::now()), vec![1, 0]);
    }
}
