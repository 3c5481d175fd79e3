"""``trustloop ask`` tells a local user where a push is answered, once."""

from __future__ import annotations

import pytest

from trustloop.cli import ask_cmd
from trustloop.settings import Settings


def test_the_hint_follows_the_first_mention_of_the_device_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = ask_cmd._Printer(ask_cmd._approve_hint(Settings(), "achen"))

    for chunk in [
        "Lupe's chart is restricted: approve the request on your ",
        "device.",
    ]:
        printer(chunk)
    printer(" Still waiting: approve it on your device.")

    out = capsys.readouterr().out
    assert out.count("trustloop approve --as achen") == 1
    assert out.index("device.") < out.index("trustloop approve")
    assert "http://127.0.0.1:9400/authenticator" in out


def test_no_hint_without_a_push_or_outside_the_local_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ask_cmd._Printer(ask_cmd._approve_hint(Settings(), "achen"))("Your patients: ...")
    aws = Settings(profile="aws")
    ask_cmd._Printer(ask_cmd._approve_hint(aws, "achen"))("approve on your device")

    assert "trustloop approve" not in capsys.readouterr().out
