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

# ensure_redis: the tests' Redis at 127.0.0.1:6379. One already answering there is used as
# it is; else one is started for the tests, on loopback only and keeping nothing on disk.
# It has no password: only scripts/test starts it, for a test machine (scripts/run's own
# Redis gets a password: setup_redis).
ensure_redis() {
  ensure_apt redis-server
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Starting Redis for the tests on 127.0.0.1:6379"
    mkdir -p "$ROOT/.redis"
    as_root redis-server --daemonize yes --bind 127.0.0.1 --protected-mode yes --port 6379 --save "" \
      --appendonly no --dir "$ROOT/.redis" --logfile "$ROOT/.redis/test-redis.log"
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "Redis did not start; see $ROOT/.redis/test-redis.log" >&2
    exit 1
  fi
}

# random_secret: 32 random URL-safe characters (letters, digits, - and _), for a password we set.
random_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

# url_part FIELD: a part of the URL in $URL (scheme, username, password, hostname, port or
# database), decoded. The URL comes through the environment: it may hold a password.
url_part() {
  URL_FIELD=$1 python3 -c '
import os
from urllib.parse import unquote, urlsplit
url, field = urlsplit(os.environ["URL"]), os.environ["URL_FIELD"]
value = url.path.lstrip("/").split("?")[0] if field == "database" else getattr(url, field)
print("" if value is None else unquote(str(value)))'
}

# env_set FILE NAME: NAME=$ENV_VALUE in FILE (a .env): its line replaced, or added at the end.
# The value comes through the environment, never argv; FILE is left readable by its owner only.
env_set() {
  local file=$1 tmp
  [ -f "$file" ] || (umask 077 && : > "$file")
  tmp=$(mktemp "$file.XXXXXX")
  ENV_NAME=$2 awk 'BEGIN { n = ENVIRON["ENV_NAME"]; v = ENVIRON["ENV_VALUE"]; done = 0 }
    index($0, n "=") == 1 { if (!done) print n "=" v; done = 1; next }
    { print }
    END { if (!done) print n "=" v }' "$file" > "$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

is_local_host() { case $1 in 127.0.0.1|localhost|::1|'[::1]') return 0 ;; *) return 1 ;; esac; }

# redis_ping HOST PORT PASSWORD: what the Redis there answers to PING (PONG, NOAUTH…), if anything.
redis_ping() {
  if [ -n "$3" ]; then
    REDISCLI_AUTH=$3 redis-cli --no-auth-warning -h "$1" -p "$2" ping 2>&1
  else
    redis-cli -h "$1" -p "$2" ping 2>&1
  fi
}

# setup_redis ENVFILE: the Redis of REDIS_URL, when it is on this machine. One that already
# answers there is left exactly as it is (other programs may use it). With none, one is
# started on loopback with a random password, and REDIS_URL with that password is written
# to ENVFILE and exported. RQ unpickles what it reads from Redis: whoever can write to it
# runs code in the workers, so a Redis we start is reachable from this machine only, and
# only with its password.
setup_redis() {
  local envfile=$1 url=${REDIS_URL:-redis://127.0.0.1:6379/0} host port password database answer
  host=$(URL=$url url_part hostname); port=$(URL=$url url_part port); port=${port:-6379}
  password=$(URL=$url url_part password); database=$(URL=$url url_part database)
  is_local_host "$host" || return 0
  command -v redis-cli >/dev/null || ensure_apt redis-tools
  answer=$(redis_ping 127.0.0.1 "$port" "$password" || true)
  case $answer in
    PONG)
      [ -n "$password" ] || say "Warning: the Redis on 127.0.0.1:$port has no password: any program on this" \
        "machine can put jobs in it, which the workers run (README, Security). Left as it is."
      return 0 ;;
    *NOAUTH*|*WRONGPASS*|*invalid\ password*|*"without any password configured"*)
      echo "The Redis on 127.0.0.1:$port does not take REDIS_URL's password. It is not ours to change:" \
        "give REDIS_URL its password (redis://:PASSWORD@127.0.0.1:$port/0), or another port." >&2
      exit 1 ;;
  esac
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "Something that is not Redis listens on 127.0.0.1:$port (REDIS_URL): give REDIS_URL another port." >&2
    exit 1
  fi
  if ! command -v redis-server >/dev/null; then
    ensure_apt redis-server
    # With systemd, the package starts a Redis of its own at once, without a password: not
    # what we were asked for, and used by nobody yet. It is stopped and left disabled.
    if [ "$(redis_ping 127.0.0.1 "$port" "")" = PONG ] && command -v systemctl >/dev/null; then
      say "Stopping the Redis the redis-server package just started (no password); ours replaces it"
      as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
  fi
  password=$(random_secret)
  start_redis "$port" "$password"
  export REDIS_URL="redis://:$password@127.0.0.1:$port/${database:-0}"
  ENV_VALUE=$REDIS_URL env_set "$envfile" REDIS_URL
  say "Started Redis on 127.0.0.1:$port with a password of its own (REDIS_URL in $envfile)"
}

