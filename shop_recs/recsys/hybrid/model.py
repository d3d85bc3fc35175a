"""HybridRecommender: a content + collaborative two-tower model that handles cold start.

Why this shape
--------------
* Item vector = item-ID embedding + gate * MLP(frozen text/image embeddings through a frozen
  PCA, category, brand), with a learned per-dimension gate so collaborative evidence can
  override noisy content for warm items. It is ``dim + input_dim`` wide: a *scoring part*
  (what user vectors are multiplied with) and a *history part* (what the user tower reads).
  Separate parts are Mult-DAE's separate encoder/decoder weights; tying them cost ~10%
  Recall@10 on MovieLens.
  During training the ID part and whole modalities are dropped at random (DropoutNet), and an
  extra loss scores the targets with content-only vectors, so an item nobody has interacted
  with yet (or one without an image) still gets a vector that carries taste *and* popularity.
  Items without training interactions always use the content-only path.
* User vector = attention pooling over the history parts of the user's recent items (event
  weight x learned content/recency attention, L2-normalised), ``tanh``, plus a user-ID
  embedding that is also dropped in training. Anonymous sessions and new shoppers get a vector
  from a few viewed items at request time, without retraining; and since the tower reads item
  vectors only, the app computes it from the vectors pgvector stores. User vectors are padded
  with zeros over the history part, so ``user . item`` is the score.
* Training is Mult-DAE's denoising objective: each step keeps a random half of each user's
  items as the history and maximises the softmax likelihood of *all* their items (weighted by
  event weight) over the whole catalogue; that beat predicting only the held-back half by
  ~10% on MovieLens. Above ``full_softmax_max_items`` the softmax runs over the batch's targets
  plus popularity-sampled negatives with a logQ correction. Either way an epoch costs time and
  memory linear in the interactions (plus items x batch for the softmax), never users x items.
* Early stopping on validation Recall@10 (an internal 10% hold-out by default), then a refit
  on all positives for the chosen number of epochs.

One module, over 600 lines, on purpose: it is one class whose fit, scoring, serving and
artefact code share the same private state (the network, id maps, stored histories, feature
tensors); the pieces without that state already live beside it (``config``, ``data``,
``network``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..base import Dataset, ItemFeatures, VectorRecommender, top_k
from ..idmap import IdMap
from .config import HybridConfig
from .data import Batch, Interactions, make_batch, pad_histories
from .network import HybridNet

#: Bumped whenever the artefact layout or the meaning of saved tensors changes.
FORMAT = "shop_recs.hybrid"
FORMAT_VERSION = 2

#: Validation scores at most this many users (a fixed random sample) each epoch.
VALIDATION_USERS_MAX = 5000


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class HybridRecommender(VectorRecommender):
    """Hybrid two-tower recommender; see the module docstring for the design.

    ``HybridRecommender(dim=32, seed=1)`` overrides :class:`HybridConfig` fields;
    ``HybridRecommender(config)`` takes a whole config.
    """

    family = "hybrid"

    def __init__(self, config: HybridConfig | None = None, **overrides: Any) -> None:
        base = config or HybridConfig()
        self.config = base.replace(**overrides) if overrides else base
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.category_names: list[str] = [""]
        self.brand_names: list[str] = [""]
        #: Per epoch: phase, epoch, train loss, validation recall@10 / ndcg@10, seconds.
        self.training_history_: list[dict[str, Any]] = []
        self.fit_seconds_: float | None = None
        self.version: str | None = None
        self._net: HybridNet | None = None
        self._dims: dict[str, int] = {}
        # Stored training histories (CSR), used for a known user who comes without a history.
        self._hist_indptr = np.zeros(1, dtype=np.int64)
        self._hist_items = np.zeros(0, dtype=np.int64)
        # The frozen PCA of the content embeddings, fitted once per fit (see _train).
        self._projections: dict[str, torch.Tensor] | None = None
        self._deadline: float | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def dim(self) -> int:
        """Width of the scoring part of item vectors (the user tower's output)."""
        return self.config.dim

    @property
    def scoring_dim(self) -> int:
        """Leading columns of an item vector that a user vector multiplies (the rest is the
        history part the user tower reads); blends rely on this layout."""
        return self.config.dim

    @property
    def vector_dim(self) -> int:
        """Width of item and user vectors as stored/served: scoring part + history part."""
        return self.config.dim + self.config.input_dim

    @property
    def feature_dims(self) -> dict[str, int]:
        return {
            "text_dim": int(self._dims.get("text_dim") or 0),
            "image_dim": int(self._dims.get("image_dim") or 0),
        }

    def _device(self) -> torch.device:
        if self.config.device:
            return torch.device(self.config.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _require_net(self) -> HybridNet:
        if self._net is None:
            raise RuntimeError("HybridRecommender is not fitted (call fit or load first)")
        return self._net

    def _new_net(self) -> HybridNet:
        cfg = self.config
        return HybridNet(
            n_users=self._dims["n_users"],
            n_items=self._dims["n_items"],
            text_dim=self._dims["text_dim"],
            image_dim=self._dims["image_dim"],
            n_categories=self._dims["n_categories"],
            n_brands=self._dims["n_brands"],
            dim=cfg.dim,
            hidden=cfg.hidden,
            input_dim=cfg.input_dim,
            code_dim=cfg.code_dim,
            dropout=cfg.dropout,
            content_dropout=cfg.content_dropout,
            max_history=cfg.max_history,
            init_std=cfg.init_std,
            history_init_std=cfg.history_init_std,
            user_ids=cfg.user_ids,
            text_components=cfg.text_components,
            image_components=cfg.image_components,
        )

    def _feature_tensors(
        self, features: ItemFeatures | None, n: int, device: torch.device
    ) -> dict[str, torch.Tensor | None]:
        """Features as tensors under this model's code vocabulary (names, not codes, match)."""
        f = features or ItemFeatures()
        out: dict[str, torch.Tensor | None] = {"text": None, "image": None, "image_mask": None}
        if self._dims["text_dim"] and f.text is not None:
            if f.text.shape[1] != self._dims["text_dim"]:
                raise ValueError(
                    f"text features have {f.text.shape[1]} dims, model expects "
                    f"{self._dims['text_dim']}"
                )
            out["text"] = torch.as_tensor(np.asarray(f.text, np.float32), device=device)
        if self._dims["image_dim"] and f.image is not None:
            if f.image.shape[1] != self._dims["image_dim"]:
                raise ValueError(
                    f"image features have {f.image.shape[1]} dims, model expects "
                    f"{self._dims['image_dim']}"
                )
            out["image"] = torch.as_tensor(np.asarray(f.image, np.float32), device=device)
            mask = np.ones(n, bool) if f.image_mask is None else np.asarray(f.image_mask, bool)
            out["image_mask"] = torch.as_tensor(mask, device=device)
        out["category"] = self._remap(f.category, f.category_names, self.category_names, n, device)
        out["brand"] = self._remap(f.brand, f.brand_names, self.brand_names, n, device)
        return out

    @staticmethod
    def _remap(
        codes: np.ndarray | None,
        names: list[str],
        vocab: list[str],
        n: int,
        device: torch.device,
    ) -> torch.Tensor:
        if codes is None:
            return torch.zeros(n, dtype=torch.long, device=device)
        lookup = {name: i for i, name in enumerate(vocab)}
        table = np.array([lookup.get(name, 0) for name in names] or [0], dtype=np.int64)
        codes = np.asarray(codes, dtype=np.int64)
        valid = (codes >= 0) & (codes < len(table))
        return torch.as_tensor(
            np.where(valid, table[np.clip(codes, 0, len(table) - 1)], 0), device=device
        )

    @staticmethod
    def _take(feats: dict[str, torch.Tensor | None], rows: torch.Tensor | None) -> dict[str, Any]:
        if rows is None:
            return dict(feats)
        return {k: (None if v is None else v[rows]) for k, v in feats.items()}

    @staticmethod
    @torch.no_grad()
    def _reduced(net: HybridNet, feats: dict[str, torch.Tensor | None], n: int) -> dict[str, Any]:
        """Features as the MLP sees them (frozen PCA applied once, not at every step)."""
        reduced = net.items.reduce(
            n=n, text=feats["text"], image=feats["image"], image_mask=feats["image_mask"]
        )
        return {**reduced, "category": feats["category"], "brand": feats["brand"]}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset: Dataset,
        *,
        validation: Dataset | None = None,
        progress: bool = True,
        deadline: float | None = None,
        time_budget: float | None = None,
    ) -> HybridRecommender:
        """Train on ``dataset``'s positives.

        ``validation`` (same maps) drives early stopping on Recall@10; without it a random
        ``validation_fraction`` of each user's positives is held out, and with ``refit`` the
        model is then retrained on everything for the best number of epochs.

        ``deadline`` (a ``time.monotonic()`` value) or ``time_budget`` (seconds from now, for
        the whole fit; the earlier of the two counts): training stops at the end of the batch
        that passes it (at least one batch is trained, so the model is usable), the epoch is
        then validated and the best state kept; the refit is skipped when no time is left.
        """
        cfg = self.config
        started = time.perf_counter()
        ends = [d for d in (deadline, time.monotonic() + time_budget if time_budget else None)
                if d is not None]  # fmt: skip
        self._deadline = min(ends) if ends else None
        device = self._device()
        with _threads(cfg.num_threads):
            self.user_map = IdMap(dataset.user_map.to_list())
            self.item_map = IdMap(dataset.item_map.to_list())
            feats = dataset.item_features or ItemFeatures()
            self.category_names = list(feats.category_names or [""])
            self.brand_names = list(feats.brand_names or [""])
            self._dims = {
                "n_users": dataset.n_users,
                "n_items": dataset.n_items,
                "text_dim": 0 if feats.text is None else int(feats.text.shape[1]),
                "image_dim": 0 if feats.image is None else int(feats.image.shape[1]),
                "n_categories": len(self.category_names) if feats.category is not None else 0,
                "n_brands": len(self.brand_names) if feats.brand is not None else 0,
            }
            feature_t = self._feature_tensors(feats, dataset.n_items, device)
            full = Interactions.from_dataset(dataset)
            rng = np.random.default_rng(cfg.seed)
            self.training_history_ = []
            self._projections = None

            internal = validation is None and cfg.validation_fraction > 0
            if internal:
                train, val = full.holdout(cfg.validation_fraction, rng)
            elif validation is not None:
                train, val = full, self._validation_targets(full, validation)
            else:
                train, val = full, None
            net, best_epochs = self._train(
                train,
                val,
                feature_t,
                cfg.max_epochs,
                device,
                progress,
                phase="select",
                seed=cfg.seed,
            )
            if internal and cfg.refit and best_epochs > 0 and not self._out_of_time():
                net, _ = self._train(
                    full, None, feature_t, best_epochs, device, progress, phase="refit",
                    seed=cfg.seed + 1,
                )  # fmt: skip
                train = full
            self._net = net
            self._store_histories(train)
            self._finalise(feature_t)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _out_of_time(self) -> bool:
        deadline = getattr(self, "_deadline", None)
        return deadline is not None and time.monotonic() >= deadline

    def _validation_targets(self, train: Interactions, validation: Dataset) -> Interactions:
        """Validation positives minus what the user already has in training (excluded anyway)."""
        val = Interactions.from_dataset(validation)

        def keys(data: Interactions) -> np.ndarray:
            owner = np.repeat(np.arange(data.n_users), data.lengths())
            return owner * data.n_items + data.items

        return val.select(~np.isin(keys(val), keys(train)))

    def _train(
        self,
        train: Interactions,
        val: Interactions | None,
        feats: dict[str, torch.Tensor | None],
        epochs: int,
        device: torch.device,
        progress: bool,
        *,
        phase: str,
        seed: int,
    ) -> tuple[HybridNet, int]:
        """Train a fresh network; returns it (best validation state) and the best epoch count."""
        cfg = self.config
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = self._new_net().to(device)
        projections = ("text_mean", "text_basis", "image_mean", "image_basis")
        if self._projections is None:
            net.items.fit_projections(feats["text"], feats["image"], feats["image_mask"])
            self._projections = {k: getattr(net.items, k).clone() for k in projections}
        else:
            for k in projections:
                getattr(net.items, k).copy_(self._projections[k])
        reduced = self._reduced(net, feats, self._dims["n_items"])
        counts = train.item_counts()
        net.has_id.copy_(torch.as_tensor(counts > 0, device=device))
        optimiser = torch.optim.AdamW(
            net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True
        )
        trainable = np.flatnonzero(train.lengths() >= 1)
        sampler = None
        if train.n_items > cfg.full_softmax_max_items:
            q = np.power(counts.astype(np.float64) + 1.0, 0.75)
            sampler = q / q.sum()

        best, best_epoch, best_state, stale = -1.0, 0, None, 0
        recent: list[float] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc=f"hybrid {phase}", unit="epoch", leave=False)
        for epoch in range(1, epochs + 1):
            tick = time.perf_counter()
            net.train()
            order = rng.permutation(trainable)
            total, steps = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                batch = make_batch(
                    train,
                    order[start : start + cfg.batch_size],
                    rng,
                    keep_min=cfg.history_keep_min,
                    keep_max=cfg.history_keep_max,
                    max_history=cfg.max_history,
                )
                loss = self._loss(net, batch, reduced, sampler, rng, device)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                steps += 1
                if self._out_of_time():
                    break
            record: dict[str, Any] = {
                "phase": phase,
                "epoch": epoch,
                "train_loss": total / max(steps, 1),
            }
            out_of_time = self._out_of_time()
            if out_of_time:
                record["stopped"] = "deadline"
                record["batches"] = steps
            if val is not None:
                record.update(self._validate(net, train, val, reduced, device))
            record["seconds"] = time.perf_counter() - tick
            self.training_history_.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{record['train_loss']:.4f}",
                    **({"r@10": f"{record['recall@10']:.4f}"} if val is not None else {}),
                )
            if val is None:
                best_epoch = epoch
                if out_of_time:
                    break
                continue
            # Validation recall of one epoch is noisy (about +-0.01 on MovieLens-100k), so
            # stopping and the epoch count for the refit use a 3-epoch running mean.
            recent.append(record["recall@10"])
            smoothed = float(np.mean(recent[-3:]))
            record["smoothed_recall@10"] = smoothed
            if smoothed > best:
                best, best_epoch, stale = smoothed, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
            if out_of_time:
                break
        if bar is not None:
            bar.close()
        if best_state is not None:
            net.load_state_dict(best_state)
        return net, best_epoch

    def _loss(
        self,
        net: HybridNet,
        batch: Batch,
        feats: dict[str, torch.Tensor | None],
        sampler: np.ndarray | None,
        rng: np.random.Generator,
        device: torch.device,
    ) -> torch.Tensor:
        cfg = self.config
        n_items = self._dims["n_items"]
        valid_hist = batch.history_weights > 0
        if sampler is None:
            # Full softmax: every item is a candidate and needs a vector.
            rows = np.arange(n_items)
            cand_local = rows
            log_q = None
        else:
            negatives = rng.choice(n_items, size=cfg.sampled_negatives, p=sampler)
            cand = np.unique(np.r_[batch.target_items, negatives])
            rows = np.unique(np.r_[cand, batch.history[valid_hist]])
            cand_local = np.searchsorted(rows, cand)
            # logQ correction (Yi et al. 2019): popular items appear as negatives more often.
            log_q = torch.as_tensor(np.log(sampler[cand]), dtype=torch.float32, device=device)
        local = np.full(n_items, -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        cand_pos = np.full(n_items, -1, dtype=np.int64)
        cand_pos[rows[cand_local]] = np.arange(len(cand_local))

        rows_t = torch.as_tensor(rows, device=device)
        n = len(rows)
        text_keep = (torch.rand(n, device=device) >= cfg.text_dropout).float()
        image_keep = (torch.rand(n, device=device) >= cfg.image_dropout).float()
        content = net.items.from_reduced(
            n=n,
            **self._take(feats, None if sampler is None else rows_t),
            text_keep=text_keep,
            image_keep=image_keep,
        )
        id_keep = (torch.rand(n, device=device) >= cfg.id_dropout) & net.has_id[rows_t]
        vectors = net.items.combine(content, net.items.ids(rows_t), id_keep)

        hist_local = torch.as_tensor(np.where(valid_hist, local[batch.history], 0), device=device)
        users = torch.as_tensor(batch.users, device=device)
        user_keep = (torch.rand(len(users), device=device) >= cfg.user_id_dropout).float()
        u = net.user(
            vectors,
            hist_local,
            torch.as_tensor(batch.history_weights, device=device),
            users,
            user_keep,
            torch.as_tensor(1.0 / np.sqrt(batch.keep_share), device=device)
            if cfg.denoise_rescale
            else None,
        )
        t_rows = torch.as_tensor(batch.target_rows, device=device)
        t_cols = torch.as_tensor(cand_pos[batch.target_items], device=device)
        t_w = torch.as_tensor(batch.target_weights, device=device)
        cand_t = torch.as_tensor(cand_local, device=device)

        def nll(item_vecs: torch.Tensor, user_vecs: torch.Tensor | None = None) -> torch.Tensor:
            uu = u if user_vecs is None else user_vecs
            logits = cfg.logit_scale * (uu @ item_vecs[cand_t, : cfg.dim].T)
            if log_q is not None:
                logits = logits - log_q
            logp = torch.log_softmax(logits, dim=1)
            return -(t_w * logp[t_rows, t_cols]).sum() / len(users)

        loss = nll(vectors)
        if cfg.content_loss_weight > 0 and self._has_content():
            # Content-only vectors are fitted to the user vectors as they are (detached): this
            # loss must teach the content path to stand in for IDs, not bend the user tower
            # towards content-only items (that cost ~3% warm Recall@10 on MovieLens).
            loss = loss + cfg.content_loss_weight * nll(content, u.detach())
        return loss

    def _has_content(self) -> bool:
        d = self._dims
        return bool(d["text_dim"] or d["image_dim"] or d["n_categories"] or d["n_brands"])

    @torch.no_grad()
    def _eval_item_vectors(
        self,
        net: HybridNet,
        feats: dict[str, torch.Tensor | None],
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        net.eval()
        n = self._dims["n_items"] if rows is None else len(rows)
        if rows is None:
            rows = torch.arange(n, device=net.has_id.device)
        content = net.items.from_reduced(n=n, **self._take(feats, rows))
        return net.items.combine(content, net.items.ids(rows), net.has_id[rows])

    @torch.no_grad()
    def _user_vectors(
        self,
        net: HybridNet,
        item_vectors: torch.Tensor,
        users: Sequence[int | None],
        histories: Sequence[np.ndarray],
        weights: Sequence[np.ndarray] | None = None,
    ) -> torch.Tensor:
        net.eval()
        device = item_vectors.device
        hists = [np.asarray(h, dtype=np.int64) for h in histories]
        wts = (
            [np.ones(len(h), np.float32) for h in hists]
            if weights is None
            else [np.asarray(w, np.float32) for w in weights]
        )
        idx, w = pad_histories(hists, wts, self.config.max_history)
        user_t = torch.as_tensor([-1 if x is None else int(x) for x in users], device=device)
        return net.user(
            item_vectors,
            torch.as_tensor(idx, device=device),
            torch.as_tensor(w, device=device),
            user_t,
        )

    @torch.no_grad()
    def _validate(
        self,
        net: HybridNet,
        train: Interactions,
        val: Interactions,
        feats: dict[str, torch.Tensor | None],
        device: torch.device,
    ) -> dict[str, float]:
        vectors = self._eval_item_vectors(net, feats)
        users = np.flatnonzero((val.lengths() > 0) & (train.lengths() > 0))
        if len(users) > VALIDATION_USERS_MAX:
            # a fixed sample: scoring every user costs users x items per epoch
            pick = np.random.default_rng(self.config.seed).choice(
                len(users), VALIDATION_USERS_MAX, replace=False
            )
            users = users[np.sort(pick)]
        recalls, ndcgs = [], []
        discounts = 1.0 / np.log2(np.arange(2, 12))
        # at most ~64M scores at once (256 MB), whatever the catalogue's size
        step = int(max(1, min(1024, (1 << 26) // max(int(vectors.shape[0]), 1))))
        for start in range(0, len(users), step):
            chunk = users[start : start + step]
            hists = [train.user_items(u) for u in chunk]
            wts = [train.weights[train.indptr[u] : train.indptr[u + 1]] for u in chunk]
            scores = (
                self._user_vectors(net, vectors, chunk.tolist(), hists, wts)
                @ vectors[:, : self.dim].T
            )
            rows = np.repeat(np.arange(len(chunk)), [len(h) for h in hists])
            scores[
                torch.as_tensor(rows, device=device),
                torch.as_tensor(np.concatenate(hists), device=device),
            ] = float("-inf")
            top = torch.topk(scores, min(10, scores.shape[1]), dim=1).indices.cpu().numpy()
            for row, u in enumerate(chunk):
                relevant = set(val.user_items(u).tolist())
                hits = np.zeros(10)
                hits[: len(top[row])] = [i in relevant for i in top[row]]
                recalls.append(hits.sum() / len(relevant))
                ideal = discounts[: min(len(relevant), 10)].sum()
                ndcgs.append(float((hits * discounts).sum() / ideal))
        return {
            "recall@10": float(np.mean(recalls)) if recalls else 0.0,
            "ndcg@10": float(np.mean(ndcgs)) if ndcgs else 0.0,
        }

    def _store_histories(self, train: Interactions) -> None:
        """Keep each user's last ``max_history`` training items for history-less requests."""
        cap = self.config.max_history
        lens = train.lengths()
        keep = np.zeros(len(train), dtype=bool)
        for u in np.flatnonzero(lens):
            end = train.indptr[u + 1]
            keep[max(train.indptr[u], end - cap) : end] = True
        trimmed = train.select(keep)
        self._hist_indptr, self._hist_items = trimmed.indptr, trimmed.items

    def _finalise(self, feats: dict[str, torch.Tensor | None]) -> None:
        net = self._require_net()
        reduced = self._reduced(net, feats, self._dims["n_items"])
        net.item_vectors.copy_(self._eval_item_vectors(net, reduced))
        self._set_version()

    def _set_version(self) -> None:
        digest = hashlib.sha256()
        digest.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        digest.update(self._require_net().item_vectors.detach().cpu().numpy().tobytes())
        self.version = f"hybrid-{FORMAT_VERSION}-{digest.hexdigest()[:12]}"

    # ------------------------------------------------------------------ serving
    def all_item_vectors(self) -> np.ndarray:
        """Item tower output for every item of ``item_map`` (what the app writes to pgvector).

        Items without training interactions have content-only vectors.
        """
        return self._require_net().item_vectors.detach().cpu().numpy().copy()

    @torch.no_grad()
    def item_vectors(
        self, features: ItemFeatures, item_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Item tower for items described by ``features`` (row i = ``item_ids[i]``).

        Ids the model was trained on add their ID embedding; unknown ids, or ``item_ids=None``,
        give content-only vectors. This is how an item created after training gets a hybrid
        vector right away, without retraining.
        """
        net = self._require_net()
        device = net.has_id.device
        n = len(features)
        if item_ids is not None and len(item_ids) != n:
            raise ValueError(f"{len(item_ids)} ids for {n} feature rows")
        feats = self._feature_tensors(features, n, device)
        net.eval()
        out = net.items.content_vectors(n=n, **feats)
        if item_ids is not None:
            known = np.array([i in self.item_map for i in item_ids], dtype=bool)
            if known.any():
                rows = np.flatnonzero(known)
                idx = torch.as_tensor(
                    self.item_map.indices([item_ids[r] for r in rows]), device=device
                )
                at = torch.as_tensor(rows, device=device)
                out[at] = net.items.combine(out[at], net.items.ids(idx), net.has_id[idx])
        return out.cpu().numpy()

    @torch.no_grad()
    def user_vector(
        self,
        user: str | None,
        history_vectors: np.ndarray,
        history_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """User tower from the stored vectors of the user's recent items (oldest first).

        Returns a ``vector_dim`` vector whose history part is zero, so its inner product with
        a stored item vector is the model's score (pgvector ``MaxInnerProduct``). ``user`` None
        or unknown: the history alone (anonymous session / new shopper). A known user with an
        empty history falls back to the history kept from training, as :meth:`score_items`
        does.
        """
        net = self._require_net()
        device = net.has_id.device
        hv = np.asarray(history_vectors, dtype=np.float32).reshape(-1, self.vector_dim)
        index = self.user_map.index(user) if user is not None and user in self.user_map else None
        if not len(hv) and index is not None:
            stored = self._stored_history(index)
            hv = net.item_vectors[torch.as_tensor(stored, device=device)].cpu().numpy()
            history_weights = None
        w = np.ones(len(hv), np.float32) if history_weights is None else history_weights
        if not len(hv):
            # no history at all: one padding row (weight 0), so the tower falls back to its
            # bias, the "popular items" vector, instead of indexing an empty batch
            hv, w = np.zeros((1, self.vector_dim), np.float32), np.zeros(1, np.float32)
        vecs = torch.as_tensor(hv, device=device)
        u = self._user_vectors(
            net,
            vecs,
            [index],
            [np.arange(len(hv))],
            [np.asarray(w, np.float32).reshape(-1)],
        )
        out = np.zeros(self.vector_dim, dtype=np.float32)
        out[: self.dim] = u[0].cpu().numpy()
        return out

    def _stored_history(self, user: int) -> np.ndarray:
        if user + 1 >= len(self._hist_indptr):
            return np.zeros(0, dtype=np.int64)
        return self._hist_items[self._hist_indptr[user] : self._hist_indptr[user + 1]]

    @torch.no_grad()
    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """Inner products of user vectors with every item vector (len(users) x n_items).

        ``histories`` are item indices, oldest first, weight 1 each; a known user with an
        empty history uses the history kept from training.
        """
        net = self._require_net()
        vectors = net.item_vectors
        hists = []
        for user, history in zip(users, histories, strict=True):
            h = np.asarray(history, dtype=np.int64)
            if not len(h) and user is not None:
                h = self._stored_history(int(user))
            hists.append(h)
        out = np.zeros((len(hists), len(self.item_map)), dtype=np.float32)
        for start in range(0, len(hists), 1024):
            chunk = slice(start, start + 1024)
            u = self._user_vectors(net, vectors, list(users[chunk]), hists[chunk])
            out[chunk] = (u @ vectors[:, : self.dim].T).cpu().numpy()
        return out

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        """Items to show next to ``item``: the user tower with ``item`` as the only history.

        That is "people who liked this also liked", consistent with what an anonymous session
        that viewed only this item would be recommended.
        """
        index = self.item_map.index(item)
        scores = self.score_items([None], [[index]])[0]
        mask = np.ones(len(scores), dtype=bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def codes(self, kind: Literal["category", "brand"], names: Sequence[str]) -> np.ndarray:
        """Codes of category/brand names in this model's vocabulary; unknown names give 0.

        Lets the app build :class:`ItemFeatures` for new items that the model reads correctly.
        """
        if kind == "category":
            vocab = self.category_names
        elif kind == "brand":
            vocab = self.brand_names
        else:
            raise ValueError(f"kind must be 'category' or 'brand', got {kind!r}")
        lookup = {name: i for i, name in enumerate(vocab)}
        return np.array([lookup.get(name, 0) if name else 0 for name in names], dtype=np.int64)

    # ------------------------------------------------------------------ artefact
    def save(self, path: str | Path) -> None:
        """Write the artefact directory (config, weights, id maps, vocab, history, version)."""
        net = self._require_net()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        tensors["history.indptr"] = torch.as_tensor(self._hist_indptr)
        tensors["history.items"] = torch.as_tensor(self._hist_items)
        save_file(tensors, str(out / "model.safetensors"), metadata={"version": self.version or ""})
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "config": self.config.to_dict(),
            "dims": self._dims,
        }
        (out / "config.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        self.user_map.save(out / "user_ids.json")
        self.item_map.save(out / "item_ids.json")
        vocab = {"category": self.category_names, "brand": self.brand_names}
        (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        training = {"fit_seconds": self.fit_seconds_, "history": self.training_history_}
        (out / "training.json").write_text(json.dumps(training, indent=1), encoding="utf-8")
        (out / "version.txt").write_text(f"{self.version}\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> HybridRecommender:
        """Read an artefact written by :meth:`save` (on ``device``, default CUDA if available)."""
        src = Path(path)
        meta = json.loads((src / "config.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{src} is not a {FORMAT} v{FORMAT_VERSION} artefact "
                f"({meta.get('format')} v{meta.get('format_version')})"
            )
        config = HybridConfig.from_dict(meta["config"])
        if device is not None:
            config = config.replace(device=device)
        model = cls(config)
        model._dims = {k: int(v) for k, v in meta["dims"].items()}
        model.user_map = IdMap.load(src / "user_ids.json")
        model.item_map = IdMap.load(src / "item_ids.json")
        vocab = json.loads((src / "vocab.json").read_text(encoding="utf-8"))
        model.category_names, model.brand_names = list(vocab["category"]), list(vocab["brand"])
        training = json.loads((src / "training.json").read_text(encoding="utf-8"))
        model.fit_seconds_ = training.get("fit_seconds")
        model.training_history_ = list(training.get("history", []))
        model.version = (src / "version.txt").read_text(encoding="utf-8").strip() or None
        tensors = load_file(str(src / "model.safetensors"))
        model._hist_indptr = tensors.pop("history.indptr").numpy()
        model._hist_items = tensors.pop("history.items").numpy()
        net = model._new_net()
        net.load_state_dict(tensors)
        model._net = net.to(model._device()).eval()
        return model
