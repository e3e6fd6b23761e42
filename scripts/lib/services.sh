# Shared by scripts that run grace's services in the background: start a
# private PostgreSQL or a backend, wait for them, and stop them in order.
# Expects $grace (the binary) and $state (a scratch directory) to be set. The
# services' logs go to $state/*.err.

# Waits until NAME.out has a line starting with PREFIX, or the process PID is
# gone (then shows what it said on NAME.err).
await_line() {
    local name=$1 prefix=$2 pid=$3 what=$4
    until grep -q "^$prefix" "$state/$name.out" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$what did not start: $(tail -5 "$state/$name.err")"
        sleep 0.1
    done
}

# Starts `grace db up` and exports its DATABASE_URL; sets db_pid. Anchors of
# its log go to the scratch directory: the cluster is thrown away, and a later
# one on the same port would read as a rewrite of it in a lasting anchor file.
start_private_postgres() {
    export GRACE_ANCHORS=$state/anchors.json
    "$grace" db up >"$state/db.out" 2>"$state/db.err" &
    db_pid=$!
    await_line db DATABASE_URL= "$db_pid" "the private PostgreSQL"
    DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' "$state/db.out")
    export DATABASE_URL
}

# Starts `grace serve` on a free port with the given GRACE_TOKENS spec (and any
# further arguments for it) and sets backend (its URL) and serve_pid.
start_backend() {
    GRACE_TOKENS=$1 "$grace" serve --listen 127.0.0.1:0 "${@:2}" >"$state/serve.out" 2>"$state/serve.err" &
    serve_pid=$!
    await_line serve "grace backend listening on " "$serve_pid" "grace serve"
    backend=$(sed -n 's/^grace backend listening on //p' "$state/serve.out")
}

# The backend stops first (it drains its log outbox), then the database.
stop_services() {
    if [ -n "${serve_pid:-}" ]; then kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true; fi
    if [ -n "${restarted_data:-}" ]; then
        as_data_owner "$restarted_data" "$(dirname "$(awk 'NR == 1 {print $1}' "$restarted_data/postmaster.opts")")/pg_ctl" \
            stop -D "$restarted_data" -m fast -s 2>/dev/null || true
    fi
    if [ -n "${db_pid:-}" ]; then kill -TERM "$db_pid" 2>/dev/null && wait "$db_pid" 2>/dev/null || true; fi
    rm -rf "$state"
}

# Restarts the PostgreSQL that start_private_postgres started, with the options
# it had (pg_ctl reads them back from postmaster.opts). The restarted server is
# no longer `grace db up`'s child: stop_services stops it by its data directory.
restart_private_postgres() {
    local data bindir
    data=$(sed -n 's/^GRACE_PRIVATE_PG_DIR=//p' "$state/db.out")/data
    bindir=$(dirname "$(sed -n 1p "$data/postmaster.opts" | awk '{print $1}')")
    as_data_owner "$data" "$bindir/pg_ctl" restart -D "$data" -m fast -w -s -l "$data/../restarted.log" >/dev/null ||
        die "restarting PostgreSQL failed: $(tail -5 "$data/../restarted.log" 2>/dev/null)"
    restarted_data=$data
}

# as_data_owner DIR COMMAND...: runs COMMAND as the owner of DIR (PostgreSQL
# refuses to run as root; the private cluster belongs to `postgres` then).
as_data_owner() {
    local owner
    owner=$(stat -c %U "$1")
    shift
    if [ "$(id -un)" = "$owner" ]; then "$@"; else runuser -u "$owner" -- "$@"; fi
}
