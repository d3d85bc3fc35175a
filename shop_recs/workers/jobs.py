"""The work of admin background jobs (encode items, train a model, activate a version), run
by the tasks in :mod:`shop_recs.workers.tasks`; the job's lifecycle (progress, outcome) is
:mod:`shop_recs.catalog.services.jobs`.
"""

from __future__ import annotations

from typing import Any

from shop_recs.catalog.models import BackgroundJob, Item, ItemEncoding, ModelVersion
from shop_recs.catalog.services.jobs import JobFailed, Progress, job_run
from shop_recs.encoding.service import items_encode, items_needing_encoding
from shop_recs.ranking.activation import model_activate, model_rollback
from shop_recs.ranking.dataset import TrainingError
from shop_recs.ranking.training import model_train, selection_summary


def encode_job_item_ids(params: dict[str, Any]) -> list[int]:
    """The items an encode job works on, from its parameters."""
    if "item_ids" in params:
        ids = params["item_ids"]
        if not isinstance(ids, list):
            raise ValueError("item_ids must be a list of item ids")
        return [int(i) for i in ids]
    scope = params.get("scope", "needing")
    if scope == "all":
        return list(Item.objects.order_by("pk").values_list("pk", flat=True))
    if scope == "failed":
        return list(
            ItemEncoding.objects.filter(status=ItemEncoding.Status.FAILED)
            .order_by("pk")
            .values_list("item_id", flat=True)
        )
    if scope == "needing":
        return items_needing_encoding()
    raise ValueError(f"unknown encode scope {scope!r} (needing, failed, all)")


def job_run_encode(*, job_id: int) -> dict[str, Any]:
    """Run an encode job: its items in batches, progress after each batch."""

    def work(job: BackgroundJob, progress: Progress) -> tuple[dict[str, Any], str]:

        ids = encode_job_item_ids(job.params or {})
        total = len(ids)
        progress(0.0, f"0 of {total} items")
        done = 0

        def step(count: int) -> None:
            nonlocal done
            done += count
            progress(done / total if total else 1.0, f"{done} of {total} items")

        report = items_encode(item_ids=ids, force=bool(job.params.get("force")), progress=step)
        result = {
            "items": total,
            "encoded": report.encoded,
            "skipped": report.skipped,
            "failed": report.failed,
            "images_encoded": report.images_encoded,
            "images_failed": report.images_failed,
            "seconds": round(report.seconds, 2),
        }
        if total and report.failed == total:
            first = next(iter(report.errors.values()), "")
            raise JobFailed(f"all {total} items failed to encode: {first}".strip(), result)
        return result, report.summary()

    return job_run(job_id, work)


def job_run_train(*, job_id: int) -> dict[str, Any]:
    """Run a training job: train, evaluate and (if not worse, or forced) activate a version."""

    def work(job: BackgroundJob, progress: Progress) -> tuple[dict[str, Any], str]:
        params = job.params or {}
        note = str(params.get("note") or f"background job {job.pk}")
        try:
            version = model_train(force=bool(params.get("force")), note=note, on_progress=progress)
        except TrainingError as exc:
            raise JobFailed(str(exc)) from exc
        metrics = version.metrics or {}
        result = {
            "version": version.pk,
            "active": version.is_active,
            "recall@10": metrics.get("recall@10"),
            "ndcg@10": metrics.get("ndcg@10"),
            "popularity_recall@10": (metrics.get("popularity") or {}).get("recall@10"),
            "seconds": round(version.duration_seconds or 0.0, 2),
            "note": version.note,
            "family": ((version.selection or {}).get("chosen") or {}).get("family"),
        }
        recall = metrics.get("recall@10")
        score = f", recall@10 {recall:.4f}" if isinstance(recall, int | float) else ""
        state = "active" if version.is_active else "not activated"
        return result, f"model {version.pk} trained{selection_summary(version)}{score} ({state})"

    return job_run(job_id, work)


def job_run_activate(*, job_id: int) -> dict[str, Any]:
    """Run an activation job: make the job's ``version`` the active model, or with
    ``rollback`` the version active before the current one (writing a version's item vectors
    and building its index takes minutes on a large catalogue: never in a web request)."""

    def work(job: BackgroundJob, progress: Progress) -> tuple[dict[str, Any], str]:
        params = job.params or {}
        try:
            if params.get("rollback"):
                progress(0.05, "rolling back to the version active before")
                version = model_rollback()
                written = None
            else:
                version = ModelVersion.objects.filter(pk=params.get("version")).first()
                if version is None:
                    raise JobFailed(f"model version {params.get('version')!r} does not exist")
                progress(0.05, f"model {version.pk}: writing item vectors and their index")
                written = model_activate(version=version)
        except (TrainingError, FileNotFoundError, OSError, ValueError) as exc:
            raise JobFailed(f"not activated: {exc}") from exc
        result = {"version": version.pk, "active": True, "vectors_written": written}
        how = "rolled back to" if params.get("rollback") else "activated"
        vectors = "" if written is None else f" ({written} item vectors written)"
        return result, f"{how} model {version.pk}{vectors}"

    return job_run(job_id, work)
