"""Background jobs started from the admin (encode items, train a model): their lifecycle.

A :class:`~shop_recs.catalog.models.BackgroundJob` row is what the admin shows of long work: its
status, progress (0..1) and message while it runs, then its result or error.

How a job runs:

* :func:`job_start` creates the job (``queued``) and, once the transaction has committed, sends
  :data:`~shop_recs.catalog.signals.job_requested`. The catalog never imports Celery: the
  workers layer (``shop_recs.workers.receivers``) receives the signal and queues the job's task
  with the job id.
* With a broker (``CELERY_BROKER_URL`` set) that is ``task.delay(job_id=...)``: a worker runs it.
* Without a broker (``CELERY_TASK_ALWAYS_EAGER``, the default of a development install) a task
  would run inline, blocking the admin request for minutes (encoding a catalogue, training).
  The workers layer then runs ``task.apply(...)`` in a daemon thread of the web process and
  closes that thread's database connection when it ends. Such a thread dies with its process:
  a job that was running when the server stopped stays ``running``; use a broker and workers
  in production.
* The task runs its work through :func:`job_run` (``shop_recs.workers.jobs``), which marks the
  job ``running``, reports progress (throttled: at most one write a second or per 5 %), and
  ends it ``done`` with a result or ``failed`` with the error. An exception never leaves a job
  running: it is recorded, not raised, so a job is not retried by Celery (start it again). A
  job that already ended (a redelivered task) is not run twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from shop_recs.catalog import signals
from shop_recs.catalog.models import BackgroundJob

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def job_start(
    *, kind: str, params: dict[str, Any] | None = None, user: Any = None
) -> BackgroundJob:
    """Create a queued job and have it run in the background once this transaction commits.

    ``params``: for ``encode``, ``item_ids`` (a list) or ``scope`` (``needing``: never encoded,
    pending, failed or stale; ``failed``; ``all``) and ``force``; for ``train``, ``force``
    (activate even when worse than the active model) and ``note``; for ``activate``,
    ``version`` (a model version id) or ``rollback`` (true: the version active before).
    """
    if kind not in BackgroundJob.Kind.values:
        raise ValueError(f"Unknown job kind {kind!r}; expected one of {BackgroundJob.Kind.values}.")
    created_by = user if getattr(user, "is_authenticated", False) else None
    job = BackgroundJob.objects.create(kind=kind, params=dict(params or {}), created_by=created_by)
    job_id = job.pk
    transaction.on_commit(lambda: _dispatch(job_id, kind))
    return job


def _dispatch(job_id: int, kind: str) -> None:
    responses = signals.job_requested.send_robust(sender=BackgroundJob, job_id=job_id, kind=kind)
    errors = [r for _, r in responses if isinstance(r, Exception)]
    if any(r and not isinstance(r, Exception) for _, r in responses):
        return
    if errors:  # e.g. the broker is down
        error = errors[0]
        logger.error("job %s could not be queued: %r", job_id, error)
        job_fail(job_id=job_id, error=f"could not be queued: {type(error).__name__}: {error}")
    else:
        job_fail(
            job_id=job_id,
            error="Nothing runs background jobs: add 'shop_recs.workers.apps.WorkersConfig' to "
            "INSTALLED_APPS.",
        )


def job_begin(*, job_id: int) -> BackgroundJob | None:
    """Mark the job running; None when it does not exist or has already ended."""
    with transaction.atomic():
        job = BackgroundJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            logger.warning("background job %s does not exist", job_id)
            return None
        if job.status in (BackgroundJob.Status.DONE, BackgroundJob.Status.FAILED):
            logger.info("background job %s has already ended (%s)", job_id, job.status)
            return None
        job.status = BackgroundJob.Status.RUNNING
        job.started_at = timezone.now()
        job.progress = 0.0
        job.message = "started"
        job.error = ""
        job.save(update_fields=["status", "started_at", "progress", "message", "error"])
    return job


class JobProgress:
    """Progress reporter of a running job, callable as ``progress(share, message)``.

    Writes at most once per ``min_interval`` seconds unless the share moved by ``min_step``
    (so a fast loop does not hammer the database), and always the first report.
    """

    def __init__(self, job_id: int, *, min_interval: float = 1.0, min_step: float = 0.05) -> None:
        self.job_id = job_id
        self.min_interval, self.min_step = min_interval, min_step
        self._written_at: float | None = None
        self._written_share = 0.0
        self.writes = 0

    def __call__(self, share: float, message: str = "") -> None:
        share = min(max(float(share), 0.0), 1.0)
        now = time.monotonic()
        due = (
            self._written_at is None
            or now - self._written_at >= self.min_interval
            or share - self._written_share >= self.min_step
        )
        if not due:
            return
        BackgroundJob.objects.filter(pk=self.job_id, status=BackgroundJob.Status.RUNNING).update(
            progress=share, message=message[:500]
        )
        self._written_at, self._written_share = now, share
        self.writes += 1


def job_finish(*, job_id: int, result: dict[str, Any], message: str = "done") -> None:
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.DONE,
        progress=1.0,
        message=message[:500],
        result=result,
        finished_at=timezone.now(),
    )


def job_fail(*, job_id: int, error: str, result: dict[str, Any] | None = None) -> None:
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.FAILED,
        message="failed",
        error=error[:10000],
        result=result or {},
        finished_at=timezone.now(),
    )


class JobFailed(Exception):
    """The work ended without doing what was asked; ``result`` still says what it did."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


def job_run(
    job_id: int, work: Callable[[BackgroundJob, Progress], tuple[dict[str, Any], str]]
) -> dict[str, Any]:
    """Run ``work(job, progress) -> (result, message)`` as the job; record how it ended."""
    job = job_begin(job_id=job_id)
    if job is None:
        return {"skipped": f"job {job_id} is missing or has already ended"}
    try:
        result, message = work(job, JobProgress(job_id))
    except JobFailed as exc:
        job_fail(job_id=job_id, error=str(exc), result=exc.result)
        return {"error": str(exc), **exc.result}
    except Exception as exc:  # recorded on the job: the admin shows it
        logger.exception("background job %s failed", job_id)
        error = f"{type(exc).__name__}: {exc}"
        try:
            job_fail(job_id=job_id, error=error)
        except Exception:  # the database itself is gone: nothing more to record
            logger.exception("background job %s: the failure could not be recorded", job_id)
        return {"error": error}
    job_finish(job_id=job_id, result=result, message=message)
    return result
