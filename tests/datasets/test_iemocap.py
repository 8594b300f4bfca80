"""The ``iemocap`` dataset on a miniature tree in the real release layout (tests/iemocap_tree.py)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from iemocap_tree import DIALOGS, make_iemocap_tree, tree_utterances  # noqa: E402

from sertk.errors import ConfigError, DatasetError  # noqa: E402
from sertk.plugins import PluginHost, instantiate  # noqa: E402
from sertk_plugins.datasets import iemocap as iemocap_mod  # noqa: E402
from sertk_plugins.datasets.iemocap import (  # noqa: E402
    FULL_RELEASE_4CLASS,
    IEMOCAP,
    LABELS,
    check_full_release,
    speaker_of,
)

SPEAKERS = [f"Ses0{s}_{g}" for s in range(1, 6) for g in "FM"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"))


def load(root, **options):
    return list(IEMOCAP(root=root, **options).utterances())


# -- the default 4-class set ---------------------------------------------------------------------------------
def test_default_is_4class_with_exc_merged_into_hap(corpus):
    utts = load(corpus)
    assert len(utts) == 70
    assert Counter(u.label for u in utts) == {"ang": 15, "hap": 25, "neu": 15, "sad": 15}
    exc = [u for u in utts if u.meta["original_label"] == "exc"]
    assert len(exc) == 15 and {u.label for u in exc} == {"hap"}
    assert Counter(u.meta["original_label"] for u in utts if u.label == "hap") == {"hap": 10, "exc": 15}


def test_ten_speakers_from_the_suffix_and_sessions_as_groups(corpus):
    utts = load(corpus)
    assert Counter(u.speaker for u in utts) == {s: 7 for s in SPEAKERS}
    assert Counter(u.group for u in utts) == {f"Session{n}": 14 for n in range(1, 6)}
    groups_of = {}
    for u in utts:
        groups_of.setdefault(u.speaker, set()).add(u.group)
        assert u.speaker == f"Ses0{u.meta['session']}_{u.id[-4]}"
    assert groups_of == {s: {f"Session{s[4]}"} for s in SPEAKERS}


def test_female_turn_in_a_male_dialog_belongs_to_the_female_actor(corpus):
    by_id = {u.id: u for u in load(corpus)}
    u = by_id["Ses05M_script01_3_F000"]
    assert u.speaker == "Ses05_F" and u.meta["gender"] == "F"
    assert by_id["Ses05M_script01_3_M000"].speaker == "Ses05_M"
    assert by_id["Ses02F_script01_1_M000"].speaker == "Ses02_M"
    assert speaker_of("Ses05M_script01_3_F000") == "Ses05_F"
    assert speaker_of("Ses01F_impro01_M012") == "Ses01_M"
    with pytest.raises(ValueError):
        speaker_of("Ses01F_impro01")


def test_utterance_fields_and_meta(corpus):
    by_id = {u.id: u for u in load(corpus)}
    u = by_id["Ses03M_script01_3_F000"]
    expected = next(r for r in tree_utterances([3]) if r["id"] == u.id)
    assert u.path == corpus / "Session3" / "sentences" / "wav" / "Ses03M_script01_3" / f"{u.id}.wav"
    assert u.path.is_file()
    assert u.label == "hap" and u.group == "Session3"
    assert dict(u.meta) == {
        "dialog": "Ses03M_script01_3", "session": 3, "gender": "F", "improvised": False,
        "start": expected["start"], "end": expected["end"], "valence": expected["valence"],
        "arousal": expected["arousal"], "dominance": expected["dominance"], "original_label": "hap",
    }
    assert by_id["Ses03F_impro01_F000"].meta["improvised"] is True


def test_order_is_stable_and_ids_unique(corpus):
    first = [u.id for u in load(corpus)]
    assert first == [u.id for u in load(corpus)]
    assert len(set(first)) == len(first)


def test_clutter_of_a_real_copy_is_ignored(tmp_path, corpus):
    plain = make_iemocap_tree(tmp_path, clutter=False)
    assert (corpus / "Session1" / "dialog" / "EmoEvaluation" / "Attribute").is_dir()
    assert [(u.id, u.label, u.speaker) for u in load(plain)] == [(u.id, u.label, u.speaker) for u in load(corpus)]


def test_root_may_be_the_folder_holding_the_release(corpus):
    assert len(load(corpus.parent)) == 70


# -- options ---------------------------------------------------------------------------------------------------
def test_classes_without_exc(corpus):
    utts = load(corpus, classes="4class-noexc")
    assert Counter(u.label for u in utts) == {"ang": 15, "hap": 10, "neu": 15, "sad": 15}
    assert "exc" not in {u.meta["original_label"] for u in utts}


def test_classes_all_keeps_every_label(corpus):
    utts = load(corpus, classes="all")
    expected = Counter(r["label"] for r in tree_utterances())
    assert len(utts) == 100 == sum(expected.values())
    assert Counter(u.label for u in utts) == expected
    assert set(expected) == set(LABELS)


def test_classes_as_list_and_mapping(corpus):
    assert Counter(u.label for u in load(corpus, classes=["fru", "sad"])) == {"fru": 5, "sad": 15}
    merged = load(corpus, classes={"ang": "negative", "fru": "negative", "hap": "positive", "exc": "positive"})
    assert Counter(u.label for u in merged) == {"negative": 20, "positive": 25}
    with pytest.raises(ConfigError, match="classes='five': unknown class set; known: 4class, 4class-noexc, all"):
        IEMOCAP(root=corpus, classes="five")
    with pytest.raises(ConfigError, match="unknown IEMOCAP label.*joy"):
        IEMOCAP(root=corpus, classes=["joy", "sad"])


def test_sessions_subset(corpus):
    utts = load(corpus, sessions=[1, 2])
    assert len(utts) == 28 and {u.group for u in utts} == {"Session1", "Session2"}
    assert {u.group for u in load(corpus, sessions="Session3")} == {"Session3"}
    assert {u.group for u in load(corpus, sessions=[5, "4"])} == {"Session4", "Session5"}
    for bad in ([7], [0], "six", [True], []):
        with pytest.raises(ConfigError, match="sessions"):
            IEMOCAP(root=corpus, sessions=bad)


def test_requested_session_that_is_not_there(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=[1, 2])
    assert {u.group for u in load(root)} == {"Session1", "Session2"}  # a partial copy loads what it has
    with pytest.raises(DatasetError, match=r"no folder Session4 \(found: Session1, Session2\)"):
        load(root, sessions=[1, 4])


def test_improvised_and_scripted_only(corpus):
    impro = load(corpus, improvised_only=True)
    scripted = load(corpus, scripted_only=True)
    assert len(impro) == 30 and all(u.meta["improvised"] and "_impro" in u.id for u in impro)
    assert len(scripted) == 40 and not any(u.meta["improvised"] for u in scripted)
    assert {u.id for u in impro} | {u.id for u in scripted} == {u.id for u in load(corpus)}
    with pytest.raises(ConfigError, match="exclude each other"):
        IEMOCAP(root=corpus, improvised_only=True, scripted_only=True)
    with pytest.raises(ConfigError, match="improvised_only='yes'"):
        IEMOCAP(root=corpus, improvised_only="yes")


def test_options_through_the_plugin_host(corpus):
    component = PluginHost(builtins=["sertk_plugins.datasets.iemocap"], load_external=False).get("dataset", "iemocap")
    ds = instantiate(component, {"sessions": [2], "classes": "4class-noexc"}, root=str(corpus))
    assert Counter(u.label for u in ds.utterances()) == {"ang": 3, "hap": 2, "neu": 3, "sad": 3}
    with pytest.raises(ConfigError, match="no option 'session'.*sessions"):
        instantiate(component, {"session": 2}, root=str(corpus))


# -- missing and unreadable wavs ---------------------------------------------------------------------------------
def test_missing_and_unreadable_wavs_are_named(tmp_path):
    root = make_iemocap_tree(tmp_path, missing=["Ses02F_impro01_F000"], unreadable=["Ses04M_script01_3_M001"])
    with pytest.raises(DatasetError) as info:
        load(root)
    msg = str(info.value)
    assert "2 audio file(s) missing or unreadable" in msg
    assert f"{root}/Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_F000.wav (missing)" in msg
    assert f"{root}/Session4/sentences/wav/Ses04M_script01_3/Ses04M_script01_3_M001.wav (unreadable:" in msg
    assert 'missing="skip"' in msg


def test_missing_skip_leaves_them_out_with_a_warning(tmp_path, caplog):
    root = make_iemocap_tree(tmp_path, missing=["Ses02F_impro01_F000"], unreadable=["Ses04M_script01_3_M001"])
    ds = IEMOCAP(root=root, missing="skip")
    with caplog.at_level(logging.WARNING):
        utts = list(ds.utterances())
    ids = {u.id for u in utts}
    assert len(utts) == 68 and "Ses02F_impro01_F000" not in ids and "Ses04M_script01_3_M001" not in ids
    assert "Ses02F_impro01_F000.wav (missing)" in caplog.text
    assert "Ses04M_script01_3_M001.wav (unreadable" in caplog.text
    assert sorted(Path(p).name for p in ds.skipped) == ["Ses02F_impro01_F000.wav", "Ses04M_script01_3_M001.wav"]
    with pytest.raises(ConfigError, match="missing='ignore'"):
        IEMOCAP(root=root, missing="ignore")


def test_missing_wav_of_an_unselected_label_is_no_error(tmp_path):
    root = make_iemocap_tree(tmp_path, missing=["Ses01F_impro01_M002"])  # fru: not in the 4-class set
    assert len(load(root)) == 70
    with pytest.raises(DatasetError, match="Ses01F_impro01_M002.wav"):
        load(root, classes="all")


# -- malformed corpora -----------------------------------------------------------------------------------------
def _label_file(root: Path, dialog: str) -> Path:
    return root / f"Session{int(dialog[3:5])}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"


def _replace_line(path: Path, startswith: str, new: str) -> int:
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(startswith))
    lines[index] = new
    path.write_text("\n".join(lines) + "\n")
    return index + 1


def test_malformed_summary_line_names_file_and_line(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=[1])
    path = _label_file(root, "Ses01F_impro01")
    lineno = _replace_line(path, "[", "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu")
    with pytest.raises(DatasetError, match=rf"{path}:{lineno}: malformed summary line"):
        load(root)


def test_unknown_label_names_file_and_line(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=[1])
    path = _label_file(root, "Ses01M_impro02")
    lineno = _replace_line(path, "[", "[1.0 - 2.0]\tSes01M_impro02_F000\tjoy\t[2.0, 2.0, 2.0]")
    with pytest.raises(DatasetError, match=rf"{path}:{lineno}: unknown label 'joy' for Ses01M_impro02_F000"):
        load(root)


def test_bad_utterance_id_and_wrong_session(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=[1])
    path = _label_file(root, "Ses01F_impro01")
    lineno = _replace_line(path, "[", "[1.0 - 2.0]\tSes01F_impro01\tneu\t[2.0, 2.0, 2.0]")
    with pytest.raises(DatasetError, match=rf"{path}:{lineno}: 'Ses01F_impro01' is not an IEMOCAP utterance id"):
        load(root)
    lineno = _replace_line(path, "[1.0", "[1.0 - 2.0]\tSes02F_impro01_F009\tneu\t[2.0, 2.0, 2.0]")
    with pytest.raises(DatasetError, match=rf"{path}:{lineno}: .*belongs to session 2.*Session1"):
        load(root)


def test_utterance_labelled_twice(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=[1])
    path = _label_file(root, "Ses01M_impro02")
    lineno = _replace_line(path, "[", "[1.0 - 2.0]\tSes01F_impro01_F000\tneu\t[2.0, 2.0, 2.0]")
    with pytest.raises(DatasetError, match=rf"{path}:{lineno}: utterance Ses01F_impro01_F000 is labelled twice "
                                           rf"\(first at .*Ses01F_impro01.txt:\d+\)"):
        load(root)


def test_session_without_label_files(tmp_path):
    root = make_iemocap_tree(tmp_path, sessions=[1, 2])
    for path in (root / "Session2" / "dialog" / "EmoEvaluation").glob("*.txt"):
        path.unlink()
    with pytest.raises(DatasetError, match=r"Session2: no label files .*EmoEvaluation/\*\.txt"):
        load(root)


def test_bad_roots(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        IEMOCAP(root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no IEMOCAP sessions under .*Session1 … Session5"):
        IEMOCAP(root=tmp_path / "empty")
    with pytest.raises(ConfigError, match="needs its files"):
        IEMOCAP(root=None)


# -- the full-release check ------------------------------------------------------------------------------------
def test_published_table_adds_up():
    per_class = Counter()
    for counts in FULL_RELEASE_4CLASS.values():
        per_class.update(counts)
    assert per_class == {"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084}
    assert [sum(FULL_RELEASE_4CLASS[s].values()) for s in range(1, 6)] == [1085, 1023, 1151, 1031, 1241]
    assert sum(per_class.values()) == 5531
    assert check_full_release(FULL_RELEASE_4CLASS) == []


def test_check_names_every_difference():
    counts = {s: dict(c) for s, c in FULL_RELEASE_4CLASS.items()}
    del counts[3]
    counts[2]["sad"] = 190
    counts[4]["hap"] += 1
    counts[5]["fru"] = 4
    assert check_full_release(counts) == [
        "Session2: sad 190 (expected 197); 1016 in all (expected 1023)",
        "Session3 is missing (expected 1151 utterances: ang 240, hap 286, neu 320, sad 305)",
        "Session4: hap 304 (expected 303); 1032 in all (expected 1031)",
        "Session5: fru 4 (expected none); 1245 in all (expected 1241)",
        "4-class total 4378 (expected 5531)",
    ]
    assert check_full_release(counts, sessions=[1, 2]) == [
        "Session2: sad 190 (expected 197); 1016 in all (expected 1023)", "4-class total 2101 (expected 2108)"]


MINI_TABLE = {s: {"ang": 3, "hap": 5, "neu": 3, "sad": 3} for s in range(1, 6)}  # the miniature's counts


def test_tree_claiming_to_be_full_but_missing_a_session(tmp_path, monkeypatch):
    root = make_iemocap_tree(tmp_path, name="IEMOCAP_full_release", sessions=[1, 2, 3, 4])
    with pytest.raises(DatasetError) as info:  # against the real table: names the missing session
        load(root)
    assert "Session5 is missing (expected 1241 utterances: ang 170, hap 442, neu 384, sad 245)" in str(info.value)
    assert "4-class total 56 (expected 5531)" in str(info.value)
    monkeypatch.setattr(iemocap_mod, "FULL_RELEASE_4CLASS", MINI_TABLE)  # sessions 1-4 now match exactly
    with pytest.raises(DatasetError) as info:
        load(root)
    assert str(info.value) == (
        f"IEMOCAP at {root} does not match the full release (4-class counts of the label files, exc counted as "
        "hap): Session5 is missing (expected 14 utterances: ang 3, hap 5, neu 3, sad 3); 4-class total 56 "
        "(expected 70). Restore the missing parts, or pass full_release=false "
        "(`sertk run -o dataset.full_release=false`, `sertk data summary -o full_release=false`) to load a "
        "partial copy on purpose"
    )
    assert len(load(root, full_release=False)) == 56
    assert len(load(root, sessions=[1, 2])) == 28  # only the requested sessions are checked


def test_full_tree_passes_and_a_lost_label_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(iemocap_mod, "FULL_RELEASE_4CLASS", MINI_TABLE)
    root = make_iemocap_tree(tmp_path, name="IEMOCAP_full_release")
    assert len(load(root)) == 70
    _label_file(root, "Ses02M_script01_3").unlink()  # hap, sad, exc, ang
    with pytest.raises(DatasetError, match=r": Session2: ang 2 \(expected 3\), hap 3 \(expected 5\), sad 2 "
                                           r"\(expected 3\); 10 in all \(expected 14\); 4-class total 66"):
        load(root)


def test_full_release_can_be_forced_on_any_folder(corpus):
    with pytest.raises(DatasetError, match="Session1: ang 3 \\(expected 229\\)"):
        load(corpus, full_release=True)
    assert IEMOCAP(root=corpus).full_release is False


def test_tree_builder_matches_its_spec():
    assert sum(len(turns) for turns in DIALOGS.values()) == 20
    assert {r["label"] for r in tree_utterances([1])} == set(LABELS)
