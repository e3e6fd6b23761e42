//! The scenario report, and a load run's (`grace load --out`), each as one
//! self-contained HTML page: styles inline, charts drawn as inline SVG (each
//! point's value in its hover title), no script and no network, so it reads
//! the same offline, attached to a CI run or mailed. Verdict first, then the
//! numbers; a load run's sections are the same on both pages.

use super::{escape, IterationReport, ScenarioReport, Verdict};
use crate::control::progress::Window;
use crate::control::result::{LatencySummary, LoadResult};
use grace_loadtests::OVERALL;
use std::fmt::Write;
use std::time::Duration;

const COLORS: &[&str] = &["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

pub fn render(report: &ScenarioReport) -> String {
    let mut page = String::new();
    let verdict = if report.passed { "PASSED" } else { "FAILED" };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Grace scenario {verdict} — {}</title><style>{STYLE}</style></head><body>",
        report.started_at.format("%Y-%m-%d %H:%M UTC")
    );
    let class = if report.passed { "pass" } else { "fail" };
    let s = &report.summary;
    let _ = write!(
        page,
        "<header class=\"verdict {class}\"><h1>Grace scenario: {verdict}</h1>\
         <p>{} of {} criteria met ({:.1}%) over {}; exit code {}. Run {} · {} → {}</p></header>",
        s.criteria_passed,
        s.criteria,
        s.success_rate * 100.0,
        crate::console::counted(s.iterations as u64, "iteration", "iterations"),
        report.exit_code,
        report.run_id,
        report.started_at.format("%Y-%m-%d %H:%M:%S"),
        report.finished_at.format("%H:%M:%S UTC"),
    );
    what_failed(&mut page, &s.failed);
    aggregates(&mut page, report);
    if let Some(baseline) = &report.baseline {
        comparison(&mut page, baseline);
    }
    let loads: Vec<(String, &LoadResult)> = report
        .iterations
        .iter()
        .filter_map(|it| it.load.as_ref().map(|load| (format!("iteration {}", it.iteration), load)))
        .collect();
    latency_over_time(&mut page, &loads);
    for iteration in &report.iterations {
        iteration_section(&mut page, iteration, report.iterations.len() > 1);
    }
    trends(&mut page, report);
    page.push_str("<section><h2>Configuration</h2><pre>");
    page.push_str(&escape(&serde_json::to_string_pretty(&report.configuration).unwrap_or_default()));
    page.push_str("</pre></section></body></html>\n");
    page
}

