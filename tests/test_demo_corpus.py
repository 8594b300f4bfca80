"""The packaged demo corpus and the ``demo`` dataset plugin; the corpus script's determinism."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
from tolerances import DEMO_SAMPLES, assert_close

import sertk
from sertk.errors import ConfigError, DatasetError
from sertk_plugins.datasets import demo
from sertk_plugins.datasets.demo import DemoDataset, packaged_corpus_dir

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_demo_corpus.py"
MAX_BYTES = 5_000_000


@pytest.fixture(scope="module")
def utterances() -> list[sertk.Utterance]:
    return list(DemoDataset().utterances())


def load_script():
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} is not here (not a source checkout)")
    if "make_demo_corpus" not in sys.modules:
        spec = importlib.util.spec_from_file_location("make_demo_corpus", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_demo_corpus"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["make_demo_corpus"]


def test_packaged_corpus_shape(utterances):
    labels = Counter(u.label for u in utterances)
    speakers = Counter(u.speaker for u in utterances)
    assert sorted(labels) == ["ang", "hap", "neu", "sad"]
    assert len(speakers) >= 4
    assert len(set(labels.values())) == 1 and len(set(speakers.values())) == 1  # balanced
    assert len({u.id for u in utterances}) == len(utterances)
    assert [u.id for u in utterances] == sorted(u.id for u in utterances)
    # a session holds two speakers and each speaker is in one session
    groups: dict[str, set[str]] = {}
    for u in utterances:
        groups.setdefault(u.speaker, set()).add(u.group)
    assert all(len(g) == 1 for g in groups.values())
    assert len({u.group for u in utterances}) == len(speakers) // 2
    assert all(u.meta["text"] for u in utterances)


def test_every_file_decodes_at_16k(utterances):
    import soundfile as sf

    for u in utterances:
        info = sf.info(str(u.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), u.path
        assert 0.5 < info.duration < 4.0, u.path


def test_size_within_budget():
    corpus = packaged_corpus_dir()
    total = sum(p.stat().st_size for p in corpus.iterdir() if p.is_file())
    assert total <= MAX_BYTES, f"demo corpus is {total / 1e6:.2f} MB"
    readme = (corpus / "README.md").read_text(encoding="utf-8")
    assert "not an emotion benchmark" in readme and "espeak-ng:" in readme


def test_registered_by_hookimpl():
    seen = []
    demo.sertk_register_datasets(register=seen.append)
    assert seen == [DemoDataset]
    assert DemoDataset.requires_root is False and isinstance(DemoDataset(), sertk.contracts.DatasetLike)


def test_subsets(utterances):
    some = list(DemoDataset(labels="ang, sad", speakers=["s1m"]).utterances())
    assert {u.label for u in some} == {"ang", "sad"} and {u.speaker for u in some} == {"s1m"}
    assert len(some) == sum(u.label in ("ang", "sad") and u.speaker == "s1m" for u in utterances)
    with pytest.raises(ConfigError, match="'fear'"):
        list(DemoDataset(labels=["fear"]).utterances())
    with pytest.raises(ConfigError):
        DemoDataset(labels=[])


def test_root_copy_and_broken_roots(tmp_path):
    src = packaged_corpus_dir()
    root = tmp_path / "copy"
    root.mkdir()
    rows = (src / "manifest.csv").read_text(encoding="utf-8").splitlines()[:5]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for row in rows[1:]:
        name = row.split(",")[1]
        shutil.copy(src / name, root / name)
    utts = list(DemoDataset(root=root).utterances())
    assert len(utts) == 4 and all(u.path.parent == root for u in utts)

    victim = root / rows[2].split(",")[1]
    victim.unlink()
    with pytest.raises(DatasetError, match=victim.name):
        list(DemoDataset(root=root).utterances())

    (root / "manifest.csv").unlink()
    with pytest.raises(DatasetError, match="manifest.csv"):
        list(DemoDataset(root=root).utterances())
    with pytest.raises(DatasetError, match="does not exist"):
        list(DemoDataset(root=tmp_path / "nowhere").utterances())

    (root / "manifest.csv").write_text("id,file,label\nx,x.flac,ang\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="speaker"):
        list(DemoDataset(root=root).utterances())
    (root / "manifest.csv").write_text(
        "id,file,label,speaker,group,text\na,a.flac,ang,s,g,t\na,b.flac,sad,s,g,t\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="manifest.csv:3.*'a'"):
        list(DemoDataset(root=root).utterances())


def test_manifest_matches_script_plan(utterances):
    script = load_script()
    plan = script.plan()
    assert [(s.id, s.label, s.speaker, s.group, s.text) for s in plan] == [
        (u.id, u.label, u.speaker, u.group, u.meta["text"]) for u in utterances
    ]
    assert (packaged_corpus_dir() / "manifest.csv").read_text(encoding="utf-8") == script.manifest_text(plan)


@pytest.mark.golden
def test_script_reproduces_packaged_samples(utterances):
    import soundfile as sf

    script = load_script()
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    readme = (packaged_corpus_dir() / "README.md").read_text(encoding="utf-8")
    made_with = {k: v for k, v in script.toolchain().items() if f"- {k}: {v}\n" not in readme}
    if made_with:
        pytest.skip(f"the corpus was made with other tool versions than these ({made_with}); "
                    "bit-exact samples are promised only for the same versions")
    specs = {s.id: s for s in script.plan()}
    for uid in ("s1m_ang_00", "s2f_sad_03", "s3m_hap_05"):
        packaged, rate = sf.read(str(packaged_corpus_dir() / specs[uid].file), dtype="int16")
        assert rate == script.SAMPLE_RATE
        assert_close(script.render(specs[uid]), packaged, DEMO_SAMPLES, what=uid, err_msg=uid)
