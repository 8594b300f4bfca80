"""sertk: speech emotion recognition experiments — datasets, featurizers and classifiers as plugins.

The public API for plugin authors is importable from here: :data:`hookimpl`, :class:`Utterance` and the
component base classes. Importing sertk stays light: torch, scikit-learn and matplotlib load only inside the
components that need them.
"""

from sertk.contracts import Classifier, Dataset, Featurizer, Utterance
from sertk.errors import (
    AudioError,
    ConfigError,
    DatasetError,
    FeaturizerError,
    ModelError,
    PluginError,
    SertkError,
    UnknownComponentError,
)
from sertk.hookspecs import hookimpl
from sertk.protocols import Fold, Protocol

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "hookimpl",
    "Utterance",
    "Dataset",
    "Featurizer",
    "Classifier",
    "Protocol",
    "Fold",
    "SertkError",
    "ConfigError",
    "DatasetError",
    "AudioError",
    "FeaturizerError",
    "ModelError",
    "PluginError",
    "UnknownComponentError",
]
