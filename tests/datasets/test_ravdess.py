"""The ``ravdess`` dataset on miniature trees in the real layout (tests/public_corpora_trees.py)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from public_corpora_trees import make_ravdess_tree, touch_tree

from sertk.cli.main import cli
from sertk.errors import ConfigError, DatasetError
from sertk.plugins import PluginHost, instantiate
from sertk_plugins.datasets import ravdess as ravdess_mod
from sertk_plugins.datasets.ravdess import (
    LABELS,
    RAVDESS,
    check_full_release,
    parse_name,
    release_names,
)

ACTORS = ["Actor_01", "Actor_02", "Actor_03", "Actor_04"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Speech and song of actors 1-4, side by side as the two Zenodo zips unpack (under other names)."""
    return make_ravdess_tree(tmp_path_factory.mktemp("ravdess"), song="song_mini")


def load(root, **options):
    return list(RAVDESS(root=root, **options).utterances())


# -- what the file names say ---------------------------------------------------------------------------------------
def test_every_field_of_the_name(corpus):
    by_id = {u.id: u for u in load(corpus)}
    u = by_id["03-01-06-01-02-01-03"]
    assert u.path == corpus / "speech_mini" / "Actor_03" / "03-01-06-01-02-01-03.wav" and u.path.is_file()
    assert (u.label, u.speaker, u.group) == ("fearful", "Actor_03", "Actor_03")
    assert dict(u.meta) == {"actor": 3, "gender": "M", "vocal_channel": "speech", "emotion_code": "06",
                            "intensity": "normal", "statement": "02", "statement_text": "Dogs are sitting by the door",
                            "repetition": 1, "original_label": "fearful"}
    v = by_id["03-01-07-02-01-02-04"]
    assert (v.label, v.meta["intensity"], v.meta["statement_text"], v.meta["repetition"], v.meta["gender"]) == \
        ("disgust", "strong", "Kids are talking by the door", 2, "F")


def test_speech_only_by_default_with_eight_emotions(corpus):
    utts = load(corpus)
    assert len(utts) == 32 and {u.meta["vocal_channel"] for u in utts} == {"speech"}
    assert Counter(u.label for u in utts) == {label: 4 for label in LABELS}
    assert LABELS == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert Counter(u.speaker for u in utts) == {a: 8 for a in ACTORS}
    assert all(u.group == u.speaker for u in utts)
    assert {u.speaker: u.meta["gender"] for u in utts} == {"Actor_01": "M", "Actor_02": "F", "Actor_03": "M",
                                                           "Actor_04": "F"}


def test_order_is_stable_and_ids_unique(corpus):
    utts = load(corpus, vocal_channel="all")
    ids = [u.id for u in utts]
    assert ids == [u.id for u in load(corpus, vocal_channel="all")] and len(set(ids)) == len(ids) == 56
    assert [u.speaker for u in utts] == sorted(u.speaker for u in utts)  # actor by actor


# -- options -------------------------------------------------------------------------------------------------------
def test_vocal_channel(corpus, tmp_path):
    song = load(corpus, vocal_channel="song")
    assert len(song) == 24 and {u.meta["vocal_channel"] for u in song} == {"song"}
    assert Counter(u.label for u in song) == {"neutral": 4, "calm": 4, "happy": 4, "sad": 4, "angry": 4, "fearful": 4}
    assert all(u.path.parent.parent.name == "song_mini" for u in song)
    assert Counter(u.meta["vocal_channel"] for u in load(corpus, vocal_channel="all")) == {"speech": 32, "song": 24}
    with pytest.raises(ConfigError, match="option vocal_channel='both': expected one of 'speech', 'song', 'all'"):
        RAVDESS(root=corpus, vocal_channel="both")
    speech_only = make_ravdess_tree(tmp_path, name="speech_only")
    with pytest.raises(DatasetError, match=r"no RAVDESS song files under .*speech_only \(32 speech files found\); "
                                           r"the song part is a separate zip \(Audio_Song_Actors_01-24.zip"):
        load(speech_only, vocal_channel="all")
    song_only = make_ravdess_tree(tmp_path, name="song_only", speech=None, song="songs")
    with pytest.raises(DatasetError, match=r"no RAVDESS speech files .*\(24 song files found\); pass the speech "
                                           "release .*or set vocal_channel=song"):
        load(song_only)


