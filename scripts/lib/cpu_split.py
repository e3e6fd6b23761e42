"""Where a machine's CPU goes during a run, for the benchmarks: PostgreSQL (the
postmaster and every server process, reaped or alive), the backend, and the
rest (the load generator and everything else), against what the cores had.

  cpu_split.py sample POSTMASTER_PID BACKEND_PID OUT   # every 5 s until killed
  cpu_split.py report OUT MINUTE_SECONDS WARMUP_MINUTES # per-minute shares
  cpu_split.py now POSTMASTER_PID BACKEND_PID           # one reading, for `per_request`
  cpu_split.py per_request LABEL BEFORE AFTER REQUESTS  # CPU µs per request between readings

CPU per request is what tells a closed model's capacity from an open model's:
a request sent into an idle machine wakes each process on its path, one
served while others queue finds them running, so the same traffic costs more
per request at 70 % of the rate than at the limit (the measurements are in
docs/design.md, "The tail is the cores").
"""

import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count()


def fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def own(pid, reaped=False):
    f = fields(pid)  # utime stime cutime cstime: the 12th-15th fields after the name
    return sum(int(x) for x in f[11:15 if reaped else 13]) / TICK


def postgres(postmaster):
    children = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if int(fields(p)[1]) == postmaster:
                    children.append(p)
            except OSError:
                pass
    total = own(postmaster, reaped=True)
    for child in children:
        try:
            total += own(child)
        except OSError:
            pass
    return total


def machine():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return sum(cpu) / TICK, (cpu[3] + cpu[4]) / TICK  # all, idle + iowait


def reading(postmaster, backend):
    everything, idle = machine()
    return f"{postgres(postmaster):.2f} {own(backend):.2f} {everything:.2f} {idle:.2f}"


def sample(postmaster, backend, out):
    with open(out, "a") as f:
        while True:
            try:
                line = f"{time.time():.1f} {reading(postmaster, backend)}"
            except OSError:
                return
            print(line, file=f, flush=True)
            time.sleep(5)


def report(path, minute, warmup):
    rows = [list(map(float, line.split())) for line in open(path) if line.strip()]
    if len(rows) < 2:
        return
    start = rows[0][0]
    print(f"-- CPU by minute, % of {CORES} cores: postgres / backend / generator and the rest / idle")
    by_minute = {}
    for before, after in zip(rows, rows[1:]):
        index = int((after[0] - start - 1e-3) // minute)
        span = by_minute.setdefault(index, [0.0] * 5)
        for i in range(5):
            span[i] += after[i] - before[i]
    for index, (seconds, pg, backend, everything, idle) in sorted(by_minute.items()):
        if index < warmup or everything <= 0:
            continue
        rest = everything - idle - pg - backend
        share = lambda x: 100 * x / everything
        print(f"minute {index + 1:>3}: {share(pg):5.1f} / {share(backend):5.1f} / {share(rest):5.1f} / {share(idle):5.1f}")


def per_request(label, before, after, requests):
    pg, backend, everything, idle = (a - b for a, b in zip(map(float, after.split()), map(float, before.split())))
    busy = everything - idle
    us = lambda x: 1e6 * x / max(1, requests)
    print(f"-- {label}: CPU per request {us(busy):.0f} µs on the machine: postgres {us(pg):.0f}, backend "
          f"{us(backend):.0f}, generator and the rest {us(busy - pg - backend):.0f} ({requests} requests)")


if sys.argv[1] == "sample":
    sample(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
elif sys.argv[1] == "now":
    print(reading(int(sys.argv[2]), int(sys.argv[3])))
elif sys.argv[1] == "per_request":
    per_request(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
else:
    report(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
