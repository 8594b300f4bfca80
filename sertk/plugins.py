"""The plugin manager and the component registries.

Built-in plugins are registered by module path (:data:`DEFAULT_PLUGINS`), so a source checkout works without
entry points. Third-party plugins are modules named by entry points in the group ``sertk``; they load once,
lazily. ``SERTK_LOAD_PLUGINS`` selects external plugins: unset loads all, an empty string loads none, a
comma-separated list loads only those entry-point names.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import os
import re
import weakref
from collections.abc import Iterable
from typing import Any

import pluggy

from sertk import hookspecs
from sertk.errors import DuplicateComponentError, PluginError, UnknownComponentError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sertk"
LOAD_PLUGINS_ENV = "SERTK_LOAD_PLUGINS"

#: the built-in plugins, registered by module path; the only place the core names them
DEFAULT_PLUGINS: tuple[str, ...] = (
    "sertk_plugins.datasets.demo",
    "sertk_plugins.datasets.iemocap",
    "sertk_plugins.datasets.emodb",
    "sertk_plugins.datasets.ravdess",
    "sertk_plugins.datasets.cremad",
    "sertk_plugins.datasets.folder",
    "sertk_plugins.datasets.manifest",
    "sertk_plugins.datasets.combined",
    "sertk_plugins.featurizers.handcrafted",
    "sertk_plugins.featurizers.imagebind",
    "sertk_plugins.featurizers.opensmile_sets",
    "sertk_plugins.featurizers.hf",
    "sertk_plugins.featurizers.concat",
    "sertk_plugins.classifiers.nusvm",
    "sertk_plugins.classifiers.nusvm_tuned",
    "sertk_plugins.classifiers.sklearn_reference",
    "sertk_plugins.protocols.standard",
)

KINDS = ("dataset", "featurizer", "classifier", "protocol")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")
_REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {
    "dataset": ("utterances",),
    "featurizer": ("embed", "fingerprint", "dim"),
    "classifier": ("fit", "predict", "get_params"),
    "protocol": ("split", "speaker_independent"),
}


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: ``name`` is its module path (built-in) or entry-point name."""

    name: str
    package: str
    version: str
    builtin: bool


@dataclasses.dataclass(frozen=True)
class Component:
    """A registered component class and the plugin that provided it."""

    kind: str
    name: str
    cls: type
    plugin: PluginInfo

    @property
    def description(self) -> str:
        text = getattr(self.cls, "description", "") or (self.cls.__doc__ or "")
        return text.strip().splitlines()[0] if text.strip() else ""


@dataclasses.dataclass(frozen=True)
class BrokenPlugin:
    """An external plugin that failed to load; reported by its entry-point name."""

    name: str
    package: str
    error: str


class Registry:
    """Components of one kind by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._components: dict[str, Component] = {}

    def add(self, cls: type, plugin: PluginInfo) -> None:
        name = getattr(cls, "name", None)
        where = f"{self.kind} class {getattr(cls, '__qualname__', cls)!r} from plugin {plugin.name!r}"
        if not isinstance(cls, type):
            raise PluginError(f"{where}: register() takes a class, got {type(cls).__name__}")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(
                f"{where} needs a class attribute `name`: a lowercase string like 'my-corpus', got {name!r}"
            )
        missing = [m for m in _REQUIRED_MEMBERS[self.kind] if not hasattr(cls, m)]
        if missing:
            raise PluginError(f"{where} lacks {', '.join(missing)} required of a {self.kind}")
        if name in self._components:
            first = self._components[name].plugin.name
            raise DuplicateComponentError(
                f"two plugins register a {self.kind} named {name!r}: {first!r} and {plugin.name!r}; "
                f"uninstall one, or switch external plugins off with {LOAD_PLUGINS_ENV}"
            )
        self._components[name] = Component(self.kind, name, cls, plugin)

    def get(self, name: str) -> Component:
        try:
            return self._components[name]
        except KeyError:
            known = ", ".join(sorted(self._components)) or "(none)"
            raise UnknownComponentError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._components)

    def __iter__(self):
        return iter(self._components[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._components


class PluginHost:
    """A pluggy manager with sertk's hooks, its plugins loaded, and the registries they fill."""

    def __init__(self, builtins: Iterable[str] = DEFAULT_PLUGINS, load_external: bool = True) -> None:
        self.pm = pluggy.PluginManager("sertk")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.broken: list[BrokenPlugin] = []
        from sertk import __version__

        for module_path in builtins:
            module = importlib.import_module(module_path)
            self._register(module, PluginInfo(module_path, "sertk", __version__, builtin=True))
        if load_external:
            self._load_entry_points()
        self._check_pending()
        self.registries = {kind: Registry(kind) for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)

    # -- loading ---------------------------------------------------------------------------------------------
    def _register(self, module: Any, info: PluginInfo) -> None:
        if self.pm.get_plugin(info.name) is not None:
            raise PluginError(f"two plugins are named {info.name!r} (from {self.plugins[info.name].package!r} "
                              f"and {info.package!r})")
        self.pm.register(module, name=info.name)
        self.plugins[info.name] = info

    def register_plugin(self, module: Any, name: str) -> None:
        """Register one more plugin object (tests, notebooks) and add its components."""
        self._register(module, PluginInfo(name, "(runtime)", "", builtin=False))
        self._check_pending()
        for kind in KINDS:
            self._collect(kind, only=name)

    def _load_entry_points(self) -> None:
        selected = os.environ.get(LOAD_PLUGINS_ENV)
        wanted = None if selected is None else {s.strip() for s in selected.split(",") if s.strip()}
        seen: set[str] = set()
        for dist in importlib.metadata.distributions():
            package = dist.metadata["name"] or "?"
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or (wanted is not None and ep.name not in wanted):
                    continue
                if ep.name in seen:  # the same distribution on sys.path twice
                    continue
                seen.add(ep.name)
                try:
                    module = ep.load()
                except Exception as exc:  # noqa: BLE001 - any import failure is reported, not fatal
                    message = f"{type(exc).__name__}: {exc}"
                    logger.warning("plugin %r (package %s) failed to load: %s", ep.name, package, message)
                    self.broken.append(BrokenPlugin(ep.name, package, message))
                    continue
                self._register(module, PluginInfo(ep.name, package, dist.version or "", builtin=False))

    def _check_pending(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r} implements a hook sertk does not define: {exc}") from None

    def _collect(self, kind: str, only: str | None = None) -> None:
        hook = getattr(self.pm.hook, f"sertk_register_{kind}s")
        for impl in reversed(hook.get_hookimpls()):  # registration order
            if only is not None and impl.plugin_name != only:
                continue
            info = self.plugins[impl.plugin_name]
            registry = self.registries[kind]
            try:
                impl.function(register=lambda cls, _info=info: registry.add(cls, _info))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {info.name!r} failed in sertk_register_{kind}s: "
                                  f"{type(exc).__name__}: {exc}") from exc

    # -- lookup ----------------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Component:
        return self.registries[kind].get(name)

    def add_commands(self, cli: Any) -> None:
        self.pm.hook.sertk_register_commands(cli=cli)


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, built on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_host() -> None:
    """Forget the process-wide host (tests; after changing ``SERTK_LOAD_PLUGINS``)."""
    global _host
    _host = None