# start_redis PORT PASSWORD: a Redis on 127.0.0.1:PORT only, that needs PASSWORD. Its
# configuration comes on stdin, so the password is in no command line; its data and log go
# to .redis/ here, readable by its owner only.
start_redis() {
  local dir="$ROOT/.redis"
  (umask 077 && mkdir -p "$dir")
  printf '%s\n' "port $1" "bind 127.0.0.1" "protected-mode yes" "requirepass $2" "daemonize yes" \
    "dir $dir" "pidfile $dir/redis-$1.pid" "logfile $dir/redis-$1.log" 'save ""' "appendonly no" \
    | redis-server - >/dev/null
  for _ in $(seq 50); do
    [ "$(redis_ping 127.0.0.1 "$1" "$2")" = PONG ] && return 0
    sleep 0.1
  done
  echo "Redis did not start on 127.0.0.1:$1; see $dir/redis-$1.log" >&2
  exit 1
}

# pg_admin_psql PORT [DATABASE]: psql as a superuser of the PostgreSQL on this machine at PORT
# (in DATABASE, postgres by default), reading
# its commands from stdin (so that no password we set is in a command line): through trust
# authentication when the server allows it (CI), else as the postgres system user over
# the local socket. Nothing of the server's own configuration is changed.
pg_admin_psql() {
  local port=$1 database=postgres
  shift
  if [ $# -gt 0 ] && [ "${1:0:1}" != - ]; then database=$1; shift; fi
  local trust="postgresql://postgres@127.0.0.1:$port/$database"
  if psql "$trust" -X -qtAc 'select 1' >/dev/null 2>&1; then
    psql "$trust" -X -qtA -v ON_ERROR_STOP=1 "$@"
  else
    as_root runuser -u postgres -- psql -p "$port" -d "$database" -X -qtA -v ON_ERROR_STOP=1 "$@"
  fi
}

PG_ROLE_MARK="made by purelyops scripts/setup.sh"  # the comment on a role setup_database made

# setup_database ENVFILE: the database of DATABASE_URL, when it is on this machine, owned by
# a role of its own: LOGIN and CREATEDB, never SUPERUSER, with a random password, written to
# ENVFILE in DATABASE_URL and exported. A URL whose role logs in with its password and is
# no superuser is left as it is. The role is the URL's, unless that is a superuser (like
# postgres): then it is "purelyops" (PURELYOPS_DB_ROLE). Of the roles that exist, only one an
# earlier run made is changed (a new password); the server's configuration never is.
setup_database() {
  local envfile=$1 url=${DATABASE_URL:-} scheme host port user password database role
  [ -n "$url" ] || return 0
  scheme=${url%%://*}; host=$(URL=$url url_part hostname); port=$(URL=$url url_part port); port=${port:-5432}
  user=$(URL=$url url_part username); password=$(URL=$url url_part password)
  database=$(URL=$url url_part database)
  is_local_host "$host" || return 0
  if [ -n "$password" ] && [ "$(PGPASSWORD=$password psql "postgresql://$user@127.0.0.1:$port/$database" -X -qtAc \
      "select rolsuper from pg_roles where rolname = current_user" 2>/dev/null)" = f ]; then
    return 0
  fi
  role=$user
  if [ -z "$role" ] || [ "$(pg_admin_psql "$port" -c "select rolsuper from pg_roles where rolname = '$role'" \
      </dev/null 2>/dev/null)" = t ]; then
    role=${PURELYOPS_DB_ROLE:-purelyops}
  fi
  for name in "$role" "$database"; do
    if ! [[ $name =~ ^[a-z_][a-z0-9_]{0,62}$ ]]; then
      echo "DATABASE_URL: \"$name\" is not a name we create (lower-case letters, digits and _)." >&2
      exit 1
    fi
  done
  # A role that exists is changed only when an earlier run made it (its comment says so).
  case $(pg_admin_psql "$port" -c "select case when rolsuper then 'superuser' when shobj_description(oid, \
      'pg_authid') = '$PG_ROLE_MARK' then 'ours' else 'theirs' end from pg_roles where rolname = '$role'" </dev/null) in
    superuser)
      echo "The PostgreSQL role $role is a superuser: purelyops will not use it. Name another role in" \
        "DATABASE_URL." >&2
      exit 1 ;;
    theirs)
      echo "The PostgreSQL role $role exists, and DATABASE_URL has no password that logs in as it. It is not" \
        "ours to change: put its password in DATABASE_URL (postgresql+psycopg://$role:PASSWORD@…)," \
        "or name a role that does not exist yet." >&2
      exit 1 ;;
  esac
  password=$(random_secret)
  say "PostgreSQL: role $role (no superuser) owns database $database, with a new random password"
  pg_admin_psql "$port" >/dev/null <<SQL
DO \$\$BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    ALTER ROLE "$role" LOGIN CREATEDB NOSUPERUSER PASSWORD '$password';
  ELSE
    CREATE ROLE "$role" LOGIN CREATEDB NOSUPERUSER PASSWORD '$password';
    COMMENT ON ROLE "$role" IS '$PG_ROLE_MARK';
  END IF;
END\$\$;
SQL
  if [ "$(pg_admin_psql "$port" -c "select 1 from pg_database where datname = '$database'" </dev/null)" = 1 ]; then
    # An older set-up's database (made by a superuser): the role takes it over, and what is in it.
    pg_admin_psql "$port" -c "ALTER DATABASE \"$database\" OWNER TO \"$role\"" </dev/null >/dev/null
    pg_admin_psql "$port" "$database" >/dev/null <<SQL
DO \$\$DECLARE item record; BEGIN
  EXECUTE format('ALTER SCHEMA public OWNER TO %I', '$role');
  FOR item IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        AND pg_get_userbyid(c.relowner) <> '$role'
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')) LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I', CASE item.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
      WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, item.name, '$role');
  END LOOP;
  FOR item IN SELECT t.oid::regtype AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = 'public' AND t.typtype = 'e' AND pg_get_userbyid(t.typowner) <> '$role' LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', item.name, '$role');
  END LOOP;
