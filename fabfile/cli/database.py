"""`fab -H NAME db.rotate-password`: the database's password changed to the one in the secrets file, with no
failed request."""

from __future__ import annotations

from invoke import Collection

from ..commands import database as commands
from ..commands.layout import layout_of
from ..commands.state import dump_files_command, parse_file_dump
from ..errors import ConfigError, RemoteCommandFailed, SlipwayError
from ..remote import Reporter
from .common import load_deployment, operator_task, session
from .deploy import copy_attempt, copy_serving, serve_copy
from .locked import audit, deploy_lock, failing_cleanly, recover, remove_leftovers


@operator_task(name="rotate-password")
def rotate_password(c):
    """Change the database's password to the one now in the secrets file, and start the serving release afresh
    with it (health-gated, traffic moved like a deploy: no failed request)."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    database = inventory.database
    if not database:
        raise ConfigError([f"{deployment.inventory_file}: database: missing; this app has no database"])
    key = database.password_secret
    password = deployment.secret(key)
    layout = layout_of(inventory)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter, deploy_user_only=True) as remote, \
            deploy_lock(remote, layout, "db.rotate-password", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        if not state.serving or not state.db_running:
            raise SlipwayError(f"{deployment.name}: {'no release serves' if not state.serving else 'the database is not running'}"
                               "; the password is rotated in a running site (a new database takes the secrets file's)")
        with reporter.step(f"check {key} against the database and {state.serving}") as step:
            folder = layout.release_dir(state.serving)
            dumped = parse_file_dump(run(dump_files_command([f"{folder}/env/{name}.env" for name in inventory.services])).stdout)
            on_server = {path.removeprefix(f"{folder}/"): text for path, text in dumped.items()}
            files = commands.rotated_files(on_server, key, password)
            check = commands.check_password_command(inventory)
            opens = run(check, stdin=f"{password}\n", check=False)
            if opens.exited not in (0, commands.WRONG_PASSWORD_EXIT):
                raise RemoteCommandFailed(run.remote.label, "db_access.sh check", opens.exited, opens.stderr)
            in_use = all(on_server.get(path) == text for path, text in files.items() if path.startswith("env/"))
            step.detail = f"opens it: {'yes' if opens.ok else 'no'}; in use: {'yes' if in_use else 'no'}"
        if opens.ok and in_use:
            print(reporter.summary())
            print(f"[{deployment.name}] the database's password is already the one in {deployment.secrets_file.name}, "
                  f"and {state.serving} uses it: nothing to rotate")
            return
        attempt = copy_attempt(deployment, state, "password rotation")
        audit(run, layout, "password rotation started", release=attempt.release_id, serving=state.serving)
        old_verifier = ""
        try:
            with failing_cleanly(run, reporter, layout, attempt, deployment.name):
                remove_leftovers(run, reporter, layout, state)
                copy_serving(run, reporter, layout, state, attempt, replaced=files)
                with reporter.step(f"let {state.serving}'s containers in without a password") as step:
                    run(commands.untrust_when_the_run_ends_command(inventory, attempt.release_id))
                    step.detail = run(commands.trust_serving_command(inventory)).stdout.strip()
                    step.changed = True
                with reporter.step("set the new password (a SCRAM verifier made here)") as step:
                    old_verifier = run(commands.access_command(inventory, "verifier")).stdout.strip()
                    run(commands.access_command(inventory, "set"),
                        stdin=commands.set_password_sql(database.user, commands.scram_verifier(password)))
                    step.changed = True
                serve_copy(run, reporter, deployment, state, attempt)
        except BaseException:
            if old_verifier and not attempt.switched:
                with reporter.step(f"put the old password back ({state.serving} still serves)") as step:
                    run(commands.access_command(inventory, "set"),
                        stdin=commands.set_password_sql(database.user, old_verifier))
                    step.changed = True
            raise
        finally:
            with reporter.step("the database takes passwords only again") as step:
                run(commands.access_command(inventory, "untrust"))
                step.changed = True
        audit(run, layout, "password rotated", release=attempt.release_id, previous=state.serving)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] the database's password is the one in {deployment.secrets_file.name}; "
          f"{attempt.release_id} ({attempt.version}) uses it")


namespace = Collection("db")
namespace.add_task(rotate_password)
