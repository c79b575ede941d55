"""Templates: StrictUndefined, and the project's own file wins over slipway's."""

import jinja2
import pytest

from fabfile import render


def test_missing_variable_is_an_error_not_an_empty_string(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.conf.j2").write_text("listen {{ port }};\n")
    with pytest.raises(jinja2.UndefinedError):
        render.render(tmp_path, "x.conf.j2")
    assert render.render(tmp_path, "x.conf.j2", port=80) == "listen 80;\n"


def test_project_template_overrides_the_builtin_one(tmp_path):
    env_file = {"service": "api", "app": {"name": "shop"}, "release_id": "20261122-140000"}
    builtin = render.render(tmp_path, "app/service.env.j2", variables={"A": "1"}, **env_file)
    assert builtin.startswith("# Rendered by slipway for api (shop release 20261122-140000)") and "\nA=1\n" in builtin
    (tmp_path / "templates" / "app").mkdir(parents=True)
    (tmp_path / "templates" / "app" / "service.env.j2").write_text("OWN={{ service }}\n")
    assert render.render(tmp_path, "app/service.env.j2", variables={}, **env_file) == "OWN=api\n"
    # Compiled once, compiled again when edited.
    (tmp_path / "templates" / "app" / "service.env.j2").write_text("EDITED={{ service }}\n")
    assert render.render(tmp_path, "app/service.env.j2", variables={}, **env_file) == "EDITED=api\n"
    assert render.template_path(tmp_path, "app/service.env.j2") == tmp_path / "templates" / "app" / "service.env.j2"
    assert render.template_path(tmp_path, "server") == render.BUILTIN_TEMPLATES / "server"
