"""Errors slipway reports to the operator as plain lines, never as tracebacks."""


class SlipwayError(Exception):
    """An expected failure: its message is what the operator reads."""


class ConfigError(SlipwayError):
    """Every problem found in an inventory and its secrets, reported together."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class HostKeyError(SlipwayError):
    """The server's SSH host key is unknown or differs from the one on record."""


class ConnectError(SlipwayError):
    """The server could not be reached or refused the login."""


class LoginRefused(ConnectError):
    """The server answered but would not let this user in with this key."""


class RemoteCommandFailed(SlipwayError):
    """A command on the server exited non-zero when it was expected to succeed."""

    def __init__(self, host: str, command: str, exited: int, stderr: str, tail_lines: int = 12):
        self.host = host
        self.command = command
        self.exited = exited
        tail = "\n".join(stderr.strip().splitlines()[-tail_lines:])
        message = f"{host}: command failed (exit {exited}): {command}"
        if tail:
            message += "\n" + "\n".join("  | " + line for line in tail.splitlines())
        super().__init__(message)


class StepTimedOut(RemoteCommandFailed):
    """A command on the server ran past its time limit and was stopped."""

    def __init__(self, host: str, command: str, seconds: float, stderr: str):
        super().__init__(host, command, 124, stderr)
        self.args = (f"{host}: ran past its {seconds:.0f}s limit and was stopped: {command}" +
                     "".join(f"\n  | {line}" for line in stderr.strip().splitlines()[-12:]),)

    def __str__(self) -> str:
        return self.args[0]


class LocalCommandFailed(SlipwayError):
    """A command on the operator's machine (docker, debootstrap) failed."""
