"""Re-export the service test fixtures (real servers on port 0, test tasks, tiny models).

``tests/services/conftest.py`` is loaded by path: conftest modules are not importable by name.
"""

from __future__ import annotations

import importlib.util

from support import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "service_fixtures", REPO_ROOT / "tests" / "services" / "conftest.py"
)
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

start_server = _fixtures.start_server
served = _fixtures.served
audio_task = _fixtures.audio_task
event_task = _fixtures.event_task
models_dir = _fixtures.models_dir
wait_until = _fixtures.wait_until
held_stream = _fixtures.held_stream