/// The page of one load run, merged from all its workers.
pub fn render_load(load: &LoadResult) -> String {
    let mut page = String::new();
    let verdict = match (load.interrupted, load.passed) {
        (true, _) => "INTERRUPTED",
        (false, true) => "PASSED",
        (false, false) => "FAILED",
    };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Grace load run {verdict} — {}</title><style>{STYLE}</style></head><body>",
        load.run_id
    );
    let profile = &load.profile;
    let model = profile.model();
    let ran = load.interruption().unwrap_or_else(|| format!("{}s", profile.run_time_secs));
    let _ = write!(
        page,
        "<header class=\"verdict {}\"><h1>Grace load run: {verdict}</h1>\
         <p>{} on {}, {ran}, {model}. Run {}</p></header>",
        if load.passed { "pass" } else { "fail" },
        crate::console::counted(profile.users, "user", "users"),
        crate::console::counted(load.workers.len() as u64, "worker", "workers"),
        load.run_id,
    );
    what_failed(&mut page, &load.failures());
    let t = &load.total;
    let genuine = t.failures.saturating_sub(load.injected_faults);
    let rate = |n: u64| if t.requests == 0 { 0.0 } else { n as f64 / t.requests as f64 * 100.0 };
    page.push_str("<section><h2>Load</h2>");
    table_head(
        &mut page,
        &[
            "requests",
            "failures",
            "injected faults",
            "error rate",
            "genuine error rate",
            "throughput",
            "request bodies sent",
            "response bodies received",
        ],
    );
    let kib = |bytes: u64| format!("{:.1} KiB", bytes as f64 / 1024.0);
    let _ = write!(
        page,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}%</td><td>{:.1} req/s</td><td>{}</td><td>{}</td></tr></table>",
        t.requests,
        t.failures,
        load.injected_faults,
        rate(t.failures),
        rate(genuine),
        t.requests_per_second,
        kib(load.body_bytes.sent),
        kib(load.body_bytes.received)
    );
    if !load.thresholds.is_empty() {
        page.push_str("<h3>Thresholds</h3>");
        table_head(&mut page, &["threshold", "result", "measured"]);
        for check in &load.thresholds {
            let (class, mark) = if check.passed { ("pass", "✓") } else { ("fail", "✗") };
            let _ = write!(
                page,
                "<tr><td><code>{}</code></td><td class=\"{class}\">{mark}</td><td>{}</td></tr>",
                escape(&check.threshold),
                escape(&check.measurement())
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
    latency_over_time(&mut page, &[("the run".to_string(), load)]);
    page.push_str("<section><h2>Requests</h2>");
    load_details(&mut page, load);
    for outage in &load.control_plane_outages {
        let _ = write!(page, "<p class=\"fail\">control plane unreachable {}</p>", escape(&outage.to_string()));
    }
    page.push_str("</section><section><h2>Configuration</h2><pre>");
    let shape = serde_json::json!({
        "users": profile.users, "run_time_secs": profile.run_time_secs, "stages": profile.stages, "rate": profile.rate,
    });
    page.push_str(&escape(&serde_json::to_string_pretty(&shape).unwrap_or_default()));
    page.push_str("</pre></section></body></html>\n");
    page
}

/// The verdict's reasons, one line each; nothing when the run passed.
fn what_failed(page: &mut String, failed: &[String]) {
    if failed.is_empty() {
        return;
    }
    page.push_str("<section><h2>What failed</h2><ul class=\"failed\">");
    for failure in failed {
        let _ = write!(page, "<li>{}</li>", escape(failure));
    }
    page.push_str("</ul></section>");
}

fn aggregates(page: &mut String, report: &ScenarioReport) {
    let a = &report.aggregates;
    page.push_str("<section><h2>Load, all iterations</h2>");
    table_head(page, &["requests", "failures", "injected faults", "error rate", "genuine error rate", "throughput"]);
    let _ = write!(
        page,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}%</td><td>{:.1} req/s</td></tr></table>",
        a.requests,
        a.failures,
        a.injected_faults,
        a.error_rate * 100.0,
        a.genuine_error_rate * 100.0,
        a.throughput_rps
    );
    if let Some(latency) = &a.latency {
        page.push_str("<h3>Latency percentiles (merged histograms)</h3>");
        let rows: Vec<LatencySummary> = std::iter::once(latency).chain(&a.by_request).cloned().collect();
        latency_table(page, &rows);
    }
    page.push_str("</section>");
}

/// How this run compares with an earlier one (`report compare`'s table).
fn comparison(page: &mut String, baseline: &super::compare::Baseline) {
    let _ = write!(
        page,
        "<section><h2>Compared with run {} ({})</h2><p><code>{}</code></p>",
        baseline.run_id,
        baseline.started_at.format("%Y-%m-%d %H:%M UTC"),
        escape(&baseline.file)
    );
    if !baseline.unlike.is_empty() {
        let _ = write!(page, "<p class=\"fail\">Not run alike: {}</p>", escape(&baseline.unlike.join(", ")));
    }
    table_head(page, &["metric", "then", "now", "verdict"]);
    let show = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"));
    for row in &baseline.comparisons {
        let (class, verdict) = if row.regressed { ("fail", "regressed") } else { ("pass", "ok") };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict} ({})</td></tr>",
            escape(&row.metric),
            show(row.old),
            show(row.new),
            escape(&row.note)
        );
    }
    page.push_str("</table></section>");
}

