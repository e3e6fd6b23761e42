# The stack run of `scripts/check-compose --run`, sourced by it ($compose is
# Compose v2): the images built here, the stack started on a private compose
# network as the README says, a load run across its workers and both backend
# replicas with its verdict checked, the results read from the volume on the
# host, Prometheus's sum of the workers' counters against the merged total,
# `grace health` in the stack and `grace verify` from the host, the faults
# between containers (scripts/lib/compose_faults.sh), then `down -v` leaving
# nothing behind.

eval "$(scripts/images)"
ensure_command psql postgresql-client
profile=${GRACE_BUILD_PROFILE:-release}
grace_bin=$(build_dir "$profile")/grace
project=grace-check-$$
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export COMPOSE_PROJECT_NAME=$project GRACE_WORKERS=3 GRACE_USERS=${GRACE_CHECK_USERS:-30} \
    GRACE_RUN_TIME=${GRACE_CHECK_RUN_TIME:-20s} POSTGRES_PASSWORD=compose-check-password \
    POSTGRES_PORT=$(free_port) GRACE_PORT=$(free_port) PROMETHEUS_PORT=$(free_port)
stack() { "$compose" -f compose/docker-compose.yml "$@"; }
logs=$(mktemp -d)
finish() {
    local status=$?
    if [ "$status" != 0 ]; then
        stack logs --no-color >"$logs/stack.log" 2>&1 || true
        echo "compose run failed; the stack's logs: $logs/stack.log" >&2
    fi
    stack down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    [ "$status" = 0 ] && rm -rf "$logs"
    exit "$status"
}
trap finish EXIT
# Prints how many containers, networks and volumes the project still has.
leftovers() {
    local label=label=com.docker.compose.project=$project
    echo $(($(docker ps -aq --filter "$label" | wc -l) + $(docker network ls -q --filter "$label" | wc -l) +
        $(docker volume ls -q --filter "$label" | wc -l)))
}

echo "compose: starting PostgreSQL, 2 backends, $GRACE_WORKERS workers, Prometheus (project $project)" >&2
started=$SECONDS
stack up -d --wait --no-build postgres backend backend-2 worker prometheus >"$logs/up.log" 2>&1 ||
    die "the stack did not come up: $(tail -5 "$logs/up.log")"
echo "compose: up and healthy in $((SECONDS - started)) s; the coordinator's run ($GRACE_USERS users × $GRACE_RUN_TIME)" >&2

# One run across the workers and both replicas: the verdict is the exit code.
stack run --rm --no-deps coordinator >"$logs/coordinator.out" 2>"$logs/coordinator.err" ||
    die "the coordinator's run failed (exit $?): $(tail -20 "$logs/coordinator.out")"
results=$(docker volume inspect -f '{{.Mountpoint}}' "${project}_results")
# Runs the Python in $1 with `result`, the last run's load-result.json, read from the volume.
with_result() { python3 -c "import json, sys; result = json.load(open(sys.argv[1])); $1" "$results/load-result.json"; }
run_id=$(python3 - "$results/load-result.json" "$GRACE_WORKERS" <<'PY'
import json, sys
result, workers = json.load(open(sys.argv[1])), int(sys.argv[2])
assert result["passed"], "load-result.json says the run failed"
assert len(result["workers"]) == workers, f"{len(result['workers'])} workers in the result, not {workers}"
backends = result["backends"]
assert set(backends) == {"http://backend:8080", "http://backend-2:8080"}, backends
assert all(count["requests"] > 0 for count in backends.values()), backends
print(result["run_id"])
PY
) || die "the results in the volume are not what the run printed"
grep -q "every acknowledged write stored exactly once" "$logs/coordinator.out" || die "the coordinator printed no C7 verdict"

# Prometheus scraped every worker: their request counters (each the latest
# share's) sum to the merged total, once a scrape after the run has landed.
merged=$(with_result 'print(result["total"]["requests"])')
scraped=$(python3 - "$PROMETHEUS_PORT" "$merged" "$GRACE_WORKERS" <<'PY'
import json, sys, time, urllib.parse, urllib.request
port, merged, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def query(q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    return json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
deadline, total, up = time.time() + 30, None, None
while time.time() < deadline:
    up = query('sum(up{job="grace-workers"})')
    result = query("sum(grace_worker_requests_total)")
    total = int(float(result[0]["value"][1])) if result else None
    if total == merged and up and int(float(up[0]["value"][1])) == workers:
        break
    time.sleep(1)
print(total)
PY
)
[ "$scraped" = "$merged" ] || die "Prometheus's sum of the workers' request counters is $scraped, the merged total $merged"

# The stack's own health command, then the proofs from the host.
stack run --rm --no-deps health >"$logs/health.out" 2>&1 || die "grace health in the stack failed: $(tail -20 "$logs/health.out")"
database_url=postgres://postgres:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/grace
mission=$(psql -Atq "$database_url" -c "SELECT mission_id FROM control.runs WHERE id = '$run_id'")
[ -n "$mission" ] || die "control.runs has no mission for run $run_id"
DATABASE_URL=$database_url "$grace_bin" verify --mission "$mission" >"$logs/verify.out" 2>&1 ||
    die "grace verify from the host failed: $(tail -20 "$logs/verify.out")"

. scripts/lib/compose_faults.sh

stack down -v --remove-orphans -t 5 >/dev/null 2>&1 || die "docker compose down -v failed"
left=$(leftovers)
[ "$left" = 0 ] || die "docker compose down -v left $left containers, networks or volumes of $project"
trap - EXIT
rm -rf "$logs"
echo "compose: 2 backends, $GRACE_WORKERS workers, C1–C7 hold; prometheus totals = merged; $faults; down -v left nothing"
