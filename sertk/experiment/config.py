"""The run configuration: one dataclass that comes from defaults, a TOML file and the command line alike.

The resolved configuration is saved as ``config.toml`` next to a run's results; ``sertk run --config
RUN/config.toml`` repeats the run exactly. Layout of the file::

    seed = 0
    normalize = "global"                  # none | global | speaker (sertk.experiment.normalize)
    out = "runs/demo"
    executor = "local"                    # or "ray", with ray_address, workers, gpus_per_worker (docs/distributed.md)
    [dataset]
    name = "demo"
    root = "/data/IEMOCAP_full_release"   # optional
    [dataset.options]
    [featurizer]
    name = "handcrafted"
    [classifier]
    name = "nusvm"
    [classifier.options]
    nu = 0.1
    [protocol]
    name = "sd-random"
    [protocol.options]
    test_size = 0.2
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sertk.errors import ConfigError

COMPONENT_KINDS = ("dataset", "featurizer", "classifier", "protocol")


@dataclasses.dataclass
class ComponentConfig:
    """A component by name plus the keyword options it is built with."""

    name: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def _default(kind: str) -> ComponentConfig:
    return copy.deepcopy(DEFAULT_COMPONENTS[kind])


#: what ``sertk run`` uses when nothing is said: the demo corpus, the paper's classifier and protocol
DEFAULT_COMPONENTS: dict[str, ComponentConfig] = {
    "dataset": ComponentConfig("demo"),
    "featurizer": ComponentConfig("handcrafted"),
    "classifier": ComponentConfig("nusvm", {"nu": 0.1}),
    "protocol": ComponentConfig("sd-random", {"test_size": 0.2, "stratify": True}),
}


@dataclasses.dataclass
class RunConfig:
    """Everything that determines a run's result (and where it is written)."""

    dataset: ComponentConfig = dataclasses.field(default_factory=lambda: _default("dataset"))
    featurizer: ComponentConfig = dataclasses.field(default_factory=lambda: _default("featurizer"))
    classifier: ComponentConfig = dataclasses.field(default_factory=lambda: _default("classifier"))
    protocol: ComponentConfig = dataclasses.field(default_factory=lambda: _default("protocol"))
    data_root: str | None = None
    seed: int = 0
    #: feature normalisation per fold (:mod:`sertk.experiment.normalize`): ``none``, ``global`` or ``speaker``;
    #: ``None`` = the featurizer's recommendation (its ``standardize``: ``global``, else ``none``)
    normalize: str | None = None
    #: the older spelling: true = ``normalize = "global"``, false = ``"none"``
    standardize: bool | None = None
    #: embedding cache: on by default; ``cache_dir`` None = the default location
    cache: bool = True
    cache_dir: str | None = None
    batch_size: int | None = None
    #: leave files that fail to decode out of the experiment (named in the report) instead of stopping
    skip_bad_audio: bool = False
    #: repeat the protocol with seeds seed, seed+1, …; reports give mean ± std over repeats and folds
    repeats: int = 1
    #: draw t-SNE figures of train and test embeddings (by emotion and by speaker)
    plots: bool = True
    #: save the trained pipeline in ``out/model`` for ``sertk predict`` (when the classifier can be saved)
    save_model: bool = True
    #: where featurization runs (:mod:`sertk.executors`): ``local`` (this process) or ``ray`` (a Ray cluster:
    #: ``ray_address`` None = ``$RAY_ADDRESS``, else a new local cluster; ``workers`` and ``gpus_per_worker`` None =
    #: as many as the cluster holds, one GPU each when it has GPUs). Where, not what: results are the same.
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    out: str | None = None

    # -- conversion ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A TOML/JSON-ready mapping (``None`` values dropped, since TOML has no null)."""
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in COMPONENT_KINDS:
                table: dict[str, Any] = {"name": value.name}
                if field.name == "dataset" and self.data_root is not None:
                    table["root"] = self.data_root
                if value.options:
                    table["options"] = copy.deepcopy(value.options)
                data[field.name] = table
            elif field.name != "data_root" and value is not None:
                data[field.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "configuration") -> "RunConfig":
        config = cls()
        config.update(data, source)
        return config

    def update(self, data: Mapping[str, Any], source: str = "configuration") -> None:
        """Overlay a (partial) mapping in the file layout; unknown keys are an error naming them."""
        scalars = {f.name: f for f in dataclasses.fields(self) if f.name not in COMPONENT_KINDS}
        scalars.pop("data_root")
        for key, value in data.items():
            if key in COMPONENT_KINDS:
                self._update_component(key, value, source)
            elif key in scalars:
                setattr(self, key, _check_scalar(key, value, source))
            else:
                known = ", ".join(list(COMPONENT_KINDS) + sorted(scalars))
                raise ConfigError(f"{source}: unknown key {key!r}; known keys: {known}")
        self._overlay_normalization(data, source)

    def _overlay_normalization(self, data: Mapping[str, Any], source: str) -> None:
        """``standardize`` is an alias of ``normalize`` (true: global, false: none): the two may not contradict
        each other in one layer, and a later layer's setting of either replaces an earlier one's of the other."""
        normalize, standardize = data.get("normalize"), data.get("standardize")
        if normalize is not None and standardize is not None and normalize != _STANDARDIZE_ALIAS[standardize]:
            flag = "--standardize" if standardize else "--no-standardize"
            raise ConfigError(f"{source}: standardize = {str(standardize).lower()} ({flag}) means normalize = "
                              f"{_STANDARDIZE_ALIAS[standardize]!r}, which contradicts normalize = {normalize!r}; "
                              f"give only one of them")
        if normalize is not None and standardize is None:
            self.standardize = None
        elif standardize is not None and normalize is None:
            self.normalize = None

    def normalization(self, featurizer_default: str) -> str:
        """The normalisation mode this configuration asks for, given the featurizer's default."""
        if self.normalize is not None:
            return self.normalize
        if self.standardize is not None:
            return _STANDARDIZE_ALIAS[self.standardize]
        return featurizer_default

    def _update_component(self, kind: str, table: Any, source: str) -> None:
        if isinstance(table, str):
            table = {"name": table}
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{kind}] must be a table with `name` (and `options`), got {table!r}")
        allowed = {"name", "options"} | ({"root"} if kind == "dataset" else set())
        unknown = set(table) - allowed
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} in [{kind}]; allowed: {sorted(allowed)}")
        current: ComponentConfig = getattr(self, kind)
        if "name" in table:
            name = table["name"]
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{source}: {kind}.name must be a non-empty string, got {name!r}")
            if name != current.name:  # options belong to the component they were written for
                current = ComponentConfig(name)
        options = table.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"{source}: [{kind}.options] must be a table, got {options!r}")
        current.options.update(copy.deepcopy(dict(options)))
        setattr(self, kind, current)
        if kind == "dataset" and "root" in table:
            root = table["root"]
            if root is not None and not isinstance(root, str):
                raise ConfigError(f"{source}: dataset.root must be a path string, got {root!r}")
            self.data_root = root

    def default_out(self) -> str:
        return (f"runs/{self.dataset.name}-{self.featurizer.name}-{self.classifier.name}-"
                f"{self.protocol.name}-seed{self.seed}")


