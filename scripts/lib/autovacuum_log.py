"""What autovacuum cost during a run, table by table, read from the server log
(the benchmarks set log_autovacuum_min_duration = 0, so every run is logged
with its CPU): runs, CPU seconds, elapsed seconds, index scans and, for
vacuums, the index pages each one read; and when the long runs ended, to set
beside the soak's worst seconds.

  autovacuum_log.py LOG OFFSET   # the log from byte OFFSET on
"""

import collections
import re
import sys

HEAD = re.compile(r'automatic (vacuum|analyze) of table "[^."]+\.([^"]+)"(?:: index scans: (\d+))?')
CPU = re.compile(r"system usage: CPU: user: ([\d.]+) s, system: ([\d.]+) s, elapsed: ([\d.]+) s")
LONG = 1.0  # seconds: runs this long are listed with the time they ended
INDEX = re.compile(r'index "([^"]+)": pages: (\d+) in total')


def main(path, offset):
    with open(path, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    runs = collections.defaultdict(lambda: [0, 0.0, 0.0, 0, 0])  # runs, cpu, elapsed, index scans, index pages
    current, long_runs = None, []
    for line in text.splitlines():
        head = HEAD.search(line)
        if head:
            current = (head.group(2), head.group(1))
            logged = line[11:19]  # the run's end, UTC (the log line's prefix)
            runs[current][0] += 1
            runs[current][3] += int(head.group(3) or 0)
            continue
        if current is None:
            continue
        index = INDEX.search(line)
        if index:
            runs[current][4] += int(index.group(2))
        cpu = CPU.search(line)
        if cpu:
            runs[current][1] += float(cpu.group(1)) + float(cpu.group(2))
            runs[current][2] += float(cpu.group(3))
            if float(cpu.group(3)) >= LONG:
                long_runs.append(f"{logged} {current[1]} {current[0]} {float(cpu.group(3)):.1f} s")
            current = None
    if not runs:
        print("autovacuum: no run logged")
        return
    total = sum(r[1] for r in runs.values())
    print(f"-- autovacuum: {total:.1f} CPU s in all; by table: runs, CPU s, elapsed s, index scans, index pages read")
    for (table, kind), (n, cpu, elapsed, scans, pages) in sorted(runs.items(), key=lambda r: -r[1][1]):
        print(f"  {kind:7} {table:32} {n:4} {cpu:8.2f} {elapsed:8.2f} {scans:4} {pages:9}")
    if long_runs:
        print(f"-- autovacuum runs of {LONG:.0f} s or more, ended at (UTC): " + "; ".join(long_runs))


main(sys.argv[1], int(sys.argv[2]))
