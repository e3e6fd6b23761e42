//! Pass/fail criteria on a load run, written as k6 users write them:
//! `--threshold 'p95<300ms'`, `'p99<1s'`, `'error_rate<0.01'`, `'rps>200'`,
//! and per request, by its name `'POST /api/chat:p99<500ms'` (requests are
//! named `METHOD /route/{param}` everywhere). A threshold naming a request the
//! workload cannot send is refused before any load (`resolve`), as is a limit
//! without its unit; a route without its method is accepted when only one
//! request has that route. A run that misses one fails (exit 1).
//!
//! Latency comes from the merged histograms (exact percentiles, never
//! averaged), counts from goose's — the same numbers the result shows.
//! `error_rate` counts every failed request, injected faults included: it is
//! what a client of the backend saw.

use super::result::{LatencySummary, LoadResult, ThresholdCheck};
use grace_loadtests::OVERALL;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// Latency in ms: a percentile (50, 90, 95, 99, 99.9), the mean or the max.
    Latency(Latency),
    /// Failed requests over all requests, 0–1.
    ErrorRate,
    /// Requests per second over the run.
    Rps,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Latency {
    P50,
    P90,
    P95,
    P99,
    P999,
    Mean,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Below,
    AtMost,
    Above,
    AtLeast,
}

/// One criterion, parsed from its expression (and kept in reports as that
/// expression).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Threshold {
    expression: String,
    /// The request name it is about (`POST /api/chat`, or a route alone until
    /// `resolve`d); `None`: every request.
    endpoint: Option<String>,
    metric: Metric,
    comparison: Comparison,
    /// In the metric's unit (ms for latency).
    limit: f64,
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let expression = raw.trim();
        let (endpoint, criterion) = match expression.rsplit_once(':') {
            Some((endpoint, criterion)) => {
                let name = endpoint.split_whitespace().collect::<Vec<_>>().join(" ");
                if name.is_empty() {
                    return Err(format!("{raw:?}: no request before the ':' (e.g. 'POST /api/chat:p99<500ms')"));
                }
                (Some(name), criterion.trim())
            }
            None => (None, expression),
        };
        let (at, operator) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| criterion.find(op).map(|at| (at, *op)))
            .ok_or_else(|| format!("{raw:?}: no comparison; write e.g. p95<300ms, error_rate<0.01, rps>200"))?;
        let comparison = match operator {
            "<" => Comparison::Below,
            "<=" => Comparison::AtMost,
            ">" => Comparison::Above,
            _ => Comparison::AtLeast,
        };
        let (name, value) = (criterion[..at].trim(), criterion[at + operator.len()..].trim());
        let metric = match name {
            "p50" | "med" => Metric::Latency(Latency::P50),
            "p90" => Metric::Latency(Latency::P90),
            "p95" => Metric::Latency(Latency::P95),
            "p99" => Metric::Latency(Latency::P99),
            "p99.9" | "p999" => Metric::Latency(Latency::P999),
            "avg" | "mean" => Metric::Latency(Latency::Mean),
            "max" => Metric::Latency(Latency::Max),
            "error_rate" => Metric::ErrorRate,
            "rps" => Metric::Rps,
            other => {
                return Err(format!(
                    "{raw:?}: unknown metric {other:?}; one of p50, p90, p95, p99, p99.9, avg, max, error_rate, rps"
                ))
            }
        };
        let limit = match metric {
            Metric::Latency(_) => milliseconds(value),
            Metric::ErrorRate => value.strip_suffix('%').map_or_else(
                || value.parse::<f64>().ok(),
                |percent| percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
            ),
            Metric::Rps => value.parse::<f64>().ok(),
        }
        .filter(|limit| limit.is_finite() && *limit >= 0.0)
        .ok_or_else(|| match metric {
            Metric::Latency(_) if value.parse::<f64>().is_ok() => {
                format!("{raw:?}: {value:?} has no unit: write {value}ms or {value}s")
            }
            _ => format!("{raw:?}: {value:?} is not a limit (latency: 300ms, 1.5s, 250us; error_rate: 0.01 or 1%)"),
        })?;
        if metric == Metric::ErrorRate && limit > 1.0 {
            return Err(format!("{raw:?}: an error rate is a fraction from 0 to 1 (0.05), or a percentage (5%)"));
        }
        Ok(Self { expression: expression.to_string(), endpoint, metric, comparison, limit })
    }
}

impl TryFrom<String> for Threshold {
    type Error = String;

    fn try_from(expression: String) -> Result<Self, String> {
        expression.parse()
    }
}

impl From<Threshold> for String {
    fn from(threshold: Threshold) -> Self {
        threshold.expression
    }
}

/// "300ms", "1.5s" or "250us", in milliseconds; a bare number has no unit
/// and is no limit (300 what?).
fn milliseconds(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|n| n * scale)
}

