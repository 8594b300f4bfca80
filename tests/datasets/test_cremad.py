"""The ``cremad`` dataset on a miniature tree in the real layout (tests/public_corpora_trees.py)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from public_corpora_trees import cremad_names, make_cremad_tree, touch_tree

from sertk.cli.main import cli
from sertk.errors import ConfigError, DatasetError
from sertk.plugins import PluginHost, instantiate
from sertk_plugins.datasets import cremad as cremad_mod
from sertk_plugins.datasets.cremad import (
    ABSENT,
    FULL_RELEASE_COUNTS,
    LABELS,
    CremaD,
    check_full_release,
    parse_name,
    release_names,
)

ACTORS = ["1001", "1002", "1003", "1004"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_cremad_tree(tmp_path_factory.mktemp("cremad"))


def load(root, **options):
    return list(CremaD(root=root, **options).utterances())


# -- what the file names (and VideoDemographics.csv) say -----------------------------------------------------------
def test_every_field_of_the_name_and_the_demographics(corpus):
    by_id = {u.id: u for u in load(corpus)}
    u = by_id["1001_DFA_ANG_XX"]
    assert u.path == corpus / "AudioWAV" / "1001_DFA_ANG_XX.wav" and u.path.is_file()
    assert (u.label, u.speaker, u.group) == ("anger", "1001", "1001")
    assert dict(u.meta) == {"actor": "1001", "gender": "M", "age": 51, "race": "Caucasian",
                            "ethnicity": "Not Hispanic", "sentence": "DFA", "sentence_text": "Don't forget a jacket",
                            "emotion_code": "ANG", "level": "unspecified", "original_label": "anger"}
    v = by_id["1004_IEO_ANG_HI"]
    assert (v.label, v.meta["level"], v.meta["sentence_text"], v.meta["gender"], v.meta["age"]) == \
        ("anger", "high", "It's eleven o'clock", "F", 42)
    assert by_id["1002_IEO_ANG_LO"].meta["level"] == "low"


def test_labels_speakers_and_groups(corpus):
    utts = load(corpus)
    assert len(utts) == 36
    assert LABELS == ("anger", "disgust", "fear", "happy", "neutral", "sad")
    assert Counter(u.label for u in utts) == {"anger": 12, "disgust": 4, "fear": 4, "happy": 4, "neutral": 8, "sad": 4}
    assert Counter(u.speaker for u in utts) == {a: 9 for a in ACTORS}
    assert all(u.group == u.speaker for u in utts)
    assert {u.speaker: u.meta["gender"] for u in utts} == {"1001": "M", "1002": "F", "1003": "F", "1004": "F"}


def test_order_is_stable_and_ids_unique(corpus):
    ids = [u.id for u in load(corpus)]
    assert ids == [u.id for u in load(corpus)] and ids == sorted(ids) and len(set(ids)) == 36


def test_root_may_be_the_clone_its_parent_or_audiowav(corpus, tmp_path):
    expected = [u.id for u in load(corpus)]
    assert [u.id for u in load(corpus.parent)] == expected
    audio_root = load(corpus / "AudioWAV")
    assert [u.id for u in audio_root] == expected and audio_root[0].meta["gender"] == "M"  # CSV found next to it
    with pytest.raises(DatasetError, match="CREMA-D root .*nope does not exist"):
        CremaD(root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no AudioWAV/ folder under .*empty: expected the CREMA-D repository"):
        CremaD(root=tmp_path / "empty")
    with pytest.raises(ConfigError, match="needs its files"):
        CremaD(root=None)


# -- options -------------------------------------------------------------------------------------------------------
def test_classes(corpus):
    assert Counter(u.label for u in load(corpus, classes=["anger", "sad"])) == {"anger": 12, "sad": 4}
    merged = load(corpus, classes={"anger": "negative", "disgust": "negative", "happy": "positive"})
    assert Counter(u.label for u in merged) == {"negative": 16, "positive": 4}
    with pytest.raises(ConfigError, match="classes='ANG': unknown class set; known: all"):
        CremaD(root=corpus, classes="ANG")
    with pytest.raises(ConfigError, match="unknown CREMA-D label.*angry; the labels are anger disgust fear"):
        CremaD(root=corpus, classes=["angry", "sad"])


def test_options_through_the_plugin_host(corpus):
    component = PluginHost(builtins=["sertk_plugins.datasets.cremad"], load_external=False).get("dataset", "cremad")
    ds = instantiate(component, {"classes": ["neutral"], "demographics": False}, root=str(corpus))
    utts = list(ds.utterances())
    assert len(utts) == 8 and "gender" not in utts[0].meta
    with pytest.raises(ConfigError, match="has no option 'levels'; its options are: classes, demographics, "
                                          "full_release, missing"):
        instantiate(component, {"levels": ["HI"]}, root=str(corpus))
    with pytest.raises(ConfigError, match="demographics='auto'"):
        instantiate(component, {"demographics": "auto"}, root=str(corpus))


def test_demographics_absent_required_or_malformed(tmp_path, caplog):
    root = make_cremad_tree(tmp_path, name="nocsv", demographics=False)
    utts = load(root)
    assert len(utts) == 36 and not any("gender" in u.meta for u in utts)
    with pytest.raises(DatasetError, match="no VideoDemographics.csv in .*nocsv \\(demographics=true\\)"):
        load(root, demographics=True)

    root = make_cremad_tree(tmp_path, name="unlisted", actors=["1001", "1005", "1006"])
    with caplog.at_level(logging.WARNING):
        utts = load(root)
    assert {u.speaker: u.meta.get("gender") for u in utts} == {"1001": "M", "1005": "M", "1006": None}
    assert "CREMA-D: 1 actor(s) not in" in caplog.text and "their meta has no gender or age: 1006" in caplog.text

    csv = root / "VideoDemographics.csv"
    csv.write_text('"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","Caucasian","Not Hispanic"\n'
                   '1005,twenty,"Male","African American","Not Hispanic"\n1006,25,"X","Asian","Not Hispanic"\n'
                   '1001,51,"Male","Caucasian","Not Hispanic"\n')
    with pytest.raises(DatasetError) as info:
        load(root)
    assert str(info.value) == (
        f"3 bad row(s) in VideoDemographics.csv: {csv}:3: Age 'twenty' for actor 1005 is not a whole number; "
        f"{csv}:4: Sex 'X' for actor 1006; expected Male or Female; {csv}:5: actor 1001 is listed twice")
    csv.write_text('"ActorID","Age"\n1001,51\n')
    with pytest.raises(DatasetError, match="missing column\\(s\\) sex"):
        load(root)


# -- names that do not parse, and the known misnamed file ------------------------------------------------------------
def test_bad_names_are_left_out_with_one_warning(tmp_path, caplog):
    extra = ["1001_DFA_ANG_XX_copy.wav", "1092_DFA_ANG_XX.wav", "1001_ABC_ANG_XX.wav", "1001_DFA_JOY_XX.wav",
             "1001_DFA_ANG_YY.wav", "1001_DFA_ANG_X.wav"]
    root = make_cremad_tree(tmp_path, actors=["1001"], extra=extra)
    ds = CremaD(root=root)
    with caplog.at_level(logging.WARNING):
        assert len(list(ds.utterances())) == 9
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [("CREMA-D: leaving out 6 file(s) whose names do not follow its naming scheme (like "
                         "1001_DFA_ANG_XX.wav): 1001_ABC_ANG_XX.wav, 1001_DFA_ANG_X.wav, 1001_DFA_ANG_XX_copy.wav, "
                         "1001_DFA_ANG_YY.wav, 1001_DFA_JOY_XX.wav and 1 more")]
    form = "not a CREMA-D file name: not of the form ACTOR_SEN_EMO_LV.wav (like 1001_DFA_ANG_XX.wav)"
    assert {Path(p).name: why for p, why in ds.skipped.items()} == {
        "1001_ABC_ANG_XX.wav": "not a CREMA-D file name: sentence ABC is none of IEO TIE IOM IWW TAI MTI IWL ITH DFA "
                               "ITS TSI WSI",
        "1001_DFA_ANG_X.wav": form,  # only the one documented misnaming is forgiven
        "1001_DFA_ANG_XX_copy.wav": form,
        "1001_DFA_ANG_YY.wav": "not a CREMA-D file name: level YY is none of LO MD HI XX",
        "1001_DFA_JOY_XX.wav": "not a CREMA-D file name: emotion JOY is none of ANG DIS FEA HAP NEU SAD",
        "1092_DFA_ANG_XX.wav": "not a CREMA-D file name: actor 1092 is not 1001 to 1091",
    }


def test_the_known_misnamed_file_is_read_as_its_release_name(tmp_path):
    root = make_cremad_tree(tmp_path, actors=["1001"], extra=["1040_ITH_SAD_X.wav"])
    u = {u.id: u for u in load(root)}["1040_ITH_SAD_X"]
    assert (u.label, u.speaker, u.meta["level"], u.meta["sentence"]) == ("sad", "1040", "unspecified", "ITH")
    assert parse_name(u.path).clip == "1040_ITH_SAD_XX"
    (root / "AudioWAV" / "1040_ITH_SAD_XX.wav").write_bytes((root / "AudioWAV" / "1040_ITH_SAD_X.wav").read_bytes())
    with pytest.raises(DatasetError, match=r"CREMA-D clip 1040_ITH_SAD_XX is there twice: .*1040_ITH_SAD_X.wav and "
                                           r".*1040_ITH_SAD_XX.wav; remove one"):
        load(root)


# -- missing, unreadable and git-lfs pointer files ------------------------------------------------------------------
def test_bad_audio_is_named_or_skipped(tmp_path, caplog):
    root = make_cremad_tree(tmp_path, actors=["1001", "1002"], missing=["1001_DFA_SAD_XX"],
                            unreadable=["1002_IEO_ANG_HI"], lfs=["1002_DFA_HAP_XX"])
    with pytest.raises(DatasetError) as info:
        load(root)
    msg = str(info.value)
    assert msg.startswith("dataset 'cremad': 3 audio file(s) missing or unreadable: ")
    assert f"{root}/AudioWAV/1001_DFA_SAD_XX.wav (missing)" in msg
    assert f"{root}/AudioWAV/1002_IEO_ANG_HI.wav (unreadable:" in msg
    assert f"{root}/AudioWAV/1002_DFA_HAP_XX.wav (a git-lfs pointer, not audio (run `git lfs pull` in the " \
           "repository))" in msg
    ds = CremaD(root=root, missing="skip")
    with caplog.at_level(logging.WARNING):
        ids = {u.id for u in ds.utterances()}
    assert len(ids) == 15 and not ids & {"1001_DFA_SAD_XX", "1002_IEO_ANG_HI", "1002_DFA_HAP_XX"}
    assert sorted(Path(p).stem for p in ds.skipped) == ["1001_DFA_SAD_XX", "1002_DFA_HAP_XX", "1002_IEO_ANG_HI"]
    assert len(load(root, classes=["fear", "neutral"])) == 6  # the bad files are not selected: not checked


def test_a_download_without_git_lfs_is_explained(tmp_path):
    root = make_cremad_tree(tmp_path, actors=["1001"], lfs=cremad_names(["1001"]))
    for missing in ("error", "skip"):
        with pytest.raises(DatasetError, match=r"every file in .*AudioWAV is a git-lfs pointer, not audio \(e.g. "
                                               r"1001_DFA_ANG_XX.wav\): the repository was downloaded without git-lfs. "
                                               r"Clone it with `git lfs clone https://github.com/CheyneyComputer"):
            load(root, missing=missing)


# -- the full-release check ------------------------------------------------------------------------------------------
def test_release_listing_matches_the_published_counts():
    names = release_names()
    assert len(names) == 7442 and len({n[:4] for n in names}) == 91
    assert Counter(n.split("_")[2] for n in names) == FULL_RELEASE_COUNTS
    assert sum(FULL_RELEASE_COUNTS.values()) == 7442
    per_actor = Counter(n[:4] for n in names)
    assert {a: n for a, n in per_actor.items() if n != 82} == {"1002": 81, "1008": 76, "1009": 76, "1019": 76,
                                                               "1076": 81}
    assert Counter(n.split("_")[3] for n in names) == {"LO": 455, "MD": 455, "HI": 455, "XX": 6077}
    assert len(ABSENT) == 20 and not ABSENT & names
    assert all(not isinstance(parse_name(Path(f"{n}.wav")), str) for n in names)
    assert check_full_release(names) == []


def test_check_names_every_difference():
    found = (release_names() - {"1001_DFA_ANG_XX", "1091_WSI_NEU_XX"}) | {"1008_WSI_HAP_XX"}
    assert check_full_release(found) == [
        "2 clip(s) missing: 1001_DFA_ANG_XX, 1091_WSI_NEU_XX",
        "1 unexpected clip(s): 1008_WSI_HAP_XX",
        "per emotion: ANG 1270 (expected 1271), HAP 1272 (expected 1271), NEU 1086 (expected 1087)",
        "7441 clips in all (expected 7442)",
    ]


def test_full_copy_loads_and_a_lost_clip_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(cremad_mod, "check_audio_files", lambda paths: {})  # empty files: a listing only
    audio = touch_tree(tmp_path / "clone" / "AudioWAV", sorted(release_names()))
    utts = load(audio.parent, demographics=False)
    assert len(utts) == 7442 and len({u.speaker for u in utts}) == 91
    assert Counter(u.meta["emotion_code"] for u in utts) == FULL_RELEASE_COUNTS
    (audio / "1050_TSI_FEA_XX.wav").unlink()  # 7441 ≥ 90 % of 7442: checked without being asked
    with pytest.raises(DatasetError) as info:
        load(audio.parent)
    assert str(info.value) == (
        f"CREMA-D at {audio.parent} does not match the full release (7442 clips of 91 actors): 1 clip(s) missing: "
        "1050_TSI_FEA_XX; per emotion: FEA 1270 (expected 1271); 7441 clips in all (expected 7442). Restore the "
        "missing parts, or pass full_release=false (`sertk run -o dataset.full_release=false`, `sertk data summary "
        "-o full_release=false`) to load a partial copy on purpose")
    assert len(load(audio.parent, full_release=False)) == 7441


def test_a_folder_named_like_the_release_is_checked(tmp_path, corpus):
    root = make_cremad_tree(tmp_path, name="CREMA-D-master", actors=["1001"])
    with pytest.raises(DatasetError, match=r"7433 clip\(s\) missing: .*9 clips in all \(expected 7442\)"):
        load(root)
    assert len(load(root, full_release=False)) == 9
    assert len(load(corpus)) == 36  # a miniature under another name is not checked unless asked
    with pytest.raises(DatasetError, match="does not match the full release"):
        load(corpus, full_release=True)


# -- through the command line --------------------------------------------------------------------------------------
def test_data_summary_and_a_leave_one_speaker_out_run(corpus, tmp_path, builtin_host):
    r = CliRunner().invoke(cli, ["data", "summary", "--dataset", "cremad", "--data-root", str(corpus)])
    assert r.exit_code == 0, r.output
    assert "36 utterances · 6 labels · 4 speakers · 4 groups" in r.output
    assert r.output.rstrip().endswith("no problems found")

    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["--no-progress", "run", "--dataset", "cremad", "--data-root", str(corpus),
                                 "--no-plots", "--protocol", "loso-speaker", "--classifier", "logreg",
                                 "--no-save-model", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cremad · handcrafted · logreg · loso-speaker (speaker-independent, 4 fold(s))" in r.output
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == list(LABELS) and report["n_test"] == 36
    assert report["dataset"]["n_speakers"] == 4
