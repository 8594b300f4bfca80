"""``sertk compare``: one table of WA, UA and macro-F1 across run folders, the table a paper needs.

Each row is one configuration: runs that differ only in their seed fold into one row with the mean ± standard
deviation over the seeds (sample std, ddof = 1); a row of one run shows its 95 % bootstrap confidence interval
(from its ``report.json``). Rows are grouped by dataset and protocol and ranked only inside a group: numbers from
different corpora or protocols are not comparable (a speaker-dependent split trains on every test speaker), and
the output says which groups differ and how.

``--paper`` puts the paper's own result next to a run in the paper's configuration. Only what sertk can source
is shown: the paper's headline, 80.58 % accuracy for ImageBind + ν-SVM (ν = 0.1) on IEMOCAP 4-class with a random
80/20 split (:data:`sertk.experiment.report.PAPER_ACCURACY`); the paper reports no UA or macro-F1 for it, and the
other rows of its Table 2 are not recorded in sertk.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sertk.errors import ConfigError

__all__ = ["METRICS", "RunSummary", "Row", "Group", "Comparison", "load_runs", "compare", "render"]

#: report key → column title
METRICS: dict[str, str] = {"accuracy": "WA", "unweighted_accuracy": "UA", "macro_f1": "Macro-F1"}
SORT_KEYS: dict[str, str] = {"wa": "accuracy", "ua": "unweighted_accuracy", "f1": "macro_f1"}
FORMATS = ("markdown", "csv", "json")
COMPARE_FORMAT = "sertk-compare/1"
#: run keys that do not change a run's numbers, so runs that differ only in them are the same configuration
_NOT_CONFIGURATION = ("out", "cache", "cache_dir", "plots", "save_model", "batch_size", "executor", "ray_address",
                      "workers", "gpus_per_worker")
PAPER_SOURCE = ("the paper's headline result (ImageBind + nu-SVM, nu = 0.1, RBF; IEMOCAP 4-class, random 80/20 "
                "split), as recorded in sertk.experiment.report.PAPER_ACCURACY; the paper gives no UA or macro-F1 "
                "for it")


@dataclasses.dataclass
class RunSummary:
    """What the table needs from one run folder's ``report.json``."""

    folder: Path
    report: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.report.get("config") or {}

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    def configuration(self) -> str:
        """Everything that determines the numbers except the seed, as a key."""
        data = {k: v for k, v in self.config.items() if k not in _NOT_CONFIGURATION and k != "seed"}
        return json.dumps(data, sort_keys=True, default=str)

    def group(self) -> tuple[str, str]:
        return describe_dataset(self.report), describe_protocol(self.report)


