"""Protocols split as their names promise."""

import numpy as np
import pytest

from sertk.errors import ConfigError, UnknownComponentError
from sertk.protocols import Fold, get_protocol, leakage_warnings

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
    with pytest.raises(UnknownComponentError, match="known protocols: sd-random, loso, loso-speaker, kfold"):
        get_protocol("random", {})
    with pytest.raises(ConfigError, match="has no option 'folds'; its options are: n_splits, stratify"):
        get_protocol("kfold", {"folds": 3})
    with pytest.raises(ConfigError, match="test_size must be in"):
        get_protocol("sd-random", {"test_size": 1.5})
    with pytest.raises(ConfigError, match="at least 2 groups"):
        get_protocol("loso", {}).split(LABELS, SPEAKERS, ["g"] * N, 0)