fn latency_table(page: &mut String, rows: &[LatencySummary]) {
    table_head(page, &["request", "count", "fail", "mean ms", "p50", "p90", "p95", "p99", "p99.9", "max"]);
    for l in rows {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            escape(&l.name), l.requests, l.failures, l.mean_ms, l.p50_ms, l.p90_ms, l.p95_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
    page.push_str("</table>");
}

/// Mean and max latency, requests, genuine errors and users, second by
/// second of each load (labelled).
fn latency_over_time(page: &mut String, loads: &[(String, &LoadResult)]) {
    let mut mean = Vec::new();
    let mut max = Vec::new();
    let mut rate = Vec::new();
    let mut users = Vec::new();
    let mut injected = Vec::new();
    let mut errors = Vec::new();
    for (i, (label, load)) in loads.iter().enumerate() {
        let profile = &load.profile;
        users.push(Series {
            label: label.clone(),
            color: COLORS[i % COLORS.len()],
            dashed: false,
            points: (0..=profile.run_time_secs)
                .map(|s| (s as f64, f64::from(profile.users_at(Duration::from_secs(s)))))
                .collect(),
        });
        // The first and last seconds are partial (the load starts and stops
        // inside them); drawn, they would show as drops in requests per second.
        let seconds = load.timeline.len();
        let whole: Vec<_> = if seconds > 2 {
            load.timeline.iter().skip(1).take(seconds - 2).collect()
        } else {
            load.timeline.iter().collect()
        };
        let Some(first) = whole.first().map(|(s, _)| **s) else { continue };
        let color = COLORS[i % COLORS.len()];
        let points = |f: &dyn Fn(&grace_loadtests::TimeSlot) -> f64| -> Vec<(f64, f64)> {
            whole.iter().map(|(s, slot)| ((**s - first) as f64, f(slot))).collect()
        };
        mean.push(Series {
            label: format!("{label} mean"),
            color,
            dashed: false,
            points: points(&|s| s.total_micros as f64 / s.requests.max(1) as f64 / 1000.0),
        });
        max.push(Series {
            label: format!("{label} max"),
            color,
            dashed: true,
            points: points(&|s| s.max_micros as f64 / 1000.0),
        });
        if whole.iter().any(|(_, slot)| slot.injected > 0) {
            injected.push(Series {
                label: label.clone(),
                color,
                dashed: false,
                points: points(&|s| s.injected as f64),
            });
        }
        // Failures that were not injected on purpose: what went wrong by itself.
        if whole.iter().any(|(_, slot)| slot.failures > slot.injected) {
            errors.push(Series {
                label: label.clone(),
                color,
                dashed: false,
                points: points(&|s| s.failures.saturating_sub(s.injected) as f64),
            });
        }
        rate.push(Series { label: label.clone(), color, dashed: false, points: points(&|s| s.requests as f64) });
    }
    if mean.is_empty() {
        return;
    }
    page.push_str("<section><h2>Latency over time</h2>");
    mean.extend(max);
    page.push_str(&line_chart(&mean, "seconds into the load (whole seconds)", "latency (ms)"));
    page.push_str("<h3>Requests per second</h3>");
    page.push_str(&line_chart(&rate, "seconds into the load (whole seconds)", "requests"));
    page.push_str("<h3>Users</h3>");
    page.push_str(&line_chart(&users, "seconds into the load", "users"));
    if !errors.is_empty() {
        page.push_str("<h3>Genuine errors per second</h3>");
        page.push_str(&line_chart(&errors, "seconds into the load (whole seconds)", "failures, injected ones apart"));
    }
    if !injected.is_empty() {
        page.push_str("<h3>Injected faults per second</h3>");
        page.push_str(&line_chart(&injected, "seconds into the load (whole seconds)", "injected faults"));
    }
    page.push_str("</section>");
}

/// p50, p95 and p99 of each request name (overall first), window by window:
/// each window's own percentiles, never an average of them; and each
/// request's requests per second, window by window.
fn percentiles_over_time(page: &mut String, load: &LoadResult) {
    if load.over_time.is_empty() {
        return;
    }
    page.push_str("<h3>Percentiles over time</h3><div class=\"charts\">");
    let overall = load.over_time.get_key_value(OVERALL);
    let named = load.over_time.iter().filter(|(name, _)| name.as_str() != OVERALL);
    for (name, windows) in overall.into_iter().chain(named) {
        let percentile = |label: &str, color, of: fn(&Window) -> Option<f64>| Series {
            label: label.into(),
            color,
            dashed: false,
            points: windows.iter().filter_map(|w| Some((w.at_secs as f64, of(&w.window)?))).collect(),
        };
        let series = [
            percentile("p50", COLORS[2], |w| w.p50_ms),
            percentile("p95", COLORS[0], |w| w.p95_ms),
            percentile("p99", COLORS[1], |w| w.p99_ms),
        ];
        let _ = write!(page, "<figure class=\"percentiles\"><figcaption>{}</figcaption>", escape(name));
        page.push_str(&line_chart(&series, "seconds into the load (end of each window)", "latency (ms)"));
        page.push_str("</figure>");
    }
    page.push_str("</div>");
    // Each window's requests over its width: the first starts with the load.
    let rates: Vec<Series> = load
        .over_time
        .iter()
        .filter(|(name, _)| name.as_str() != OVERALL)
        .enumerate()
        .map(|(i, (name, windows))| {
            let mut start = 0;
            let points = windows
                .iter()
                .map(|w| {
                    let width = w.at_secs.saturating_sub(start).max(1);
                    start = w.at_secs;
                    (w.at_secs as f64, w.window.requests as f64 / width as f64)
                })
                .collect();
            Series { label: name.clone(), color: COLORS[i % COLORS.len()], dashed: false, points }
        })
        .collect();
    if !rates.is_empty() {
        page.push_str("<h3>Requests per second, by request</h3>");
        page.push_str(&line_chart(&rates, "seconds into the load (end of each window)", "requests per second"));
    }
}

fn iteration_section(page: &mut String, iteration: &IterationReport, many: bool) {
    let class = if iteration.passed { "pass" } else { "fail" };
    let title = if many { format!("Iteration {}", iteration.iteration) } else { "The run".to_string() };
    let _ = write!(
        page,
        "<section><h2>{title} <span class=\"badge {class}\">{}</span></h2><p>mission {}</p>",
        if iteration.passed { "passed" } else { "failed" },
        iteration.mission_id
    );
    phase_timeline(page, iteration);
    page.push_str("<h3>Criteria</h3>");
    table_head(page, &["phase", "criterion", "result", "detail"]);
    for (phase, c) in iteration.criteria() {
        let class = match c.verdict() {
            Verdict::Passed => "pass",
            Verdict::Failed => "fail",
            Verdict::Skipped => "skip",
        };
        let mark = c.mark();
        let _ = write!(
            page,
            "<tr><td>{} {}</td><td>{}</td><td class=\"{class}\">{mark}</td><td>{}</td></tr>",
            phase.number,
            escape(&phase.name),
            escape(&c.name),
            escape(&c.detail)
        );
    }
    page.push_str("</table>");
    page.push_str("<h3>Integrity (C1–C7)</h3>");
    table_head(page, &["condition", "checked", "violations", "examples"]);
    for check in &iteration.consistency {
        let class = if check.passed { "pass" } else { "fail" };
        let examples: Vec<String> = check.examples.iter().map(|e| escape(e)).collect();
        let _ = write!(
            page,
            "<tr><td>{} {}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
            check.id,
            escape(&check.name),
            check.checked,
            check.violations,
            examples.join("<br>")
        );
    }
    page.push_str("</table>");
    if let Some(load) = &iteration.load {
        load_details(page, load);
    }
    for phase in &iteration.phases {
        if phase.notes.is_empty() && phase.error.is_none() {
            continue;
        }
        let _ = write!(page, "<details><summary>phase {} {}</summary><ul>", phase.number, escape(&phase.name));
        for note in &phase.notes {
            let _ = write!(page, "<li>{}</li>", escape(note));
        }
        if let Some(error) = &phase.error {
            let _ = write!(page, "<li class=\"fail\">error: {}</li>", escape(error));
        }
        page.push_str("</ul></details>");
    }
    page.push_str("</section>");
}

/// A load run's requests (every one, overall first), percentiles over time,
/// workers with their goose pages, the writes proven stored, the answers.
fn load_details(page: &mut String, load: &LoadResult) {
    page.push_str("<h3>Per request</h3>");
    latency_table(page, &load.latency);
    distribution(page, load);
    percentiles_over_time(page, load);
    page.push_str("<h3>Workers</h3>");
    // goose's pages only when the run kept them (`--goose-report`).
    let pages = load.workers.iter().any(|w| w.goose_report);
    let columns = ["worker", "users", "requests", "failures", "req/s", "acked writes", "goose's report"];
    table_head(page, &columns[..if pages { 7 } else { 6 }]);
    for w in &load.workers {
        let name = if w.lost { format!("{} (LOST)", w.name) } else { w.name.clone() };
        let t = &w.throughput;
        // Written beside this page, readable offline; a lost worker sent none.
        let goose = match (pages, w.goose_report) {
            (false, _) => String::new(),
            (true, false) => "<td>—</td>".to_string(),
            (true, true) => format!(
                "<td><a href=\"{}\">per-worker detail</a></td>",
                crate::control::goose_page::file_name(load.run_id, w.worker_id)
            ),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td>{goose}</tr>",
            escape(&name),
            w.users,
            t.requests,
            t.failures,
            t.requests_per_second,
            w.acked_writes
        );
    }
    page.push_str("</table>");
    if load.workers.iter().any(|w| w.lost && w.throughput.requests > 0) {
        let _ = write!(page, "<p>{}</p>", escape(crate::control::result::LOST_ROW));
    }
    write_proofs(page, load);
    answers(page, load);
}

/// How response times spread, request by request (overall first): each
/// bucket's count, shaded by its share of the request's.
fn distribution(page: &mut String, load: &LoadResult) {
    let widest = load.distribution.values().map(Vec::len).max().unwrap_or(0);
    if widest == 0 {
        return;
    }
    page.push_str("<h3>Response time distribution</h3><table><tr><th>request</th>");
    for i in 0..widest {
        let bound = load.distribution.values().find_map(|buckets| buckets.get(i)).and_then(|b| b.le_ms);
        let _ =
            write!(page, "<th>{}</th>", bound.map_or_else(|| "more".into(), |ms| format!("≤{} ms", tick_precise(ms))));
    }
    page.push_str("</tr>");
    let overall = load.distribution.get_key_value(OVERALL);
    let named = load.distribution.iter().filter(|(name, _)| name.as_str() != OVERALL);
    for (name, buckets) in overall.into_iter().chain(named) {
        let total = buckets.iter().map(|b| b.count).sum::<u64>().max(1);
        let _ = write!(page, "<tr><td>{}</td>", escape(name));
        for i in 0..widest {
            let count = buckets.get(i).map_or(0, |b| b.count);
            let share = count as f64 / total as f64 * 100.0;
            let _ = write!(
                page,
                "<td title=\"{share:.1}% of {}\" style=\"background:linear-gradient(to top,#bfdbfe {share:.0}%,transparent {share:.0}%)\">{count}</td>",
                escape(name)
            );
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
}

/// C7 by kind of write (the workload's proofs) and over all, by outcome.
fn write_proofs(page: &mut String, load: &LoadResult) {
    page.push_str(
        "<h3>Writes proven stored (C7)</h3><table><tr><th>writes</th><th>acknowledged</th><th>stored</th>\
         <th>missing</th><th>duplicated</th><th>stored unacknowledged</th><th>indeterminate (stored)</th>\
         <th>refused</th><th>keys</th></tr>",
    );
    let all = std::iter::once(("all", &load.acked_writes));
    for (name, check) in all.chain(load.proofs.iter().map(|p| (p.name.as_str(), &p.check))) {
        let keys: Vec<&String> =
            check.missing_sample.iter().chain(&check.duplicated_sample).chain(&check.unacknowledged_sample).collect();
        let class = if check.passed { "" } else { " class=\"fail\"" };
        let _ = write!(
            page,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            check.acknowledged,
            check.stored,
            check.missing,
            check.duplicated,
            check.unacknowledged,
            check.indeterminate,
            check.indeterminate_stored,
            check.refused,
            keys.iter().map(|k| format!("<code>{}</code>", escape(k))).collect::<Vec<_>>().join(" ")
        );
    }
    page.push_str("</table>");
}

/// What the backend answered: each request's statuses (every attempt), and a
/// sample of each distinct failure with its count.
fn answers(page: &mut String, load: &LoadResult) {
    if !load.statuses.is_empty() {
        let codes: std::collections::BTreeSet<&String> = load.statuses.values().flat_map(|s| s.keys()).collect();
        page.push_str("<h3>Status codes per endpoint</h3><table><tr><th>request</th>");
        for code in &codes {
            let _ = write!(page, "<th>{}</th>", escape(code));
        }
        page.push_str("</tr>");
        for (name, statuses) in &load.statuses {
            let _ = write!(page, "<tr><td>{}</td>", escape(name));
            for code in &codes {
                let count = statuses.get(*code).copied().unwrap_or(0);
                let class = if code.starts_with('2') || count == 0 { "" } else { " class=\"fail\"" };
                let _ = write!(page, "<td{class}>{count}</td>");
            }
            page.push_str("</tr>");
        }
        page.push_str("</table>");
    }
    if !load.errors.is_empty() {
        page.push_str("<h3>Failures by kind</h3>");
        table_head(page, &["count", "request", "status", "what the answer said"]);
        for e in &load.errors {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                e.count,
                escape(&e.name),
                escape(&e.status),
                escape(&e.excerpt)
            );
        }
        page.push_str("</table>");
    }
}

/// Each phase as a bar from its start, as long as it took.
fn phase_timeline(page: &mut String, iteration: &IterationReport) {
    let Some(start) = iteration.phases.first().map(|p| p.started_at) else { return };
    let end_ms = iteration
        .phases
        .iter()
        .map(|p| (p.started_at - start).num_milliseconds().max(0) as u64 + p.duration_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let (width, row, left) = (760.0, 22.0, 170.0);
    let height = row * iteration.phases.len() as f64 + 24.0;
    let _ = write!(
        page,
        "<h3>Phase timeline</h3><svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"phase timeline\">"
    );
    let scale = (width - left - 70.0) / end_ms as f64;
    for (i, phase) in iteration.phases.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let x = left + (phase.started_at - start).num_milliseconds().max(0) as f64 * scale;
        let w = (phase.duration_ms as f64 * scale).max(2.0);
        let color = if phase.passed { "#16a34a" } else { "#dc2626" };
        let _ = write!(
            page,
            "<text x=\"0\" y=\"{:.1}\" class=\"label\">{} {}</text><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{:.2}s</text>",
            y + 13.0,
            phase.number,
            escape(&phase.name),
            row - 6.0,
            x + w + 4.0,
            y + 13.0,
            phase.duration_ms as f64 / 1000.0
        );
    }
    let _ = write!(
        page,
        "<text x=\"{left}\" y=\"{:.1}\" class=\"axis\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{:.1} s</text></svg>",
        height - 4.0,
        width - 110.0,
        height - 4.0,
        end_ms as f64 / 1000.0
    );
}

fn trends(page: &mut String, report: &ScenarioReport) {
    let t = &report.trends;
    if report.iterations.len() < 2 {
        return;
    }
    let class = if t.leak_suspected { "fail" } else { "pass" };
    let _ = write!(page, "<section><h2>Trends across iterations</h2><p class=\"{class}\">{}</p>", escape(&t.verdict));
    let indexed = |values: Vec<f64>| values.into_iter().enumerate().map(|(i, v)| ((i + 1) as f64, v)).collect();
    let series = [
        Series {
            label: "backend RSS (MiB)".into(),
            color: COLORS[0],
            dashed: false,
            points: indexed(t.backend_rss_mib.clone()),
        },
        Series {
            label: "database connections".into(),
            color: COLORS[1],
            dashed: false,
            points: indexed(t.database_connections.iter().map(|c| *c as f64).collect()),
        },
        Series { label: "tables (MiB)".into(), color: COLORS[2], dashed: false, points: indexed(t.table_mib.clone()) },
    ];
    for s in series {
        if !s.points.is_empty() {
            let label = s.label.clone();
            page.push_str(&line_chart(&[s], "iteration", &label));
        }
    }
    page.push_str("</section>");
}

struct Series {
    label: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// A line chart with labelled axes on round ticks and a legend, as inline SVG.
fn line_chart(series: &[Series], x_label: &str, y_label: &str) -> String {
    let (width, height, left, right, top, bottom) = (760.0, 280.0, 60.0, 16.0, 12.0, 76.0);
    // Axes end on a round number, ticked every round step.
    let (x_top, y_top) = (all_max(series, |p| p.0).max(1.0), all_max(series, |p| p.1).max(1e-9));
    let (x_step, y_step) = (round_step(x_top), round_step(y_top));
    let (x_max, y_max) = (x_step * (x_top / x_step).ceil(), y_step * (y_top / y_step).ceil());
    let x_of = |x: f64| left + x / x_max * (width - left - right);
    let y_of = |y: f64| top + (1.0 - y / y_max) * (height - top - bottom);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        escape(y_label)
    );
    let ticks = |max: f64, step: f64| (0..).map(move |i| f64::from(i) * step).take_while(move |v| *v <= max * 1.0001);
    for value in ticks(y_max, y_step) {
        let y = y_of(value);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            width - right,
            left - 6.0,
            y + 4.0,
            tick(value)
        );
    }
    for x_value in ticks(x_max, x_step) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
            x_of(x_value),
            height - bottom + 16.0,
            tick(x_value)
        );
    }
    let _ = write!(
        svg,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" class=\"axis\" text-anchor=\"middle\">{}</text>",
        top + (height - top - bottom) / 2.0,
        escape(y_label)
    );
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
        left + (width - left - right) / 2.0,
        height - bottom + 32.0,
        escape(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s.points.iter().map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y))).collect();
        let dash = if s.dashed { " stroke-dasharray=\"4 3\"" } else { "" };
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"{dash} points=\"{}\"/>",
            s.color,
            points.join(" ")
        );
        // Each value on hover (a tooltip from the SVG's own <title>, no script).
        let _ = write!(svg, "<g class=\"points\" fill=\"{}\">", s.color);
        for (x, y) in &s.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}: {} at {}</title></circle>",
                x_of(*x),
                y_of(*y),
                escape(&s.label),
                tick_precise(*y),
                tick_precise(*x)
            );
        }
        svg.push_str("</g>");
        let lx = left + (i % 4) as f64 * 170.0;
        let ly = height - 22.0 + (i / 4) as f64 * 14.0;
        let _ = write!(
            svg,
            "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{ly:.1}\" class=\"label\">{}</text>",
            ly - 4.0,
            lx + 18.0,
            ly - 4.0,
            s.color,
            lx + 22.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The largest of the series' values that `pick` reads.
fn all_max(series: &[Series], pick: fn(&(f64, f64)) -> f64) -> f64 {
    series.iter().flat_map(|s| s.points.iter()).map(pick).fold(0.0, f64::max)
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) that ticks 0..=`max`
/// four to eight times.
fn round_step(max: f64) -> f64 {
    let rough = max / 4.0;
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * power).find(|step| max / step <= 8.0).unwrap_or(10.0 * power)
}

