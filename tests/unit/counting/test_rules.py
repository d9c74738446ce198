from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import pytest

from pipeline.counting.geometry import Anchor
from pipeline.counting.rules import LineRule, ZoneRule, rule_fingerprint
from pipeline.exceptions import ConfigError

SQUARE = ((0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5))


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, does_not_raise()),  # plain valid line
        ({"start": [0.1, 0.5], "end": [0.9, 0.5]}, does_not_raise()),  # lists from YAML
        ({"classes": [0, 2]}, does_not_raise()),  # any iterable of ids
        ({"anchor": "center"}, does_not_raise()),  # anchor by name
        ({"name": ""}, pytest.raises(ConfigError, match="line.name")),  # empty name
        ({"name": "a b"}, pytest.raises(ConfigError, match="line.name")),  # whitespace in name
        ({"name": "a/b"}, pytest.raises(ConfigError, match="line.name")),  # '/' is the event id separator
        ({"start": (1.2, 0.5)}, pytest.raises(ConfigError, match=r"\.start")),  # pixels, not normalised
        ({"end": (0.5, float("nan"))}, pytest.raises(ConfigError, match=r"\.end")),  # NaN coordinate
        ({"end": (0.1, 0.5)}, pytest.raises(ConfigError, match="must differ")),  # zero length
        ({"end": (0.1,)}, pytest.raises(ConfigError, match=r"\.end")),  # one coordinate
        ({"classes": []}, pytest.raises(ConfigError, match="classes")),  # empty filter counts nothing
        ({"classes": [-1]}, pytest.raises(ConfigError, match="classes")),  # negative id
        ({"classes": "person"}, pytest.raises(ConfigError, match="classes")),  # names are resolved earlier
        ({"anchor": "feet"}, pytest.raises(ConfigError, match="anchor")),  # unknown anchor
        ({"min_frames": 0}, pytest.raises(ConfigError, match="min_frames")),
        ({"min_frames": True}, pytest.raises(ConfigError, match="min_frames")),  # bool is not a count
        ({"hysteresis": -0.1}, pytest.raises(ConfigError, match="hysteresis")),
        ({"hysteresis": 0.5}, pytest.raises(ConfigError, match="hysteresis")),
    ],
)
def test_line_rule_validation(kwargs, expectation):
    args = {"name": "gate", "start": (0.1, 0.5), "end": (0.9, 0.5)} | kwargs
    with expectation:
        LineRule(**args)


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, does_not_raise()),  # square
        ({"polygon": [[0.1, 0.1], [0.5, 0.1], [0.3, 0.4]]}, does_not_raise()),  # triangle as lists
        ({"polygon": SQUARE[:2]}, pytest.raises(ConfigError, match="polygon")),  # two points
        (
            {"polygon": ((0.1, 0.1), (0.2, 0.2), (0.3, 0.3))},
            pytest.raises(ConfigError, match="polygon"),
        ),  # no area
        (
            {"polygon": ((0.1, 0.1), (1.5, 0.1), (0.3, 0.4))},
            pytest.raises(ConfigError, match=r"polygon\[1\]"),
        ),
        ({"polygon": "0,0 1,1"}, pytest.raises(ConfigError, match="polygon")),  # unparsed string
        ({"classes": [3, 3]}, does_not_raise()),  # duplicates collapse
        ({"min_frames": -1}, pytest.raises(ConfigError, match="min_frames")),
    ],
)
def test_zone_rule_validation(kwargs, expectation):
    args = {"name": "bay", "polygon": SQUARE} | kwargs
    with expectation:
        ZoneRule(**args)


def test_rule_values_are_normalised_types():
    rule = LineRule("gate", [0.1, 0.5], [0.9, 0.5], classes=[2, 0], anchor="center")
    assert rule.start == (0.1, 0.5)
    assert rule.classes == frozenset({0, 2})
    assert rule.anchor is Anchor.CENTER
    assert ZoneRule("bay", [list(p) for p in SQUARE]).polygon == SQUARE


def test_fingerprint_changes_with_geometry_and_is_json_plain():
    a = rule_fingerprint(LineRule("gate", (0.1, 0.5), (0.9, 0.5), classes={2, 0}))
    b = rule_fingerprint(LineRule("gate", (0.1, 0.5), (0.9, 0.6), classes={2, 0}))
    assert a != b
    assert a["classes"] == [0, 2]
    assert rule_fingerprint(ZoneRule("bay", SQUARE))["polygon"][0] == [0.1, 0.1]
