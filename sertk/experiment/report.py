"""Reports of a run, written atomically into the output folder.

- ``report.json`` — every number, the protocol, the featurizer fingerprint and the resolved configuration.
- ``report.md`` — a table laid out like the paper's Table 1 (precision / recall / F1 per emotion, averages,
  overall accuracy) plus UA, per fold when there are several.
- ``confusion_matrix.png`` — raw counts and row-normalised rates (drawn by :mod:`sertk.experiment.plots`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sertk.atomic import atomic_write_text
from sertk.experiment.plots import plot_confusion

#: the paper's headline: IEMOCAP 4-class, ImageBind + ν-SVM (ν = 0.1), random 80/20 split
PAPER_ACCURACY = 0.8058

REPORT_KEYS = ("labels", "accuracy", "unweighted_accuracy", "macro_f1", "per_class", "confusion_matrix",
               "n_train", "n_test", "config")


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def metrics_table(metrics: Mapping[str, Any], labels: list[str]) -> list[str]:
    """The paper's Table 1 layout: one row per emotion, then averages and accuracy."""
    lines = ["| Emotion | Precision (%) | Recall (%) | F1-score (%) | Support |",
             "|---|---:|---:|---:|---:|"]
    per_class = metrics["per_class"]
    for label in labels:
        c = per_class[label]
        lines.append(f"| {label} | {_pct(c['precision'])} | {_pct(c['recall'])} | {_pct(c['f1'])} | {c['support']} |")
    n = sum(per_class[label]["support"] for label in labels)
    lines.append(f"| Macro avg | {_pct(metrics['macro_precision'])} | {_pct(metrics['unweighted_accuracy'])} | "
                 f"{_pct(metrics['macro_f1'])} | {n} |")
    lines.append(f"| Weighted avg | {_pct(metrics['weighted_precision'])} | {_pct(metrics['weighted_recall'])} | "
                 f"{_pct(metrics['weighted_f1'])} | {n} |")
    lines.append("")
    lines.append(f"Accuracy (WA): **{_pct(metrics['accuracy'])} %** · Unweighted accuracy (UA, mean recall): "
                 f"**{_pct(metrics['unweighted_accuracy'])} %** · Macro-F1: {_pct(metrics['macro_f1'])} %")
    return lines


def _options(options: Mapping[str, Any] | None) -> str:
    """``k=v, …`` with nested values (a composite's parts) as compact JSON; ``defaults`` when there are none."""
    if not options:
        return "defaults"
    return ", ".join(f"{k}={v if isinstance(v, (str, int, float)) else json.dumps(v, separators=(',', ':'))}"
                     for k, v in options.items())


def setup_lines(report: Mapping[str, Any]) -> list[str]:
    """What the numbers were made with, so runs can be compared: featurizer with its options and fingerprint,
    normalisation (and whether test-speaker statistics were used), classifier with its options."""
    featurizer, classifier = report["featurizer"], report["classifier"]
    key = featurizer.get("fingerprint_key")
    lines = [f"- Featurizer: **{featurizer['name']}** ({_options(featurizer.get('options'))}); "
             f"{featurizer.get('dim', '?')}-d" + (f"; fingerprint `{key[:12]}`" if key else "")]
    normalization = report.get("normalization")
    if normalization:
        mode = normalization["mode"]
        chosen = " (the featurizer's default)" if normalization.get("source") == "featurizer default" else ""
        line = f"- Normalisation: **{mode}**{chosen}: {normalization['statistics']}."
        if normalization.get("uses_test_speaker_statistics"):
            line += (" **Test-speaker statistics were used**: each test speaker's features were z-scored with "
                     "statistics of its test utterances (their features, never their labels).")
        lines.append(line)
        if normalization.get("block_scaling"):
            blocks = ", ".join(f"{label} {size}" for label, size in normalization["blocks"])
            lines.append(f"- Block scaling: after z-scoring, each block of the features ({blocks}) was multiplied "
                         f"by 1/sqrt(its dimension), so every block carries the same total variance.")
    lines.append(f"- Classifier: **{classifier['name']}** ({_options(classifier.get('options'))})")
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    labels = report["labels"]
    protocol = report["protocol"]
    lines = [f"# sertk report: {report['dataset']['name']} · {report['featurizer']['name']} · "
             f"{report['classifier']['name']}", ""]
    lines.append(f"- Protocol: **{protocol['name']}** ({protocol['kind']}), {protocol['n_folds']} fold(s); "
                 f"numbers from different protocols are not comparable.")
    lines += setup_lines(report)
    lines.append(f"- Utterances: {report['dataset']['n_utterances']} "
                 f"({report['dataset']['n_speakers']} speakers, {len(labels)} classes: {', '.join(labels)})")
    lines.append(f"- Test predictions: {report['n_test']}; training samples (summed over folds): {report['n_train']}")
    lines.append(f"- Seed: {report['config'].get('seed')}; sertk {report['sertk_version']}")
    if report.get("paper_comparison"):
        lines.append(f"- {report['paper_comparison']}")
    lines.append("")
    title = "Results" if protocol["n_folds"] == 1 else "Results pooled over all folds"
    lines += [f"## {title}", ""] + metrics_table(report, labels)
    ci = report.get("confidence_intervals")
    if ci:
        lines.append("")
        lines.append("95 % bootstrap confidence intervals over test utterances: " + "; ".join(
            f"{name} [{_pct(lo)}, {_pct(hi)}]" for name, (lo, hi) in ci.items()))
    summary = report.get("fold_summary")
    if summary:
        lines += ["", "## Per fold", "", "| Fold | n_test | WA (%) | UA (%) | Macro-F1 (%) |",
                  "|---|---:|---:|---:|---:|"]
        for fold in report["folds"]:
            lines.append(f"| {fold['name']} | {fold['n_test']} | {_pct(fold['accuracy'])} | "
                         f"{_pct(fold['unweighted_accuracy'])} | {_pct(fold['macro_f1'])} |")
        lines.append("| mean ± std | | " + " | ".join(
            f"{_pct(summary[k]['mean'])} ± {_pct(summary[k]['std'])}"
            for k in ("accuracy", "unweighted_accuracy", "macro_f1")) + " |")
    for key, title in (("per_speaker", "speaker"), ("per_group", "group")):
        table = report.get(key)
        if not table or (key == "per_group" and list(table) == list(report.get("per_speaker") or {})):
            continue  # groups that are the speakers would repeat the table above
        accuracies = [row["accuracy"] for row in table.values()]
        lines += ["", f"## Per {title} (test predictions pooled over folds)", "",
                  f"WA ranges from {_pct(min(accuracies))} to {_pct(max(accuracies))} % over {len(table)} "
                  f"{title}s.", "", f"| {title.capitalize()} | n_test | WA (%) | UA (%) |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {row['n']} | {_pct(row['accuracy'])} | {_pct(row['unweighted_accuracy'])} |"
                  for name, row in table.items()]
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
              "| | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: Mapping[str, Any]) -> dict[str, Path]:
    """Write report.json, report.md and confusion_matrix.png; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "confusion": out / "confusion_matrix.png"}
    plot_confusion(paths["confusion"], report["confusion_matrix"], report["labels"],
                   f"{report['dataset']['name']} · {report['protocol']['name']} · "
                   f"WA {_pct(report['accuracy'])}% UA {_pct(report['unweighted_accuracy'])}%")
    atomic_write_text(paths["markdown"], render_markdown(report))
    write_json(paths["json"], report)  # last: its presence means the run finished
    return paths
