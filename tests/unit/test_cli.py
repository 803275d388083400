"""``hal9-migration run``'s peering options: refused where they would silently do nothing."""

from __future__ import annotations

import socket

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


def test_a_metrics_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["run", "--metrics", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err
