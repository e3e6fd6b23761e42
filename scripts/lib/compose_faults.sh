# Faults between the stack's containers, sourced by scripts/lib/compose_run.sh
# with the stack up: each its own short run, its verdict checked. PostgreSQL
# restarted, a backend replica killed, both replicas restarted one at a time,
# a worker from outside the stack joining its workers (as on another machine),
# and last (it leaves a worker gone) a worker cut off from the network.

fault_run_time=${GRACE_CHECK_FAULT_RUN_TIME:-20}
container() { stack ps -q "$1" | head -1; }

# Starts the coordinator's run in the background (run time $1 seconds) as
# $logs/$2.{out,err}; sets run_pid, and returns once the load has begun.
start_run() {
    GRACE_RUN_TIME=${1}s stack run --rm --no-deps coordinator >"$logs/$2.out" 2>"$logs/$2.err" &
    run_pid=$!
    until grep -q "started on" "$logs/$2.err" 2>/dev/null; do
        kill -0 "$run_pid" 2>/dev/null || die "the $2 run ended before its load began: $(tail -5 "$logs/$2.err")"
        sleep 0.2
    done
    sleep 2 # the start is announced 2 s ahead
}

# Waits for the run; stops unless it exited $1. Then checks load-result.json
# with the Python in $2 (`result` is the parsed file).
finish_run() {
    local expected=$1 check=$2 name=$3 code=0
    wait "$run_pid" || code=$?
    [ "$code" = "$expected" ] || die "the $name run exited $code, not $expected: $(tail -25 "$logs/$name.out")"
    with_result "$check" || die "the $name run's result: $(tail -25 "$logs/$name.out")"
}

c7_holds='assert result["acked_writes"]["passed"], result["acked_writes"]'

# Waits until container $1 reports healthy.
await_healthy() {
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; do sleep 0.5; done
}

echo "compose: faults — PostgreSQL restarted mid-run" >&2
start_run "$fault_run_time" pg-restart
sleep $((fault_run_time / 3))
docker restart -t 10 "$(container postgres)" >/dev/null
finish_run 0 "$c7_holds; assert result['control_plane_outages'], 'no control-plane outage named'" pg-restart
outage=$(with_result 'o = result["control_plane_outages"][0]; print(o["from"][11:19], "to", o["to"][11:19])')

echo "compose: faults — backend-2 killed mid-run" >&2
start_run "$fault_run_time" replica-kill
sleep $((fault_run_time / 3))
docker kill "$(container backend-2)" >/dev/null
finish_run 0 "$c7_holds
dead = result['backends']['http://backend-2:8080']
assert dead['failures'] > 0, f'no failed request counted on the killed replica: {dead}'
alive = result['backends']['http://backend:8080']
assert alive['requests'] > dead['requests'], (alive, dead)" replica-kill
grep -q "http://backend-2:8080" "$logs/replica-kill.out" || die "the replica-kill verdict does not name backend-2"
stack up -d --wait --no-build backend-2 >/dev/null 2>&1 || die "backend-2 did not come back"

echo "compose: faults — a rolling restart of both replicas" >&2
windows=()
start_run $((fault_run_time + 10)) rolling
for replica in backend backend-2; do
    from=$(date +%s)
    docker restart -t 10 "$(container "$replica")" >/dev/null
    await_healthy "$(container "$replica")"
    windows+=("$from:$(date +%s)")
    sleep 2
done
finish_run 0 "$c7_holds
windows = [tuple(map(int, w.split(':'))) for w in '${windows[*]}'.split()]
failed = [int(second) for second, slot in result['timeline'].items() if slot['failures']]
outside = [s for s in failed if not any(a - 1 <= s <= b + 1 for a, b in windows)]
assert not outside, f'failures outside the restart windows {windows}: seconds {outside}'" rolling
rolling_failures=$(with_result 'print(result["total"]["failures"])')

echo "compose: a worker on another machine (this host, through the published ports) joins the run" >&2
DATABASE_URL=postgres://postgres:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/grace \
    "$grace_bin" worker --once --backend "http://127.0.0.1:$GRACE_PORT" >"$logs/host-worker.out" 2>"$logs/host-worker.err" &
host_worker=$!
GRACE_WORKERS=$((GRACE_WORKERS + 1)) start_run "$fault_run_time" remote-worker
finish_run 0 "$c7_holds; assert len(result['workers']) == $((GRACE_WORKERS + 1)), result['workers']" remote-worker
wait "$host_worker" || die "the worker on this host failed: $(tail -5 "$logs/host-worker.err")"

echo "compose: faults — a worker cut off from the network mid-run" >&2
network=${project}_default
cut=$(stack ps -q worker | tail -1)
cut_host=$(docker inspect -f '{{.Config.Hostname}}' "$cut")
start_run "$fault_run_time" partition
docker network disconnect "$network" "$cut"
cut_at=$SECONDS
until grep -q "worker $cut_host .*is lost" "$logs/partition.err"; do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.2
done
lost_after=$((SECONDS - cut_at))
finish_run 1 "$c7_holds
assert any(w.startswith('$cut_host') for w in result['lost_workers']), result['lost_workers']
assert len(result['lost_workers']) == 1, result['lost_workers']" partition
grep -q "$cut_host" "$logs/partition.out" || die "the partition verdict does not name the lost worker $cut_host"
# The cut worker gives up by itself: its container ends, bounded.
gave_up=$(timeout 180 docker wait "$cut") || die "the cut worker $cut_host was still running 3 minutes later"
faults="PG restart survived (outage $outage UTC); replica kill survived; rolling restart 0 lost ($rolling_failures failed in the windows); a worker from outside joined; partition → lost in ${lost_after} s, the cut worker exited $gave_up after $((SECONDS - cut_at)) s"
