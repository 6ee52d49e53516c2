"""The first run, as a person does it: a fresh clone, `cp .env.example .env`, the required
values filled in, `scripts/run`. And `.env` read the same way by everything that reads it."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from dotenv import dotenv_values
from honcho.environ import parse as honcho_parse
from psycopg import sql
from rq import Worker
from rq.cron import CronScheduler

from purelyops.envfile import shell_exports
from purelyops.settings import Settings, load_settings
from tests.conftest import (
    ADMIN,
    ALERTS,
    BOT_TOKEN,
    CREDENTIALS_KEY,
    PG_ADMIN,
    PM_TOKEN,
    SIGNING_SECRET,
    free_port,
    wait_until,
)
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.example"


def fill(text: str, name: str, value: str) -> str:
    """Give NAME this value the way a person edits the file: on its line, uncommented if need be."""
    line = re.compile(rf"^(?:# )?{name}=.*$", re.M)
    assert len(line.findall(text)) == 1, f".env.example should have one line for {name}"
    return line.sub(lambda _: f"{name}={value}", text)


def uncommented(text: str) -> str:
    """.env.example with its commented-out settings (`# NAME=value`) switched on."""
    return re.sub(r"^# ([A-Z][A-Z0-9_]*=)", r"\1", text, flags=re.M)


REQUIRED = dict(
    SLACK_BOT_TOKEN=BOT_TOKEN,
    SLACK_SIGNING_SECRET=SIGNING_SECRET,
    PURELYMAIL_API_TOKEN=PM_TOKEN,
    CREDENTIALS_KEY=CREDENTIALS_KEY,
    ADMIN_USER_IDS=ADMIN,
    ALERT_CHANNEL=ALERTS,
)


def bash_reads(exports: str, names: list[str]) -> dict[str, str]:
    """What a shell has after `eval` of these exports, as scripts/run does it."""
    script = 'eval "$1"; shift; for n in "$@"; do printf "%s\\0" "${!n}"; done'
    out = subprocess.run(["bash", "-c", script, "bash", exports, *names], env={"PATH": os.environ["PATH"]},
                         capture_output=True, check=True).stdout.decode()
    return dict(zip(names, out.split("\0")[:-1], strict=True))


def test_every_shipped_value_reads_the_same_in_python_dotenv_honcho_and_scripts_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = uncommented(EXAMPLE.read_text())
    dotenv = dotenv_values(stream=io.StringIO(text))
    assert dotenv["USER_SYNC_CRON"] == "0 2 * * *"
    # honcho (a Procfile run by hand) drops empty values, which then read as unset: the same.
    honcho = honcho_parse(text)
    assert {k: v for k, v in dotenv.items() if v} == honcho
    names = list(dotenv)
    assert bash_reads(shell_exports_of(text, tmp_path), names) == dotenv

    # Filled in with the required values, every shipped value is a valid setting.
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in REQUIRED.items():
        text = fill(text, name, value)
    (tmp_path / ".env").write_text(text)
    settings = load_settings(_env_file=tmp_path / ".env")
    assert isinstance(settings, Settings)
    assert settings.user_sync_cron == "0 2 * * *"
    assert settings.purelymail_imap_host == "imap.purelymail.com" and settings.purelymail_imap_port == 993


def shell_exports_of(text: str, tmp_path: Path) -> str:
    path = tmp_path / "values.env"
    path.write_text(text)
    return shell_exports(str(path), environ={})


def test_scripts_run_reads_a_hand_written_env_as_the_processes_do(tmp_path: Path) -> None:
    """An older .env, written by hand: unquoted spaces, a # in a value, quotes, a $."""
    text = ("USER_SYNC_CRON=0 2 * * *\n"
            "SLACK_SIGNING_SECRET=ab#cd ef  # a comment after spaces\n"
            "PURELYMAIL_API_TOKEN='a $HOME b'\n"
            "ALERT_CHANNEL=\"C0ALERTS1\"\n"
            "SOURCE_HOSTS_ALLOW=\n"
            "TZ=Europe/Berlin\n")
    (tmp_path / ".env").write_text(text)
    result = subprocess.run([sys.executable, "-m", "purelyops.envfile", ".env"], cwd=tmp_path,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "TZ": "UTC"},
                            capture_output=True, text=True, check=True)
    names = ["USER_SYNC_CRON", "SLACK_SIGNING_SECRET", "PURELYMAIL_API_TOKEN", "ALERT_CHANNEL", "SOURCE_HOSTS_ALLOW"]
    assert bash_reads(result.stdout, names) == {k: v for k, v in dotenv_values(tmp_path / ".env").items()
                                                if k in names}
    assert bash_reads(result.stdout, ["USER_SYNC_CRON", "SLACK_SIGNING_SECRET"]) == {
        "USER_SYNC_CRON": "0 2 * * *", "SLACK_SIGNING_SECRET": "ab#cd ef"}
    assert "TZ" not in result.stdout  # the environment wins over .env, as in the processes


