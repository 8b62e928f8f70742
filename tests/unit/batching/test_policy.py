"""The batching policy: table-driven cases on explicit clock readings, plus invariants."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.batching.policy import Decision, Pending, decide
from modelport.core.settings import BatchingSettings

MS = 0.001


def p(rows: int, at: float = 0.0, deadline: float | None = None, key: Hashable = "a") -> Pending:
    return Pending(rows=rows, enqueued_at=at, deadline=deadline, key=key)


def cfg(
    max_batch_rows: int = 8, max_delay: int = 1000, preferred: int | None = None
) -> BatchingSettings:
    return BatchingSettings(
        enabled=True,
        max_batch_rows=max_batch_rows,
        max_delay=max_delay,
        preferred_batch_rows=preferred,
    )


CASES = [
    pytest.param([], 0.0, cfg(), Decision((), (), None), id="empty queue"),
    pytest.param([p(2)], 0.5 * MS, cfg(), Decision((), (), 1 * MS), id="delay not reached"),
    pytest.param(
        [p(2), p(1, at=0.2 * MS)], 1 * MS, cfg(), Decision((), (0, 1), None), id="delay reached"
    ),
    pytest.param([p(2, at=5.0)], 5.0, cfg(max_delay=0), Decision((), (0,), None), id="zero delay"),
    pytest.param(
        [p(2), p(2)], 0.0, cfg(preferred=4), Decision((), (0, 1), None), id="preferred reached"
    ),
    pytest.param(
        [p(2), p(2)], 0.0, cfg(preferred=5), Decision((), (), 1 * MS), id="preferred not reached"
    ),
    pytest.param(
        [p(3), p(2)], 0.0, cfg(preferred=4), Decision((), (0, 1), None), id="preferred passed"
    ),
    pytest.param([p(4), p(4), p(1)], 0.0, cfg(), Decision((), (0, 1), None), id="full at max rows"),
    pytest.param(
        [p(5), p(4), p(3)],
        0.0,
        cfg(),
        Decision((), (0, 2), None),
        id="overflow skipped, gap filled",
    ),
    pytest.param([p(5), p(4)], 0.0, cfg(), Decision((), (0,), None), id="overflow means full"),
    pytest.param([p(10), p(1)], 0.0, cfg(), Decision((), (0,), None), id="oversize head alone"),
    pytest.param(
        [p(1), p(10)], 0.0, cfg(), Decision((), (0,), None), id="oversize behind runs next"
    ),
    pytest.param(
        [p(2), p(2, key="b"), p(2)],
        1 * MS,
        cfg(),
        Decision((), (0, 2), None),
        id="key mismatch skipped",
    ),
    pytest.param(
        [p(2), p(8, key="b")], 0.0, cfg(), Decision((), (), 1 * MS), id="other key does not fill"
    ),
    pytest.param(
        [p(2, key="b"), p(2)], 1 * MS, cfg(), Decision((), (0,), None), id="head defines key"
    ),
    pytest.param(
        [p(2, deadline=0.0), p(3, at=0.1 * MS)],
        0.0,
        cfg(),
        Decision((0,), (), 1.1 * MS),
        id="expired head listed, next is head",
    ),
    pytest.param(
        [p(2), p(3, deadline=0.5 * MS), p(1)],
        1 * MS,
        cfg(),
        Decision((1,), (0, 2), None),
        id="expired excluded from batch",
    ),
    pytest.param(
        [p(4), p(4, deadline=0.5 * MS)],
        0.5 * MS,
        cfg(),
        Decision((1,), (), 1 * MS),
        id="expired does not fill",
    ),
    pytest.param([p(1, deadline=1.0)], 1.0, cfg(), Decision((0,), (), None), id="all expired"),
    pytest.param(
        [p(1), p(1, deadline=0.4 * MS, key="b")],
        0.0,
        cfg(),
        Decision((), (), 0.4 * MS),
        id="wake at earliest deadline",
    ),
    pytest.param(
        [p(1, deadline=2 * MS)],
        0.0,
        cfg(),
        Decision((), (), 1 * MS),
        id="wake at delay before deadline",
    ),
    pytest.param([p(0), p(0)], 1 * MS, cfg(), Decision((), (0, 1), None), id="zero-row requests"),
    pytest.param(
        [p(8), p(0), p(1)], 0.0, cfg(), Decision((), (0, 1), None), id="zero rows join a full batch"
    ),
]


@pytest.mark.parametrize(("queue", "now", "config", "expected"), CASES)
def test_decide(
    queue: list[Pending], now: float, config: BatchingSettings, expected: Decision
) -> None:
    assert decide(queue, now, config) == expected


def test_decide_is_pure() -> None:
    queue = [p(3), p(2, key="b"), p(4)]
    before = list(queue)
    first = decide(queue, 0.0, cfg())
    assert decide(queue, 0.0, cfg()) == first
    assert queue == before


pendings = st.builds(
    Pending,
    rows=st.integers(0, 12),
    enqueued_at=st.floats(0.0, 0.01),
    deadline=st.none() | st.floats(0.0, 0.02),
    key=st.sampled_from(["a", "b"]),
)


@settings(max_examples=300, deadline=None)
@given(
    queue=st.lists(pendings, max_size=12).map(
        lambda q: sorted(q, key=lambda item: item.enqueued_at)
    ),
    now=st.floats(0.0, 0.02),
    max_batch_rows=st.integers(1, 10),
    max_delay=st.integers(0, 5000),
    preferred=st.none() | st.integers(1, 12),
)
def test_decide_invariants(
    queue: list[Pending],
    now: float,
    max_batch_rows: int,
    max_delay: int,
    preferred: int | None,
) -> None:
    config = cfg(max_batch_rows, max_delay, preferred)
    decision = decide(queue, now, config)
    expired = [
        i for i, item in enumerate(queue) if item.deadline is not None and item.deadline <= now
    ]
    assert list(decision.expired) == expired
    assert not set(decision.batch) & set(expired)
    assert list(decision.batch) == sorted(set(decision.batch))
    live = [i for i in range(len(queue)) if i not in expired]
    if not live:
        assert decision == Decision(tuple(expired), (), None)
        return
    head = queue[live[0]]
    if decision.batch:
        assert decision.batch[0] == live[0]
        assert decision.wake_at is None
        rows = sum(queue[i].rows for i in decision.batch)
        assert rows <= max_batch_rows or decision.batch == (live[0],)
        assert all(queue[i].key == head.key for i in decision.batch)
    else:
        assert decision.wake_at is not None
        assert now < decision.wake_at <= head.enqueued_at + max_delay / 1e6
        assert sum(queue[i].rows for i in live if queue[i].key == head.key) <= max_batch_rows
