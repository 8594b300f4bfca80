"""The hooks a sertk plugin can implement.

Each ``register`` hook receives a callback; the plugin calls it once per component class it provides. The host
validates the class, records which plugin provided it and rejects duplicate names. Plugins touch no global
state. Every hook here is documented in ``docs/plugins.md`` and tested in ``tests/test_hooks.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("sertk")
hookimpl = pluggy.HookimplMarker("sertk")

Register = Callable[[type], None]


@hookspec
def sertk_register_datasets(register: Register) -> None:
    """Register dataset classes: call ``register(DatasetClass)`` for each."""


@hookspec
def sertk_register_featurizers(register: Register) -> None:
    """Register featurizer classes: call ``register(FeaturizerClass)`` for each."""


@hookspec
def sertk_register_classifiers(register: Register) -> None:
    """Register classifier (estimator) classes: call ``register(ClassifierClass)`` for each."""


@hookspec
def sertk_register_protocols(register: Register) -> None:
    """Register evaluation protocol classes (see :class:`sertk.protocols.Protocol`): ``register(ProtocolClass)``."""


@hookspec
def sertk_register_commands(cli: Any) -> None:
    """Add sub-commands to the ``sertk`` command line; ``cli`` is the top-level :class:`click.Group`."""
