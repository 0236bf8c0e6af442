//! A steady stream of client requests (`eth_blockNumber`) through any alloy provider, counting
//! requests and errors: the "client" of demos, scenario tests and benchmarks.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::providers::Provider;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A running request stream; dropping it stops it.
#[derive(Debug)]
pub struct RequestStream {
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl RequestStream {
    /// Sends one request every `period` through `provider` (one at a time: a request that takes
    /// longer delays the next, as a real sequential client would).
    pub fn start<P: Provider + 'static>(provider: P, period: Duration) -> Self {
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let result = provider.get_block_number().await;
                shared.requests.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = result {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                }
            }
        });
        Self { counters, task }
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Requests that failed so far.
    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Ordering::Relaxed)
    }

    /// The most recent error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.counters.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
