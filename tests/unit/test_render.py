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
    builtin = render.render(tmp_path, "lab/secrets.env.j2", password=lambda n: "p" * n)
    assert f"DATABASE_PASSWORD={'p' * 24}\n" in builtin
    (tmp_path / "templates" / "lab").mkdir(parents=True)
    (tmp_path / "templates" / "lab" / "secrets.env.j2").write_text("OWN={{ password(3) }}\n")
    assert render.render(tmp_path, "lab/secrets.env.j2", password=lambda n: "q" * n) == "OWN=qqq\n"
    assert render.template_path(tmp_path, "lab/target") == render.BUILTIN_TEMPLATES / "lab" / "target"
