"""``faultlab serve``'s lease and stream flags: parsed into the coordinator's settings, each
bounded (argparse names the flag and the range), and documented in ``--help``."""

from __future__ import annotations

import pytest

from faultlab.client.cli import build_parser
from faultlab.server.config import SERVE_FLAGS, CoordinatorConfig, serve_settings


def test_serve_flags_set_the_coordinator_config() -> None:
    args = build_parser().parse_args([
        "serve", "--lease-ttl", "4.5", "--lease-wait", "0", "--max-streams-per-tenant", "7",
        "--stream-batch-window", "0.02", "--stream-buffer-events", "512",
    ])
    config = CoordinatorConfig(**serve_settings(args))
    assert (config.lease_ttl_s, config.lease_wait_s, config.max_streams_per_tenant,
            config.stream_batch_window_s, config.stream_buffer_events) == (4.5, 0.0, 7, 0.02, 512)
    defaults = CoordinatorConfig(**serve_settings(build_parser().parse_args(["serve"])))
    assert defaults == CoordinatorConfig()


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--lease-ttl", "0.1", "must be between 1 and 3600"),
    ("--lease-wait", "nan", "must be between 0 and 3600"),
    ("--max-streams-per-tenant", "0", "must be between 1 and 1000000"),
    ("--max-streams-per-tenant", "2.5", "'2.5' is not an integer"),
    ("--stream-batch-window", "abc", "'abc' is not a number"),
    ("--stream-buffer-events", "-3", "must be between 16 and 1000000"),
    ("--max-active-per-tenant", "0", "must be between 1 and 1000000"),
])
def test_out_of_range_flags_are_refused_naming_the_flag(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err


def test_every_flag_is_in_the_help_and_the_config_checks_the_same_bounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in SERVE_FLAGS.values())
    with pytest.raises(ValueError, match="stream_batch_window_s must be between 0 and 1"):
        CoordinatorConfig(stream_batch_window_s=2.0)
