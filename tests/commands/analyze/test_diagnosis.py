"""The course's reading of the errors: the worked examples of its bias/variance lecture, and mismatch."""

from __future__ import annotations

import pytest

from zoo.commands.analyze.diagnosis import diagnose, gaps


@pytest.mark.parametrize("train, held_out, reference, large", [
    (1, 11, 0, ["variance"]),  # the lecture's high variance
    (15, 16, 0, ["avoidable bias"]),  # high bias
    (15, 30, 0, ["avoidable bias", "variance"]),  # both
    (0.5, 1, 0, ["avoidable bias", "variance"]),  # both, small
    (15, 16, 14.9, ["variance"]),  # human-level near 15 %: no bias to speak of
    (0.1, 0.3, 0, []),  # every gap under half a point
])
def test_the_lectures_examples(train, held_out, reference, large):
    result = diagnose({"train": train, "train_dev": held_out}, reference)
    assert result["large"] == large
    assert [s["problem"] for s in result["next_steps"]] == large  # bias first, as the course says


def test_gaps_are_differences_of_the_errors():
    found = gaps({"train": 2.0, "train_dev": 3.5, "dev": 9.0, "test": 9.5}, reference=1.0)
    assert found == pytest.approx({"avoidable bias": 1.0, "variance": 1.5, "data mismatch": 5.5,
                                   "overfitting to the dev set": 0.5})
    result = diagnose({"train": 2.0, "train_dev": 3.5, "dev": 9.0}, reference=1.0)
    assert result["large"] == ["variance", "data mismatch"]  # bias 1.0 is under a quarter of the largest gap
    assert diagnose({"train": 2.0, "train_dev": 2.5, "dev": 12.0})["large"] == ["data mismatch"]


def test_without_a_train_dev_set_variance_and_mismatch_are_one_gap():
    result = diagnose({"train": 1.0, "dev": 10.0})
    assert result["gaps"] == {"avoidable bias": 1.0, "variance + data mismatch": 9.0}
    assert result["large"] == ["variance", "data mismatch"]
    assert "--data.train_dev_size" in result["diagnosis"]
