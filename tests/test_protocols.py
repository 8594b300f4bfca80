"""Protocols split as their names promise, and the host checks the folds any protocol returns."""

import numpy as np
import pytest

from sertk.errors import ConfigError, PluginError, UnknownComponentError
from sertk.protocols import Fold, check_folds, get_protocol, leakage_warnings

rng = np.random.default_rng(0)
N = 200
LABELS = rng.choice(["ang", "hap", "neu", "sad"], size=N)
SPEAKERS = np.array([f"s{i % 10}" for i in range(N)])
GROUPS = np.array([f"Session{i % 10 // 2 + 1}" for i in range(N)])


def test_sd_random_is_a_seeded_stratified_80_20_split():
    (fold,) = get_protocol("sd-random", {}).split(LABELS, SPEAKERS, GROUPS, seed=7)
    assert len(fold.test) == 40 and len(fold.train) == 160
    assert set(fold.train).isdisjoint(fold.test) and len(set(fold.train) | set(fold.test)) == N
    for label in set(LABELS):  # stratified: each class keeps its share within one sample
        assert abs((LABELS[fold.test] == label).sum() - 0.2 * (LABELS == label).sum()) <= 1
    (again,) = get_protocol("sd-random", {}).split(LABELS, SPEAKERS, GROUPS, seed=7)
    (other,) = get_protocol("sd-random", {}).split(LABELS, SPEAKERS, GROUPS, seed=8)
    assert np.array_equal(fold.test, again.test) and not np.array_equal(fold.test, other.test)


def test_sd_random_without_stratification():
    (fold,) = get_protocol("sd-random", {"stratify": False, "test_size": 0.5}).split(LABELS, SPEAKERS, GROUPS, 0)
    assert len(fold.test) == 100


def test_loso_holds_out_each_group_once_and_never_shares_speakers():
    protocol = get_protocol("loso", {})
    folds = protocol.split(LABELS, SPEAKERS, GROUPS, seed=0)
    assert [f.name for f in folds] == [f"group-Session{i}" for i in range(1, 6)]
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(N))
    for fold in folds:
        assert set(SPEAKERS[fold.train]).isdisjoint(SPEAKERS[fold.test])
        assert leakage_warnings(fold, SPEAKERS, None, protocol.speaker_independent) == []
    assert protocol.kind == "speaker-independent"


def test_loso_speaker_and_kfold():
    assert len(get_protocol("loso-speaker", {}).split(LABELS, SPEAKERS, GROUPS, 0)) == 10
    folds = get_protocol("kfold", {"n_splits": 4}).split(LABELS, SPEAKERS, GROUPS, 0)
    assert len(folds) == 4 and sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(N))
    assert get_protocol("kfold", {}).kind == "speaker-dependent"


def test_leakage_check_flags_shared_speakers_and_identical_audio():
    fold = Fold("f", np.array([0, 1]), np.array([2, 3]))
    speakers = ["a", "b", "a", "c"]
    keys = ["k1", "k2", "k3", "k1"]
    problems = leakage_warnings(fold, speakers, keys, speaker_independent=True)
    assert any("speakers ['a']" in p for p in problems)
    assert any("identical audio" in p for p in problems)
    assert leakage_warnings(fold, speakers, None, speaker_independent=False) == []


def test_bad_protocols_and_options():
    known = "known protocols: group-split, kfold, loso, loso-speaker, sd-random, speaker-kfold"
    with pytest.raises(UnknownComponentError, match=known):
        get_protocol("random", {})
    with pytest.raises(ConfigError, match="has no option 'folds'; its options are: n_splits, stratify"):
        get_protocol("kfold", {"folds": 3})
    with pytest.raises(ConfigError, match="test_size must be a fraction in"):
        get_protocol("sd-random", {"test_size": 1.5})
    with pytest.raises(ConfigError, match="at least 2 groups"):
        get_protocol("loso", {}).split(LABELS, SPEAKERS, ["g"] * N, 0)
    with pytest.raises(ConfigError, match="stratify must be true or false, got 'no'"):
        get_protocol("kfold", {"stratify": "no"})
    with pytest.raises(ConfigError, match="n_splits must be an integer ≥ 2, got 1"):
        get_protocol("speaker-kfold", {"n_splits": 1})


@pytest.mark.parametrize("stratify", [True, False])
def test_speaker_kfold_keeps_each_speaker_on_one_side_and_is_seeded(stratify):
    protocol = get_protocol("speaker-kfold", {"n_splits": 5, "stratify": stratify})
    folds = protocol.split(LABELS, SPEAKERS, GROUPS, seed=3)
    assert protocol.kind == "speaker-independent" and len(folds) == 5
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(N))
    for fold in folds:
        assert len(set(SPEAKERS[fold.test])) == 2  # 10 speakers of 20 utterances each, 5 folds
        assert set(SPEAKERS[fold.train]).isdisjoint(SPEAKERS[fold.test])
        assert sorted(fold.train.tolist() + fold.test.tolist()) == list(range(N))
    again = protocol.split(LABELS, SPEAKERS, GROUPS, seed=3)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    partitions = {frozenset(frozenset(SPEAKERS[f.test]) for f in protocol.split(LABELS, SPEAKERS, GROUPS, seed))
                  for seed in range(6)}
    assert len(partitions) > 1  # the seed changes which speakers share a fold


def test_speaker_kfold_needs_as_many_speakers_as_folds():
    with pytest.raises(ConfigError, match="5 folds need at least 5 speakers, the dataset has 3"):
        get_protocol("speaker-kfold", {}).split(LABELS[:30], [f"s{i % 3}" for i in range(30)], GROUPS[:30], 0)


class _Named:
    name = "odd"


@pytest.mark.parametrize("folds, message", [
    ([], "expected a non-empty list"),
    ([("a", [0], [1])], "not a Fold"),
    ([Fold("a", np.array([0, 1]), np.array([], dtype=int))], "the test set is empty"),
    ([Fold("a", np.array([0, 1]), np.array([2, 9]))], r"test indices must lie in \[0, 4\), got 2 … 9"),
    ([Fold("a", np.array([0, 1]), np.array([1, 2]))], "1 utterance\\(s\\) are in both training and test sets"),
    ([Fold("a", np.array([0, 0]), np.array([2]))], "train repeats 1 index"),
    ([Fold("a", np.array([0.0, 1.0]), np.array([2]))], "integer indices"),
    ([Fold("a", np.array([0]), np.array([2])), Fold("a", np.array([1]), np.array([3]))], "share this name"),
])
def test_check_folds_rejects_broken_protocol_output(folds, message):
    with pytest.raises(PluginError, match=message) as info:
        check_folds(_Named(), folds, 4)
    assert "protocol 'odd'" in str(info.value)


def test_check_folds_normalises_good_folds():
    (fold,) = check_folds(_Named(), [Fold(1, [3, 0], (2,))], 4)
    assert fold.name == "1" and fold.train.tolist() == [0, 3] and fold.test.tolist() == [2]
    assert fold.train.dtype == np.int64


def test_speaker_kfold_stratifies_over_speakers_with_skewed_labels():
    # speakers 0-4 say mostly "ang", 5-9 mostly "sad": a stratified fold takes one of each kind
    speakers = np.repeat([f"s{i}" for i in range(10)], 10)
    labels = np.array([("ang" if i < 5 else "sad") if j < 8 else ("sad" if i < 5 else "ang")
                       for i in range(10) for j in range(10)])
    for seed in range(5):
        folds = get_protocol("speaker-kfold", {}).split(labels, speakers, speakers, seed)
        assert [(labels[f.test] == "ang").sum() for f in folds] == [10] * 5
