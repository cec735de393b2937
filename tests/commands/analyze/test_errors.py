"""The errors of a set, against answers worked out by hand; likely label errors against planted flips."""

from __future__ import annotations

import torch

from zoo.commands.analyze.errors import most_confused, per_class, top_losses
from zoo.commands.analyze.labels import rank
from zoo.commands.analyze.predictions import Examples, error_rate


def one_hot_probs(preds, k, confidence=0.9):
    p = torch.full((len(preds), k), (1 - confidence) / (k - 1))
    p[torch.arange(len(preds)), torch.tensor(preds)] = confidence
    return p


def test_per_class_scores_and_most_confused_pairs_by_hand():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = [0, 0, 1, 2, 1, 1, 1, 1, 2, 2]
    probs = one_hot_probs(preds, 3)
    rows = {r[0]: r[1:] for r in per_class(probs, labels, ["a", "b", "c"])}
    # a: 2 predicted, both right (P 1), 2 of 4 found (R .5), F1 2/3; b: 5 predicted, 2 right (P .4), R 1;
    # c: 3 predicted, 2 right, R .5
    assert rows["a"] == [1.0, 0.5, 0.6667, 4]
    assert rows["b"] == [0.4, 1.0, 0.5714, 2]
    assert rows["c"] == [0.6667, 0.5, 0.5714, 4]
    matrix = torch.tensor([[2, 1, 1], [0, 2, 0], [0, 2, 2]])
    assert most_confused(matrix, ["a", "b", "c"]) == [["c", "b", 2, 0.5], ["a", "b", 1, 0.25], ["a", "c", 1, 0.25]]
    assert error_rate(probs, labels) == 40.0


def test_top_losses_are_the_lowest_probabilities_of_the_given_label():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.01, 0.99]])
    labels = torch.tensor([0, 0, 1, 1])
    data = Examples("val", torch.zeros(4, 1, 2, 2, dtype=torch.uint8), labels, torch.arange(4), None, "x")
    assert top_losses(data, probs, 3) == [1, 2, 0]  # p(given) = 0.2, 0.4, 0.9


def test_planted_flips_are_ranked_first_and_flagged():
    # a model that is right and sure about the true class: the flipped labels are the ones it disagrees with
    g = torch.Generator().manual_seed(0)
    n, k = 3000, 10
    truth = torch.randint(0, k, (n,), generator=g)
    confidence = 0.55 + 0.4 * torch.rand(n, generator=g)
    probs = one_hot_probs(truth.tolist(), k) * 0
    probs += ((1 - confidence) / (k - 1))[:, None]
    probs[torch.arange(n), truth] = confidence
    flipped = torch.randperm(n, generator=g)[:300]
    given = truth.clone()
    given[flipped] = (truth[flipped] + 1 + torch.randint(0, k - 1, (300,), generator=g)) % k
    order, score, flagged = rank(probs, given)
    assert set(order[:300].tolist()) == set(flipped.tolist())
    found = set(torch.nonzero(flagged).flatten().tolist())
    hits = len(found & set(flipped.tolist()))
    # confident learning prunes as many as it estimates the noise to be (256 here), every one of them a flip
    assert hits / len(found) == 1.0 and hits / 300 >= 0.8, (len(found), hits)
    assert torch.all(score[flipped].max() < score[~torch.isin(torch.arange(n), flipped)].min())


def test_a_set_without_errors_still_gets_every_file(tmp_path):
    from zoo.commands.analyze.errors import write_errors

    class Data:  # what write_errors asks of a DataModule
        crop_size = None

    labels = torch.tensor([0, 1, 1, 0])
    data = Examples("val", torch.zeros(4, 1, 4, 4, dtype=torch.uint8), labels, torch.arange(4), None, "x")
    pictures = write_errors(tmp_path, Data(), data, one_hot_probs(labels.tolist(), 2), ["a", "b"], top=2, review=10,
                            seed=0)
    assert (tmp_path / "review.csv").read_text().count("\n") == 1  # the header alone: nothing misclassified
    assert pictures["review"].shape[0] == 3 and (tmp_path / "review.png").stat().st_size > 0
    assert (tmp_path / "most_confused.csv").read_text().count("\n") == 1
