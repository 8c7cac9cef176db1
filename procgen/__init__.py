"""procgen: fast, seeded, validated procedural pretraining data.

>>> import procgen
>>> b = procgen.dyck(k=4, n=1e6, length=64, seed=0)       # doctest: +SKIP
>>> procgen.write("dyck", "data/dyck", n=1e7, shards=16)  # doctest: +SKIP

Public API only. Everything else is imported lazily on first attribute access, so ``import
procgen`` is fast and compiles nothing (numba, pyarrow and datasets load when first needed); only
the task registry (``procgen.tasks`` the subpackage, which needs numpy alone) is imported here.
"""

from __future__ import annotations

import importlib
import sys
import types

from procgen._version import __version__  # noqa: E402,F401


class _Package(types.ModuleType):
    """The ``procgen`` module pickles by reference (its import name), as functions and classes do.

    ``datasets`` fingerprints ``.map`` / ``from_generator`` functions with dill, and dill pickles a
    module that does not live under ``sys.prefix`` (procgen installed with ``pip install -e``) by
    *value*: its whole ``__dict__``. That dict grows as lazy attributes and submodules load, so a
    function calling ``procgen.generate`` would hash differently before and after its first call,
    and no cache would ever be hit. By reference, the hash depends on the function alone.
    """

    def __reduce__(self):
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package

# Importing the registry subpackage binds the attribute ``procgen.tasks`` to it; the ``def tasks``
# below rebinds it to the public listing function. A submodule is bound on its parent only when
# it is first imported, so later ``import procgen.tasks`` / ``from procgen.tasks import ...`` leave
# ``procgen.tasks`` the function. Code wanting the registry uses ``from procgen.tasks import ...``
# (or ``from procgen.tasks.dyck import ...``); never ``procgen.tasks.<name>`` through the attribute,
# nor ``import procgen.tasks[.dyck] as x``, which reads that attribute too.
import procgen.tasks as _registry  # noqa: E402


def tasks() -> dict[str, dict]:
    """Registry listing: ``{name: {"summary": ..., "params": {param: {"default", "allowed", "help"}}}}``.

    Example
    -------
    >>> procgen.tasks()["dyck"]["params"]["k"]["default"]   # doctest: +SKIP
    4
    """
    return _registry.listing()


# public name -> module that defines it
_EXPORTS = {
    "Batch": "procgen.batch",
    "generate": "procgen.api",
    "write": "procgen.dataset",
    "load": "procgen.dataset",
    "validate": "procgen.dataset",
    "info": "procgen.dataset",
    "DatasetError": "procgen.dataset",
    "push": "procgen.hub",
    "mix": "procgen.mixture",  # not mix.py: a module named like the function would shadow it
    "stream": "procgen.streaming",  # likewise
    "to_iterable_dataset": "procgen.streaming",
}

__all__ = ["__version__", "tasks", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _registry.task_names():
        from procgen.api import task_function

        value = task_function(name)  # procgen.dyck, procgen.sort, ...: generated from the registry
    else:
        raise AttributeError(f"module 'procgen' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_registry.task_names()))
