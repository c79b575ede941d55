"""The app's database password: checked before a release may start, and rotated with no failed request."""

from __future__ import annotations

from ..commands import database as commands
from ..commands.layout import layout_of
from ..commands.release import env_file_value
from ..commands.state import dump_files_command, parse_file_dump
from ..config import Deployment
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter
from .locked import audit, deploy_lock, failing_cleanly, recover, remove_leftovers
from .release import copy_attempt, copy_serving, serve_copy


def check_database_password(run, reporter: Reporter, deployment: Deployment, locked: bool = True) -> None:
    """A password changed in the secrets file would reach the app but not PostgreSQL, which keeps the one
    it was created with: the release could never get healthy. Stop before anything changes. LOCKED: under
    the deploy lock, where password-less lines left by an interrupted rotation are removed first."""
    database = deployment.inventory.database
    if not database:
        return
    with reporter.step(f"{database.password_secret} opens the database") as step:
        if not opens_the_database(run, step, deployment.inventory, deployment.secret(database.password_secret), locked):
            raise SlipwayError(
                f"{deployment.name}: {database.password_secret} in {deployment.secrets_file.name} does not open the "
                f"database (PostgreSQL keeps the password it was created with); nothing was changed. To change it: "
                f"fab -H {deployment.name} db.rotate-password (no failed request); to keep it, put the old value back")


def opens_the_database(run, step, inventory, password: str, clean: bool) -> bool:
    """Whether PASSWORD opens the database as the app connects (or no database runs yet), said in STEP's detail.
    CLEAN: under the deploy lock, first remove password-less lines an interrupted rotation left."""
    opens = run(commands.check_password_command(inventory, clean=clean), stdin=f"{password}\n", check=False)
    step.detail = "yes" if opens.ok else "no database running yet"
    if "password-less lines" in opens.stderr:
        step.changed, step.detail = True, f"{step.detail}; removed the password-less lines of an interrupted rotation"
    return opens.exited != commands.WRONG_PASSWORD_EXIT


def check_release_password(run, reporter: Reporter, deployment: Deployment, release_id: str, version: str) -> None:
    """A release from before a password rotation holds a password the database no longer takes: it could not
    log in, whether or not its health path notices. Refuse before anything changes."""
    inventory = deployment.inventory
    if not inventory.database:
        return
    key = inventory.database.password_secret
    folder = layout_of(inventory).release_dir(release_id)
    dumped = parse_file_dump(run(dump_files_command([f"{folder}/env/{name}.env" for name in inventory.services])).stdout)
    password = next((value for text in dumped.values() if (value := env_file_value(text, key)) is not None), None)
    if password is None:
        return
    with reporter.step(f"{release_id}'s {key} opens the database") as step:
        if not opens_the_database(run, step, inventory, password, clean=True):
            raise SlipwayError(
                f"{deployment.name}: {release_id} ({version}) has a database password that no longer opens the "
                f"database (it was rotated since); it could not log in, so nothing was changed. Deploy its version "
                f"instead: fab -H {deployment.name} deploy --version {version}")


def rotate_password(remote: Remote, reporter: Reporter, deployment: Deployment) -> None:
    """The database's password changed to the secrets file's, and the serving release started afresh with it."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    password = deployment.secret(inventory.database.password_secret)
    with deploy_lock(remote, layout, "db.rotate-password", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        if not state.serving or not state.db_running:
            raise SlipwayError(f"{deployment.name}: {'no release serves' if not state.serving else 'the database is not running'}"
                               "; the password is rotated in a running site (a new database takes the secrets file's)")
        files = _rotated_files(run, reporter, deployment, state.serving, password)
        if files is None:
            print(reporter.summary())
            print(f"[{deployment.name}] the database's password is already the one in {deployment.secrets_file.name}, "
                  f"and {state.serving} uses it: nothing to rotate")
            return
        attempt = copy_attempt(deployment, state, "password rotation")
        audit(run, layout, "password rotation started", release=attempt.release_id, serving=state.serving)
        _rotate(run, reporter, deployment, state, attempt, files, password)
        audit(run, layout, "password rotated", release=attempt.release_id, previous=state.serving)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] the database's password is the one in {deployment.secrets_file.name}; "
          f"{attempt.release_id} ({attempt.version}) uses it")


def _rotated_files(run, reporter: Reporter, deployment: Deployment, serving: str,
                   password: str) -> dict[str, str] | None:
    """SERVING's env files with PASSWORD, or None when the database and SERVING already use it."""
    inventory = deployment.inventory
    key = inventory.database.password_secret
    with reporter.step(f"check {key} against the database and {serving}") as step:
        folder = layout_of(inventory).release_dir(serving)
        dumped = parse_file_dump(run(dump_files_command([f"{folder}/env/{name}.env" for name in inventory.services])).stdout)
        on_server = {path.removeprefix(f"{folder}/"): text for path, text in dumped.items()}
        files = commands.rotated_files(on_server, key, password)
        opens = run(commands.check_password_command(inventory), stdin=f"{password}\n", check=False)
        if opens.exited not in (0, commands.WRONG_PASSWORD_EXIT):
            raise RemoteCommandFailed(run.remote.label, "db_access.sh check", opens.exited, opens.stderr)
        in_use = all(on_server.get(path) == text for path, text in files.items() if path.startswith("env/"))
        step.detail = f"opens it: {'yes' if opens.ok else 'no'}; in use: {'yes' if in_use else 'no'}"
    return None if opens.ok and in_use else files


def _rotate(run, reporter: Reporter, deployment: Deployment, state, attempt, files: dict[str, str],
            password: str) -> None:
    """The serving release's containers let in without a password while the new one is set and a copy of the
    release with it takes traffic; the old password back if the copy never did; passwords only, whatever happened."""
    inventory = deployment.inventory
    user = inventory.database.user
    layout = layout_of(inventory)
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
                    stdin=commands.set_password_sql(user, commands.scram_verifier(password)))
                step.changed = True
            serve_copy(run, reporter, deployment, state, attempt)
    except BaseException:
        if old_verifier and not attempt.switched:
            with reporter.step(f"put the old password back ({state.serving} still serves)") as step:
                run(commands.access_command(inventory, "set"), stdin=commands.set_password_sql(user, old_verifier))
                step.changed = True
        raise
    finally:
        with reporter.step("the database takes passwords only again") as step:
            run(commands.access_command(inventory, "untrust"))
            step.changed = True
