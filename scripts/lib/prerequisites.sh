# Shared by the README's commands: make sure what they need is on this machine,
# installing it when we can (root with apt-get), or say exactly what is missing.

die() { echo "error: $*" >&2; exit 2; }

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust (https://rustup.rs), then run this again"
}

has_postgres_binaries() {
    if [ -n "${GRACE_PG_BINDIR:-}" ]; then
        [ -x "$GRACE_PG_BINDIR/initdb" ]
        return
    fi
    command -v initdb >/dev/null 2>&1 && return 0
    local bindir
    bindir=$(pg_config --bindir 2>/dev/null) && [ -x "$bindir/initdb" ] && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

# Without DATABASE_URL, grace starts a private PostgreSQL from the installed
# server binaries; install them if they are missing and we may.
ensure_postgres() {
    [ -n "${DATABASE_URL:-}" ] && return 0
    has_postgres_binaries && return 0
    if may_apt_install; then
        echo "PostgreSQL server binaries not found; installing them with apt-get" >&2
        apt_install postgresql "install PostgreSQL 13+ or set DATABASE_URL"
        has_postgres_binaries || die "postgresql installed but initdb still not found; set GRACE_PG_BINDIR"
    else
        die "PostgreSQL server binaries not found: install them (Debian/Ubuntu: sudo apt-get install postgresql) or set DATABASE_URL to an existing database"
    fi
}

# Whether we may install Debian packages: root, with apt-get.
may_apt_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
}

# apt_install PACKAGE HINT: installs PACKAGE or stops, saying HINT.
apt_install() {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
        die "apt-get install $1 failed; $2"
}

# ensure_command COMMAND PACKAGE: makes sure COMMAND is on PATH, installing
# Debian's PACKAGE when we may, or stops saying what to install.
ensure_command() {
    local command=$1 package=$2
    command -v "$command" >/dev/null 2>&1 && return 0
    may_apt_install || die "$command not found: install it (Debian/Ubuntu: sudo apt-get install $package)"
    echo "$command not found; installing $package with apt-get" >&2
    apt_install "$package" "install $package yourself"
    command -v "$command" >/dev/null 2>&1 || die "$package installed but $command still not found"
}

# build_dir PROFILE: where cargo puts a build of PROFILE (dev's is target/debug).
build_dir() {
    if [ "$1" = dev ]; then echo target/debug; else echo "target/$1"; fi
}

# python_tool NAME PACKAGE: a Python tool in its own venv under target/ (made
# on first use, so CI needs nothing installed); prints the venv's bin folder.
python_tool() {
    local venv=target/$1-venv
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q "$2" >&2
    fi
    echo "$venv/bin"
}

# cargo_tool COMMAND CRATE: a Rust tool built from crates.io once per machine,
# kept outside the checkout (GRACE_TOOLS_DIR, default ~/.cache/grace/tools) so
# a fresh clone does not build it again; prints the path of its COMMAND.
cargo_tool() {
    local root=${GRACE_TOOLS_DIR:-$HOME/.cache/grace/tools}
    if [ ! -x "$root/bin/$1" ]; then
        echo "$1 not found under $root; installing the $2 crate (once)" >&2
        cargo install --quiet --locked --root "$root" "$2" >&2 || die "cargo install $2 failed"
    fi
    echo "$root/bin/$1"
}
