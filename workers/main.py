"""The worker's entry point: `celery -A workers.main worker` (and `beat`).

The one module that builds the Celery app from the environment, at import, as Celery's
command line needs; everything else takes its settings explicitly.
"""

from __future__ import annotations

from orchestrator.core.settings import get_settings
from orchestrator.store.leases import new_worker_id
from workers import tasks
from workers.app import make_app

app = make_app(get_settings(), worker_id=new_worker_id())
tasks.register(app)
