"""The layout versions: which layout a server has, what it gets from this slipway, and a newer one refused."""

import pytest

from fabfile.commands import upgrade
from fabfile.errors import SlipwayError


@pytest.mark.parametrize("record, password_file, found", [
    ("3\n", True, 3), ("7", None, 7),
    # Before layout 3 nothing was recorded: the database container tells layouts 1 and 2 apart.
    ("", False, 1), ("", True, 2), ("", None, 2)])
def test_the_layout_is_the_record_or_what_the_database_container_shows(record, password_file, found):
    assert upgrade.found_layout(record, password_file) == found


def test_every_layout_before_this_one_has_its_migration_and_none_is_skipped():
    assert sorted(upgrade.CHANGES) == list(range(2, upgrade.LAYOUT + 1))
    assert [line.split(":")[0] for line in upgrade.migrations(1)] == ["layout 1 -> 2", "layout 2 -> 3"]
    assert upgrade.migrations(upgrade.LAYOUT) == []


def test_only_a_newer_layout_is_refused():
    upgrade.refuse_newer(upgrade.LAYOUT, "prod")
    with pytest.raises(SlipwayError, match=r"^prod: this server was laid out by a newer slipway \(layout 4; "):
        upgrade.refuse_newer(upgrade.LAYOUT + 1, "prod")