def _component(config: Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    table = config.get(kind) or {}
    return str(table.get("name", "?")), dict(table.get("options") or {})


def _with_options(name: str, options: Mapping[str, Any]) -> str:
    if not options:
        return name
    return f"{name} (" + ", ".join(f"{k}={_value(v)}" for k, v in sorted(options.items())) + ")"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return str(value)


def describe_dataset(report: Mapping[str, Any]) -> str:
    return _with_options(*_component(report.get("config") or {}, "dataset"))


def describe_protocol(report: Mapping[str, Any]) -> str:
    name, options = _component(report.get("config") or {}, "protocol")
    kind = (report.get("protocol") or {}).get("kind")
    text = _with_options(name, options)
    return f"{text}, {kind}" if kind else text


def describe_normalisation(report: Mapping[str, Any]) -> str:
    """The feature normalisation a run used: its report's ``normalization`` mode (none, global, speaker) when it
    has one, else whether the classifier was trained on z-scored features (``standardize``, older reports)."""
    stated = report.get("normalization")
    if isinstance(stated, Mapping) and stated.get("mode"):
        return str(stated["mode"])
    if (report.get("config") or {}).get("normalize"):
        return str(report["config"]["normalize"])
    standardize = (report.get("classifier") or {}).get("standardize")
    if standardize is None:
        return "—"
    return "global" if standardize else "none"


def load_run(folder: str | Path) -> RunSummary:
    """A run folder's report, with an error naming the folder when it is not a finished run's."""
    folder = Path(folder)
    if not folder.exists():
        raise ConfigError(f"{folder} does not exist; give run folders written by sertk run or sertk sweep")
    if not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a run folder; give the folder that holds report.json")
    path = folder / "report.json"
    if not path.is_file():
        from sertk.experiment.outputs import RECORD

        if (folder / RECORD).is_file():
            raise ConfigError(f"{folder} holds an unfinished run (no report.json): run it again, or leave it out")
        raise ConfigError(f"{folder} is not a sertk run folder (no report.json); give folders written by "
                          f"sertk run or sertk sweep")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable report ({exc}); run it again") from None
    missing = [k for k in (*METRICS, "config", "protocol") if not isinstance(report, dict) or k not in report]
    if missing:
        raise ConfigError(f"{path} is not a sertk run report (it lacks {', '.join(missing)})")
    return RunSummary(folder, report)


def load_runs(folders: Iterable[str | Path]) -> list[RunSummary]:
    """Reports of run folders; a sweep folder (with ``sweep.json``) stands for its finished runs."""
    from sertk.experiment.sweep import MANIFEST

    runs: list[RunSummary] = []
    for folder in map(Path, folders):
        manifest = folder / MANIFEST
        if folder.is_dir() and not (folder / "report.json").exists() and manifest.is_file():
            try:
                entries = json.loads(manifest.read_text(encoding="utf-8"))["runs"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{manifest} is not a readable sweep manifest ({exc})") from None
            done = [folder / e["folder"] for e in entries if e.get("status") in ("finished", "earlier")]
            if not done:
                raise ConfigError(f"sweep folder {folder} has no finished run yet")
            runs += [load_run(run) for run in done]
        else:
            runs.append(load_run(folder))
    if not runs:
        raise ConfigError("no run folders given")
    return runs


# -- the table ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One configuration: one run, or its repeats over seeds. ``values[metric]`` is the run's number or the mean
    over seeds; ``std`` is set for repeats, ``ci`` (95 % bootstrap, lower and upper) for a single run."""

    dataset: str
    protocol: str
    featurizer: str
    classifier: str
    normalisation: str
    folders: list[str]
    seeds: list[Any]
    values: dict[str, float | None]
    std: dict[str, float] | None = None
    ci: dict[str, list[float]] | None = None
    rank: int | None = None
    source: str = "run"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class Group:
    dataset: str
    protocol: str
    rows: list[Row]


@dataclasses.dataclass
class Comparison:
    groups: list[Group]
    sort: str
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"format": COMPARE_FORMAT, "sort": self.sort, "notes": self.notes,
                "groups": [{"dataset": g.dataset, "protocol": g.protocol, "rows": [r.to_dict() for r in g.rows]}
                           for g in self.groups]}


def _row(runs: Sequence[RunSummary]) -> Row:
    first = runs[0]
    featurizer = _with_options(*_component(first.config, "featurizer"))
    classifier = _with_options(*_component(first.config, "classifier"))
    values: dict[str, float | None] = {}
    std: dict[str, float] | None = None
    ci = None
    if len(runs) == 1:
        values = {m: float(first.report[m]) for m in METRICS}
        intervals = first.report.get("confidence_intervals") or {}
        ci = {m: [float(x) for x in intervals[m]] for m in METRICS if m in intervals} or None
    else:
        std = {}
        for m in METRICS:
            xs = [float(r.report[m]) for r in runs]
            mean = sum(xs) / len(xs)
            values[m] = mean
            std[m] = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    seeds = sorted((r.seed for r in runs), key=lambda s: (s is None, s))
    return Row(first.group()[0], first.group()[1], featurizer, classifier, describe_normalisation(first.report),
               [str(r.folder) for r in runs], seeds, values, std, ci)


def _paper_row(template: Row) -> Row:
    from sertk.experiment.report import PAPER_ACCURACY

    return Row(template.dataset, template.protocol, "imagebind (the paper)", "nusvm (kernel=rbf, nu=0.1)", "—",
               [], [], {"accuracy": PAPER_ACCURACY, "unweighted_accuracy": None, "macro_f1": None},
               source=f"paper: {PAPER_SOURCE}")


def _is_paper_run(run: RunSummary) -> bool:
    from sertk.experiment.config import RunConfig, is_paper_configuration

    try:
        return is_paper_configuration(RunConfig.from_dict(run.config, source=str(run.folder)))
    except ConfigError:
        return False


def compare(runs: Sequence[RunSummary], *, sort: str = "ua", paper: bool = False) -> Comparison:
    """Fold seeds into rows, group rows by dataset and protocol, rank each group by ``sort`` (wa, ua, f1)."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"unknown sort key {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    metric = SORT_KEYS[sort]
    configurations: dict[str, list[RunSummary]] = {}
    for run in runs:
        configurations.setdefault(run.configuration(), []).append(run)
    notes = []
    duplicates = [members for members in configurations.values()
                  if len({m.seed for m in members}) < len(members)]
    for members in duplicates:
        notes.append("the same configuration and seed appear more than once: "
                     + ", ".join(str(m.folder) for m in members) + " (folded into one row all the same)")
    grouped: dict[tuple[str, str], list[Row]] = {}
    paper_groups: set[tuple[str, str]] = set()
    for members in configurations.values():
        row = _row(members)
        grouped.setdefault((row.dataset, row.protocol), []).append(row)
        if paper and any(_is_paper_run(m) for m in members):
            paper_groups.add((row.dataset, row.protocol))
    groups = []
    for (dataset, protocol), rows in grouped.items():
        rows.sort(key=lambda r: (-(r.values[metric] or 0.0), r.featurizer, r.classifier, r.folders))
        for row in rows:  # equal numbers share a rank (1, 1, 3)
            row.rank = 1 + sum((other.values[metric] or 0.0) > (row.values[metric] or 0.0) for other in rows)
        if (dataset, protocol) in paper_groups:
            rows.append(_paper_row(rows[0]))
        groups.append(Group(dataset, protocol, rows))
    groups.sort(key=lambda g: (g.dataset, g.protocol))
    if len(groups) > 1:
        notes.insert(0, _why_grouped(groups))
    if paper and not paper_groups:
        notes.append("--paper: no run is in the paper's configuration (iemocap 4-class, imagebind, nusvm nu=0.1 "
                     "rbf, sd-random test_size=0.2), so the paper's row is not shown: it is only comparable there")
    elif paper:
        notes.append(f"paper row: {PAPER_SOURCE}")
    if any(r.std for g in groups for r in g.rows):
        notes.append("mean ± std: over the seeds of one configuration (sample standard deviation, ddof = 1)")
    if any(r.ci for g in groups for r in g.rows):
        notes.append("[low, high]: the run's 95 % bootstrap confidence interval over its test utterances")
    return Comparison(groups, sort, notes)


def _why_grouped(groups: Sequence[Group]) -> str:
    datasets = sorted({g.dataset for g in groups})
    protocols = sorted({g.protocol for g in groups})
    differ = []
    if len(datasets) > 1:
        differ.append("datasets (" + "; ".join(datasets) + ")")
    if len(protocols) > 1:
        differ.append("protocols (" + "; ".join(protocols) + ")")
    return (f"{len(groups)} groups, ranked separately: the runs use different " + " and ".join(differ)
            + ", and numbers from different datasets or protocols are not comparable (a speaker-dependent split "
              "has the test speakers in training; a speaker-independent one does not)")


# -- rendering ------------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _cell(row: Row, metric: str) -> str:
    value = row.values.get(metric)
    if value is None:
        return "—"
    if row.std is not None:
        return f"{_pct(value)} ± {_pct(row.std[metric])}"
    if row.ci and metric in row.ci:
        low, high = row.ci[metric]
        return f"{_pct(value)} [{_pct(low)}, {_pct(high)}]"
    return _pct(value)


def _runs_cell(row: Row) -> str:
    if row.source != "run":
        return "paper"
    if len(row.folders) == 1:
        return f"{Path(row.folders[0]).name} (seed {row.seeds[0]})"
    return f"{len(row.folders)} runs, seeds {', '.join(map(str, row.seeds))}"


def render_markdown(comparison: Comparison) -> str:
    sort_title = METRICS[SORT_KEYS[comparison.sort]]
    lines = ["# sertk comparison", ""]
    lines += [f"- {note}" for note in comparison.notes]
    for group in comparison.groups:
        lines += ["", f"## {group.dataset} · {group.protocol}", "", f"Ranked by {sort_title} (%).", "",
                  "| # | Featurizer | Classifier | Normalisation | WA (%) | UA (%) | Macro-F1 (%) | Runs |",
                  "|---:|---|---|---|---|---|---|---|"]
        for row in group.rows:
            rank = str(row.rank) if row.rank is not None else "—"
            lines.append(f"| {rank} | {row.featurizer} | {row.classifier} | {row.normalisation} | "
                         + " | ".join(_cell(row, m) for m in METRICS) + f" | {_runs_cell(row)} |")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("dataset", "protocol", "rank", "featurizer", "classifier", "normalisation", "n_runs", "seeds",
               *(f"{m}{suffix}" for m in METRICS for suffix in ("", "_std", "_ci_low", "_ci_high")), "source",
               "folders")


def render_csv(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for group in comparison.groups:
        for row in group.rows:
            numbers: list[float | None] = []
            for m in METRICS:
                low, high = (row.ci or {}).get(m) or (None, None)
                numbers += [row.values.get(m), (row.std or {}).get(m), low, high]
            writer.writerow([row.dataset, row.protocol, row.rank, row.featurizer, row.classifier, row.normalisation,
                             len(row.folders), " ".join(map(str, row.seeds)),
                             *("" if v is None else repr(v) for v in numbers), row.source, ";".join(row.folders)])
    return buffer.getvalue()


def render(comparison: Comparison, fmt: str = "markdown") -> str:
    if fmt == "markdown":
        return render_markdown(comparison)
    if fmt == "csv":
        return render_csv(comparison)
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2) + "\n"
    raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
