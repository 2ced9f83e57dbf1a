"""The models a server holds: loaded from a folder of ``.esp`` files or the bundled defaults.

Each file becomes a :class:`~eventsp.services.tasks.StreamingTask` through
:func:`eventsp.services.adapters.task_from_model`; its name is the file's stem. The default
model of a task (used when a request names none) is the first by name, unless a model's
metadata says ``"default": true``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from eventsp.services.errors import InvalidArgumentError, NotFoundError
from eventsp.services.tasks import TASK_KINDS, StreamingTask

log = logging.getLogger("eventsp.services")


def bundled_models_dir() -> Path:
    """``eventsp/models``: the model files shipped with the package."""
    import eventsp.models

    return Path(eventsp.models.__file__).resolve().parent


def load_tasks(folder: Path, *, bundled: bool = False) -> list[StreamingTask]:
    """One task per ``*.esp`` file in ``folder`` (sorted by name).

    Models of tasks that have no streaming RPC (``classify-images``, say: the bundled folder
    holds one for ``eventsp classify-images``) are skipped with a log line: a warning for a
    user's folder, info for the ``bundled`` one, where skipping it is expected. Any other
    problem with a file stops the server, naming the file.
    """
    from eventsp.services.adapters import UnservedTaskError, task_from_file

    tasks = []
    for path in sorted(Path(folder).glob("*.esp")):
        try:
            tasks.append(task_from_file(path))
        except UnservedTaskError as exc:
            level = logging.INFO if bundled else logging.WARNING
            log.log(level, "model not served: %s", exc, extra={"event": "model_skipped"})
    return tasks


class ModelRegistry:
    def __init__(self, tasks: Iterable[StreamingTask], defaults: Iterable[str] = ()) -> None:
        self._tasks: dict[str, StreamingTask] = {}
        for task in sorted(tasks, key=lambda t: t.info.name):
            if task.info.name in self._tasks:
                raise ValueError(f"two models are named {task.info.name!r}; rename one file")
            self._tasks[task.info.name] = task
        self._defaults: dict[str, str] = {}
        for name in defaults:
            self._defaults[self.get(name).info.task] = name
        for task in self._tasks.values():
            self._defaults.setdefault(task.info.task, task.info.name)

    @classmethod
    def from_dir(cls, folder: Path | None) -> ModelRegistry:
        """Load every model in ``folder``, or the bundled defaults when it is ``None``."""
        if folder is None:
            tasks = load_tasks(bundled_models_dir(), bundled=True)
        else:
            tasks = load_tasks(Path(folder))
        defaults = [t.info.name for t in tasks if getattr(t, "is_default", False)]
        return cls(tasks, defaults)

    def tasks(self) -> list[StreamingTask]:
        return list(self._tasks.values())

    def get(self, name: str) -> StreamingTask:
        try:
            return self._tasks[name]
        except KeyError:
            raise NotFoundError(
                f"no model named {name!r}; this server holds {sorted(self._tasks)} "
                "(ListModels lists them)"
            ) from None

    def pick(self, name: str, task: str, *, kind: str) -> StreamingTask:
        """The model a request asks for: by name, else the default for ``task`` or ``kind``."""
        if name:
            chosen = self.get(name)
        elif task:
            if task not in TASK_KINDS:
                raise InvalidArgumentError(
                    f"task is {task!r}; expected one of {sorted(TASK_KINDS)} or a model name"
                )
            if task not in self._defaults:
                raise NotFoundError(
                    f"this server holds no {task!r} model (it holds {sorted(self._tasks)}); "
                    "start it with --models pointing at a folder that has one"
                )
            chosen = self._tasks[self._defaults[task]]
        else:
            for task_name, default in sorted(self._defaults.items()):
                if TASK_KINDS[task_name] == kind:
                    chosen = self._tasks[default]
                    break
            else:
                raise NotFoundError(
                    f"this server holds no {kind} model (it holds {sorted(self._tasks)}); "
                    "start it with --models pointing at a folder that has one"
                )
        if chosen.info.kind != kind:
            raise InvalidArgumentError(
                f"model {chosen.info.name!r} takes {chosen.info.kind}, not {kind}; pick a "
                f"{kind} model (ListModels) or use the matching RPC"
            )
        return chosen

    def warm(self) -> None:
        """Compile and exercise every model once (before reporting SERVING)."""
        for task in self._tasks.values():
            task.warm()
            log.info("model ready", extra={"event": "model_warm", "model": task.info.name})
