# The no-work target of the generator benchmarks: nginx from Debian, one
# worker process, answering GET /api/health with a fixed body (the shape of
# the backend's health answer), keep-alive without a request limit, no log,
# touching no database. Expects $state (a scratch directory).

# Starts it on a free port and sets target (its URL); stop_static_target stops it.
start_static_target() {
    ensure_command nginx nginx-light
    local port
    port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    mkdir -p "$state/nginx"
    cat >"$state/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $state/nginx/nginx.pid;
error_log $state/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $state/nginx;
    proxy_temp_path $state/nginx;
    fastcgi_temp_path $state/nginx;
    uwsgi_temp_path $state/nginx;
    scgi_temp_path $state/nginx;
    server {
        listen 127.0.0.1:$port;
        default_type application/json;
        location = /api/health {
            return 200 '{"status":"ok","database":"ok","mesh":{"started":true,"subscribers":0,"dropped":0,"last_seq":0},"log_lag":0,"version":"static"}';
        }
        location / { return 404 '{"error":"not here"}'; }
    }
}
EOF
    nginx -c "$state/nginx/nginx.conf" -p "$state/nginx"
    target=http://127.0.0.1:$port
    curl -sf "$target/api/health" >/dev/null || die "nginx does not answer on $target"
}

stop_static_target() {
    [ -f "$state/nginx/nginx.pid" ] && kill "$(cat "$state/nginx/nginx.pid")" 2>/dev/null || true
}
