"""The ImageBind featurizer through the command line: `sertk run --featurizer imagebind --weights FILE`, then
`sertk predict` with the saved model, and `sertk embed` — on random weights in the real (extracted) format."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from sertk.cli.main import cli

SPEAKERS = '["s1m", "s1f"]'  # 48 demo utterances keep the encoder's CPU time to seconds
#: the fastest dtype on this CPU: bfloat16 with AMX/AVX512-BF16, float32 where bfloat16 would be emulated (7x slower)
FAST = "featurizer.dtype=auto"


def test_run_predict_and_embed_with_imagebind(random_safetensors, recordings, tmp_path):
    out = tmp_path / "run"
    args = ["--no-progress", "run", "--featurizer", "imagebind", "--weights", str(random_safetensors),
            "--device", "cpu", "-o", FAST, "-o", f"dataset.speakers={SPEAKERS}",
            "--cache-dir", str(tmp_path / "cache"), "--no-plots", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["featurizer"]["name"] == "imagebind" and report["featurizer"]["dim"] == 1024
    from sertk.machine import bf16_is_native

    assert report["featurizer"]["fingerprint"]["dtype"] == ("bfloat16" if bf16_is_native() else "float32")
    assert report["classifier"]["name"] == "nusvm" and report["classifier"]["standardize"] is False
    assert report["dataset"]["n_utterances"] == 48 and report["n_test"] == 10

    # the saved pipeline reproduces the run's predictions (its embeddings now come from the cache)
    import csv

    tested = list(csv.DictReader(open(out / "predictions.csv")))
    demo = {u.id: u.path for u in __import__("sertk_plugins.datasets.demo", fromlist=["x"]).DemoDataset().utterances()}
    files = [str(demo[row["id"]]) for row in tested]
    predicted = CliRunner().invoke(cli, ["predict", str(out / "model"), *files, "--json",
                                         "--weights", str(random_safetensors), "--device", "cpu"],
                                   catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    assert [json.loads(line)["emotion"] for line in predicted.output.splitlines()] == [r["predicted"] for r in tested]

    # sertk embed: the same featurizer, arrays as documented, rows equal the featurizer's own output
    paths = [str(p) for p in list(recordings.values())[:3]]
    npz = tmp_path / "emb.npz"
    embedded = CliRunner().invoke(cli, ["embed", *paths, "--featurizer", "imagebind", "--weights",
                                        str(random_safetensors), "-o", "device=cpu", "--out", str(npz),
                                        "--no-cache"], catch_exceptions=False)
    assert embedded.exit_code == 0, embedded.output
    with np.load(npz, allow_pickle=False) as data:
        assert data["paths"].tolist() == paths
        assert data["embeddings"].dtype == np.float32 and data["embeddings"].shape == (3, 1024)
        from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer

        direct = ImageBindFeaturizer(weights=str(random_safetensors), device="cpu").embed(paths)
        np.testing.assert_array_equal(data["embeddings"], direct)  # exact: same batch, same process


def test_paper_preset_on_miniature_iemocap(random_safetensors, tmp_path):
    """`--preset paper` builds the paper's pipeline (iemocap 4-class, imagebind, nusvm ν = 0.1, sd-random 80/20)
    and its report carries the comparison with the paper's 80.58 %."""
    from iemocap_tree import make_iemocap_tree

    root = make_iemocap_tree(tmp_path)
    out = tmp_path / "paper"
    result = CliRunner().invoke(cli, ["--no-progress", "run", "--preset", "paper", "--data-root", str(root),
                                      "--weights", str(random_safetensors), "--device", "cpu",
                                      "-o", FAST, "--cache-dir", str(tmp_path / "cache"),
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert (report["dataset"]["name"], report["featurizer"]["name"], report["classifier"]["name"]) == (
        "iemocap", "imagebind", "nusvm")
    assert report["classifier"]["options"]["nu"] == 0.1 and report["classifier"]["standardize"] is False
    assert report["protocol"]["name"] == "sd-random" and report["dataset"]["n_speakers"] == 10
    assert report["n_test"] == round(0.2 * report["dataset"]["n_utterances"])
    assert report["paper_comparison"].startswith("The paper reports 80.58 %")
    assert report["paper_comparison"] in (out / "report.md").read_text()
    for name in ("tsne_emotion.png", "tsne_speaker.png", "confusion_matrix.png", "model/model.json"):
        assert (out / name).is_file()
