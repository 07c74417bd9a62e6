//! The Prometheus exporter of the metrics that `sockgate_core::telemetry`
//! names and records, rendered at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub mod logging;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns its handle; `None`
/// when another recorder was installed first (by an embedding application).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("sockgate_verify_seconds".to_owned()),
                    &[
                        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
                        0.25, 1.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            sockgate_core::telemetry::describe();
            Some(handle)
        })
        .clone()
}

pub use sockgate_core::telemetry::*;

/// A URL without its credentials, for messages and logs (never the
/// password): `scheme://host…`.
pub fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((scheme_and_creds, host)) => {
            let scheme = scheme_and_creds.split("://").next().unwrap_or("redis");
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}
