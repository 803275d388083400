"""``hal9-migration run``'s peering options: refused where they would silently do nothing."""

from __future__ import annotations

import pytest

from hal9_migration import cli


@pytest.mark.parametrize("args", [["--priority", "3"], ["--peering-lifetime", "30"]])
def test_peering_options_without_peering_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", *args])
    assert exit_.value.code == 2
    assert "take effect only with --peering NAME" in capsys.readouterr().err
