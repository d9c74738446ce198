from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.counting import table
from pipeline.counting.exceptions import CountingStateError

SCHEMA: table.Schema = {"track_id": (np.int64, ()), "mean": (np.float64, (2,))}


def test_float_columns_round_trip_bit_for_bit_through_json():
    cols = {"track_id": np.array([3, 7]), "mean": np.array([[0.1, -0.0], [1e-300, np.pi / 3]])}
    saved = json.loads(json.dumps(table.to_json(cols)))
    assert saved["track_id"] == [3, 7] and isinstance(saved["mean"], str)
    restored = table.from_json(saved, SCHEMA, "t")
    assert restored["mean"].tobytes() == cols["mean"].tobytes()
    restored["mean"][0, 0] = 2.0  # a restored column is the table's own, writable
    assert table.to_json(table.empty(SCHEMA)) == {"track_id": [], "mean": ""}
    assert table.num_rows(table.from_json({"track_id": [], "mean": ""}, SCHEMA, "t")) == 0


def test_plain_number_lists_of_older_states_are_still_read():
    restored = table.from_json({"track_id": [3], "mean": [[0.25, 0.5]]}, SCHEMA, "t")
    np.testing.assert_array_equal(restored["mean"], [[0.25, 0.5]])


@pytest.mark.parametrize(("mean", "match"), [
    ("not base64!", "t.mean: not base64"),
    ("AAAAAAAAAAA=", "t.mean: .*rows of shape"),  # one float64 where rows have two
])
def test_a_broken_float_column_is_refused_with_its_name(mean, match):
    with pytest.raises(CountingStateError, match=match):
        table.from_json({"track_id": [3], "mean": mean}, SCHEMA, "t")


def test_an_integer_column_is_never_base64():
    with pytest.raises(CountingStateError, match="t.track_id"):
        table.from_json({"track_id": "AAAAAAAAAAA=", "mean": []}, SCHEMA, "t")
