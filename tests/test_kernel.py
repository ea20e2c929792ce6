"""Host kernel settings gardend adjusts at start."""

from pathlib import Path

from gardend import server as gardend_server
from gardend.runtime import kernel


def test_key_quota_is_raised_when_low_and_left_alone_when_high(tmp_path: Path) -> None:
    (tmp_path / "maxkeys").write_text("200\n")
    (tmp_path / "maxbytes").write_text("99999999\n")
    kernel.ensure_key_quota(tmp_path)
    assert int((tmp_path / "maxkeys").read_text()) == kernel.MIN_MAXKEYS
    assert int((tmp_path / "maxbytes").read_text()) == 99999999


def test_running_gardend_leaves_the_host_able_to_create_many_unprivileged_containers(
    gardend: gardend_server.Server,
) -> None:
    assert int((kernel.KEYS / "maxkeys").read_text()) >= kernel.MIN_MAXKEYS
