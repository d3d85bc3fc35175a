"""Background jobs: started after commit, run in a thread without a broker (eager Celery, the
test default) or by a real worker with Redis, report progress, and end done or failed."""

from __future__ import annotations

import pytest

from shop_recs.catalog import services, signals
from shop_recs.catalog.models import BackgroundJob, Item, ItemEncoding, ModelVersion
from shop_recs.workers import jobs as job_runs
from tests.admin_support import make_shop, tiny_settings
from tests.celery_support import Workers, redis_broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ENDED = (BackgroundJob.Status.DONE, BackgroundJob.Status.FAILED)


def finished(job: BackgroundJob, timeout: float = 120) -> BackgroundJob:
    """Wait for the job's thread (or worker) to end it; the job as it ended."""
    assert wait_for(
        lambda: BackgroundJob.objects.filter(pk=job.pk, status__in=ENDED).exists(),
        timeout=timeout,
        interval=0.2,
    ), BackgroundJob.objects.get(pk=job.pk).__dict__
    return BackgroundJob.objects.get(pk=job.pk)


@pytest.fixture
def tiny(settings, tmp_path):
    settings.SHOP_RECS = tiny_settings(MODEL_DIR=str(tmp_path / "models"), ENCODE_BATCH_SIZE=2)


def test_encode_job_runs_in_a_thread_and_reports_its_result(tiny, admin_user) -> None:
    items = [
        Item.objects.create(external_id=f"sku-{n}", title=title)
        for n, title in enumerate(["Red wool scarf", "Leather boots", "Canvas bag"])
    ]
    job = services.job_start(
        kind="encode", params={"item_ids": [i.pk for i in items]}, user=admin_user
    )
    assert job.status == "queued" and job.created_by == admin_user
    job = finished(job)
    assert job.status == "done", job.error
    assert job.progress == 1.0 and job.started_at and job.finished_at >= job.started_at
    assert job.result["items"] == 3 and job.result["encoded"] == 3 and job.result["failed"] == 0
    assert "encoded 3 items" in job.message
    assert set(ItemEncoding.objects.values_list("status", flat=True)) == {"done"}

    # a redelivered task does not run an ended job again
    assert "skipped" in job_runs.job_run_encode(job_id=job.pk)
    assert BackgroundJob.objects.get(pk=job.pk).finished_at == job.finished_at


def test_a_failing_encode_job_ends_failed_with_the_error(settings, tiny) -> None:
    item = Item.objects.create(external_id="sku-1", title="Shirt")
    job = finished(services.job_start(kind="encode", params={"item_ids": "all of them"}))
    assert job.status == "failed" and "item_ids must be a list" in job.error
    assert job.finished_at is not None

    settings.SHOP_RECS = tiny_settings(TEXT_ENCODER="shop_recs.recsys.encoders.NoSuchEncoder")
    job = finished(services.job_start(kind="encode", params={"item_ids": [item.pk]}))
    assert job.status == "failed"
    assert "NoSuchEncoder" in job.error and job.message == "failed"


def test_a_train_job_on_too_little_data_fails_with_the_training_message(tiny) -> None:
    job = finished(services.job_start(kind="train", params={}))
    assert job.status == "failed" and "encode the catalogue first" in job.error

    make_shop(users=5)  # 15 positive events, fewer than TRAIN_MIN_INTERACTIONS
    job = finished(services.job_start(kind="train", params={}))
    assert job.status == "failed"
    assert "Only 15 positive events" in job.error and "at least 20" in job.error


def test_a_train_job_trains_activates_and_reports_progress(tiny, admin_user) -> None:
    make_shop()
    job = finished(
        services.job_start(kind="train", params={"note": "from the test"}, user=admin_user)
    )
    assert job.status == "done", job.error
    version = ModelVersion.objects.get(pk=job.result["version"])
    assert version.is_active and job.result["active"] is True
    assert job.result["recall@10"] == version.metrics["recall@10"]
    assert job.progress == 1.0 and f"model {version.pk} trained" in job.message
    assert version.note.startswith("from the test")
    assert {h["run"] for h in version.history} == {"evaluation", "final"}


def test_progress_writes_are_throttled() -> None:
    job = BackgroundJob.objects.create(kind="encode", status="running")
    progress = services.JobProgress(job.pk, min_interval=60, min_step=0.05)
    progress(0.01, "first")
    progress(0.03, "too soon and too small")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.01, "first")
    progress(0.2, "a big step")
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.2, "a big step") and progress.writes == 2


def test_a_job_with_nothing_to_run_it_fails_clearly() -> None:
    from shop_recs.workers.receivers import on_job_requested

    assert signals.job_requested.disconnect(dispatch_uid="shop_recs.run_job")
    try:
        job = services.job_start(kind="train")
    finally:
        signals.job_requested.connect(on_job_requested, dispatch_uid="shop_recs.run_job")
    job.refresh_from_db()
    assert job.status == "failed" and "INSTALLED_APPS" in job.error
    with pytest.raises(ValueError, match="Unknown job kind"):
        services.job_start(kind="dance")


@pytest.mark.slow
def test_a_real_worker_runs_a_train_job_through_redis(tmp_path) -> None:
    """With a broker the job is queued (not run in this process) and a worker ends it."""
    make_shop()
    with redis_broker(tmp_path) as url, Workers(url) as workers:
        job = services.job_start(kind="train", params={"force": True})
        # queued in Redis, not run here: nothing picks it up before a worker starts
        assert BackgroundJob.objects.get(pk=job.pk).status == "queued"
        workers.start(
            {"SHOP_RECS_WORKER_WARMUP": "0", "SHOP_RECS_DATA_DIR": str(tmp_path / "worker")}
        )
        job = finished(job, timeout=240)
    assert job.status == "done", job.error
    assert ModelVersion.objects.get(pk=job.result["version"]).is_active


@pytest.mark.slow
def test_a_job_that_cannot_be_queued_fails_with_the_broker_error() -> None:
    from shop_recs.celery import app as celery_app
    from tests.celery_support import _reset_producer_pool

    old = {k: celery_app.conf[k] for k in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url="redis://127.0.0.1:1/0", task_always_eager=False)
    _reset_producer_pool()
    try:
        job = services.job_start(kind="train")
    finally:
        celery_app.conf.update(**old)
        _reset_producer_pool()
    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("could not be queued:")
