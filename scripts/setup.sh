# Shared set-up for scripts/test and scripts/run: sourced, not run.
# Installs what is missing on a Debian machine and starts local services if needed.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ensure_apt PACKAGE... : install the Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "Installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Services must not be started by the package scripts in a container; we start what we need.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_python() {
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "purelyops needs Python 3.11 or newer (python3 is $(python3 --version 2>&1))." >&2
    exit 1
  fi
  python3 -c 'import venv, ensurepip' 2>/dev/null || ensure_apt python3-venv
}

# ensure_venv [extra]: a virtualenv with the locked dependencies and this project installed.
ensure_venv() {
  local extra=${1:-}
  local stamp="$VENV/.purelyops-installed"
  local locked have
  locked=$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
  [ -x "$VENV/bin/python" ] || { say "Creating $VENV"; python3 -m venv "$VENV"; }
  have=$(cat "$stamp" 2>/dev/null || true)
  # A virtualenv with the extras (scripts/test's) also serves what needs none (scripts/run).
  if [ "$have" != "$locked$extra" ] && { [ -n "$extra" ] || [ "${have#"$locked"}" = "$have" ]; }; then
    say "Installing Python dependencies"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.lock"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT${extra:+[$extra]}"
    echo "$locked$extra" > "$stamp"
  fi
}

ensure_postgres() {
  ensure_apt postgresql postgresql-contrib
  if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    say "Creating a PostgreSQL $version cluster"
    as_root pg_createcluster "$version" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    local cluster
    cluster=$(pg_lsclusters -h | head -1 | awk '{print $1" "$2}')
    say "Starting PostgreSQL ($cluster)"
    # shellcheck disable=SC2086
    as_root pg_ctlcluster --skip-systemctl-redirect $cluster start
  fi
}

ensure_redis() {
  ensure_apt redis-server
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Starting Redis on 127.0.0.1:6379"
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/purelyops-redis.log
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "Redis did not start; see /tmp/purelyops-redis.log" >&2
    exit 1
  fi
}

# pg_admin_url: a URL with the right to create databases on the local server.
# Trust auth is used when the server allows it; otherwise a local role is made for us.
pg_admin_url() {
  local trust="postgresql://postgres@127.0.0.1:5432/postgres"
  if psql "$trust" -qtAc 'select 1' >/dev/null 2>&1; then
    echo "$trust"
    return
  fi
  local role=purelyops_local
  as_root runuser -u postgres -- psql -qtAc \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='$role') THEN CREATE ROLE $role LOGIN SUPERUSER PASSWORD '$role'; END IF; END\$\$;" >/dev/null
  echo "postgresql://$role:$role@127.0.0.1:5432/postgres"
}
