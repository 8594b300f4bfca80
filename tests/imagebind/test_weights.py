"""Weights files: download (against a local HTTP server on 127.0.0.1), extraction, inspection, safe loading."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner
from range_server import serve

from sertk.errors import FeaturizerError
from sertk_plugins.featurizers.imagebind import weights as W
from sertk_plugins.featurizers.imagebind.commands import weights_group

PAYLOAD = np.random.default_rng(7).bytes(300_000)


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "served") as srv:
        (srv.root / "imagebind_huge.pth").write_bytes(PAYLOAD)
        yield srv


def _url(srv, name="imagebind_huge.pth"):
    return srv.url(name)


def test_download_resumes_after_an_interrupted_transfer(server, tmp_path):
    server.mode = "cut"
    dest = tmp_path / "w" / "imagebind_huge.pth"
    with pytest.raises(FeaturizerError, match="again to resume"):
        W.download(_url(server), dest, timeout=10)
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    got = part.stat().st_size

    path = W.download(_url(server), dest, timeout=10)
    assert path == dest and dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.ranges == [None, f"bytes={got}-"]
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    record = json.loads(dest.with_name(dest.name + ".sha256.json").read_text())
    assert record["size"] == len(PAYLOAD) and record["sha256"] == digest and record["url"] == _url(server)
    assert W.file_digest(dest) == digest  # seeded by the download: not recomputed

    W.download(_url(server), dest, timeout=10)  # complete: no new request
    assert len(server.requests) == 2


def test_download_starts_over_when_the_server_ignores_ranges(server, tmp_path):
    server.mode = "norange"
    dest = tmp_path / "imagebind_huge.pth"
    dest.with_name(dest.name + ".part").write_bytes(b"stale bytes from another file")
    W.download(_url(server), dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), timeout=10)
    assert dest.read_bytes() == PAYLOAD and server.ranges == ["bytes=29-"]


def test_download_of_a_complete_part_file_just_finishes(server, tmp_path):
    dest = tmp_path / "imagebind_huge.pth"
    dest.with_name(dest.name + ".part").write_bytes(PAYLOAD)
    W.download(_url(server), dest, timeout=10)
    assert dest.read_bytes() == PAYLOAD and server.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_download_errors(server, tmp_path):
    with pytest.raises(FeaturizerError, match="404"):
        W.download(_url(server, "missing.pth"), tmp_path / "a.pth", timeout=10)
    with pytest.raises(FeaturizerError, match="does not match"):
        W.download(_url(server), tmp_path / "b.pth", sha256="0" * 64, timeout=10)
    assert not (tmp_path / "b.pth").exists() and not (tmp_path / "b.pth.part").exists()


def test_download_default_destination_is_sertk_home(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SERTK_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(weights_group, ["download", "--url", _url(server)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "weights" / "imagebind_huge.pth").read_bytes() == PAYLOAD


def test_extract_and_info(random_pth, random_safetensors):
    from safetensors import safe_open

    with safe_open(str(random_safetensors), framework="pt") as fh:
        assert set(fh.keys()) == set(W.AUDIO_SHAPES)
        assert fh.metadata()["source"] == random_pth.name
    assert 340e6 < random_safetensors.stat().st_size < 350e6

    runner = CliRunner()
    full = runner.invoke(weights_group, ["info", str(random_pth)])
    assert full.exit_code == 0, full.output
    assert "ImageBind audio weights: complete" in full.output and "vision (2 tensors)" in full.output
    slim = json.loads(runner.invoke(weights_group, ["info", "--json", str(random_safetensors)]).output)
    assert slim["format"] == "safetensors" and slim["tensors"] == 177 and slim["audio_complete"]
    assert slim["parameters"] == 86_235_649 and slim["modalities"] == {"audio": 177}


def test_extract_audio_cli(random_pth, tmp_path):
    out = tmp_path / "a.safetensors"
    result = CliRunner().invoke(weights_group, ["extract-audio", str(random_pth), str(out)])
    assert result.exit_code == 0, result.output
    sd = W.load_audio_state_dict(out)
    ref = W.random_audio_state_dict(0)
    assert all((sd[k] == ref[k]).all() for k in W.AUDIO_SHAPES)


def test_loading_refuses_pickled_objects_and_wrong_tensors(tmp_path):
    import torch

    evil = tmp_path / "evil.pth"
    torch.save({"x": _Arbitrary()}, evil)
    with pytest.raises(FeaturizerError, match="only tensors"):
        W.load_audio_state_dict(evil)

    sd = W.random_audio_state_dict(1)
    key = "modality_heads.audio.2.weight"
    wrong = dict(sd, **{key: torch.zeros(1024, 512)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(FeaturizerError, match="expected"):
        W.load_audio_state_dict(tmp_path / "wrong.pth")
    del sd[key]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(FeaturizerError, match="lacks 1 of the 177"):
        W.load_audio_state_dict(tmp_path / "partial.pth")
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(FeaturizerError, match="neither"):
        W.load_audio_state_dict(tmp_path / "junk.bin")


class _Arbitrary:
    pass


def test_random_weights_are_deterministic(golden_info):
    a = W.random_audio_state_dict(0)
    b = W.random_audio_state_dict(0, other_modalities=True)
    assert set(b) - set(a) == set(W.OTHER_SHAPES)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert float(a["modality_postprocessors.audio.1.log_logit_scale"].exp()) == pytest.approx(20.0)
    # the golden embeddings were made with exactly these numbers
    assert W.tensors_digest(a) == golden_info["weights_tensors_sha256"]
    assert W.tensors_digest(W.random_audio_state_dict(1)) != golden_info["weights_tensors_sha256"]