/// A value for a tooltip: up to two decimals.
fn tick_precise(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn tick(value: f64) -> String {
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:980px;padding:0 16px 40px;color:#111827}\
header.verdict{padding:18px 22px;margin:16px 0;border-radius:8px;color:#fff}\
header.pass{background:#15803d}header.fail{background:#b91c1c}header h1{margin:0 0 6px}header p{margin:0}\
section{margin:26px 0}h2{border-bottom:1px solid #e5e7eb;padding-bottom:4px}\
table{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f3f4f6}td.pass,p.pass,li.pass{color:#15803d}td.fail,p.fail,li.fail,ul.failed li{color:#b91c1c}td.skip{color:#6b7280}\
.badge{font-size:13px;padding:2px 8px;border-radius:10px;color:#fff}.badge.pass{background:#15803d}.badge.fail{background:#b91c1c}\
svg.chart{width:100%;height:auto;background:#fafafa;border:1px solid #e5e7eb;margin:6px 0}\
svg .grid{stroke:#e5e7eb}svg .axis{font-size:12px;fill:#4b5563}svg .label{font-size:13px;fill:#111827}\
svg .points circle{fill-opacity:0;stroke:none}svg .points circle:hover{fill-opacity:1}\
pre{background:#f3f4f6;padding:10px;overflow:auto;font-size:13px}\
.charts{display:grid;grid-template-columns:1fr;gap:10px}figure.percentiles{margin:0}\
figcaption{font-size:13px;font-weight:600}";

/// Opens a table with its header row.
fn table_head(page: &mut String, headers: &[&str]) {
    page.push_str("<table><tr>");
    for header in headers {
        let _ = write!(page, "<th>{}</th>", escape(header));
    }
    page.push_str("</tr>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_tick_on_round_steps() {
        for (max, step) in [(1.0, 0.2), (37.0, 5.0), (812.0, 200.0), (0.03, 0.005), (4.0, 1.0)] {
            assert!((round_step(max) - step).abs() < step * 1e-9, "{max}: {}", round_step(max));
        }
    }
}
