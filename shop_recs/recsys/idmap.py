"""An explicit, saved mapping between external ids and dense indices (LightFM's ``Dataset``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path


class IdMap:
    """Stable external id <-> index mapping; new ids are appended, never renumbered."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.extend(ids)

    def extend(self, ids: Iterable[str]) -> None:
        for external_id in ids:
            if external_id not in self._index:
                self._index[external_id] = len(self._ids)
                self._ids.append(external_id)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def index(self, external_id: str) -> int:
        return self._index[external_id]

    def indices(self, ids: Sequence[str]) -> list[int]:
        return [self._index[i] for i in ids]

    def ids(self, indices: Iterable[int]) -> list[str]:
        return [self._ids[i] for i in indices]

    def to_list(self) -> list[str]:
        return list(self._ids)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self._ids), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> IdMap:
        ids = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"{path} does not hold a list of string ids")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path} holds repeated ids")
        return cls(ids)
