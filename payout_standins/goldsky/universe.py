"""Deterministic synthetic `Condition` data for the Goldsky / graph-node simulator.

Why structured ids: the benchmark runs against universes of a million conditions, and
the simulator must answer membership (`id_in`), ordering (`orderBy: id`) and cursor
paging (`id_gt`) without holding a million strings. An id is therefore
``"0x" + prefix(48 hex, from the seed) + index(16 hex)``: membership is "right prefix and
index < size", and sorted-id order equals index order, so a cursor maps to an index by
binary search. Everything about a condition (creation block, resolution block, payout
vector) is a pure function of ``(seed, index)``, which makes answers reproducible across
processes and makes time travel (`block: {number: N}`) exact: the state as of block N is
recomputed, never stored.

Overrides are the one piece of mutable state: tests put arbitrary (also corrupt) payout
vectors on any well-formed id. They are few, so they live in a small dict that is
replaced copy-on-write, which keeps concurrent readers lock-free.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import EllipsisType

from .conditions import (
    _DIGEST,
    _INDEX_RE,
    _MAX_INDEX,
    _NO,
    _PREFIX_HEX,
    _SPLIT,
    _YES,
    GENESIS_TIMESTAMP,
    SECONDS_PER_BLOCK,
    ConditionState,
    Override,
    _sha256_hex,
    _to_str_tuple,
    block_timestamp,
    decimal_payouts,
)

__all__ = [
    "Universe",
]


class Universe:
    """A deterministic set of `size` conditions, plus a movable chain head.

    ``head_block`` given to the constructor is the *anchor*: the generated history is
    laid out relative to it and never changes. The *current* head (:attr:`head`) starts
    there and may move (``set_head``, ``advance``); conditions whose resolution lies
    beyond the anchor (up to ``future_blocks`` later) resolve as the head passes them,
    which is what lets tests see "more resolutions after the head advanced" and check
    that a client pins one block for a whole run.
    """

    def __init__(
        self,
        size: int,
        seed: int = 0,
        resolved_share: float = 0.75,
        split_share: float = 0.05,
        head_block: int = 50_000_000,
        *,
        first_block: int | None = None,
        future_share: float = 0.5,
        future_blocks: int | None = None,
    ) -> None:
        if size < 0 or size > _MAX_INDEX:
            raise ValueError(f"size must be between 0 and 16**16, got {size}")
        if not 0.0 <= resolved_share <= 1.0 or not 0.0 <= split_share <= 1.0:
            raise ValueError("resolved_share and split_share must be within [0, 1]")
        if not 0.0 <= future_share <= 1.0:
            raise ValueError("future_share must be within [0, 1]")
        if head_block < 10:
            raise ValueError("head_block must be at least 10")
        self.size = size
        self.seed = seed
        self.resolved_share = resolved_share
        self.split_share = split_share
        self.anchor_block = head_block
        self.first_block = max(1, head_block // 5) if first_block is None else first_block
        if not 0 <= self.first_block < head_block:
            raise ValueError("first_block must be within [0, head_block)")
        self.future_share = future_share
        self.future_blocks = (
            max(100, head_block // 100) if future_blocks is None else max(1, future_blocks)
        )
        self._span = head_block - self.first_block
        self._resolved_threshold = int(resolved_share * 2**32)
        self._split_threshold = int(split_share * 2**32)
        self._future_threshold = int(future_share * 2**32)
        self.prefix = _sha256_hex(f"payout-sim:universe:{seed}")[:_PREFIX_HEX]
        unknown = _sha256_hex(f"payout-sim:unknown:{seed}")[:_PREFIX_HEX]
        if unknown == self.prefix:  # pragma: no cover - a sha256 collision
            unknown = _sha256_hex(f"payout-sim:unknown2:{seed}")[:_PREFIX_HEX]
        self.unknown_prefix = unknown
        self._id_head = "0x" + self.prefix
        self._key = hashlib.sha256(f"payout-sim:key:{seed}".encode()).digest()
        self._head = head_block
        self._head_lock = threading.Lock()
        self._overrides: Mapping[str, Override] = {}
        self._extra_ids: tuple[str, ...] = ()
        self._override_lock = threading.Lock()

    # ----------------------------------------------------------------- ids
    def condition_id(self, i: int) -> str:
        """The id of index ``i``. Indices >= size give well-formed ids that are unknown."""
        if not 0 <= i < _MAX_INDEX:
            raise ValueError(f"index out of range: {i}")
        return f"{self._id_head}{i:016x}"

    def unknown_id(self, j: int) -> str:
        """A well-formed condition id that is guaranteed not to be in the universe."""
        if not 0 <= j < _MAX_INDEX:
            raise ValueError(f"index out of range: {j}")
        return f"0x{self.unknown_prefix}{j:016x}"

    def index_of(self, cid: str) -> int | None:
        """Index of a known generated id; ``None`` for anything else (O(1), no lookups)."""
        if not isinstance(cid, str) or len(cid) != 66 or not cid.startswith(self._id_head):
            return None
        tail = cid[2 + _PREFIX_HEX :]
        if not _INDEX_RE.fullmatch(tail):
            return None
        i = int(tail, 16)
        return i if i < self.size else None

    def is_known(self, cid: str) -> bool:
        return self.index_of(cid) is not None

    def _bisect(self, bound: str, *, strict: bool) -> int:
        """First index whose id is > bound (strict) or >= bound, by string order."""
        lo, hi = 0, self.size
        head = self._id_head
        while lo < hi:
            mid = (lo + hi) // 2
            cid = f"{head}{mid:016x}"
            if cid <= bound if strict else cid < bound:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def iter_ids(
        self,
        *,
        gt: str | None = None,
        gte: str | None = None,
        lt: str | None = None,
        lte: str | None = None,
        descending: bool = False,
    ) -> Iterator[str]:
        """Candidate ids in string order within the bounds, lazily.

        Yields generated ids plus override-only ids (well-formed ids outside the
        generated range that a test gave a payout). It does not apply time travel or
        hidden overrides: callers check :meth:`state` for each id, as graph-node
        checks each row against the block.
        """
        start, stop = 0, self.size
        if gt is not None:
            start = max(start, self._bisect(gt, strict=True))
        if gte is not None:
            start = max(start, self._bisect(gte, strict=False))
        if lt is not None:
            stop = min(stop, self._bisect(lt, strict=False))
        if lte is not None:
            stop = min(stop, self._bisect(lte, strict=True))

        def in_bounds(cid: str) -> bool:
            return (
                (gt is None or cid > gt)
                and (gte is None or cid >= gte)
                and (lt is None or cid < lt)
                and (lte is None or cid <= lte)
            )

        head = self._id_head
        extras = [cid for cid in self._extra_ids if in_bounds(cid)]
        if descending:
            generated: Iterator[str] = (f"{head}{i:016x}" for i in range(stop - 1, start - 1, -1))
            extras.reverse()
        else:
            generated = (f"{head}{i:016x}" for i in range(start, stop))
        if not extras:
            yield from generated
            return
        yield from heapq.merge(generated, extras, reverse=descending)

    def page(
        self,
        *,
        id_gt: str | None = None,
        first: int = 100,
        descending: bool = False,
        block: int | None = None,
    ) -> list[ConditionState]:
        """One cursor page of the collection as of ``block``: what `conditions` returns
        for ``where: {id_gt}``, ``orderBy: id`` (expected answers for tests and demos)."""
        out: list[ConditionState] = []
        if first <= 0:
            return out
        for cid in self.iter_ids(gt=id_gt, descending=descending):
            state = self.state(cid, block)
            if state is not None:
                out.append(state)
                if len(out) >= first:
                    break
        return out

    def ids(self, start: int = 0, stop: int | None = None) -> Iterator[str]:
        """Generated ids for indices ``start..stop`` (default: all), lazily."""
        stop = self.size if stop is None else min(stop, self.size)
        head = self._id_head
        return (f"{head}{i:016x}" for i in range(max(0, start), stop))

    # ---------------------------------------------------------------- head
    @property
    def head(self) -> int:
        """The current indexed head block."""
        return self._head

    def set_head(self, block: int) -> None:
        if block < 0:
            raise ValueError("head block must be >= 0")
        with self._head_lock:
            self._head = block

    def advance(self, blocks: int) -> int:
        """Move the head forward by ``blocks`` and return the new head (atomic)."""
        with self._head_lock:
            self._head += blocks
            return self._head

    # --------------------------------------------------------------- state
    def _base_state(self, i: int, cid: str, block: int) -> ConditionState | None:
        """Generated state of index ``i`` as of ``block`` (None before its creation).

        Integer arithmetic on one unpacked digest: this runs once per row served.
        """
        created_u, share_u, when_u, split_u, side, future_u, oracle_u = _DIGEST.unpack_from(
            hashlib.blake2b(i.to_bytes(8, "big"), key=self._key, digest_size=32).digest()
        )
        anchor = self.anchor_block
        created = min(self.first_block + ((created_u * self._span) >> 64), anchor - 1)
        if created > block:
            return None
        resolve_at: int | None
        if share_u < self._resolved_threshold:
            resolve_at = min(anchor, created + 1 + ((when_u * (anchor - created)) >> 64))
        elif future_u < self._future_threshold:
            resolve_at = anchor + 1 + ((when_u * self.future_blocks) >> 64)
        else:
            resolve_at = None
        if resolve_at is None or resolve_at > block:
            return ConditionState(
                id=cid,
                index=i,
                created_block=created,
                resolved_block=None,
                numerators=None,
                denominator=None,
                payouts=None,
                resolution_timestamp=None,
                last_change_block=created,
                oracle_slot=oracle_u % 3,
            )
        if split_u < self._split_threshold:
            nums, den, pays = _SPLIT
        elif side & 1:
            nums, den, pays = _NO
        else:
            nums, den, pays = _YES
        return ConditionState(
            id=cid,
            index=i,
            created_block=created,
            resolved_block=resolve_at,
            numerators=nums,
            denominator=den,
            payouts=pays,
            resolution_timestamp=str(GENESIS_TIMESTAMP + SECONDS_PER_BLOCK * resolve_at),
            last_change_block=resolve_at,
            oracle_slot=oracle_u % 3,
        )

    def state(self, cid: str, block: int | None = None) -> ConditionState | None:
        """The condition as of ``block`` (default: current head); ``None`` if absent."""
        at = self._head if block is None else block
        override = self._overrides.get(cid)
        i = self.index_of(cid)
        base = None if i is None else self._base_state(i, cid, at)
        if override is None:
            return base
        if not override.present:
            return None
        if override.from_block is not None and at < override.from_block:
            return base
        return self._override_state(override, base)

    def _override_state(self, ov: Override, base: ConditionState | None) -> ConditionState:
        created = base.created_block if base is not None else (ov.from_block or 0)
        effective = ov.from_block if ov.from_block is not None else created
        if isinstance(ov.payouts, EllipsisType):
            payouts = (
                decimal_payouts(ov.numerators, ov.denominator)
                if ov.numerators is not None and ov.denominator is not None
                else None
            )
        else:
            payouts = ov.payouts
        if isinstance(ov.resolution_timestamp, EllipsisType):
            ts = None if ov.numerators is None else str(block_timestamp(effective))
        else:
            ts = ov.resolution_timestamp
        return ConditionState(
            id=ov.id,
            index=None if base is None else base.index,
            created_block=created,
            resolved_block=None if ov.numerators is None else effective,
            numerators=ov.numerators,
            denominator=ov.denominator,
            payouts=payouts,
            resolution_timestamp=ts,
            last_change_block=max(effective, created),
            overridden=True,
            outcome_slot_count=len(ov.numerators) if ov.numerators else 2,
            oracle_slot=0 if base is None else base.oracle_slot,
            position_ids_override=ov.position_ids,
        )

    # ----------------------------------------------------------- overrides
    def set_override(
        self,
        cid: str,
        numerators: Sequence[int] | Sequence[str] | None,
        denominator: int | str | None,
        *,
        payouts: Sequence[str] | EllipsisType | None = ...,
        resolution_timestamp: int | str | EllipsisType | None = ...,
        position_ids: Sequence[int] | Sequence[str] | None = None,
        from_block: int | None = None,
        present: bool = True,
    ) -> Override:
        """Serve ``numerators``/``denominator`` verbatim (as strings) for ``cid``.

        Works for generated and unknown ids alike (an unknown id then appears in results,
        in id order). Values are not checked: sums that do not match, uint256-sized
        numbers, negative strings, one or many outcomes are all allowed on purpose.
        """
        if not isinstance(cid, str) or not cid:
            raise ValueError("override id must be a non-empty string")
        if not isinstance(payouts, EllipsisType):
            payouts = _to_str_tuple(payouts)
        if not isinstance(resolution_timestamp, EllipsisType) and resolution_timestamp is not None:
            resolution_timestamp = str(resolution_timestamp)
        override = Override(
            id=cid,
            numerators=_to_str_tuple(numerators),
            denominator=None if denominator is None else str(denominator),
            payouts=payouts,
            resolution_timestamp=resolution_timestamp,
            position_ids=_to_str_tuple(position_ids),
            from_block=from_block,
            present=present,
        )
        with self._override_lock:
            updated = dict(self._overrides)
            updated[cid] = override
            self._publish(updated)
        return override

    def remove_override(self, cid: str) -> None:
        with self._override_lock:
            updated = dict(self._overrides)
            updated.pop(cid, None)
            self._publish(updated)

    def clear_overrides(self) -> None:
        with self._override_lock:
            self._publish({})

    @property
    def overrides(self) -> Mapping[str, Override]:
        return self._overrides

    def _publish(self, updated: dict[str, Override]) -> None:
        extras = sorted(
            cid for cid, ov in updated.items() if ov.present and self.index_of(cid) is None
        )
        # Publish extras before the dict so a concurrent reader never sees an
        # override-only id in the dict that iteration cannot reach.
        self._extra_ids = tuple(extras)
        self._overrides = updated