def test_intensity(corpus):
    strong = load(corpus, intensity="strong")
    assert Counter(u.label for u in strong) == {"happy": 4, "angry": 4, "disgust": 4}
    normal = load(corpus, intensity="normal")
    assert len(normal) == 20 and {u.meta["intensity"] for u in normal} == {"normal"}
    assert "neutral" in {u.label for u in normal}
    with pytest.raises(ConfigError, match="option intensity='high': expected one of 'all', 'normal', 'strong'"):
        RAVDESS(root=corpus, intensity="high")


def test_classes(corpus):
    four = load(corpus, classes=["angry", "happy", "neutral", "sad"])
    assert Counter(u.label for u in four) == {"angry": 4, "happy": 4, "neutral": 4, "sad": 4}
    merged = load(corpus, classes={"neutral": "neutral", "calm": "neutral", "angry": "angry"})
    assert Counter(u.label for u in merged) == {"neutral": 8, "angry": 4}
    with pytest.raises(ConfigError, match="classes='4class': unknown class set; known: all"):
        RAVDESS(root=corpus, classes="4class")
    with pytest.raises(ConfigError, match="unknown RAVDESS label.*fear; the labels are neutral calm happy"):
        RAVDESS(root=corpus, classes=["fear"])


def test_options_through_the_plugin_host(corpus):
    component = PluginHost(builtins=["sertk_plugins.datasets.ravdess"], load_external=False).get("dataset", "ravdess")
    ds = instantiate(component, {"vocal_channel": "song", "intensity": "strong"}, root=str(corpus))
    assert Counter(u.label for u in ds.utterances()) == {"happy": 4, "angry": 4}
    with pytest.raises(ConfigError, match="has no option 'channel'; its options are: classes, full_release, "
                                          "intensity, missing, vocal_channel"):
        instantiate(component, {"channel": "song"}, root=str(corpus))


# -- where the files are ---------------------------------------------------------------------------------------------
def test_root_variants(corpus, tmp_path):
    assert len(load(corpus / "speech_mini")) == 32  # the release folder itself
    flat = make_ravdess_tree(tmp_path, name="mirror", flat=True)
    # a mirror with Actor_NN folders at the top and the same files again in a nested folder: read once
    nested = make_ravdess_tree(flat, name="audio_speech_actors_01-24")
    assert nested.parent == flat and len(load(flat)) == 32
    with pytest.raises(DatasetError, match="does not exist"):
        RAVDESS(root=tmp_path / "nope")
    with pytest.raises(DatasetError, match="is one actor's folder; pass the folder that holds Actor_01"):
        RAVDESS(root=flat / "Actor_01")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no RAVDESS Actor_NN folders under .*empty: expected folders Actor_01"):
        RAVDESS(root=tmp_path / "empty")
    with pytest.raises(ConfigError, match="needs its files"):
        RAVDESS(root=None)


def test_the_same_file_in_two_copies_is_named(tmp_path):
    root = make_ravdess_tree(tmp_path, actors=(1, 2))
    make_ravdess_tree(root.parent, name=root.name, speech="copy", actors=(2,))
    with pytest.raises(DatasetError, match=r"RAVDESS file 03-01-01-01-01-01-02.wav is there twice: .*/copy/Actor_02/"
                                           r"03-01-01-01-01-01-02.wav and .*/speech_mini/Actor_02/"):
        load(root)


