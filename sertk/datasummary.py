"""What a dataset holds and what is wrong with it: the logic behind ``sertk data summary``.

:func:`summarize_dataset` loads a registered dataset by name and returns a :class:`DataSummary`: counts per label,
speaker and group (and label × group, label × speaker), plus the problems that would spoil an experiment — audio
files that are missing or unreadable, a speaker in several groups (a leave-one-group-out split would then put the
speaker on both sides), classes with fewer than two utterances, duplicate ids or files.
:func:`summarize_utterances` does the same for any list of :class:`~sertk.contracts.Utterance`.

The audio checks are shared with the datasets: :func:`check_audio_files` finds missing or unreadable files and
:func:`handle_bad_audio` applies a dataset's ``missing="error"|"skip"`` option (raise a
:class:`~sertk.errors.DatasetError` naming them, or leave them out with a warning that names them). A dataset that
leaves files out records them in its ``skipped`` attribute (path → reason), which the summary reports.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sertk.contracts import Utterance
from sertk.errors import ConfigError, DatasetError

__all__ = [
    "MISSING_POLICIES",
    "DataSummary",
    "Problem",
    "check_audio_files",
    "handle_bad_audio",
    "validate_missing_policy",
    "summarize_utterances",
    "summarize_dataset",
]

logger = logging.getLogger(__name__)

#: the values of a dataset's ``missing`` option
MISSING_POLICIES = ("error", "skip")
#: how many file names an error message or warning spells out before it says "and N more"
LIST_LIMIT = 20
_WAV_HEADER_BYTES = 44


# -- audio checks shared with the datasets ---------------------------------------------------------------------
def audio_problem(path: Path, *, read_header: bool = True) -> str | None:
    """Why ``path`` cannot be used as audio (``"missing"``, ``"empty file"``, ``"unreadable: …"``), or ``None``.

    With ``read_header`` the file's header is parsed by :mod:`soundfile` (about 30 µs a file); without, only its
    existence and size are checked.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if not path.is_file():
        return "not a file"
    if st.st_size == 0:
        return "empty file"
    if not read_header:
        return None
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types; each means "cannot decode"
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        text = re.sub(r"^Error opening (['\"]).*\1: ", "", text)  # soundfile repeats the path
        return f"unreadable: {text}"
    if info.frames <= 0:
        return "no audio samples"
    return None


def check_audio_files(paths: Iterable[Path], *, read_header: bool = True) -> dict[Path, str]:
    """The files among ``paths`` that are missing or cannot be decoded, each with the reason (in input order)."""
    from sertk.progress import progress

    paths = list(paths)
    problems: dict[Path, str] = {}
    for path in progress(paths, total=len(paths), desc="checking audio", unit="file"):
        reason = audio_problem(Path(path), read_header=read_header)
        if reason is not None:
            problems[Path(path)] = reason
    return problems


def validate_missing_policy(value: Any) -> str:
    """Check a dataset's ``missing`` option: ``"error"`` (the default everywhere) or ``"skip"``."""
    if value not in MISSING_POLICIES:
        raise ConfigError(f"option missing={value!r}: expected one of {', '.join(map(repr, MISSING_POLICIES))}")
    return str(value)


def format_file_list(problems: Mapping[Any, str], limit: int = LIST_LIMIT) -> str:
    """``"a.wav (missing), b.wav (empty file) and 3 more"``."""
    items = [f"{path} ({reason})" for path, reason in problems.items()]
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text


def handle_bad_audio(
    problems: Mapping[Any, str],
    missing: str,
    *,
    dataset: str,
    log: logging.Logger | None = None,
) -> None:
    """Apply a dataset's ``missing`` policy to the files :func:`check_audio_files` found.

    ``missing="error"`` raises a :class:`DatasetError` that names the files (the first :data:`LIST_LIMIT`, then a
    count) and says how to skip them; ``"skip"`` logs a warning naming them (the full list at debug level).
    """
    if not problems:
        return
    n = len(problems)
    listing = format_file_list(problems)
    if missing == "error":
        raise DatasetError(
            f"dataset {dataset!r}: {n} audio file(s) missing or unreadable: {listing}; restore them, or pass "
            f"missing=\"skip\" (`sertk run -o dataset.missing=skip`, `sertk data summary -o missing=skip`) "
            f"to leave them out"
        )
    log = log or logger
    log.warning("dataset %r: leaving out %d audio file(s) that are missing or unreadable (missing=\"skip\"): %s",
                dataset, n, listing)
    if n > LIST_LIMIT:
        log.debug("all %d left out: %s", n, format_file_list(problems, limit=n))


# -- the summary ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Problem:
    """One kind of trouble: ``kind`` is a stable slug, ``items`` the things it concerns (files, speakers, …)."""

    kind: str
    message: str
    items: tuple[str, ...] = ()


@dataclasses.dataclass
class DataSummary:
    """Counts and problems of one dataset; :meth:`to_dict` is the ``--json`` output."""

    dataset: str
    root: str | None
    options: dict[str, Any]
    n_utterances: int
    labels: dict[str, int]
    speakers: dict[str, int]
    groups: dict[str, int]
    #: group → label → count (every label present in each row, zeros included)
    label_by_group: dict[str, dict[str, int]]
    #: speaker → label → count
    label_by_speaker: dict[str, dict[str, int]]
    #: speaker → the groups it occurs in
    speaker_groups: dict[str, list[str]]
    problems: list[Problem]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def ok(self) -> bool:
        return not self.problems


def _crosstab(rows: Sequence[str], cols: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, int]]:
    counts = Counter(zip(rows, cols))
    return {r: {k: counts[(r, k)] for k in keys} for r in sorted(set(rows))}


