"""pgvector 0.8's code path (iterative index scans), which the embedded 0.6.2 server cannot run:
the statements a k-NN query sets, from the same planning function the queries use."""

import pytest

from shop_recs.catalog import vectors
from shop_recs.search.knn import scan_plan

ITERATIVE = "SET LOCAL hnsw.iterative_scan = relaxed_order"


def test_pgvector_08_scans_iteratively_inside_the_index() -> None:
    plan = scan_plan(version=(0, 8, 0), dim=384, k=10, session_ef=100)
    assert plan.settings == (ITERATIVE,)
    assert plan.use_index and not plan.fast  # the setting needs the transaction of the careful path
    assert scan_plan(version=(0, 8, 1), dim=384, k=10, session_ef=100).settings == (ITERATIVE,)


def test_older_pgvector_keeps_the_fast_path_and_filters_after_the_scan() -> None:
    plan = scan_plan(version=(0, 6, 2), dim=384, k=10, session_ef=100)
    assert plan.settings == () and plan.fast and plan.use_index and plan.ef == 100
    wide = scan_plan(version=(0, 6, 2), dim=384, k=80, session_ef=100)
    assert not wide.fast and wide.ef == 160  # 2k above the session's ef_search


def test_long_lists_and_wide_vectors_rank_exactly_on_every_version() -> None:
    for version in ((0, 6, 2), (0, 8, 0)):
        assert not scan_plan(version=version, dim=384, k=1500, session_ef=100).use_index
        too_wide = scan_plan(version=version, dim=vectors.HNSW_MAX_DIM + 1, k=10, session_ef=100)
        assert not too_wide.use_index and not too_wide.fast
    assert scan_plan(version=(0, 8, 0), dim=384, k=600, session_ef=100).ef == 1000


@pytest.mark.django_db
def test_a_selective_filter_fills_k_on_the_running_server() -> None:
    """On the server the suite runs against: a similar-items query whose filter keeps 5 of 400
    items still returns all 5, through the plan of that server's pgvector (iterative index
    scans on 0.8, ef_search retries or an exact scan before)."""
    import numpy as np
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from shop_recs.catalog.models import Item
    from shop_recs.ranking.similar import item_similar
    from shop_recs.search.types import SimilarFilters
    from tests.conftest import write_vector

    rng = np.random.default_rng(0)
    for n in range(400):
        item = Item.objects.create(
            external_id=f"i{n}", title=f"Item {n}", category="rare" if n % 80 == 0 else "common"
        )
        write_vector(item, "text", rng.normal(size=32))
    with CaptureQueriesContext(connection) as queries:
        found = item_similar(
            external_id="i1", space="text", k=5, filters=SimilarFilters(category="rare")
        )
    assert sorted(n.item.external_id for n in found) == ["i0", "i160", "i240", "i320", "i80"]
    iterative = any(ITERATIVE in q["sql"] for q in queries.captured_queries)
    assert iterative == (vectors.pgvector_version() >= (0, 8))


def test_model_spaces_probe_a_share_of_their_ivfflat_lists() -> None:
    """Model spaces (IVFFlat): probes are a share of the index's lists, enough for about
    IVF_MIN_ROWS vectors (a list holds ~lists of them) and at most all of them, set per
    statement (never the fast path), widened up to every list; pgvector 0.8 scans the lists
    iteratively."""
    from shop_recs.search.knn import IVF_MIN_ROWS, IVF_PROBE_SHARE

    plan = scan_plan(version=(0, 6, 2), dim=64, k=10, session_ef=100, ivf_lists=1000)
    assert plan.knob == "ivfflat.probes" and plan.max_ef == 1000 and not plan.fast
    assert plan.ef == round(IVF_PROBE_SHARE * 1000) and plan.use_index and plan.settings == ()
    small = scan_plan(version=(0, 6, 2), dim=64, k=10, session_ef=100, ivf_lists=4)
    assert small.ef == 4 and small.max_ef == 4
    # a small space (30 lists of ~30 vectors) is scanned whole; a mid-size one by its rows
    assert scan_plan(version=(0, 6, 2), dim=64, k=10, session_ef=100, ivf_lists=30).ef == 30
    mid = scan_plan(version=(0, 6, 2), dim=64, k=10, session_ef=100, ivf_lists=200)
    assert mid.ef == -(-IVF_MIN_ROWS // 200) > round(IVF_PROBE_SHARE * 200)
    # long lists are fine for IVFFlat (no ef_search cap); wide vectors rank exactly
    assert scan_plan(version=(0, 6, 2), dim=64, k=1500, session_ef=100, ivf_lists=30).use_index
    assert not scan_plan(
        version=(0, 6, 2), dim=vectors.HNSW_MAX_DIM + 1, k=10, session_ef=100, ivf_lists=30
    ).use_index
    new = scan_plan(version=(0, 8, 0), dim=64, k=10, session_ef=100, ivf_lists=100)
    assert new.settings == ("SET LOCAL ivfflat.iterative_scan = relaxed_order",)