_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "normalize": (str, type(None)),
    "standardize": (bool, type(None)),
    "cache": (bool,),
    "cache_dir": (str, type(None)),
    "batch_size": (int, type(None)),
    "skip_bad_audio": (bool,),
    "repeats": (int,),
    "plots": (bool,),
    "save_model": (bool,),
    "executor": (str,),
    "ray_address": (str, type(None)),
    "workers": (int, type(None)),
    "gpus_per_worker": (int, float, type(None)),
    "out": (str, type(None)),
}


def _check_scalar(key: str, value: Any, source: str) -> Any:
    types = _SCALAR_TYPES[key]
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        want = " or ".join("none" if t is type(None) else t.__name__ for t in types)
        raise ConfigError(f"{source}: {key} must be {want}, got {value!r}")
    if key in ("batch_size", "repeats") and value is not None and value < 1:
        raise ConfigError(f"{source}: {key} must be at least 1, got {value}")
    if key in ("executor", "workers", "gpus_per_worker"):
        _check_executor_option(key, value, source)
    if key == "normalize" and value is not None:
        from sertk.experiment.normalize import check_mode

        check_mode(value, f"{source}: normalize")
    return value


#: the normalisation each value of the older ``standardize`` key means
_STANDARDIZE_ALIAS = {True: "global", False: "none"}


def _check_executor_option(key: str, value: Any, source: str) -> None:
    from sertk.executors import EXECUTORS

    if key == "executor" and value not in EXECUTORS:
        raise ConfigError(f"{source}: executor must be one of {', '.join(EXECUTORS)}, got {value!r}")
    if key == "executor" and value == "ray":
        from sertk.extras import require_extra

        require_extra("ray", f"{source}: executor = 'ray'", ConfigError)
    if key == "workers" and value is not None and value < 1:
        raise ConfigError(f"{source}: workers must be at least 1, got {value}")
    if key == "gpus_per_worker" and value is not None and value < 0:
        raise ConfigError(f"{source}: gpus_per_worker must be 0 or more, got {value}")


#: named starting points: ``--preset paper`` is the paper's experiment, ``paper-si`` its speaker-independent twin
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "dataset": {"name": "iemocap"},
        "featurizer": {"name": "imagebind"},
        "classifier": {"name": "nusvm", "options": {"nu": 0.1, "kernel": "rbf"}},
        "protocol": {"name": "sd-random", "options": {"test_size": 0.2, "stratify": True}},
    },
    "paper-si": {
        "dataset": {"name": "iemocap"},
        "featurizer": {"name": "imagebind"},
        "classifier": {"name": "nusvm", "options": {"nu": 0.1, "kernel": "rbf"}},
        "protocol": {"name": "loso"},
    },
}


def preset(name: str) -> RunConfig:
    try:
        data = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    return RunConfig.from_dict(copy.deepcopy(data), source=f"preset {name}")


def is_paper_configuration(config: RunConfig) -> bool:
    """Whether a run repeats the paper's setting, so comparing with its 80.58 % is meaningful."""
    classifier_ok = (config.classifier.name == "nusvm" and config.classifier.options.get("nu") == 0.1
                     and config.classifier.options.get("kernel", "rbf") == "rbf")
    protocol_ok = (config.protocol.name == "sd-random"
                   and config.protocol.options.get("test_size", 0.2) == 0.2)
    dataset_ok = config.dataset.name == "iemocap" and config.dataset.options.get("classes", "4class") == "4class"
    return dataset_ok and config.featurizer.name == "imagebind" and classifier_ok and protocol_ok


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML run configuration, with errors that name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}); TOML files must be UTF-8: save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return RunConfig.from_dict(data, source=str(path))


def dump_config(config: RunConfig) -> str:
    import tomli_w

    header = "# sertk run configuration; repeat the run with: sertk run --config <this file>\n"
    return header + tomli_w.dumps(config.to_dict())
