"""``postroom keys disable`` against moto: an id names one key, never a sweep of them.

Regression for issue 15 item 3: ``postroom keys disable ""`` disabled every key, because ids matched by prefix.
"""

from __future__ import annotations

import boto3
import pytest

from postroom.cli import main
from postroom.core.auth import hash_key
from postroom.core.key_store import ApiKeyStore
from postroom.wiring.services import services
from tests.conftest import Stack, create_key


def _key_id(key: str) -> str:
    principal = services().keys.authenticate(key)
    assert principal is not None
    return principal.key_id


def _working(*keys: str) -> list[bool]:
    # A store of its own, as a send API environment whose key cache is cold (or past KEY_CACHE_SECONDS) sees the
    # table: the CLI runs outside the Lambda, so a warm environment may accept a disabled key for up to that long.
    fresh = ApiKeyStore(boto3.client("dynamodb"), services().settings.table)
    return [fresh.authenticate(key) is not None for key in keys]


def _disable(*argv: str) -> int:
    return main(["keys", "disable", *argv, "--table", services().settings.table])


@pytest.mark.parametrize("given", ["", "   ", "0", "a", "abc1234"])
def test_an_empty_or_short_id_disables_nothing(stack: Stack, given: str) -> None:
    # GIVEN three working keys (whatever their ids start with)
    keys = [create_key() for _ in range(3)]
    # WHEN an admin passes an empty or short id
    with pytest.raises(SystemExit) as refused:
        _disable(given)
    # THEN it is refused with a reason, and every key still works
    assert "at least 8 characters" in str(refused.value.code)
    assert _working(*keys) == [True, True, True]


def test_a_whole_id_or_a_unique_prefix_disables_exactly_that_key(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, third = create_key(), create_key(), create_key()
    # WHEN one key is disabled by its whole id and another by an 8-character prefix of its id
    assert _disable(_key_id(first)) == 0
    assert _disable(_key_id(second)[:8]) == 0
    # THEN those two stop working, the third does not, and the output names what was disabled
    assert _working(first, second, third) == [False, False, True]
    out = capsys.readouterr().out
    assert hash_key(first)[:12] in out
    assert hash_key(second)[:12] in out


def test_an_ambiguous_prefix_is_refused(stack: Stack) -> None:
    # GIVEN two keys whose ids share their first 8 characters (a pair found by a birthday search over
    # "pr_collide<n>"; imported as given, as the local stack imports its dev key)
    pair = ("pr_collide69788", "pr_collide74972")
    assert hash_key(pair[0])[:8] == hash_key(pair[1])[:8]
    assert hash_key(pair[0]) != hash_key(pair[1])
    for key in pair:
        services().keys.create(name="twin", scopes=frozenset(), key=key)
    # WHEN the shared 8-character prefix is given
    with pytest.raises(SystemExit) as refused:
        _disable(hash_key(pair[0])[:8])
    # THEN it is refused as ambiguous, naming both ids, and neither key was disabled
    message = str(refused.value.code)
    assert "ambiguous" in message
    assert hash_key(pair[0])[:12] in message
    assert hash_key(pair[1])[:12] in message
    assert _working(*pair) == [True, True]


def test_more_than_one_key_needs_yes(stack: Stack) -> None:
    first, second, third = create_key(), create_key(), create_key()
    ids = [_key_id(first), _key_id(second)]
    # WHEN two keys are named without --yes THEN nothing is disabled
    with pytest.raises(SystemExit) as refused:
        _disable(*ids)
    assert "--yes" in str(refused.value.code)
    assert _working(first, second, third) == [True, True, True]
    # WHEN one of several ids is unknown THEN nothing is disabled either, even with --yes
    with pytest.raises(SystemExit):
        _disable(ids[0], "ffffffffffff", "--yes")
    assert _working(first, second, third) == [True, True, True]
    # WHEN confirmed THEN exactly those two are disabled
    assert _disable(*ids, "--yes") == 0
    assert _working(first, second, third) == [False, False, True]
