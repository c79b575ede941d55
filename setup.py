"""What pyproject.toml cannot say: slipway-fab.pth installs beside the packages (see fabfile/cli/adhoc.py)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK = "slipway-fab.pth"


class BuildWithFabHook(build_py):
    def run(self):
        super().run()
        self.mkpath(str(self._hook_target().parent))
        self.copy_file(HOOK, str(self._hook_target()))

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(self._hook_target())]

    def _hook_target(self) -> Path:
        if not self.editable_mode:
            return Path(self.build_lib) / HOOK
        # An editable wheel drops build_lib and installs only what sits in the wheel's own folders: its
        # NAME.data/purelib is site-packages (setuptools puts NAME.data/scripts in `build_scripts`).
        return Path(self.get_finalized_command("build").build_scripts).parent / "purelib" / HOOK


setup(cmdclass={"build_py": BuildWithFabHook})