END\$\$;
SQL
  else
    pg_admin_psql "$port" -c "CREATE DATABASE \"$database\" OWNER \"$role\"" </dev/null >/dev/null
  fi
  export DATABASE_URL="$scheme://$role:$password@127.0.0.1:$port/$database"
  ENV_VALUE=$DATABASE_URL env_set "$envfile" DATABASE_URL
}

# pg_admin_url: a URL for the tests, with the right to create (and drop) their databases on
# the local server: trust authentication when the server allows it (CI); otherwise a role
# that may create databases, no superuser, with a random password kept in .test-database
# (readable by its owner only) for the next runs.
pg_admin_url() {
  local trust="postgresql://postgres@127.0.0.1:5432/postgres"
  if psql "$trust" -qtAc 'select 1' >/dev/null 2>&1; then
    echo "$trust"
    return
  fi
  local role=purelyops_test saved="$ROOT/.test-database" password=""
  [ -f "$saved" ] && password=$(cat "$saved")
  if [ -z "$password" ] || ! PGPASSWORD=$password psql "postgresql://$role@127.0.0.1:5432/postgres" -qtAc 'select 1' \
      >/dev/null 2>&1; then
    password=$(random_secret)
    pg_admin_psql 5432 >/dev/null <<SQL
DO \$\$BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    ALTER ROLE $role LOGIN CREATEDB PASSWORD '$password';
  ELSE
    CREATE ROLE $role LOGIN CREATEDB NOSUPERUSER PASSWORD '$password';
  END IF;
END\$\$;
SQL
    (umask 077 && echo "$password" > "$saved")
  fi
  echo "postgresql://$role:$password@127.0.0.1:5432/postgres"
}
