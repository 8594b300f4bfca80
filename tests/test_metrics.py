"""Our metrics agree with scikit-learn's, and UA/WA mean what the field means by them."""

import numpy as np
import pytest
from sklearn import metrics as skm

from sertk.experiment.metrics import bootstrap_ci, classification_metrics

LABELS = ["ang", "hap", "neu", "sad"]


@pytest.fixture
def predictions():
    rng = np.random.default_rng(3)
    y_true = rng.choice(LABELS, size=400, p=[0.1, 0.3, 0.4, 0.2])
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.choice(LABELS, size=400))
    return y_true, y_pred


def test_agrees_with_scikit_learn(predictions):
    y_true, y_pred = predictions
    m = classification_metrics(y_true, y_pred, LABELS)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["unweighted_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="weighted"))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=LABELS)
    for i, label in enumerate(LABELS):
        assert m["per_class"][label]["precision"] == pytest.approx(p[i])
        assert m["per_class"][label]["recall"] == pytest.approx(r[i])
        assert m["per_class"][label]["f1"] == pytest.approx(f[i])
        assert m["per_class"][label]["support"] == s[i]
    assert m["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
    assert np.allclose(np.sum(m["confusion_matrix_normalized"], axis=1), 1.0)


def test_ua_does_not_reward_the_majority_class():
    y_true = ["neu"] * 90 + ["ang"] * 10
    y_pred = ["neu"] * 100
    m = classification_metrics(y_true, y_pred, ["ang", "neu"])
    assert m["accuracy"] == pytest.approx(0.9)
    assert m["unweighted_accuracy"] == pytest.approx(0.5)
    assert m["per_class"]["ang"]["precision"] == 0.0  # never predicted: 0, not NaN


def test_bootstrap_interval_brackets_the_estimate(predictions):
    y_true, y_pred = predictions
    m = classification_metrics(y_true, y_pred, LABELS)
    ci = bootstrap_ci(y_true, y_pred, LABELS, n_boot=300, seed=1)
    for key in ("accuracy", "unweighted_accuracy", "macro_f1"):
        lo, hi = ci[key]
        assert lo < m[key] < hi
        assert hi - lo < 0.15
    assert ci == bootstrap_ci(y_true, y_pred, LABELS, n_boot=300, seed=1)


def test_breakdown_by_speaker():
    from sertk.experiment.metrics import breakdown

    y_true = ["a", "a", "b", "b", "a", "b"]
    y_pred = ["a", "b", "b", "b", "a", "a"]
    keys = ["s2", "s2", "s2", "s2", "s1", "s1"]
    table = breakdown(y_true, y_pred, keys, ["a", "b"])
    assert list(table) == ["s1", "s2"]
    assert table["s1"] == {"n": 2, "accuracy": 0.5, "unweighted_accuracy": 0.5}
    assert table["s2"]["n"] == 4 and table["s2"]["accuracy"] == 0.75
    assert table["s2"]["unweighted_accuracy"] == (0.5 + 1.0) / 2
    only_a = breakdown(["a", "a"], ["a", "b"], ["x", "x"], ["a", "b"])
    assert only_a["x"]["unweighted_accuracy"] == 0.5  # only the class it has counts