@pytest.mark.timeout(240)
def test_a_fresh_clone_runs_with_the_shipped_env_example(settings: Settings, slack_fake: FakeSlack,
                                                         tmp_path: Path, request: pytest.FixtureRequest) -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0 or not shutil.which("git"):
        pytest.skip("not a git checkout: nothing committed to clone")
    clone = tmp_path / "purelyops"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", head.stdout.strip()], check=True)

    # cp .env.example .env, then fill it in with an editor: HTTP mode, Slack and PurelyMail
    # played by the fakes, this test's own Redis, and a database (and role) that do not exist
    # yet on the local server: scripts/run makes them, the role no superuser.
    port = free_port()
    text = (clone / ".env.example").read_text()
    tag = uuid.uuid4().hex[:10]
    role, database = f"purelyops_run_{tag}", f"purelyops_run_db_{tag}"
    request.addfinalizer(lambda: drop_database_and_role(database, role))
    values = dict(REQUIRED, SLACK_APP_TOKEN="", PORT=str(port), SLACK_API_URL=settings.slack_api_url,
                  PURELYMAIL_API_URL=settings.purelymail_api_url,
                  DATABASE_URL=f"postgresql+psycopg://{role}@127.0.0.1:5432/{database}", REDIS_URL=settings.redis_url)
    for name, value in values.items():
        text = fill(text, name, value)
    (clone / ".env").write_text(text)

    # Nothing of the configuration comes from here: only what a login shell has, and the
    # virtualenv to reuse (scripts/setup.sh honours VENV).
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "USER") if k in os.environ}
    env["VENV"] = sys.prefix
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(clone / "scripts" / "run")], cwd=clone, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: proc.poll() is None and httpx.get(url + "/healthz").status_code == 200, 120,
                       "/healthz")
        except AssertionError:
            raise AssertionError(f"scripts/run did not come up (exit {proc.poll()}):\n{log_path.read_text()}") from None
        driver = SlackDriver(url + "/slack/events", SIGNING_SECRET, slack_fake)
        assert driver.command("help").status_code == 200
        assert "/pm help" in str(slack_fake.wait_for("response_url", timeout=20).args["blocks"])

        # The worker and the scheduler came up too, with USER_SYNC_CRON read whole.
        wait_until(lambda: Worker.all(connection=connection), 60, "an RQ worker")
        schedulers = wait_until(lambda: CronScheduler.all(connection=connection), 60, "the scheduler")
        crons = {job.func_name.rsplit(".", 1)[-1]: job.cron for job in schedulers[0].get_jobs()}
        assert crons["run_mailbox_sync"] == "0 2 * * *"
        log = log_path.read_text()
        assert "Traceback" not in log and "command not found" not in log
        # The database's own role, with the random password scripts/run wrote to .env.
        written = dotenv_values(clone / ".env")["DATABASE_URL"]
        assert written.startswith(f"postgresql+psycopg://{role}:") and written.endswith(f"/{database}")
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
                                (role,)).fetchone() == (False, True)
    finally:
        stop_process_tree(proc, log_path)
    wait_until(lambda: not Worker.all(connection=connection), 20, "the worker to leave")


def stop_process_tree(proc: subprocess.Popen, log_path: Path) -> None:
    """Stop scripts/run (exec'd into honcho) and everything it started. honcho starts each
    process in a session of its own, so those groups are killed by the pids it logged."""
    children = [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", log_path.read_text())]
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for group in [proc.pid, *children]:
        try:
            if os.getpgid(group) == group:  # still a group leader: ours, not a reused pid
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def drop_database_and_role(database: str, role: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
