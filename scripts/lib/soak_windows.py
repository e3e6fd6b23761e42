"""Judges one continuous open-model run from its `--out-json-lines` file, for
scripts/bench-soak: per-minute windows merged exactly from the per-second
lines' histograms (a minute's p99 is never an average of its seconds'), the
warm-up minutes dropped, and per endpoint the distribution of its per-second
p99s (median second, 90th percentile second, worst second).

Usage: soak_windows.py LINES MINUTE_SECONDS WARMUP_MINUTES P99_LIMIT_MS LABEL
Prints the tables; writes a JSON summary to stdout's last line prefixed with
"summary "; exits 0 (the caller judges).
"""

import json
import statistics
import sys
from datetime import datetime

from hdrh.histogram import HdrHistogram


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_histogram():
    return HdrHistogram(1, 3_600_000_000, 3)


def p(histogram, percentile):
    if histogram.get_total_count() == 0:
        return None
    return histogram.get_value_at_percentile(percentile) / 1000.0


def main():
    path, minute, warmup, limit, label = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    lines = [json.loads(line) for line in open(path)]
    if not lines:
        sys.exit(f"error: {path} holds no lines")
    # The first sample comes a second after the run starts.
    start = min(parse_time(l["time"]) for l in lines) - 1.0
    # The run ends with its last second of requests. After it the coordinator
    # still samples while the workers upload (an hour's write outcomes take
    # minutes): empty windows, then the closing line from the uploads. Both
    # are folded into the run's last second, not judged as minutes of it.
    overall = [l for l in lines if l["endpoint"] == "overall"]
    end = max((parse_time(l["time"]) for l in overall[:-1] if l["requests"] > 0), default=None)
    if end is None:
        end = max(parse_time(l["time"]) for l in lines)
    minutes = {}  # minute -> histogram, requests, failures
    seconds = {}  # endpoint -> [p99 of each judged second]
    worst = []  # (overall p99, its second's time): when to look at the server log
    checked = 0
    for line in lines:
        at = min(parse_time(line["time"]), end) - start
        index = min(int((at - 1e-3) // minute), 10**6)
        window = HdrHistogram.decode(line["histogram"])
        if window.get_total_count() != line["requests"]:
            sys.exit(f"error: a line's histogram holds {window.get_total_count()}, its requests say {line['requests']}")
        checked += 1
        if index < warmup:
            continue
        if line["endpoint"] == "overall":
            histogram, requests, failures = minutes.setdefault(index, (new_histogram(), [0], [0]))
            histogram.add(window)
            requests[0] += line["requests"]
            failures[0] += line["failures"]
        if line["p99_ms"] is not None:
            seconds.setdefault(line["endpoint"], []).append(line["p99_ms"])
            if line["endpoint"] == "overall":
                worst.append((line["p99_ms"], line["time"][11:19]))
    # The run's last seconds (the closing line from the uploads, the requests a
    # late schedule still sends after its time) may fall just past the last
    # whole minute: less than half a minute belongs to the minute before.
    whole = sorted(minutes)
    if len(whole) > 1 and (end - start) - whole[-1] * minute < minute / 2:
        last = whole.pop()
        histogram, requests, failures = minutes.pop(last)
        minutes[whole[-1]][0].add(histogram)
        minutes[whole[-1]][1][0] += requests[0]
        minutes[whole[-1]][2][0] += failures[0]
    judged = [minutes[m] for m in whole]
    print(f"-- {label}: per minute (warm-up minutes dropped: {warmup}; histograms merged from {checked} lines)")
    print(f"{'minute':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failures':>9}")
    p99s = []
    for m, (histogram, requests, failures) in zip(whole, judged):
        p99s.append(p(histogram, 99))
        print(f"{m + 1:>6} {requests[0] / minute:>9.1f} {p(histogram, 50) or 0:>8.1f} {p99s[-1] or 0:>8.1f} "
              f"{(histogram.get_max_value() / 1000.0):>8.1f} {failures[0]:>9}")
    run = new_histogram()
    for histogram, _, _ in judged:
        run.add(histogram)
    print(f"-- {label}: per endpoint, the p99 of each judged second (ms)")
    print(f"{'endpoint':<32} {'seconds':>7} {'median':>8} {'90th':>8} {'worst':>8}")
    endpoints = {}
    for endpoint, values in sorted(seconds.items()):
        values.sort()
        stats = (statistics.median(values), values[min(len(values) - 1, int(0.9 * len(values)))], values[-1])
        endpoints[endpoint] = stats
        print(f"{endpoint:<32} {len(values):>7} {stats[0]:>8.1f} {stats[1]:>8.1f} {stats[2]:>8.1f}")
    worst.sort(reverse=True)
    print(f"-- {label}: the worst seconds (UTC, overall p99 ms): " + ", ".join(f"{t} {v:.0f}" for v, t in worst[:8]))
    third = max(1, min(3, len(p99s) // 2))
    first, last = statistics.median(p99s[:third]), statistics.median(p99s[-third:])
    over = [f"minute {m + 1}: p99 {v:.1f} ms" for m, v in zip(whole, p99s) if v > limit]
    summary = {
        "minutes": len(p99s),
        "p99_first_ms": first,
        "p99_last_ms": last,
        "p99_run_ms": p(run, 99),
        "failures": sum(f[0] for _, _, f in judged),
        "over_limit": over,
        "worst_second_ms": max(s[2] for s in endpoints.values()),
        "median_second_ms": max(s[0] for s in endpoints.values()),
    }
    print("summary " + json.dumps(summary))


main()