def get_component(kind: str, name: str) -> Component:
    return get_host().get(kind, name)


def component_options(cls: type) -> dict[str, Any]:
    """The keyword options a component class accepts, with their defaults (``inspect.Parameter.empty`` if none)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # the class's own constructor
    return {
        n: p.default
        for n, p in params.items()
        if n not in ("self", "root") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def instantiate(component: Component, options: dict[str, Any], **fixed: Any) -> Any:
    """Build a component, turning a bad option into a :class:`ConfigError` that lists the accepted ones."""
    import inspect

    from sertk.errors import ConfigError

    accepted = component_options(component.cls)
    init = component.cls.__init__  # type: ignore[misc]  # the class's own constructor
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values())
    unknown = sorted(set(options) - set(accepted)) if not has_var_kw else []
    if unknown:
        listing = ", ".join(sorted(accepted)) or "(none)"
        raise ConfigError(f"{component.kind} {component.name!r} has no option {', '.join(map(repr, unknown))}; "
                          f"its options are: {listing}")
    try:
        instance = component.cls(**fixed, **options)
    except ConfigError:
        raise  # already says which component and option
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{component.kind} {component.name!r}: bad options {options!r}: {exc}") from exc
    # how it was built, so another process (a Ray worker) can build the same one: see recipe_of
    _remember(instance, Recipe(component.kind, component.name, dict(options), dict(fixed),
                               plugin=component.plugin.name))
    return instance


#: id(instance) -> (a weak reference to it, its Recipe): kept beside the instance, never on it, so nothing of the
#: host's ends up in what a component saves or pickles (a classifier's skops file, say)
_RECIPES: dict[int, tuple[weakref.ref, "Recipe"]] = {}


def _remember(instance: Any, recipe: "Recipe") -> None:
    key = id(instance)

    def forget(_ref: weakref.ref) -> None:
        _RECIPES.pop(key, None)

    try:
        ref = weakref.ref(instance, forget)
    except TypeError:  # no weak references (__slots__ without __weakref__): it cannot be rebuilt elsewhere
        return
    _RECIPES[key] = (ref, recipe)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How :func:`instantiate` built a component: its registry name and options, enough to build the same one in
    another process through that process's registry (a Ray worker builds its featurizer from this)."""

    kind: str
    name: str
    options: dict[str, Any]
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the plugin that provided it (a built-in's module path, else its entry-point name); "" when unknown
    plugin: str = ""

    def build(self) -> Any:
        """The component again, from this process's plugin registry."""
        return instantiate(get_component(self.kind, self.name), dict(self.options), **self.fixed)


def recipe_of(instance: Any) -> Recipe | None:
    """The :class:`Recipe` :func:`instantiate` recorded on ``instance``; ``None`` for one built by hand."""
    entry = _RECIPES.get(id(instance))
    return entry[1] if entry is not None and entry[0]() is instance else None

