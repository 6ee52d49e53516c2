"""Source-server and migration listeners: `server add|list|remove|test`, `migrate`, `jobs`,
`job <id>`, and the buttons on a migration's thread. The work is in purelyops.servers and
purelyops.migrations; messages about a migration go out through bot.migration_messages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from slack_bolt import App

from bot import migration_messages as slack_out
from bot.blocks import migrations as blocks
from bot.interactions import FieldErrors, guarded, guarded_view, guarded_view_now
from bot.mrkdwn import escape
from bot.payloads import number
from bot.request import Request
from bot.router import Router, Usage
from purelyops import job_states, mailboxes, migration_csv, migrations, oauth_tokens, providers, servers
from purelyops.access import Role, RoleUnknown, has_role
from purelyops.errors import Refused
from purelyops.mailboxes import MailboxError, check_address
from purelyops.runtime import Runtime


def _password(values: dict, block: str, errors: dict[str, str], *, required: bool = True) -> str:
    value = str(values.get(block) or "")
    problem = migrations.password_problem(value, required=required)
    if problem:
        errors[block] = f"the password {problem}"
    return value


def _address(values: dict, block: str, errors: dict[str, str]) -> str:
    try:
        return check_address(str(values.get(block) or ""))
    except MailboxError as error:
        errors[block] = str(error)
        return ""


SLACK_FILE_HOSTS = ("files.slack.com",)
SIGN_IN_FIELDS = ("tenant_id", "client_id", "client_secret", "certificate", "service_account_key")


def is_slack_file_url(rt: Runtime, url: str) -> bool:
    """Whether `url` is on Slack's file servers (https://files.slack.com) or on the host of
    SLACK_API_URL (a fake Slack serves files itself): the only places the bot token goes."""
    try:
        parts, api = urlsplit(url), urlsplit(rt.settings.slack_api_url)
        port, api_port = parts.port, api.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https" and parts.hostname in SLACK_FILE_HOSTS and port in (None, 443):
        return True
    return (parts.scheme, parts.hostname, port) == (api.scheme, api.hostname, api_port)


def download_csv(rt: Runtime, file: dict) -> bytes:
    """The bytes of a file from a modal's file input, fetched with the bot token, which is
    sent only to Slack's file hosts. Slack answers an unauthorised download with its HTML
    sign-in page, so HTML counts as failure."""
    if int(file.get("size") or 0) > migration_csv.MAX_BYTES:
        raise migration_csv.CsvProblems([(0, f"the file is larger than {migration_csv.MAX_BYTES // 2**20} MiB")])
    if not is_slack_file_url(rt, str(file.get("url_private") or "")):
        raise migration_csv.CsvProblems([(0, "the uploaded file is not on Slack's file servers, so it was not "
                                             "fetched; upload it again or paste the CSV")])
    try:
        response = httpx.get(file["url_private"], headers={"Authorization": f"Bearer {rt.settings.slack_bot_token}"},
                             timeout=20, follow_redirects=False)
    except httpx.HTTPError:
        raise migration_csv.CsvProblems([(0, "Slack did not hand over the uploaded file; try again")]) from None
    if response.status_code != 200 or response.headers.get("content-type", "").startswith("text/html"):
        raise migration_csv.CsvProblems([(0, "Slack did not hand over the uploaded file (is files:read granted "
                                             "to the app?); paste the CSV instead")])
    return response.content


def register(app: App, router: Router, rt: Runtime) -> None:
    # ---- source servers ---------------------------------------------------------------------

    @router.add("server add", "server add", "add an old IMAP host to migrate from (opens a form)")
    def server_add(request: Request) -> None:
        request.open_modal(blocks.server_add_modal(request.channel_id))

    def valid_server(values: dict) -> servers.ServerSpec:
        return servers.check_spec(str(values.get("name") or ""), str(values.get("host") or ""),
                                  str(values.get("port") or ""), str(values.get("security") or ""),
                                  str(values.get("provider") or providers.OTHER),
                                  str(values.get("auth") or oauth_tokens.PASSWORD),
                                  {k: str(values.get(k) or "") for k in SIGN_IN_FIELDS})

    @guarded_view_now(rt, Role.ADMIN, "add a source server", valid_server)
    def submit_server(request: Request, spec: servers.ServerSpec):
        # Before the ack (a database write and a short DNS look-up): a `migrate` sent right
        # after the modal closes finds the server, and a refused host is shown on its field.
        server, unresolved = servers.add_server(request.rt, spec, actor_id=request.user_id,
                                                actor_name=request.user_name)
        warning = ("\n:warning: Security *none*: passwords cross the network unencrypted."
                   if spec.security == "none" else "")
        if unresolved:
            warning += f"\n:warning: {escape(unresolved)}"
        preset = providers.PROVIDERS[server.provider]
        kind = "" if preset.key == providers.OTHER else f", {preset.label}"
        login = "" if preset.key == providers.OTHER else f"\nIts logins take {escape(preset.password)}."
        test = f"`server test {server.name}`"
        if server.auth != oauth_tokens.PASSWORD:
            login = (f"\nIt signs in with a {oauth_tokens.METHODS[server.auth]} (stored encrypted): its migrations "
                     "ask no mailbox's password.")
            test = f"`server test {server.name} <mailbox>`"
        text = (f":white_check_mark: Source server *{escape(server.name)}* ({escape(server.host)}:{server.port}, "
                f"{servers.SECURITY[server.security]}{kind}) added. Try a login with {test}."
                f"{login}{warning}")
        return lambda: request.reply(text)

    app.view(blocks.SERVER_ADD_CALLBACK)(submit_server)

    @router.add("server list", "server list", "the source servers", role=Role.VIEWER)
    def server_list(request: Request) -> None:
        request.reply(*blocks.servers_blocks(servers.list_servers(request.rt)))

    @router.add("server remove", "server remove <name>", "forget a source server (jobs keep their copy)")
    def server_remove(request: Request) -> None:
        if len(request.args) != 1:
            raise Usage("give the server's name, like `server remove oldhost`")
        servers.remove_server(request.rt, request.args[0], actor_id=request.user_id, actor_name=request.user_name)
        request.reply(f"Source server *{escape(request.args[0].lower())}* removed, with its stored sign-in if it had "
                      "one. Its migrations keep its connection details.")

    @router.add("server test", "server test <name> [mailbox]",
                "try a real login on a source server (with a token: name the mailbox)")
    def server_test(request: Request) -> None:
        if len(request.args) not in (1, 2):
            raise Usage("give the server's name, like `server test oldhost` (or `server test m365 alice@old.example` "
                        "for a server that signs in with an app or a service account)")
        server = servers.get_server(request.rt, request.args[0])
        if server.auth == oauth_tokens.PASSWORD:
            request.open_modal(blocks.server_test_modal(server, request.channel_id))
            return
        if len(request.args) != 2:
            raise Usage(f"name the mailbox to sign in to, like `server test {server.name} alice@old.example`")
        mailbox = check_address(request.args[1])
        ok, words = servers.test_token_login(request.rt, server, mailbox)
        request.reply(f":white_check_mark: {escape(words)}" if ok else f":x: {escape(words)}")

    def valid_login(values: dict) -> tuple[str, str]:
        errors: dict[str, str] = {}
        address = str(values.get("address") or "").strip()
        if not address or len(address) > 320 or address.startswith("-") or any(c in address for c in "\r\n\x00 "):
            errors["address"] = "give the login, usually the full address, like alice@old.example"
        password = _password(values, "password", errors)
        if errors:
            raise FieldErrors(errors)
        return address, password

    @guarded_view(rt, Role.ADMIN, "test a source server", valid_login)
    def submit_test(request: Request, login: tuple[str, str]) -> None:
        address, password = login
        server = servers.get_server(request.rt, number(request.value))
        ok, words = servers.test_login(request.rt, server.host, server.port, server.security, address, password)
        request.reply(f":white_check_mark: {escape(words)}" if ok else f":x: {escape(words)}")

    app.view(blocks.SERVER_TEST_CALLBACK)(submit_test)

    # ---- migrations -------------------------------------------------------------------------

    def open_form(request: Request, modal) -> None:
        """A migration form needs a source server to choose from."""
        known = servers.list_servers(request.rt)
        if not known:
            raise Refused("Add the old IMAP host first, with `server add`.")
        request.open_modal(modal(known, request.channel_id))

    @router.add("migrate", "migrate", "move a mailbox into PurelyMail (opens a form)")
    def migrate(request: Request) -> None:
        open_form(request, blocks.migrate_modal)

    def valid_migration(values: dict) -> migrations.JobSpec:
        errors: dict[str, str] = {}
        server = str(values.get("server") or "")
        source_email = _address(values, "source_email", errors)
        token_server = _token_server(server)
        source_password = _password(values, "source_password", errors, required=not token_server)
        if token_server and source_password:
            errors["source_password"] = ("leave it empty: this server signs in with an app or a service account, and "
                                         "no mailbox's password is needed")
        dest_email = _address(values, "dest_email", errors)
        use_password = values.get("dest_mode") == "password"
        dest_password = _password(values, "dest_password", errors, required=use_password)
        if not use_password:
            dest_password = ""
        exclude, max_age = migrations.run_options(values, errors)
        if errors:
            raise FieldErrors(errors)
        return migrations.JobSpec(int(server), source_email, source_password, dest_email, dest_password,
                                  dry_run="dry" in (values.get("options") or []), exclude=exclude, max_age_days=max_age)

    def _token_server(server_id: str) -> bool:
        """Whether the chosen server signs in with a token (a database read, before the ack)."""
        if not server_id.isdigit():
            return False
        try:
            return servers.get_server(rt, int(server_id)).auth != oauth_tokens.PASSWORD
        except servers.ServerError:
            return False

    @guarded_view(rt, Role.ADMIN, "start a migration", valid_migration)
    def submit_migration(request: Request, spec: migrations.JobSpec) -> None:
        # One job per submission, however many times Slack delivers it.
        key = hashlib.sha256(f"{request.user_id}:{spec.server_id}:{spec.source_email}:{spec.dest_email}:"
                             f"{request.idempotency}".encode()).hexdigest()
        job, created = migrations.create_job(request.rt, spec, actor_id=request.user_id, actor_name=request.user_name,
                                             channel_id=request.channel_id, idempotency_key=key)
        if created:
            slack_out.start(request.rt, job)

    app.view(blocks.MIGRATE_CALLBACK)(submit_migration)

    @router.add("migrate bulk", "migrate bulk", "move many mailboxes from a CSV (opens a form)")
    def migrate_bulk(request: Request) -> None:
        open_form(request, blocks.bulk_modal)
        # The template as a reply only the admin sees: nothing stays in the channel, where a
        # file would invite its filled-in copy, passwords and all, to be posted back.
        request.reply(*blocks.bulk_template_blocks(migration_csv.template()))

    def valid_bulk(values: dict) -> tuple[str, int, list[dict], str, bool, dict | None]:
        errors: dict[str, str] = {}
        name = str(values.get("name") or "").strip()
        if not name or len(name) > 80 or any(ch in name for ch in "\r\n\x00"):
            errors["name"] = "a short name for the batch, on one line (at most 80 characters)"
        files = values.get("file") or []
        pasted = str(values.get("pasted") or "")
        tenant = str(values.get("tenant_domain") or "").strip()
        ask = None
        if tenant:
            ask = tenant_request(values, errors)
            if files or pasted.strip():
                errors["tenant_domain"] = "either a CSV or a domain from the tenant, not both"
        elif not files and not pasted.strip():
            errors["pasted"] = "upload a CSV file, paste the CSV here, or give a domain of the tenant below"
        elif files and pasted.strip():
            errors["pasted"] = "either a file or pasted text, not both"
        if errors:
            raise FieldErrors(errors)
        return (name, int(str(values.get("server"))), files, pasted,  # type: ignore[return-value]
                "real" in (values.get("options") or []), ask)

    def tenant_request(values: dict, errors: dict[str, str]) -> dict | None:
        """The tenant listing a bulk form asks for: {s, d, t, a} (server, domain, PurelyMail domain,
        Google admin), or None with what is wrong in `errors`."""
        from purelyops.domain_names import InvalidDomain, normalize_domain

        found: dict[str, object] = {}
        for block, key in (("tenant_domain", "d"), ("dest_domain", "t")):
            raw = str(values.get(block) or "").strip()
            if not raw and key == "t":
                found["t"] = found.get("d", "")
                continue
            try:
                found[key] = normalize_domain(raw).ascii
            except InvalidDomain as error:
                errors[block] = f"not a domain name: {error.message}"
        server_id = str(values.get("server") or "")
        try:
            server = servers.get_server(rt, int(server_id)) if server_id.isdigit() else None
        except servers.ServerError:  # removed since the form was opened (this runs before the ack)
            errors["server"] = "this source server was removed: choose another"
            return None
        if server is None or server.auth == oauth_tokens.PASSWORD:
            errors["tenant_domain"] = ("this server signs in with passwords: it has no tenant to list. Use a CSV, or "
                                       "a server that signs in with an app or a service account")
        admin = str(values.get("directory_admin") or "").strip()
        if server is not None and server.auth == oauth_tokens.GOOGLE:
            try:
                admin = check_address(admin)
            except MailboxError:
                errors["directory_admin"] = "name a Workspace super admin, like admin@old.example"
        if errors:
            return None
        return {"s": int(server_id), "a": admin, **found}

    def show_plan(request: Request, ask: dict) -> None:
        server = servers.get_server(request.rt, int(ask["s"]))
        plan = oauth_tokens.tenant_plan(request.rt, server, str(ask["d"]), str(ask["t"]), str(ask.get("a") or ""))
        request.reply(*blocks.tenant_plan_blocks(plan, json.dumps({**ask, "h": plan.digest}, separators=(",", ":"))))

    @guarded_view(rt, Role.ADMIN, "start a batch of migrations", valid_bulk)
    def submit_bulk(request: Request, parsed: tuple[str, int, list[dict], str, bool, dict | None]) -> None:
        name, server_id, files, pasted, real, ask = parsed
        if ask is not None:  # every mailbox of a domain, from the tenant: the plan first
            try:
                show_plan(request, {**ask, "n": name, "r": real})
            except oauth_tokens.TokenRefused as error:
                request.reply(f":x: The tenant's mailboxes could not be listed: {escape(error)}")
            return
        try:
            data = download_csv(request.rt, files[0]) if files else pasted
            rows = migration_csv.parse(data, token_sign_in=_token_server(str(server_id)))
        except migration_csv.CsvProblems as problems:
            request.reply(*blocks.csv_problems_blocks(problems.problems))
            return
        specs = [migrations.JobSpec(server_id, r.source_email, r.source_password, r.dest_email, r.dest_password,
                                    dry_run=not real) for r in rows]
        key = hashlib.sha256(f"{request.user_id}:{request.idempotency}".encode()).hexdigest()
        batch, jobs, created = migrations.create_batch(request.rt, name, server_id, specs, actor_id=request.user_id,
                                                       actor_name=request.user_name, channel_id=request.channel_id,
                                                       idempotency_key=key)
        if created:
            slack_out.start_batch(request.rt, batch.id)

    app.view(blocks.BULK_CALLBACK)(submit_bulk)

    @guarded(rt, Role.ADMIN, "start a batch of migrations")
    def confirm_tenant_plan(request: Request) -> None:
        """The admin confirmed the plan: the tenant is listed again, and the batch is made only
        if it is still the plan that was shown (else the new plan is shown instead)."""
        try:
            ask = json.loads(request.value)
            server = servers.get_server(request.rt, int(ask["s"]))
            name, real, digest = str(ask["n"])[:80], bool(ask["r"]), str(ask["h"])
        except (ValueError, KeyError, TypeError):
            raise Refused("That plan cannot be read any more; submit `migrate bulk` again.") from None
        try:
            plan = oauth_tokens.tenant_plan(request.rt, server, str(ask["d"]), str(ask["t"]), str(ask.get("a") or ""))
        except oauth_tokens.TokenRefused as error:
            request.reply(f":x: The tenant's mailboxes could not be listed again: {escape(error)}")
            return
        if plan.digest != digest:
            request.reply("The tenant changed since that plan was listed; here is the plan as it is now.")
            request.reply(*blocks.tenant_plan_blocks(plan, json.dumps({**ask, "h": plan.digest},
                                                                     separators=(",", ":"))))
            return
        specs = [migrations.JobSpec(server.id, source, "", dest, "", dry_run=not real) for source, dest in plan.moves]
        key = hashlib.sha256(f"{request.user_id}:tenant:{server.id}:{digest}:{name}".encode()).hexdigest()
        batch, jobs, created = migrations.create_batch(request.rt, name, server.id, specs, actor_id=request.user_id,
                                                       actor_name=request.user_name, channel_id=request.channel_id,
                                                       idempotency_key=key)
        if created:
            slack_out.start_batch(request.rt, batch.id)
            request.reply(f"Batch *{escape(name)}* created: {len(jobs)} migration(s) from {escape(plan.domain)}.")
        else:
            request.reply(f"Batch *{escape(name)}* was already created from this plan.")

    app.action(blocks.TENANT_CONFIRM)(confirm_tenant_plan)

    def batch_button(action_id: str, action: str, what: str) -> None:
        @guarded(rt, Role.ADMIN, what)
        def handler(request: Request) -> None:
            batch_id = number(request.value)
            words, to_queue = migrations.batch_action(request.rt, batch_id, action, actor_id=request.user_id,
                                                      actor_name=request.user_name)
            for job_id in to_queue:
                migrations.enqueue(request.rt, job_id)
            slack_out.refresh_batch(request.rt, batch_id)
            request.reply(words)

        app.action(action_id)(handler)

    batch_button(blocks.BATCH_RUN_ALL, "run_all", "run a batch for real")
    batch_button(blocks.BATCH_CANCEL_ALL, "cancel_all", "cancel a batch")
    batch_button(blocks.BATCH_RERUN_FAILED, "rerun_failed", "re-run a batch's failures")

    def suggest_mailboxes(ack, body: dict) -> None:
        """The destination select: cached mailboxes matching what is typed, at once; only
        for admins (the modal is theirs, and the list names mailboxes)."""
        try:
            admin = has_role(rt, str((body.get("user") or {}).get("id") or ""), Role.ADMIN)
        except RoleUnknown:
            admin = False
        if not admin:
            ack(options=[])
            return
        query = str(body.get("value") or "").strip().lower()[:320]
        try:
            typed: str | None = check_address(query)
        except MailboxError:
            typed = None
        try:
            found = mailboxes.list_page(rt, query, page_size=50).addresses if query else []
        except Exception:  # noqa: BLE001 - no suggestions rather than an error in the select
            found = []
        ack(options=blocks.mailbox_options(found, typed))

    app.options(blocks.DEST_SELECT)(suggest_mailboxes)

    @router.add("jobs", "jobs [status | batch name]", "recent migrations: all, in one state, or of one batch",
                role=Role.VIEWER)
    def jobs(request: Request) -> None:
        what = " ".join(request.args).strip()
        if len(what) > 80:
            raise Usage(f"give a state ({', '.join(job_states.STATES)}) or a batch name (at most 80 characters)")
        status = what.lower() if what.lower() in job_states.STATES else None
        batch = what if what and status is None else None
        found = migrations.list_jobs(request.rt, status, batch=batch)
        if batch and not found:
            raise Usage(f"no batch called {batch}, and {batch} is not a state ({', '.join(job_states.STATES)})")
        request.reply(*blocks.jobs_blocks(found, status or (f"in batch {batch}" if batch else None)))

    @router.add("job", "job <id>", "one migration, with its actions", role=Role.VIEWER)
    def job(request: Request) -> None:
        if len(request.args) != 1 or not request.args[0].lstrip("#").isdigit() or len(request.args[0]) > 10:
            raise Usage("give the migration's number, like `job 42`")
        request.reply(*blocks.job_blocks(migrations.get_job(request.rt, int(request.args[0].lstrip("#")))))

    def job_action(action_id: str, what: str, act: Callable[[Request, int], str]) -> None:
        """A button on a migration's message: `act(request, job_id)` says what it did ("": nothing to say)."""
        @guarded(rt, Role.ADMIN, what)
        def handler(request: Request) -> None:
            message = act(request, number(request.value))
            if message:
                request.reply(message)

        app.action(action_id)(handler)

    def cancel(request: Request, job_id: int) -> str:
        job = migrations.cancel_job(request.rt, job_id, actor_id=request.user_id, actor_name=request.user_name)
        return (f"Stopping migration #{job_id}…" if job.status == "running" else f"Migration #{job_id} cancelled.")

    def rerun(request: Request, job_id: int) -> str:
        job = migrations.requeue(request.rt, job_id, actor_id=request.user_id, actor_name=request.user_name)
        migrations.enqueue(request.rt, job.id)
        return f"Migration #{job_id} queued again."

    def run_real(request: Request, job_id: int) -> str:
        job = migrations.requeue(request.rt, job_id, actor_id=request.user_id, actor_name=request.user_name,
                                 dry_run=False)
        migrations.enqueue(request.rt, job.id)
        return f"Migration #{job_id} queued for real."

    def sync_again(request: Request, job_id: int) -> str:
        job = migrations.requeue(request.rt, job_id, actor_id=request.user_id, actor_name=request.user_name,
                                 again=True)
        migrations.enqueue(request.rt, job.id)
        return f"Migration #{job_id} queued to sync again: only what is new since the last run is copied."

    def delete(request: Request, job_id: int) -> str:
        if migrations.delete_job(request.rt, job_id, actor_id=request.user_id, actor_name=request.user_name):
            return f"Migration #{job_id} deleted, with its stored credentials."
        return (f"Migration #{job_id} deleted, with its stored credentials. Its temporary app password is still "
                f"valid at PurelyMail, which did not answer; purelyops deletes it there as soon as PurelyMail answers "
                "(it tries every minute).")

    def edit(request: Request, job_id: int) -> str:
        request.open_modal(blocks.credentials_modal(migrations.get_job(request.rt, job_id), request.channel_id))
        return ""

    job_action(blocks.CANCEL_ACTION, "cancel a migration", cancel)
    job_action(blocks.RERUN_ACTION, "re-run a migration", rerun)
    job_action(blocks.RUN_REAL_ACTION, "run a migration for real", run_real)
    job_action(blocks.SYNC_AGAIN_ACTION, "sync a migration again", sync_again)
    job_action(blocks.DELETE_ACTION, "delete a migration", delete)
    job_action(blocks.CREDENTIALS_ACTION, "change a migration's credentials", edit)

    def valid_credentials(values: dict) -> tuple[str | None, str | None]:
        """(source, dest): None keeps what is stored; a dest of "" switches to a temporary app password."""
        errors: dict[str, str] = {}
        source = _password(values, "source_password", errors, required=False) or None
        mode = values.get("dest_mode") or "keep"
        dest = _password(values, "dest_password", errors, required=mode == "password") or None
        if mode != "password" and dest:
            errors["dest_password"] = "choose 'The mailbox's password' to use a password, or leave this blank"
        if errors:
            raise FieldErrors(errors)
        return source, ("" if mode == "app" else dest)

    @guarded_view_now(rt, Role.ADMIN, "change a migration's credentials", valid_credentials)
    def submit_credentials(request: Request, passwords: tuple[str | None, str | None]):
        # A database write only: done before the ack, so a Re-run clicked next uses them.
        job_id = number(request.value)
        try:
            migrations.update_credentials(request.rt, job_id, source_password=passwords[0], dest_password=passwords[1],
                                          actor_id=request.user_id, actor_name=request.user_name)
        except migrations.MigrationError as error:
            raise FieldErrors({"source_password": str(error)}) from None
        return lambda: request.reply(f"The credentials of migration #{job_id} were updated.")

    app.view(blocks.CREDENTIALS_CALLBACK)(submit_credentials)
