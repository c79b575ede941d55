"""What every task shares: choosing the inventory, connecting, reporting errors.

`fab -H NAME TASK` hands a task a Fabric Connection whose host is the
inventory name; `inv TASK` (or `fab TASK` without -H) hands it a Context and
the inventory comes from Invoke config (`slipway.inventory` in invoke.yaml,
or INVOKE_SLIPWAY_INVENTORY=NAME for one call).
"""

from __future__ import annotations

import functools
import signal
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TextIO

import paramiko
from fabric import Connection, task
from invoke import Context
from invoke.exceptions import Exit
from invoke.runners import Result

from . import ssh
from .errors import ConfigError, LocalCommandFailed, LoginRefused, SlipwayError
from .lazy import lazy_module
from . import remote
from .remote import Remote, Reporter

config = lazy_module(".config", __package__)


def operator_task(*args, **kwargs) -> Callable:
    """`fabric.task` whose expected failures end in one `error:` line and a non-zero exit."""

    def decorate(body: Callable) -> Callable:
        @functools.wraps(body)
        def guarded(c, *a, **kw):
            previous = signal.signal(signal.SIGINT, lambda *_: remote.INTERRUPTED.set())
            try:
                return body(c, *a, **kw)
            except SlipwayError as error:
                raise Exit(_error_text(error), code=1) from None
            except (paramiko.SSHException, socket.error, EOFError) as error:
                raise Exit(f"error: {_label(c)}: SSH connection lost: {error or type(error).__name__}", code=1) from None
            except KeyboardInterrupt:
                raise Exit(f"error: {_label(c)}: interrupted (what was started on the server was undone or is "
                           "finished by the next run)", code=130) from None
            finally:
                signal.signal(signal.SIGINT, previous)
                remote.INTERRUPTED.clear()

        return task(*args, **kwargs)(guarded)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        body, args = args[0], ()
        return decorate(body)
    return decorate


def ask(prompt: str) -> str:
    """input() at the terminal, where Ctrl-C stops at once (nothing runs on the server meanwhile)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return input(prompt)
    finally:
        signal.signal(signal.SIGINT, previous)


def _error_text(error: SlipwayError) -> str:
    """Each problem on its own `error:` line; a problem's detail lines (stderr, logs) indented under it."""
    problems = error.problems if isinstance(error, ConfigError) else [str(error)]
    lines = []
    for problem in problems:
        first, *detail = problem.splitlines() or [""]
        lines.append(f"error: {first}")
        lines.extend(f"  {line}" for line in detail)
    return "\n".join(lines)


def project_dir(c: Context) -> Path:
    """slipway.project_dir if set, else where `fab`/`inv` found the task collection.

    Invoke records that folder as the project location (where it reads the
    project's invoke.yaml); it has no public reader for it.
    """
    chosen = c.config.slipway.project_dir or c.config._project_prefix
    if not chosen:
        raise ConfigError(["no project folder: run fab/inv from the folder with your tasks, or set slipway.project_dir"])
    return Path(chosen).resolve()


def inventory_dir(c: Context) -> Path:
    return project_dir(c) / c.config.slipway.inventory_dir


def inventory_name(c: Context) -> str:
    if isinstance(c, Connection):
        if any(mark in c.original_host for mark in "@:"):
            raise ConfigError([f"-H {c.original_host}: expected an inventory name (a file inventories/NAME.yaml), not an SSH address"])
        return c.original_host
    name = c.config.slipway.inventory
    if not name:
        raise ConfigError(["no inventory chosen: use `fab -H NAME TASK`, or set slipway.inventory in invoke.yaml (INVOKE_SLIPWAY_INVENTORY=NAME for one call)"])
    return name


def _label(c: Context) -> str:
    try:
        return inventory_name(c)
    except ConfigError:
        return "slipway"


def load_deployment(c: Context) -> config.Deployment:
    return config.load(inventory_dir(c), inventory_name(c))


def trust_hint(c: Context) -> str:
    return f"fab -H {inventory_name(c)} trust" if isinstance(c, Connection) else "inv trust"


@contextmanager
def session(c: Context, deployment: config.Deployment, reporter: Reporter, as_root: bool = False,
            deploy_user_only: bool = False) -> Iterator[Remote]:
    """One verified SSH connection to the deployment's host for the whole task.

    The deploy user is tried first (root login is off once a server is
    provisioned), then the inventory's bootstrap user, unless DEPLOY_USER_ONLY:
    the app's own tasks never run as anyone else. With AS_ROOT, a non-root
    user must also be able to `sudo -n`.
    """
    host = deployment.inventory.host
    deploy_user = deployment.inventory.server.deploy_user
    users = [deploy_user] if deploy_user_only else list(dict.fromkeys([deploy_user, host.user]))
    refusals = []
    with reporter.step(f"connect {ssh.known_hosts_name(host.address, host.port)}") as step:
        for user in users:
            conn = ssh.connection(host, deployment.name, trust_hint(c), user=user)
            try:
                ssh.open_connection(conn, deployment.name, ssh.known_hosts_file(host), trust_hint(c))
            except LoginRefused:
                refusals.append(f"{user}: login refused")
                continue
            remote = Remote(conn, deployment.name)
            if as_root and user != "root" and remote.run("sudo -n true", check=False).failed:
                refusals.append(f"{user}: no passwordless sudo")
                remote.close()
                continue
            step.detail = f"as {user}"
            break
        else:
            if deploy_user_only:
                raise LoginRefused(f"{deployment.name}: {deploy_user} cannot log in with {host.key_file or 'the default keys'}: "
                                   f"if this server was never provisioned, run `fab -H {deployment.name} provision` first")
            raise LoginRefused(f"{deployment.name}: no user could log in{' with root rights' if as_root else ''} "
                               f"with {host.key_file or 'the default keys'} ({'; '.join(refusals)})")
    try:
        yield remote
    finally:
        remote.close()


@contextmanager
def app_session(c: Context, deployment: config.Deployment | None = None, out: TextIO | None = None,
                dry_run: bool = False) -> Iterator[tuple[config.Deployment, Reporter, Remote]]:
    """The session of the app's own tasks (as the deploy user only): the deployment (loaded unless given), the
    reporter of its steps (on OUT: stderr for a task whose stdout is its answer) and the remote."""
    deployment = deployment or load_deployment(c)
    reporter = Reporter(deployment.name, out=out or sys.stdout, dry_run=dry_run)
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        yield deployment, reporter, remote


def run_local(c: Context, command: str, **kwargs) -> Result:
    """Run COMMAND on this machine; a failure names the command and its stderr tail."""
    kwargs.setdefault("in_stream", False)
    result = c.run(command, hide=True, warn=True, **kwargs)
    if result.failed:
        tail = "\n".join("  | " + line for line in (result.stderr or result.stdout).strip().splitlines()[-12:])
        raise LocalCommandFailed(f"local command failed (exit {result.exited}): {command}\n{tail}".rstrip())
    return result
