"""Let torch-em import without torchvision (peer venv only).

torch-em imports torchvision at module level in places the affinity recipe never runs: the tensorboard
logger's image grid, two intensity augmentations that are not defaults, and ViT/ResNet backbones. When
torchvision is missing, :func:`install` registers placeholder ``torchvision.*`` modules whose every attribute is
a callable that raises on use, so nothing from torchvision can run silently: the run fails loudly instead.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types


class _Missing:
    """Stands in for any torchvision object; using it (call, subclass, attribute) raises."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} was used, but torchvision is not installed in the peer venv")

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self._name}.{attr}")

    def __mro_entries__(self, bases):
        raise RuntimeError(f"{self._name} used as a base class, but torchvision is not installed in the peer venv")


class _Module(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def install() -> bool:
    """Register the placeholders when torchvision cannot be found; returns True if they were installed."""
    if importlib.util.find_spec("torchvision") is not None:
        return False
    sys.meta_path.insert(0, _Finder())
    return True
