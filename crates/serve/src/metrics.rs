//! Counters the service exposes as Prometheus text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
struct Inner {
    by_status: BTreeMap<u16, u64>,
    bucket_counts: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
}

/// Request counts by status and the latency of localization requests.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, status: u16, seconds: Option<f64>) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.by_status.entry(status).or_default() += 1;
        if let Some(s) = seconds {
            for (count, le) in m.bucket_counts.iter_mut().zip(BUCKETS) {
                if s <= le {
                    *count += 1;
                }
            }
            m.latency_sum += s;
            m.latency_count += 1;
        }
    }

    /// The Prometheus text exposition, with the pool's current queue depth and in-flight count.
    pub fn render(&self, queue_depth: usize, in_flight: usize) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = String::new();
        let _ = writeln!(s, "# HELP glace_requests_total Requests answered, by HTTP status.");
        let _ = writeln!(s, "# TYPE glace_requests_total counter");
        for (status, n) in &m.by_status {
            let _ = writeln!(s, "glace_requests_total{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP glace_localize_seconds Time from request to answer of localization requests.");
        let _ = writeln!(s, "# TYPE glace_localize_seconds histogram");
        for (count, le) in m.bucket_counts.iter().zip(BUCKETS) {
            let _ = writeln!(s, "glace_localize_seconds_bucket{{le=\"{le}\"}} {count}");
        }
        let _ = writeln!(s, "glace_localize_seconds_bucket{{le=\"+Inf\"}} {}", m.latency_count);
        let _ = writeln!(s, "glace_localize_seconds_sum {}", m.latency_sum);
        let _ = writeln!(s, "glace_localize_seconds_count {}", m.latency_count);
        let _ = writeln!(s, "# HELP glace_queue_depth Localization jobs waiting for a worker.");
        let _ = writeln!(s, "# TYPE glace_queue_depth gauge");
        let _ = writeln!(s, "glace_queue_depth {queue_depth}");
        let _ = writeln!(s, "# HELP glace_in_flight Localization jobs being worked on.");
        let _ = writeln!(s, "# TYPE glace_in_flight gauge");
        let _ = writeln!(s, "glace_in_flight {in_flight}");
        s
    }
}
