"""Building the component a runtime serves: import the user class (or pick a prepackaged runtime),
construct it with the graph parameters and call its `load()`. Every failure becomes a `LoadError` whose
text `/ready` shows. A class with `custom_service()` gets it started after `load()` in a daemon thread, as
Seldon runs it beside the model's server: once per runtime, in the only process or in worker 0 (the
workers are the processes `workers.py` names `worker-<n>`), so a service that binds a port binds it once.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import multiprocessing
import sys
import threading
from typing import Any

from model_runtime.component import UNIMPLEMENTED_MARK, Component
from model_runtime.errors import LoadError, RuntimeFailure
from model_runtime.runtimes import IMPLEMENTATIONS
from model_runtime.settings import ComponentSettings

log = logging.getLogger(__name__)


def load_component(settings: ComponentSettings) -> Component:
    cls = _resolve_class(settings)
    kwargs: dict[str, Any] = dict(settings.parameters)
    if settings.model_uri is not None:
        kwargs.setdefault("model_uri", settings.model_uri)
    if settings.model_cache_dir is not None:
        kwargs.setdefault("model_cache_dir", str(settings.model_cache_dir))
    kwargs = _accepted(cls, kwargs, optional={"model_uri", "model_cache_dir"})
    try:
        user = cls(**kwargs)
    except RuntimeFailure as exc:
        raise LoadError(f"{cls.__name__}(...) failed: {exc.info}") from exc
    except Exception as exc:
        raise LoadError(f"{cls.__name__}(...) failed: {type(exc).__name__}: {exc}") from exc
    component = Component(user)
    if component.load is not None:
        try:
            component.load()
        except RuntimeFailure as exc:
            raise LoadError(exc.info) from exc
    _start_custom_service(user)
    return component


def _start_custom_service(user: object) -> None:
    service = getattr(user, "custom_service", None)
    if not callable(service) or getattr(service, UNIMPLEMENTED_MARK, False):
        return
    process = multiprocessing.current_process().name
    if process.startswith("worker-") and process != "worker-0":
        return

    def run() -> None:
        try:
            service()
        except Exception:
            log.exception("custom_service() raised; the model keeps serving")

    threading.Thread(target=run, name="custom_service", daemon=True).start()
    log.info("custom_service() started in a thread")


def _resolve_class(settings: ComponentSettings) -> type:
    if settings.implementation is not None:
        try:
            return IMPLEMENTATIONS[settings.implementation]
        except KeyError:
            known = ", ".join(sorted(IMPLEMENTATIONS))
            raise LoadError(f"unknown implementation {settings.implementation!r} (known: {known})") from None
    assert settings.class_path is not None
    module_name, _, class_name = settings.class_path.rpartition(".")
    if not module_name:
        module_name = class_name
    if settings.code_dir is not None:
        code_dir = str(settings.code_dir.resolve())
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        where = f" in {settings.code_dir}" if settings.code_dir else ""
        raise LoadError(f"cannot import module {module_name!r}{where}: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise LoadError(f"module {module_name!r} has no class {class_name!r}")
    return cls


def _accepted(cls: type, kwargs: dict[str, Any], optional: set[str]) -> dict[str, Any]:
    """Drop the runtime-supplied extras (`optional`) the class's `__init__` does not take.

    Graph parameters are always passed; a wrong one fails loudly in the constructor, as with Seldon.
    """
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params or k not in optional}