# -- names that do not parse ---------------------------------------------------------------------------------------
def test_bad_names_are_left_out_with_one_warning(tmp_path, caplog):
    extra = {"Actor_01": ["03-01-09-01-01-01-01.wav", "03-01-01-02-01-01-01.wav", "01-01-03-01-01-01-01.wav",
                          "03-01-03-01-01-03-01.wav", "03-01-03-01-01-01-05.wav", "clip.wav"],
             "Actor_02": ["03-01-03-01-01-01-25.wav"]}
    root = make_ravdess_tree(tmp_path, actors=(1, 2), song="song_mini", extra=extra)
    (root / "song_mini" / "Actor_01" / "03-02-07-01-01-01-01.wav").write_bytes(b"RIFF")  # no disgust in song
    ds = RAVDESS(root=root, vocal_channel="all")
    with caplog.at_level(logging.WARNING):
        assert len(list(ds.utterances())) == 28
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [("RAVDESS: leaving out 8 file(s) whose names do not follow its naming scheme (like "
                         "03-01-06-01-02-01-12.wav): 01-01-03-01-01-01-01.wav, 03-01-01-02-01-01-01.wav, "
                         "03-01-03-01-01-01-05.wav, 03-01-03-01-01-01-25.wav, 03-01-03-01-01-03-01.wav and 3 more")]
    reasons = {Path(p).name: why for p, why in ds.skipped.items()}
    assert reasons == {
        "01-01-03-01-01-01-01.wav": "not a RAVDESS audio file name: modality 01 is not audio-only (03)",
        "03-01-01-02-01-01-01.wav": "not a RAVDESS audio file name: neutral has no strong intensity (02)",
        "03-01-03-01-01-01-05.wav": "actor 05 in its name, but it is in Actor_01",
        "03-01-03-01-01-03-01.wav": "not a RAVDESS audio file name: repetition 03 is neither 01 nor 02",
        "03-01-09-01-01-01-01.wav": "not a RAVDESS audio file name: emotion 09 is not a speech emotion (01 to 08)",
        "clip.wav": "not a RAVDESS audio file name: not seven two-digit fields like 03-01-06-01-02-01-12.wav",
        "03-01-03-01-01-01-25.wav": "not a RAVDESS audio file name: actor 25 is not 01 to 24",
        "03-02-07-01-01-01-01.wav": "not a RAVDESS audio file name: emotion 07 is not a song emotion (01 to 06)",
    }
    assert parse_name(Path("03-03-01-01-01-01-01.wav")) == "vocal channel 03 is neither 01 (speech) nor 02 (song)"
    assert parse_name(Path("03-01-02-03-01-01-01.wav")) == "intensity 03 is neither 01 (normal) nor 02 (strong)"
    assert parse_name(Path("03-01-02-01-00-01-01.wav")) == "statement 00 is neither 01 nor 02"


# -- missing and unreadable audio ------------------------------------------------------------------------------------
def test_bad_audio_is_named_or_skipped(tmp_path, caplog):
    root = make_ravdess_tree(tmp_path, actors=(1, 2), missing=["03-01-05-02-01-01-01"],
                             unreadable=["03-01-08-01-02-02-02"])
    with pytest.raises(DatasetError) as info:
        load(root)
    msg = str(info.value)
    assert msg.startswith("dataset 'ravdess': 2 audio file(s) missing or unreadable: ")
    assert f"{root}/speech_mini/Actor_01/03-01-05-02-01-01-01.wav (missing)" in msg
    assert f"{root}/speech_mini/Actor_02/03-01-08-01-02-02-02.wav (unreadable:" in msg
    ds = RAVDESS(root=root, missing="skip")
    with caplog.at_level(logging.WARNING):
        utts = list(ds.utterances())
    assert len(utts) == 14 and sorted(Path(p).stem for p in ds.skipped) == ["03-01-05-02-01-01-01",
                                                                             "03-01-08-01-02-02-02"]
    assert "leaving out 2 audio file(s) that are missing or unreadable" in caplog.text
    assert len(load(root, classes=["happy", "sad"])) == 4  # the bad files are not selected: not checked


# -- the full-release check ------------------------------------------------------------------------------------------
def test_release_listing_follows_the_published_design():
    speech, song = release_names("speech"), release_names("song")
    assert len(speech) == 1440 and len(song) == 1012
    assert Counter(s[-2:] for s in speech) == {f"{a:02d}": 60 for a in range(1, 25)}
    assert Counter(s[-2:] for s in song) == {f"{a:02d}": 44 for a in range(1, 25) if a != 18}
    assert Counter(ravdess_mod.EMOTIONS[s[6:8]] for s in speech) == {"neutral": 96} | {e: 192 for e in LABELS[1:]}
    assert Counter(ravdess_mod.EMOTIONS[s[6:8]] for s in song) == {"neutral": 92} | {
        e: 184 for e in ("calm", "happy", "sad", "angry", "fearful")}
    assert all(not isinstance(parse_name(Path(f"{s}.wav")), str) for s in speech | song)
    assert check_full_release(speech | song, ["speech", "song"]) == []


