"""SequenceRecommender: an order-aware (SASRec-style) user tower over content-based item vectors.

Why this shape
--------------
* Items: the hybrid's item tower (item-ID embedding + gate * MLP over frozen text/image PCA,
  category, brand), ``2 * dim`` wide: a scoring part and an input part. IDs and whole modalities
  are dropped at random in training (DropoutNet) and an extra loss scores targets with
  content-only vectors, so an item without events gets a useful vector from content alone: it
  can be *predicted* (scoring part) and can *appear in a session* (input part) without retraining.
* User: a small causal transformer (:mod:`.network`) over the last ``max_len`` steps of the
  shopper's history, oldest first: each step is the input part of the item's vector plus a
  learned position and an event-type embedding. The output at the last step is the user
  vector; the input part of the user vector is zero, so ``user . item`` is the score and the
  app ranks with one pgvector inner-product query, as for every VectorRecommender.
* Training: next-step prediction at every position of windows of ``max_len + 1`` steps
  (SASRec), softmax over the catalogue (sampled with logQ correction above
  ``full_softmax_max_items``, as the hybrid), early stopping on HitRate@10 of each validation
  user's last step.
* Serving without torch: :class:`~.serving.SequenceVectors` reads the same artefact with
  ``safetensors`` (numpy) and runs the same forward pass; a test checks it equals this one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..base import Dataset, ItemFeatures, VectorRecommender, top_k
from ..hybrid.model import HybridRecommender, _threads
from ..idmap import IdMap
from ..vector_utils import names_to_codes, read_meta, write_meta
from .config import SequenceConfig
from .data import (
    event_types,
    history_steps,
    merge_steps,
    right_align,
    training_windows,
    user_sequences,
)
from .network import SequenceNet

FORMAT = "shop_recs.sequence"
FORMAT_VERSION = 1
#: What the app loads (torch-free); :meth:`SequenceRecommender.load` reads the same directory.
CLASS_PATH = "shop_recs.recsys.sequence.serving.SequenceVectors"


class SequenceRecommender(VectorRecommender):
    """Order-aware two-tower recommender; see the module docstring.

    ``SequenceRecommender(dim=32, seed=1)`` overrides :class:`SequenceConfig` fields.
    """

    family = "sequence"

    def __init__(self, config: SequenceConfig | None = None, **overrides: Any) -> None:
        base = config or SequenceConfig()
        self.config = base.replace(**overrides) if overrides else base
        self.user_map = IdMap()
        self.item_map = IdMap()
        self.category_names: list[str] = [""]
        self.brand_names: list[str] = [""]
        self.training_history_: list[dict[str, Any]] = []
        self.fit_seconds_: float | None = None
        self.version: str | None = None
        self.best_epochs_: int = 0
        self._net: SequenceNet | None = None
        self._dims: dict[str, int] = {}
        self._hist_indptr = np.zeros(1, np.int64)
        self._hist_items = np.zeros(0, np.int64)
        self._hist_types = np.zeros(0, np.int64)
        #: Type code of history steps that come without weights (the commonest in training).
        self.default_type = 1
        self._deadline: float | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def scoring_dim(self) -> int:
        return self.config.dim

    @property
    def vector_dim(self) -> int:
        return 2 * self.config.dim

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

    def _require_net(self) -> SequenceNet:
        if self._net is None:
            raise RuntimeError("SequenceRecommender is not fitted (call fit or load first)")
        return self._net

    def _new_net(self) -> SequenceNet:
        cfg, d = self.config, self._dims
        return SequenceNet(
            n_items=d["n_items"],
            text_dim=d["text_dim"],
            image_dim=d["image_dim"],
            n_categories=d["n_categories"],
            n_brands=d["n_brands"],
            dim=cfg.dim,
            hidden=cfg.hidden,
            code_dim=cfg.code_dim,
            content_dropout=cfg.content_dropout,
            init_std=cfg.init_std,
            text_components=cfg.text_components,
            image_components=cfg.image_components,
            layers=cfg.layers,
            heads=cfg.heads,
            max_len=cfg.max_len,
            dropout=cfg.dropout,
        )

    # the hybrid's feature plumbing (same item tower, same attributes it reads)
    _feature_tensors = HybridRecommender._feature_tensors
    _remap = staticmethod(HybridRecommender._remap)
    _take = staticmethod(HybridRecommender._take)
    _reduced = staticmethod(HybridRecommender._reduced)
    _has_content = HybridRecommender._has_content

    def _types(self, weights: np.ndarray | None, n: int) -> np.ndarray:
        if weights is None:
            return np.full(n, self.default_type, np.int64)
        return event_types(weights, n)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset: Dataset,
        *,
        validation: Dataset | None = None,
        progress: bool = True,
        deadline: float | None = None,
    ) -> SequenceRecommender:
        """Train on ``dataset``'s positives in time order.

        Early stopping holds out the last step of ``validation_fraction`` of the users (3+
        steps; at least ``validation_min_users``); ``validation`` (same maps), when given, is
        used instead: each of its users' first held-out item (by time) is the target after
        their training sequence. With
        ``max_epochs`` fixed and ``validation_fraction=0`` it trains on everything.
        ``deadline`` (``time.monotonic()``) stops after the epoch that passes it.
        """
        cfg = self.config
        started = time.perf_counter()
        self._deadline = deadline
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
            seqs, wts = user_sequences(dataset, cfg.merge_repeats)
            types = [event_types(w, len(w)) for w in wts]
            all_types = np.concatenate(types) if types else np.zeros(0, np.int64)
            self.default_type = int(np.bincount(all_types).argmax()) if len(all_types) else 1
            rng = np.random.default_rng(cfg.seed)
            train_seqs, train_types, val = self._validation(seqs, types, validation, rng)
            self.training_history_ = []
            self._net = self._train(train_seqs, train_types, val, feature_t, device, progress)
            self._store_histories(seqs, types)
            self._finalise(feature_t)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _validation(
        self,
        seqs: list[np.ndarray],
        types: list[np.ndarray],
        validation: Dataset | None,
        rng: np.random.Generator,
    ) -> tuple[list[np.ndarray], list[np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
        """Training sequences and the validation (users, target item) pairs."""
        if validation is not None and len(validation):
            vseqs, _ = user_sequences(validation, False)
            users = np.array([u for u, s in enumerate(vseqs) if len(s) and len(seqs[u])], np.int64)
            if len(users):
                targets = np.array([vseqs[u][0] for u in users], np.int64)
                return seqs, types, (users, targets)
        if self.config.validation_fraction <= 0:
            return seqs, types, None
        lens = np.array([len(s) for s in seqs])
        eligible = np.flatnonzero(lens >= 3)
        n_val = max(
            round(self.config.validation_fraction * len(eligible)),
            min(len(eligible), self.config.validation_min_users),
        )
        if n_val < 1:
            return seqs, types, None
        users = np.sort(rng.choice(eligible, size=n_val, replace=False))
        targets = np.array([seqs[u][-1] for u in users], np.int64)
        held = set(users.tolist())
        train_seqs = [s[:-1] if u in held else s for u, s in enumerate(seqs)]
        train_types = [t[:-1] if u in held else t for u, t in enumerate(types)]
        return train_seqs, train_types, (users, targets)

    def _train(
        self,
        seqs: list[np.ndarray],
        types: list[np.ndarray],
        val: tuple[np.ndarray, np.ndarray] | None,
        feats: dict[str, torch.Tensor | None],
        device: torch.device,
        progress: bool,
    ) -> SequenceNet:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed + 1)
        net = self._new_net().to(device)
        net.items.fit_projections(feats["text"], feats["image"], feats["image_mask"])
        reduced = self._reduced(net, feats, self._dims["n_items"])
        n_items = self._dims["n_items"]
        counts = np.bincount(
            np.concatenate(seqs) if seqs else np.zeros(0, np.int64), minlength=n_items
        )
        net.has_id.copy_(torch.as_tensor(counts > 0, device=device))
        sampler = None
        if n_items > cfg.full_softmax_max_items:
            q = np.power(counts.astype(np.float64) + 1.0, 0.75)
            sampler = q / q.sum()
        win_i, win_t = training_windows(seqs, types, cfg.max_len)
        optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_epoch, best_state, stale = -1.0, 0, None, 0
        recent: list[float] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_epochs, desc="sequence", unit="epoch", leave=False)
        for epoch in range(1, cfg.max_epochs + 1):
            tick = time.perf_counter()
            net.train()
            order = rng.permutation(len(win_i))
            total, steps = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                idx, typ = right_align(
                    [win_i[r] for r in rows], [win_t[r] for r in rows], cfg.max_len + 1
                )
                loss = self._loss(net, idx, typ, reduced, sampler, rng, device)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                steps += 1
            record: dict[str, Any] = {
                "phase": "train",
                "epoch": epoch,
                "train_loss": total / max(steps, 1),
            }
            if val is not None:
                record["hit_rate@10"] = self._validate(net, seqs, types, val, reduced)
            record["seconds"] = time.perf_counter() - tick
            self.training_history_.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['train_loss']:.3f}")
            out_of_time = self._deadline is not None and time.monotonic() > self._deadline
            if out_of_time:
                record["stopped"] = "deadline"
            if val is None:
                best_epoch = epoch
                if out_of_time:
                    break
                continue
            recent.append(record["hit_rate@10"])
            smoothed = float(np.mean(recent[-3:]))
            record["smoothed_hit_rate@10"] = smoothed
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
        self.best_epochs_ = best_epoch
        return net

    def _loss(
        self,
        net: SequenceNet,
        idx: np.ndarray,
        typ: np.ndarray,
        feats: dict[str, torch.Tensor | None],
        sampler: np.ndarray | None,
        rng: np.random.Generator,
        device: torch.device,
    ) -> torch.Tensor:
        cfg = self.config
        n_items = self._dims["n_items"]
        inp_i, inp_t, tgt = idx[:, :-1], typ[:, :-1], idx[:, 1:]
        used = inp_t > 0
        targets = tgt[used]
        if sampler is None:
            rows = np.arange(n_items)
            cand = rows
            log_q = None
        else:
            negatives = rng.choice(n_items, size=cfg.sampled_negatives, p=sampler)
            cand = np.unique(np.r_[targets, negatives])
            rows = np.unique(np.r_[cand, inp_i[used]])
            log_q = torch.as_tensor(np.log(sampler[cand]), dtype=torch.float32, device=device)
        local = np.zeros(n_items, np.int64)
        local[rows] = np.arange(len(rows))
        cand_pos = np.zeros(n_items, np.int64)
        cand_pos[cand] = np.arange(len(cand))
        rows_t = torch.as_tensor(rows, device=device)
        n = len(rows)
        content = net.items.from_reduced(
            n=n,
            **self._take(feats, None if sampler is None else rows_t),
            text_keep=(torch.rand(n, device=device) >= cfg.text_dropout).float(),
            image_keep=(torch.rand(n, device=device) >= cfg.image_dropout).float(),
        )
        id_keep = (torch.rand(n, device=device) >= cfg.id_dropout) & net.has_id[rows_t]
        vectors = net.items.combine(content, net.items.ids(rows_t), id_keep)
        hist = torch.as_tensor(np.where(used, local[inp_i], 0), device=device)
        out = net.encode_all(vectors, hist, torch.as_tensor(inp_t, device=device))
        u = out[torch.as_tensor(used, device=device)]
        cand_local = torch.as_tensor(local[cand], device=device)
        target_cols = torch.as_tensor(cand_pos[targets], device=device)

        def nll(item_vecs: torch.Tensor, user_vecs: torch.Tensor) -> torch.Tensor:
            logits = user_vecs @ item_vecs[cand_local, : cfg.dim].T
            if log_q is not None:
                logits = logits - log_q
            return torch.nn.functional.cross_entropy(logits, target_cols)

        loss = nll(vectors, u)
        if cfg.content_loss_weight > 0 and self._has_content():
            loss = loss + cfg.content_loss_weight * nll(content, u.detach())
        return loss

    @torch.no_grad()
    def _validate(
        self,
        net: SequenceNet,
        seqs: list[np.ndarray],
        types: list[np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        feats: dict[str, torch.Tensor | None],
    ) -> float:
        vectors = self._eval_item_vectors(net, feats)
        users, targets = val
        hits = 0
        for start in range(0, len(users), 512):
            chunk = users[start : start + 512]
            hists = [seqs[u] for u in chunk]
            u = self._encode(net, vectors, hists, [types[x] for x in chunk])
            scores = u @ vectors[:, : self.dim].T
            for row, h in enumerate(hists):
                scores[row, torch.as_tensor(h, dtype=torch.long)] = float("-inf")
            top = torch.topk(scores, min(10, scores.shape[1]), dim=1).indices.cpu().numpy()
            hits += int((top == targets[start : start + 512, None]).any(axis=1).sum())
        return hits / max(len(users), 1)

    @torch.no_grad()
    def _eval_item_vectors(
        self, net: SequenceNet, feats: dict[str, torch.Tensor | None]
    ) -> torch.Tensor:
        net.eval()
        n = self._dims["n_items"]
        rows = torch.arange(n, device=net.has_id.device)
        content = net.items.from_reduced(n=n, **feats)
        return net.items.combine(content, net.items.ids(rows), net.has_id)

    @torch.no_grad()
    def _encode(
        self,
        net: SequenceNet,
        vectors: torch.Tensor,
        histories: Sequence[np.ndarray],
        types: Sequence[np.ndarray],
    ) -> torch.Tensor:
        net.eval()
        device = vectors.device
        idx, typ = right_align(list(histories), list(types), self.config.max_len)
        return net.encode_last(
            vectors, torch.as_tensor(idx, device=device), torch.as_tensor(typ, device=device)
        )

    def _store_histories(self, seqs: list[np.ndarray], types: list[np.ndarray]) -> None:
        cap = self.config.max_len
        self._hist_indptr = np.r_[0, np.cumsum([min(len(s), cap) for s in seqs])].astype(np.int64)
        self._hist_items = (
            np.concatenate([s[-cap:] for s in seqs]).astype(np.int64)
            if seqs
            else np.zeros(0, np.int64)
        )
        self._hist_types = (
            np.concatenate([t[-cap:] for t in types]).astype(np.int64)
            if types
            else np.zeros(0, np.int64)
        )

    def _stored(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        if user + 1 >= len(self._hist_indptr):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        s = slice(self._hist_indptr[user], self._hist_indptr[user + 1])
        return self._hist_items[s], self._hist_types[s]

    def _finalise(self, feats: dict[str, torch.Tensor | None]) -> None:
        net = self._require_net()
        reduced = self._reduced(net, feats, self._dims["n_items"])
        net.item_vectors.copy_(self._eval_item_vectors(net, reduced))
        digest = hashlib.sha256()
        digest.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        digest.update(net.item_vectors.detach().cpu().numpy().tobytes())
        self.version = f"sequence-{FORMAT_VERSION}-{digest.hexdigest()[:12]}"

    # ------------------------------------------------------------------ serving
    def all_item_vectors(self) -> np.ndarray:
        return self._require_net().item_vectors.detach().cpu().numpy().copy()

    @torch.no_grad()
    def item_vectors(
        self, features: ItemFeatures, item_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Item tower for items described by ``features``; unknown ids (or none) are
        content-only: a new item gets a vector without retraining."""
        net = self._require_net()
        device = net.has_id.device
        n = len(features)
        if item_ids is not None and len(item_ids) != n:
            raise ValueError(f"{len(item_ids)} ids for {n} feature rows")
        net.eval()
        out = net.items.content_vectors(n=n, **self._feature_tensors(features, n, device))
        if item_ids is not None:
            rows = [r for r, i in enumerate(item_ids) if i in self.item_map]
            if rows:
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
        """Encoder output after the shopper's recent items (stored vectors, oldest first).

        Consecutive repeats of one item merge into one step (strongest event). A known user
        with no history falls back to the steps kept from training.
        """
        net = self._require_net()
        device = net.has_id.device
        hv, types = history_steps(
            np.asarray(history_vectors, np.float32).reshape(-1, self.vector_dim),
            history_weights,
            self.default_type,
        )
        index = self.user_map.index(user) if user is not None and user in self.user_map else None
        if not len(hv) and index is not None:
            items, types = self._stored(index)
            hv = net.item_vectors[torch.as_tensor(items, device=device)].cpu().numpy()
        vecs = torch.as_tensor(hv, device=device)
        u = self._encode(net, vecs, [np.arange(len(hv))], [types])
        out = np.zeros(self.vector_dim, np.float32)
        out[: self.dim] = u[0].cpu().numpy()
        return out

    @torch.no_grad()
    def score_items(
        self, users: Sequence[int | None], histories: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """Scores of every item after each history (item indices, oldest first, weight
        unknown: the commonest training event type); a known user with an empty history uses
        the steps kept from training."""
        net = self._require_net()
        vectors = net.item_vectors
        hists, typs = [], []
        for user, history in zip(users, histories, strict=True):
            h = np.asarray(history, np.int64)
            t = np.full(len(h), self.default_type, np.int64)
            if self.config.merge_repeats and len(h) > 1:
                h, _ = merge_steps(h, np.ones(len(h)))
                t = t[: len(h)]
            if not len(h) and user is not None:
                h, t = self._stored(int(user))
            hists.append(h)
            typs.append(t)
        out = np.zeros((len(hists), len(self.item_map)), np.float32)
        for start in range(0, len(hists), 512):
            s = slice(start, start + 512)
            u = self._encode(net, vectors, hists[s], typs[s])
            out[s] = (u @ vectors[:, : self.dim].T).cpu().numpy()
        return out

    def similar_items(self, item: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        """What comes after ``item`` in a session that has only it."""
        index = self.item_map.index(item)
        scores = self.score_items([None], [[index]])[0]
        mask = np.ones(len(scores), bool)
        mask[index] = False
        return top_k(scores, mask, k, self.item_map)

    def codes(self, kind: Literal["category", "brand"], names: Sequence[str]) -> np.ndarray:
        if kind not in ("category", "brand"):
            raise ValueError(f"kind must be 'category' or 'brand', got {kind!r}")
        return names_to_codes(
            self.category_names if kind == "category" else self.brand_names, names
        )

    # ------------------------------------------------------------------ artefact
    def save(self, path: str | Path) -> None:
        """The artefact directory: config.json, model.safetensors, id maps, vocab, version."""
        net = self._require_net()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        tensors["history.indptr"] = torch.as_tensor(self._hist_indptr)
        tensors["history.items"] = torch.as_tensor(self._hist_items)
        tensors["history.types"] = torch.as_tensor(self._hist_types)
        save_file(tensors, str(out / "model.safetensors"), metadata={"version": self.version or ""})
        write_meta(
            out,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "class": CLASS_PATH,
                "family": self.family,
                "version": self.version,
                "config": self.config.to_dict(),
                "dims": self._dims,
                "default_type": self.default_type,
                "best_epochs": self.best_epochs_,
                "fit_seconds": self.fit_seconds_,
                "history": self.training_history_,
            },
        )
        self.user_map.save(out / "user_ids.json")
        self.item_map.save(out / "item_ids.json")
        vocab = {"category": self.category_names, "brand": self.brand_names}
        (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (out / "version.txt").write_text(f"{self.version}\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> SequenceRecommender:
        src = Path(path)
        meta = read_meta(src, FORMAT, FORMAT_VERSION)
        config = SequenceConfig.from_dict(meta["config"])
        if device is not None:
            config = config.replace(device=device)
        model = cls(config)
        model._dims = {k: int(v) for k, v in meta["dims"].items()}
        model.default_type = int(meta["default_type"])
        model.best_epochs_ = int(meta.get("best_epochs") or 0)
        model.fit_seconds_ = meta.get("fit_seconds")
        model.training_history_ = list(meta.get("history") or [])
        model.version = meta.get("version")
        model.user_map = IdMap.load(src / "user_ids.json")
        model.item_map = IdMap.load(src / "item_ids.json")
        vocab = json.loads((src / "vocab.json").read_text(encoding="utf-8"))
        model.category_names, model.brand_names = list(vocab["category"]), list(vocab["brand"])
        tensors = load_file(str(src / "model.safetensors"))
        model._hist_indptr = tensors.pop("history.indptr").numpy()
        model._hist_items = tensors.pop("history.items").numpy()
        model._hist_types = tensors.pop("history.types").numpy()
        net = model._new_net()
        net.load_state_dict(tensors)
        model._net = net.to(model._device()).eval()
        return model