/// Names each threshold's request as the workload does, before any load:
/// `sent` is every request name the workload can send. A name it cannot send
/// is an error saying which it can; a route without its method stands for the
/// one request with that route.
pub fn resolve(thresholds: &mut [Threshold], sent: &[String]) -> Result<(), String> {
    for threshold in thresholds {
        let Some(endpoint) = &threshold.endpoint else { continue };
        if sent.contains(endpoint) {
            continue;
        }
        let same_route: Vec<&String> =
            sent.iter().filter(|name| name.split_once(' ').is_some_and(|(_, route)| route == endpoint)).collect();
        match same_route.as_slice() {
            [only] => threshold.endpoint = Some((*only).clone()),
            [] => {
                return Err(format!(
                    "threshold {:?}: the workload sends no request {endpoint:?}; it sends {}",
                    threshold.expression,
                    sent.join(", ")
                ))
            }
            several => {
                let several: Vec<&str> = several.iter().map(|name| name.as_str()).collect();
                return Err(format!(
                    "threshold {:?}: {endpoint:?} is {}; name one with its method",
                    threshold.expression,
                    several.join(" or ")
                ));
            }
        }
    }
    Ok(())
}

impl Threshold {
    /// How `result` measures up.
    pub fn judge(&self, result: &LoadResult) -> ThresholdCheck {
        let name = self.endpoint.as_deref().unwrap_or(OVERALL);
        let measured = result.latency.iter().find(|l| l.name == name).and_then(|summary| self.measure(result, summary));
        let passed = measured.is_some_and(|value| match self.comparison {
            Comparison::Below => value < self.limit,
            Comparison::AtMost => value <= self.limit,
            Comparison::Above => value > self.limit,
            Comparison::AtLeast => value >= self.limit,
        });
        let unit = match self.metric {
            Metric::Latency(_) => "ms",
            Metric::ErrorRate => "",
            Metric::Rps => "req/s",
        };
        ThresholdCheck { threshold: self.expression.clone(), measured, unit: unit.to_string(), passed }
    }

    fn measure(&self, result: &LoadResult, summary: &LatencySummary) -> Option<f64> {
        Some(match self.metric {
            Metric::Latency(which) => match which {
                Latency::P50 => summary.p50_ms,
                Latency::P90 => summary.p90_ms,
                Latency::P95 => summary.p95_ms,
                Latency::P99 => summary.p99_ms,
                Latency::P999 => summary.p999_ms,
                Latency::Mean => summary.mean_ms,
                Latency::Max => summary.max_ms,
            },
            Metric::ErrorRate if summary.requests == 0 => return None,
            Metric::ErrorRate => summary.failures as f64 / summary.requests as f64,
            Metric::Rps if self.endpoint.is_none() => result.total.requests_per_second,
            Metric::Rps => summary.requests as f64 / result.profile.run_time_secs.max(1) as f64,
        })
    }
}

/// Judges `result` by `thresholds` too: it passes only if it meets every one.
pub fn apply(result: &mut LoadResult, thresholds: &[Threshold]) {
    result.thresholds = thresholds.iter().map(|t| t.judge(result)).collect();
    result.passed &= result.thresholds.iter().all(|check| check.passed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_style_expressions_parse_and_nonsense_is_refused_saying_why() {
        let t: Threshold = "p95<300ms".parse().unwrap();
        assert_eq!(
            (t.endpoint.as_deref(), t.metric, t.comparison, t.limit),
            (None, Metric::Latency(Latency::P95), Comparison::Below, 300.0)
        );
        let t: Threshold = "POST  /api/chat:p99<=1.5s".parse().unwrap();
        assert_eq!(
            (t.endpoint.as_deref(), t.comparison, t.limit),
            (Some("POST /api/chat"), Comparison::AtMost, 1500.0)
        );
        assert_eq!("error_rate<1%".parse::<Threshold>().unwrap().limit, 0.01);
        assert_eq!("rps>=200".parse::<Threshold>().unwrap().comparison, Comparison::AtLeast);
        for (bad, says) in [
            ("p95", "no comparison"),
            ("p42<3ms", "unknown metric"),
            ("p95<fast", "is not a limit"),
            ("p95<300", "\"300\" has no unit: write 300ms or 300s"),
            (":p95<3ms", "no request before the ':'"),
            ("error_rate<-1", "is not a limit"),
            ("error_rate<5", "a fraction from 0 to 1 (0.05), or a percentage (5%)"),
        ] {
            let error = bad.parse::<Threshold>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_threshold_names_a_request_the_workload_sends_or_is_refused_before_the_load() {
        let sent: Vec<String> =
            ["GET /api/tasks", "GET /api/tasks/{id}", "POST /api/chat", "POST /api/tasks"].map(String::from).to_vec();
        let parsed = |all: &[&str]| all.iter().map(|t| t.parse::<Threshold>().unwrap()).collect::<Vec<_>>();
        let mut named = parsed(&["POST /api/chat:p99<1s", "/api/tasks/{id}:p95<1s", "p95<1s"]);
        resolve(&mut named, &sent).unwrap();
        let endpoints: Vec<Option<&str>> = named.iter().map(|t| t.endpoint.as_deref()).collect();
        assert_eq!(endpoints, [Some("POST /api/chat"), Some("GET /api/tasks/{id}"), None]);
        assert_eq!(named[1].expression, "/api/tasks/{id}:p95<1s", "reports keep it as it was written");
        for (bad, says) in [
            ("DELETE /api/chat:p99<1us", "sends no request \"DELETE /api/chat\"; it sends GET /api/tasks, GET"),
            ("/api/tasks/%:p95<1s", "sends no request \"/api/tasks/%\""),
            ("/api/tasks:p95<1s", "\"/api/tasks\" is GET /api/tasks or POST /api/tasks; name one with its method"),
        ] {
            let error = resolve(&mut parsed(&[bad]), &sent).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
