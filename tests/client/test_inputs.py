"""The SDK's input check agrees with the engine on every code point: what the SDK lets
through a provider serves, and what it stops every provider would refuse."""
import pytest

from client.errors import InvalidInput
from client.inputs import job_input


def _refused_by(check, text) -> bool:
    try:
        check(text)
    except (InvalidInput, ValueError):
        return True
    return False


def test_sdk_and_engine_agree_on_every_code_point(engine):
    # the BMP (surrogates can't be encoded) and every 7th astral code point
    points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000, 7)]
    differ = [hex(cp) for cp in points
              if _refused_by(job_input, chr(cp)) != _refused_by(engine.tokenize, chr(cp))]
    assert differ == []
    # the classes the rule is about, both ways
    for text in ["\u0301", "\ue000", "\u200b\x07", " \t\n"]:
        assert _refused_by(job_input, text) and _refused_by(engine.tokenize, text)
    for text in ["e\u0301", "\u4e2d", "\U0001f600", "?"]:
        assert not _refused_by(job_input, text) and not _refused_by(engine.tokenize, text)


@pytest.mark.parametrize("text", ["a" * 2048, "é" * 1024])
def test_the_byte_limit_is_the_engines(engine, text):
    assert job_input(text) == text.encode()
    engine.tokenize(text)
    with pytest.raises(InvalidInput, match="must be 1..2048 bytes"):
        job_input(text + "a")