def test_check_names_every_difference():
    found = release_names("speech") - {"03-01-05-02-01-01-07", "03-01-01-01-02-02-24"}
    found |= {"03-02-01-01-01-01-18"}  # a song file is not looked at when only speech is checked
    assert check_full_release(found, ["speech"]) == [
        "2 speech file(s) missing: 03-01-01-01-02-02-24, 03-01-05-02-01-01-07",
        "1438 speech files in all (expected 1440)",
    ]
    assert check_full_release(found, ["speech", "song"])[2:] == [
        ("1012 song file(s) missing: 03-02-01-01-01-01-01, 03-02-01-01-01-01-02, 03-02-01-01-01-01-03, "
         "03-02-01-01-01-01-04, 03-02-01-01-01-01-05, 03-02-01-01-01-01-06, 03-02-01-01-01-01-07, "
         "03-02-01-01-01-01-08, 03-02-01-01-01-01-09, 03-02-01-01-01-01-10, 03-02-01-01-01-01-11, "
         "03-02-01-01-01-01-12, 03-02-01-01-01-01-13, 03-02-01-01-01-01-14, 03-02-01-01-01-01-15, "
         "03-02-01-01-01-01-16, 03-02-01-01-01-01-17, 03-02-01-01-01-01-19, 03-02-01-01-01-01-20, "
         "03-02-01-01-01-01-21 and 992 more"),
        "1 unexpected song file(s): 03-02-01-01-01-01-18",
        "1 song files in all (expected 1012)",
    ]


def test_full_copy_loads_and_a_lost_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(ravdess_mod, "check_audio_files", lambda paths: {})  # empty files: a listing only
    release = tmp_path / "Audio_Speech_Actors_01-24"
    for stem in release_names("speech"):
        touch_tree(release / f"Actor_{stem[-2:]}", [stem])
    utts = load(tmp_path)
    assert len(utts) == 1440 and Counter(u.speaker for u in utts) == {f"Actor_{a:02d}": 60 for a in range(1, 25)}
    (release / "Actor_07" / "03-01-05-02-01-01-07.wav").unlink()
    with pytest.raises(DatasetError) as info:
        load(tmp_path)
    assert str(info.value) == (
        f"RAVDESS at {tmp_path} does not match the full release (1440 speech files): 1 speech file(s) missing: "
        "03-01-05-02-01-01-07; 1439 speech files in all (expected 1440). Restore the missing parts, or pass "
        "full_release=false (`sertk run -o dataset.full_release=false`, `sertk data summary -o "
        "full_release=false`) to load a partial copy on purpose")
    assert len(load(tmp_path, full_release=False)) == 1439


def test_a_folder_named_like_the_release_is_checked(tmp_path):
    root = make_ravdess_tree(tmp_path, speech="Audio_Speech_Actors_01-24", actors=(1, 2))
    with pytest.raises(DatasetError, match=r"1424 speech file\(s\) missing: .*16 speech files in all \(expected "
                                           r"1440\)\. Restore the missing parts"):
        load(root)
    assert len(load(root, full_release=False)) == 16
    mini = make_ravdess_tree(tmp_path, name="mini", actors=(1,))
    assert len(load(mini)) == 8  # a miniature under another name is not checked unless asked
    with pytest.raises(DatasetError, match="does not match the full release"):
        load(mini, full_release=True)


# -- through the command line --------------------------------------------------------------------------------------
def test_data_summary_and_a_leave_one_speaker_out_run(corpus, tmp_path, builtin_host):
    r = CliRunner().invoke(cli, ["data", "summary", "--dataset", "ravdess", "--data-root", str(corpus),
                                 "-o", "vocal_channel=all"])
    assert r.exit_code == 0, r.output
    assert "56 utterances · 8 labels · 4 speakers · 4 groups" in r.output
    assert r.output.rstrip().endswith("no problems found")

    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["--no-progress", "run", "--dataset", "ravdess", "--data-root", str(corpus),
                                 "--no-plots", "--protocol", "loso-speaker", "--classifier", "logreg",
                                 "--no-save-model", "--out", str(out), "-o",
                                 'dataset.classes=["angry","happy","neutral","sad"]'])
    assert r.exit_code == 0, r.output
    assert "ravdess · handcrafted · logreg · loso-speaker (speaker-independent, 4 fold(s))" in r.output
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["angry", "happy", "neutral", "sad"] and report["n_test"] == 16
    assert report["dataset"]["n_speakers"] == 4 and report["dataset"]["n_groups"] == 4