def summarize_utterances(
    utterances: Iterable[Utterance],
    *,
    dataset: str = "",
    root: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    skipped: Mapping[Any, str] | None = None,
    check_audio: bool = True,
    min_per_class: int = 2,
) -> DataSummary:
    """Count ``utterances`` per label, speaker and group and list the problems found.

    Parameters
    ----------
    skipped
        Files the dataset already left out (path → reason); reported as a problem.
    check_audio
        Check that every utterance's file exists and its header decodes (:func:`check_audio_files`).
    min_per_class
        Classes with fewer utterances are reported (a stratified split needs at least two).
    """
    utts = list(utterances)
    labels = [u.label for u in utts]
    speakers = [u.speaker for u in utts]
    groups = [u.group for u in utts]
    label_counts = Counter(labels)
    label_keys = sorted(label_counts)
    problems: list[Problem] = []

    if not utts:
        problems.append(Problem("empty", "the dataset yielded no utterances; check the root folder and the options"))

    bad: dict[str, str] = {str(k): v for k, v in (skipped or {}).items()}
    if check_audio and utts:
        bad.update({str(k): v for k, v in check_audio_files(u.path for u in utts).items()})
    if bad:
        verb = "left out or unusable" if skipped else "missing or unreadable"
        problems.append(Problem("bad-audio", f"{len(bad)} audio file(s) {verb}: {format_file_list(bad)}",
                                tuple(f"{k}: {v}" for k, v in bad.items())))

    for what, values in (("id", [u.id for u in utts]), ("file", [str(u.path) for u in utts])):
        dups = sorted(v for v, n in Counter(values).items() if n > 1)
        if dups:
            shown = ", ".join(dups[:LIST_LIMIT]) + (f" and {len(dups) - LIST_LIMIT} more" if len(dups) > LIST_LIMIT
                                                    else "")
            problems.append(Problem(f"duplicate-{what}", f"{len(dups)} {what}(s) occur more than once: {shown}",
                                    tuple(dups)))

    speaker_groups: dict[str, set[str]] = defaultdict(set)
    for s, g in zip(speakers, groups):
        speaker_groups[s].add(g)
    shared = {s: sorted(gs) for s, gs in sorted(speaker_groups.items()) if len(gs) > 1}
    if shared:
        items = tuple(f"{s}: {', '.join(gs)}" for s, gs in shared.items())
        problems.append(Problem(
            "speaker-in-several-groups",
            f"{len(shared)} speaker(s) occur in several groups, so a leave-one-group-out split is not "
            f"speaker-independent: {'; '.join(items[:LIST_LIMIT])}" + (" …" if len(items) > LIST_LIMIT else ""),
            items))

    small = {lab: n for lab, n in sorted(label_counts.items()) if n < min_per_class}
    if small:
        items = tuple(f"{lab}: {n}" for lab, n in small.items())
        problems.append(Problem("small-class",
                                f"{len(small)} class(es) have fewer than {min_per_class} utterances: "
                                f"{', '.join(items)}", items))
    if len(label_counts) == 1:
        problems.append(Problem("single-class", f"only one class ({label_keys[0]!r}): a classifier needs two"))
    if utts and len(set(speakers)) == 1:
        problems.append(Problem("single-speaker", f"every utterance has the same speaker ({speakers[0]!r}): "
                                                  "speaker-independent protocols cannot split it"))
    if utts and len(set(groups)) == 1:
        problems.append(Problem("single-group", f"every utterance is in the same group ({groups[0]!r}): "
                                                "leave-one-group-out needs at least two groups"))

    return DataSummary(
        dataset=dataset,
        root=None if root is None else str(root),
        options=dict(options or {}),
        n_utterances=len(utts),
        labels={k: label_counts[k] for k in label_keys},
        speakers=dict(sorted(Counter(speakers).items())),
        groups=dict(sorted(Counter(groups).items())),
        label_by_group=_crosstab(groups, labels, label_keys),
        label_by_speaker=_crosstab(speakers, labels, label_keys),
        speaker_groups={s: sorted(gs) for s, gs in sorted(speaker_groups.items())},
        problems=problems,
    )


def summarize_dataset(
    name: str,
    root: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    check_audio: bool = True,
) -> DataSummary:
    """Load the registered dataset ``name`` and summarize it.

    A dataset with a ``missing`` option is loaded with ``missing="skip"`` unless ``options`` sets it, so that the
    summary lists every missing file instead of stopping at the first error.

    Raises
    ------
    ConfigError
        Unknown option, or no ``root`` for a dataset that needs one.
    DatasetError
        The dataset cannot be read at all (as the dataset reports it).
    """
    from sertk.plugins import component_options, get_component, instantiate

    component = get_component("dataset", name)
    options = dict(options or {})
    if root is None and getattr(component.cls, "requires_root", False):
        raise ConfigError(f"dataset {name!r} needs its files: pass --data-root DIR")
    load_options = dict(options)
    if "missing" in component_options(component.cls) and "missing" not in load_options:
        load_options["missing"] = "skip"
    dataset = instantiate(component, load_options, root=None if root is None else str(root))
    utterances = list(dataset.utterances())
    for u in utterances:
        if not isinstance(u, Utterance):
            raise DatasetError(f"dataset {name!r} yielded {type(u).__name__}, not sertk.Utterance")
    skipped = dict(getattr(dataset, "skipped", None) or {})
    return summarize_utterances(utterances, dataset=name, root=root, options=load_options, skipped=skipped,
                                check_audio=check_audio)
