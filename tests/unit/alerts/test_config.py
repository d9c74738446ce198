"""``alerts.rules[]`` in the config file: discriminated by ``type``, bad rules named by key."""

from __future__ import annotations

from contextlib import nullcontext as DoesNotRaise
from typing import Any, ContextManager

import pytest

from pipeline.alerts.config import CountRule, OccupancyRule, SilenceRule
from pipeline.config import parse_settings
from pipeline.exceptions import ConfigError


@pytest.mark.parametrize("rules, expectation", [
    ([{"type": "occupancy", "name": "crowd", "above": 3, "for_ms": 5000}], DoesNotRaise()),
    ([{"type": "count", "name": "busy", "above": 3}, {"type": "silence", "name": "down"}], DoesNotRaise()),
    # a count rule without a bound
    ([{"type": "count", "name": "busy"}], pytest.raises(ConfigError, match="'above' or 'below'")),
    # an unknown type
    ([{"type": "weather", "name": "x"}], pytest.raises(ConfigError, match=r"alerts\.rules\[0\]")),
    # a misspelt key
    ([{"type": "silence", "name": "down", "silent_for_s": 5}], pytest.raises(ConfigError, match="silent_for_s")),
    # two rules with one name (names make the alert ids)
    ([{"type": "silence", "name": "x"}, {"type": "silence", "name": "x"}],
     pytest.raises(ConfigError, match="duplicate alert rule names: x")),
    # inference and disagreement rules need a limit
    ([{"type": "inference", "name": "i"}], pytest.raises(ConfigError, match="max_error_rate")),
    ([{"type": "disagreement", "name": "d"}], pytest.raises(ConfigError, match="min_precision")),
])
def test_rules_parse(rules: list[dict[str, Any]], expectation: ContextManager) -> None:
    with expectation:
        parse_settings({"alerts": {"rules": rules}}, environ={})


def test_types_pick_the_rule_class() -> None:
    settings = parse_settings({"alerts": {"rules": [
        {"type": "occupancy", "name": "a", "above": 1}, {"type": "count", "name": "b", "below": 2},
        {"type": "silence", "name": "c", "cameras": ["cam-a"]}]}}, environ={})
    assert [type(r) for r in settings.alerts.rules] == [OccupancyRule, CountRule, SilenceRule]
    assert parse_settings({}, environ={}).alerts.rules == []
