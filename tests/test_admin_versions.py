"""The model versions admin (metrics, charts, train now, activate, roll back) and the SVG
charts, with real tiny models trained on a synthetic shop."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth import get_user_model

from shop_recs.catalog.models import BackgroundJob, ModelVersion
from shop_recs.dashboard.charts import Series, line_chart, nice_ticks
from shop_recs.ranking.training import model_train
from tests.admin_support import make_shop, staff_user, tiny_settings

pytestmark = pytest.mark.django_db

LIST = "/admin/shop_recs_catalog/modelversion/"
SVG = re.compile(r"<svg [^>]*class=\"recs-chart\".*?</svg>", re.S)


def change_url(version: ModelVersion) -> str:
    return f"{LIST}{version.pk}/change/"


@pytest.fixture
def tiny(settings, tmp_path):
    settings.SHOP_RECS = tiny_settings(MODEL_DIR=str(tmp_path / "models"))


@pytest.fixture
def two_versions(tiny) -> tuple[ModelVersion, ModelVersion]:
    make_shop()
    first = model_train()
    second = model_train(force=True)
    first.refresh_from_db()
    assert second.is_active and not first.is_active
    return first, second


@pytest.fixture
def root(client, admin_user):
    client.force_login(admin_user)
    return client


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m.group(0)) for m in SVG.finditer(page)]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_list_and_detail_show_metrics_counts_and_charts(root, two_versions) -> None:
    first, second = two_versions
    failed = ModelVersion.objects.create(status="failed", error="TrainingError: too little")
    page = root.get(LIST).content.decode()
    assert "recall@10" in page and "ndcg@10" in page and "popularity recall@10" in page
    assert f"{second.metrics['recall@10']:.4f}" in page
    assert f"{second.data_counts['positives']} of {second.data_counts['interactions']}" in page
    assert 'id="recs-train-form"' in page and 'id="recs-rollback-form"' in page
    assert len(svgs(page)) == 1  # recall/ndcg across versions

    response = root.get(change_url(first))
    assert response.status_code == 200
    page = response.content.decode()
    charts = svgs(page)
    assert len(charts) == 3  # loss, validation metrics, across versions
    # every chart has lines: the history has loss and validation recall for each epoch
    assert all(c.find("{http://www.w3.org/2000/svg}g") is not None for c in charts)
    assert "Training loss per epoch" in page and "Validation metrics per epoch" in page
    assert 'id="recs-metrics"' in page and 'id="recs-counts"' in page
    assert "positives" in page and "text_components" in page  # data counts and params
    assert 'id="recs-activate-form"' in page  # not active: can be activated
    assert 'name="_save"' not in page  # nothing to save on a read-only page
    page = root.get(change_url(second)).content.decode()
    assert 'id="recs-activate-form"' not in page and 'id="recs-rollback-form"' in page
    page = root.get(change_url(failed)).content.decode()
    assert "too little" in page and 'id="recs-activate-form"' not in page
    assert "no data" in page  # a failed version has no curves


def run_activation(root, url: str, callbacks_ctx, data=None) -> BackgroundJob:
    """POST an activation (or roll back), check it queued a job on the job's page, and run
    that job as the train worker would."""
    from shop_recs.workers.jobs import job_run_activate

    before = set(BackgroundJob.objects.values_list("pk", flat=True))
    with callbacks_ctx() as callbacks:
        response = root.post(url, data or {})
    job = BackgroundJob.objects.exclude(pk__in=before).get()
    assert job.kind == "activate" and job.status == "queued"
    assert len(callbacks) == 1  # dispatched to the train queue once the request commits
    if url.endswith("/activate/") or url.endswith("rollback/"):
        assert response.status_code == 302
        assert response["Location"] == f"/admin/shop_recs_catalog/backgroundjob/{job.pk}/change/"
    job_run_activate(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_activate_and_roll_back_change_the_active_version(
    root, two_versions, django_capture_on_commit_callbacks
) -> None:
    first, second = two_versions
    job = run_activation(root, f"{LIST}{first.pk}/activate/", django_capture_on_commit_callbacks)
    assert job.status == "done", job.error
    assert job.result["version"] == first.pk and f"activated model {first.pk}" in job.message
    assert ModelVersion.objects.get(is_active=True) == first
    page = root.get(f"/admin/shop_recs_catalog/backgroundjob/{job.pk}/change/").content.decode()
    assert f"activated model {first.pk}" in page

    job = run_activation(root, f"{LIST}rollback/", django_capture_on_commit_callbacks)
    assert job.status == "done" and f"rolled back to model {second.pk}" in job.message
    assert ModelVersion.objects.get(is_active=True) == second

    # one activation at a time: a second request shows the queued job instead
    with django_capture_on_commit_callbacks():
        root.post(f"{LIST}{first.pk}/activate/")
    queued = BackgroundJob.objects.get(kind="activate", status="queued")
    response = root.post(f"{LIST}{first.pk}/activate/", follow=True)
    assert any(f"#{queued.pk} is queued" in m for m in messages_of(response))
    assert BackgroundJob.objects.filter(kind="activate", status="queued").count() == 1
    BackgroundJob.objects.filter(pk=queued.pk).update(status="failed")

    # the changelist action: exactly one version
    response = root.post(
        LIST,
        {"action": "activate_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert any("exactly one" in m for m in messages_of(response))
    assert not BackgroundJob.objects.filter(kind="activate", status="queued").exists()
    job = run_activation(
        root,
        LIST,
        django_capture_on_commit_callbacks,
        {"action": "activate_selected", "_selected_action": [first.pk]},
    )
    assert job.status == "done"
    assert ModelVersion.objects.get(is_active=True) == first

    failed = ModelVersion.objects.create(status="failed")
    response = root.post(f"{LIST}{failed.pk}/activate/", follow=True)
    assert any("only a ready version" in m for m in messages_of(response))
    assert ModelVersion.objects.get(is_active=True) == first
    assert root.post(f"{LIST}999999/activate/").status_code == 404
    assert root.post(f"{LIST}abc/activate/").status_code == 404

    # a job for a version deleted meanwhile fails with the reason, and nothing changes
    from shop_recs.catalog import services
    from shop_recs.workers.jobs import job_run_activate

    with django_capture_on_commit_callbacks():
        gone = services.job_start(kind="activate", params={"version": 999999})
    job_run_activate(job_id=gone.pk)
    gone.refresh_from_db()
    assert gone.status == "failed" and "does not exist" in gone.error
    assert ModelVersion.objects.get(is_active=True) == first


def test_roll_back_with_nothing_to_roll_back_to(root) -> None:
    response = root.post(f"{LIST}rollback/", follow=True)
    assert response.status_code == 200
    assert any("Nothing to roll back to" in m for m in messages_of(response))


def test_train_now_starts_a_job(root, admin_user, django_capture_on_commit_callbacks) -> None:
    assert root.get(f"{LIST}train/").status_code == 405
    with django_capture_on_commit_callbacks() as callbacks:
        response = root.post(f"{LIST}train/", {"force": "1"})
    job = BackgroundJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/shop_recs_catalog/backgroundjob/{job.pk}/change/"
    assert job.kind == "train" and job.status == "queued" and job.created_by == admin_user
    assert job.params["force"] is True
    assert len(callbacks) == 1  # queued after commit
    # while it waits or runs, Train now shows it instead of starting another
    response = root.post(f"{LIST}train/", follow=True)
    assert BackgroundJob.objects.count() == 1
    assert any(f"#{job.pk} is queued" in str(m) for m in response.context["messages"])


def test_view_only_staff_sees_pages_without_actions(client, two_versions) -> None:
    first, _ = two_versions
    client.force_login(staff_user("viewer", "view_modelversion"))
    page = client.get(LIST).content.decode()
    assert "recall@10" in page
    assert 'id="recs-train-form"' not in page and 'id="recs-rollback-form"' not in page
    assert "activate_selected" not in page
    page = client.get(change_url(first)).content.decode()
    assert "<svg" in page and 'id="recs-activate-form"' not in page
    for url in (f"{LIST}train/", f"{LIST}rollback/", f"{LIST}{first.pk}/activate/"):
        assert client.post(url).status_code == 403, url
    response = client.post(LIST, {"action": "activate_selected", "_selected_action": [first.pk]})
    assert ModelVersion.objects.get(is_active=True) != first
    assert BackgroundJob.objects.count() == 0
    assert response.status_code in (200, 302)


def test_non_staff_and_anonymous_are_refused(client) -> None:
    version = ModelVersion.objects.create(status="ready")
    for url in (LIST, change_url(version)):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    user = get_user_model().objects.create_user("shopper", password="pw-123456")
    client.force_login(user)
    for url in (LIST, change_url(version)):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    for url in (f"{LIST}train/", f"{LIST}rollback/", f"{LIST}{version.pk}/activate/"):
        response = client.post(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert BackgroundJob.objects.count() == 0


# --------------------------------------------------------------------------- charts


def test_chart_is_well_formed_with_axes_legend_and_escaped_text() -> None:
    svg = line_chart(
        [
            Series("<script>alert(1)</script>", [(1, 0.1), (2, 0.25), (3, None), (4, 0.2)]),
            Series('ndcg "&" more', [(1, 0.05), (2, 0.1), (4, 0.15)], dashed=True),
        ],
        title="Loss & <metrics>",
        x_label="epoch <n>",
        y_label="value",
        integer_x=True,
    )
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert not list(root.iter(f"{ns}script")) and "<script>" not in svg
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "Loss & <metrics>" in texts and "epoch <n>" in texts and "value" in texts
    assert "<script>alert(1)</script>" in texts and 'ndcg "&" more' in texts  # legend
    paths = list(root.iter(f"{ns}path"))
    assert len(paths) == 2
    assert paths[0].get("d").count("M") == 2  # the missing point breaks the first line
    assert len(list(root.iter(f"{ns}circle"))) == 6
    assert {"1", "2", "3", "4"} <= set(texts)  # integer x ticks


def test_chart_with_a_single_point_and_without_data() -> None:
    one = ET.fromstring(line_chart([Series("recall@10", [(7, 0.42)])], integer_x=True))
    ns = "{http://www.w3.org/2000/svg}"
    circle = next(one.iter(f"{ns}circle"))
    assert 0 < float(circle.get("cx")) < 640 and 0 < float(circle.get("cy")) < 280
    for empty in (
        line_chart([]),
        line_chart([Series("x", [])]),
        line_chart([Series("n", [(1, None)])]),
    ):
        root = ET.fromstring(empty)
        assert "no data" in [t.text for t in root.iter(f"{ns}text")]


def test_nice_ticks_cover_the_range() -> None:
    ticks = nice_ticks(0.013, 0.087)
    assert ticks[0] <= 0.013 and ticks[-1] >= 0.087 and len(ticks) <= 10
    assert nice_ticks(5, 5, integer=True) == [4.0, 5.0, 6.0]
    assert all(t == int(t) for t in nice_ticks(1, 97, 6, integer=True))


SEARCH = {
    "budget_seconds": 180.0,
    "seconds": 171.4,
    "chosen": {
        "family": "blend",
        "params": {"warm": [0.7, 0.3], "cold": [0.2, 0.8]},
        "validation": {"recall@10": 0.2512, "ndcg@10": 0.3011},
    },
    "table": [
        {"family": "hybrid", "params": {"dim": 64}, "recall@10": 0.2301, "ndcg@10": 0.28,
         "seconds": 40.2, "status": "ok"},
        {"family": "ease", "params": {"l2": 200.0}, "recall@10": 0.2444, "ndcg@10": 0.29,
         "seconds": 3.1, "status": "ok"},
        {"family": "blend", "params": {"warm": [0.7, 0.3], "cold": [0.2, 0.8]},
         "recall@10": 0.2512, "ndcg@10": 0.3011, "seconds": 1.0, "status": "ok"},
        {"family": "hybrid", "params": {"dim": 128}, "recall@10": None, "ndcg@10": None,
         "seconds": 0.0, "status": "skipped: over budget"},
    ],
}  # fmt: skip


def test_the_version_page_shows_the_selection_table_with_the_chosen_row(root) -> None:
    version = ModelVersion.objects.create(
        kind="shop_recs.recsys.blend.BlendRecommender",
        status="ready",
        metrics={"recall@10": 0.2512, "ndcg@10": 0.3011},
        selection=SEARCH,
    )
    page = root.get(change_url(version)).content.decode()
    assert 'id="recs-selection"' in page and "Validation of the chosen model" in page
    table = page[page.index('id="recs-selection"') : page.index("</table>", page.index(
        'id="recs-selection"'))]  # fmt: skip
    rows = re.findall(r"<tr(.*?)</tr>", table, re.S)[1:]  # the header first
    assert len(rows) == 4
    chosen = [r for r in rows if "recs-chosen" in r]
    assert len(chosen) == 1 and "blend" in chosen[0] and "0.2512" in chosen[0]
    assert "skipped: over budget" in rows[3] and "dim=128" in rows[3]
    assert "Chosen: <strong>blend</strong>" in page and "budget 180 s" in page
    # a version trained without selection has no such section
    plain = ModelVersion.objects.create(status="ready", metrics={"recall@10": 0.2})
    assert 'id="recs-selection"' not in root.get(change_url(plain)).content.decode()


def test_selection_rows_mark_the_best_of_the_chosen_family_when_no_row_matches() -> None:
    from shop_recs.dashboard.admin.versions import selection_rows

    search = {**SEARCH, "chosen": {**SEARCH["chosen"], "family": "hybrid", "params": {"x": 1}}}
    rows = selection_rows(ModelVersion(selection=search))
    assert [r["chosen"] for r in rows] == [True, False, False, False]
    assert selection_rows(ModelVersion(selection={})) == []
