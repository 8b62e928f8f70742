"""Feedback: the parsers (JSON, JSON lines, CSV), the checks, the lookup with its one wait, all
or nothing, the counters, and the chunked import; over a real SQLite feedback table and a fake
prediction log."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson
import pytest

from modelport.core.errors import InvalidInput, NotFound
from modelport.experiments.feedback import Feedback, FeedbackKind, FeedbackStore
from modelport.service.feedback import FeedbackService, lookup_wait_s
from modelport.service.feedback_forms import (
    Entry,
    feedback_item,
    iter_feedback_csv,
    parse_feedback_csv,
    parse_feedback_json,
    parse_feedback_lines,
)
from modelport.testing import FakeClock

# -- parsing and checking one item ---------------------------------------------------------------


def test_a_label_is_a_scalar_or_a_list_and_a_value_a_finite_number() -> None:
    assert feedback_item({"request_id": "r", "label": 1}, "x") == Feedback("r", "label", "1", None)
    assert feedback_item({"request_id": "r", "label": "fraud"}, "x").truth_json == '"fraud"'
    assert feedback_item({"request_id": "r", "label": True}, "x").truth_json == "true"
    assert feedback_item({"request_id": "r", "label": [0, 2]}, "x").truth_json == "[0,2]"
    assert feedback_item({"request_id": "r", "value": 2.5}, "x") == Feedback(
        "r", "value", "2.5", 2.5
    )
    assert feedback_item({"request_id": "r", "value": 3}, "x").value == 3
    listed = feedback_item({"request_id": "r", "value": [1.5, -2]}, "x")
    assert (listed.truth_json, listed.value) == ("[1.5,-2]", None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"label": 1}, "x: request_id must be a non-empty string (the prediction's request id), got nothing"),
        ({"request_id": "", "label": 1}, 'request_id must be a non-empty string (the prediction\'s request id), got ""'),
        ({"request_id": 7, "label": 1}, "request_id must be a non-empty string (the prediction's request id), got 7"),
        ({"request_id": "r" * 129, "label": 1}, "request_id must be at most 128 characters, got 129"),
        ({"request_id": "r"}, "no label or value"),
        ({"request_id": "r", "label": 1, "value": 1.0}, "send label (classification) or value (regression), not both"),
        ({"request_id": "r", "label": 1.5}, "label must be a string, an integer or a boolean (or a list of them, one per row), got 1.5; send a regression's truth as value"),
        ({"request_id": "r", "label": None}, "label must be a string, an integer or a boolean"),
        ({"request_id": "r", "label": []}, "label is an empty list"),
        ({"request_id": "r", "label": [[1]]}, "got [1]"),
        ({"request_id": "r", "value": "1.5"}, 'value must be a finite number (or a list of them, one per row), got "1.5"'),
        ({"request_id": "r", "value": True}, "value must be a finite number"),
        ({"request_id": "r", "value": float("nan")}, "value must be a finite number"),
        ({"request_id": "r", "value": [1.0, float("inf")]}, "value must be a finite number"),
        ({"request_id": "r", "value": []}, "value is an empty list"),
        ({"request_id": "r", "lable": 1}, "x: unknown field 'lable'; expected request_id and label or value"),
    ],
)  # fmt: skip
def test_malformed_items_are_refused_saying_what_was_expected(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match="^x: ") as caught:
        feedback_item(fields, "x")
    assert message in caught.value.message


def test_json_bodies_one_feedback_or_a_list() -> None:
    (one,) = parse_feedback_json(b'{"deployment": "fraud", "request_id": "a", "label": 1}')
    assert one == Entry("fraud", Feedback("a", "label", "1", None), "feedback")
    listed = parse_feedback_json(
        '{"deployment": "fraud", "feedback": [{"request_id": "a", "value": 1},'
        ' {"request_id": "b", "value": 2.5}]}'
    )
    assert [(e.deployment, e.feedback.request_id, e.where) for e in listed] == [
        ("fraud", "a", "feedback item 1"),
        ("fraud", "b", "feedback item 2"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "feedback: not valid JSON"),
        (b"[]", "feedback: expected an object, got a list"),
        (b'{"request_id": "a", "label": 1}', "feedback: no deployment"),
        (b'{"deployment": "Fraud!", "request_id": "a", "label": 1}', "feedback: invalid deployment 'Fraud!'"),
        (b'{"deployment": 3, "request_id": "a", "label": 1}', "feedback: deployment must be a string, got 3"),
        (b'{"deployment": "fraud", "feedback": []}', "'feedback' must be a non-empty list"),
        (b'{"deployment": "fraud", "feedback": [{"request_id": "a", "label": 1}, 5]}', "feedback item 2: expected an object"),
        (b'{"deployment": "fraud", "feedback": [{"request_id": "a", "label": 1.5}]}', "feedback item 1: label must be"),
        (b'{"deployment": "fraud", "request_id": "a", "label": 1, "feedback": []}', "unknown field 'label' beside a feedback list"),
    ],
)  # fmt: skip
def test_bad_json_bodies_name_the_item(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_feedback_json(body)
    assert message in caught.value.message


def test_json_lines_take_a_default_deployment_and_skip_blank_lines() -> None:
    text = (
        '{"deployment": "fraud", "request_id": "a", "label": 0}\n'
        "\n"
        '{"request_id": "b\u2028c", "label": "x"}\r\n'  # U+2028 inside a string is no line end
    )
    entries = parse_feedback_lines(text.encode(), deployment="churn")
    assert [(e.deployment, e.feedback.request_id, e.where) for e in entries] == [
        ("fraud", "a", "line 1"),
        ("churn", "b\u2028c", "line 3"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"deployment": "fraud", "request_id": "a", "label": 0}\nnot json\n', "line 2: not valid JSON"),
        ('{"request_id": "a", "label": 0}\n', "line 1: no deployment; name it in each line, or give a default deployment"),
        ('[1]\n', "line 1: expected an object with request_id and label or value, got a list"),
        ('{"deployment": "fraud", "request_id": "a", "label": {}}\n', "line 1: label must be"),
        ("\n\n", "feedback: no lines"),
    ],
)  # fmt: skip
def test_bad_json_lines_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_feedback_lines(text)
    assert message in caught.value.message


def test_csv_labels_integers_strings_and_lists_with_an_optional_deployment_column() -> None:
    text = '\ufeffrequest_id,label,deployment\na,1,\nb,fraud,churn\nc,"[0, 1]",\nd,007,\n\n'
    entries = parse_feedback_csv(text, "fraud")
    assert [(e.deployment, e.feedback.truth_json, e.where) for e in entries] == [
        ("fraud", "1", "line 2"),
        ("churn", '"fraud"', "line 3"),
        ("fraud", "[0,1]", "line 4"),
        ("fraud", '"007"', "line 5"),  # not an integer's canonical form: a string
    ]
    (value,) = parse_feedback_csv("deployment,request_id,value\nhouses,a, 412000.5\n")
    assert (value.deployment, value.feedback.value) == ("houses", 412000.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the CSV is empty"),
        ("request_id,label,colour\n", "line 1: unknown column 'colour'"),
        ("label\n", "line 1: no request_id column"),
        ("request_id\n", "line 1: the header needs one of label (classification) or value (regression)"),
        ("request_id,label,value\n", "or value (regression), not both"),
        ("request_id,label,label\n", "line 1: column 'label' appears twice"),
        ("request_id,label\na,1\nb,2,3\n", "line 3: 3 field(s), expected 2 (request_id, label)"),
        ("request_id,label\na,\n", "line 2: the label is empty"),
        ("request_id,value\na,1,5\n", "line 2: 3 field(s)"),
        ("request_id,value\na,lots\n", "line 2: value 'lots' is not a number"),
        ("request_id,value\na,nan\n", "line 2: value must be a finite number"),
        ("request_id,label\na,[1\n", "line 2: the label '[1' starts with '[' but is not a JSON list"),
        ("request_id,label\n,1\n", "line 2: request_id must be a non-empty string"),
        ('request_id,label\na,"1\n', "not valid CSV"),
        ("request_id,label\n", "the CSV has a header but no rows"),
    ],
)  # fmt: skip
def test_bad_csv_names_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_feedback_csv(text, "fraud")
    assert message in caught.value.message


def test_csv_without_a_deployment_needs_a_default() -> None:
    with pytest.raises(InvalidInput, match="no deployment column and no default deployment"):
        list(iter_feedback_csv(["request_id,label\n", "a,1\n"]))
    with pytest.raises(InvalidInput, match="line 2: no deployment; fill the deployment column"):
        list(iter_feedback_csv(["request_id,label,deployment\n", "a,1,\n"]))


# -- the service --------------------------------------------------------------------------------


class Log:
    """A fake prediction log: request ids by deployment, some appearing after a while."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ids: dict[str, set[str]] = {}
        self.later: dict[str, set[str]] = {}  # written at the next flush
        self.lookups: list[tuple[str, list[str]]] = []

    def known(self, deployment: str, ids: Sequence[str]) -> set[str]:
        self.lookups.append((deployment, list(ids)))
        return self.ids.get(deployment, set()) & set(ids)

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        for deployment, ids in self.later.items():
            self.ids.setdefault(deployment, set()).update(ids)
        self.later.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[FeedbackStore]:
    with FeedbackStore(f"sqlite:///{tmp_path / 'metadata.db'}", clock) as opened:
        yield opened


@pytest.fixture
def log(clock: FakeClock) -> Log:
    log = Log(clock)
    log.ids = {"fraud": {f"r{i}" for i in range(100)}, "houses": {"h1", "h2"}}
    return log


def service(
    store: FeedbackStore,
    log: Log,
    clock: FakeClock,
    kind: Callable[[str], FeedbackKind | None] = lambda _: None,
) -> FeedbackService:
    return FeedbackService(store, log.known, kind, clock, lookup_wait_s(1.0), sleep=log.sleep)


def truths(store: FeedbackStore, deployment: str) -> dict[str, str]:
    table = store.read(deployment)
    return dict(
        zip(table.column("request_id").to_pylist(), table.column("truth").to_pylist(), strict=True)
    )


def test_feedback_is_stored_and_a_later_one_replaces_it(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    feedback = service(store, log, clock)
    receipt = feedback.submit(
        "fraud", [{"request_id": "r1", "label": 1}, {"request_id": "r2", "label": 0}], "alice"
    )
    assert (receipt.accepted, receipt.replaced, receipt.unknown) == (2, 0, 0)
    again = feedback.submit("fraud", [{"request_id": "r1", "label": 0}], "bob")
    assert (again.accepted, again.replaced) == (1, 1)
    assert truths(store, "fraud") == {"r1": "0", "r2": "0"}
    assert feedback.stats() == type(feedback.stats())(accepted=3, replaced=1, unknown=0)
    assert clock.monotonic() == 0  # every id was known: no wait


def test_an_id_logged_a_moment_ago_is_found_after_one_wait(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    log.later = {"fraud": {"fresh"}}
    receipt = service(store, log, clock).submit(
        "fraud", [{"request_id": "r1", "label": 1}, {"request_id": "fresh", "label": 0}], "alice"
    )
    assert receipt.accepted == 2
    assert clock.monotonic() == pytest.approx(1.5)  # the flush interval and half a second
    assert log.lookups == [("fraud", ["r1", "fresh"]), ("fraud", ["fresh"])]  # only the missing


def test_unknown_ids_refuse_everything_naming_how_many_and_the_first_ten(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    feedback = service(store, log, clock)
    items = [{"request_id": "r1", "label": 1}] + [
        {"request_id": f"x{i}", "label": 0} for i in range(12)
    ]
    with pytest.raises(NotFound) as caught:
        feedback.submit("fraud", items, "alice")
    assert caught.value.message == (
        "12 request ids are not in the prediction log (fraud: 'x0', 'x1', 'x2', 'x3', 'x4', "
        "'x5', 'x6', 'x7', 'x8', 'x9' ...); nothing was written"
    )
    assert store.count("fraud") == 0
    assert feedback.stats().unknown == 12
    with pytest.raises(
        NotFound, match=r"^1 request id is not in the prediction log \(fraud: 'x'\)"
    ):
        feedback.submit("fraud", [{"request_id": "x", "label": 1}], "alice")


def test_several_deployments_are_all_or_nothing_together(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    feedback = service(store, log, clock)
    entries = parse_feedback_lines(
        '{"deployment": "fraud", "request_id": "r1", "label": 1}\n'
        '{"deployment": "houses", "request_id": "nope", "value": 3.5}\n'
    )
    with pytest.raises(NotFound, match=r"\(houses: 'nope'\); nothing was written"):
        feedback.submit_entries(entries, "alice")
    assert store.count("fraud") == store.count("houses") == 0
    skipped = feedback.submit_entries(entries, "alice", skip_unknown=True)
    assert (skipped.accepted, skipped.unknown, skipped.unknown_ids) == (1, 1, ("nope",))
    assert store.count("fraud") == 1 and store.count("houses") == 0


def test_the_kind_must_be_what_the_running_experiment_needs(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    needs: dict[str, FeedbackKind] = {"fraud": "value", "houses": "label"}
    feedback = service(store, log, clock, needs.get)
    with pytest.raises(InvalidInput) as caught:
        feedback.submit("fraud", [{"request_id": "r1", "label": 1}], "alice")
    assert caught.value.message == (
        "item 1: deployment 'fraud' runs an experiment on a regression metric: send value, not "
        "label"
    )
    with pytest.raises(InvalidInput, match="classification metric: send label, not value"):
        feedback.submit("houses", [{"request_id": "h1", "value": 1.0}], "alice")
    assert feedback.submit("fraud", [{"request_id": "r1", "value": 0.5}], "alice").accepted == 1
    assert log.lookups == [("fraud", ["r1"])]  # a refused kind is refused before any lookup


def test_a_request_id_given_twice_is_refused(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    with pytest.raises(InvalidInput) as caught:
        service(store, log, clock).submit(
            "fraud", [{"request_id": "r1", "label": 1}, {"request_id": "r1", "label": 0}], "alice"
        )
    assert caught.value.message == (
        "item 2: request id 'r1' of deployment 'fraud' was already given (item 1); send one "
        "feedback per request"
    )


def test_submit_checks_its_arguments(store: FeedbackStore, log: Log, clock: FakeClock) -> None:
    feedback = service(store, log, clock)
    with pytest.raises(InvalidInput, match="deployment: invalid deployment 'Fraud'"):
        feedback.submit("Fraud", [{"request_id": "r1", "label": 1}], "alice")
    with pytest.raises(InvalidInput, match="item 1: expected an object, got a string"):
        feedback.submit("fraud", ["r1"], "alice")  # type: ignore[list-item]  # what a caller may send


# -- the chunked import -------------------------------------------------------------------------


def lines(*rows: str) -> Callable[[], Iterator[Entry]]:
    def read() -> Iterator[Entry]:
        return iter(parse_feedback_lines("\n".join(rows), "fraud"))

    return read


def row(rid: str, label: int = 1) -> str:
    return orjson.dumps({"request_id": rid, "label": label}).decode()


def test_an_import_in_chunks_waits_once_and_writes_everything(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    log.later = {"fraud": {"fresh"}}
    read = lines(*(row(f"r{i}") for i in range(10)), row("fresh"), row("r3", 0))
    with pytest.raises(
        InvalidInput,
        match=r"line 12: request id 'r3' of deployment 'fraud' was already given \(line 4\)",
    ):
        service(store, log, clock).import_entries(read, "alice", chunk_rows=4)
    assert store.count("fraud") == 0
    read = lines(*(row(f"r{i}") for i in range(10)), row("fresh"))
    receipt = service(store, log, clock).import_entries(read, "alice", chunk_rows=4)
    assert (receipt.accepted, receipt.replaced, receipt.unknown) == (11, 0, 0)
    assert clock.monotonic() == pytest.approx(1.5)  # one wait for the whole import


def test_an_import_with_unknown_ids_writes_nothing_or_skips_them(
    store: FeedbackStore, log: Log, clock: FakeClock
) -> None:
    read = lines(row("r1"), row("u1"), row("r2"), row("u2"), row("r3"))
    rejected: list[tuple[str, Feedback]] = []
    with pytest.raises(
        NotFound, match=r"^2 request ids are not in the prediction log \(fraud: 'u1', 'u2'\)"
    ):
        service(store, log, clock).import_entries(
            read, "alice", chunk_rows=2, rejects=rejected.extend
        )
    assert store.count("fraud") == 0
    assert [f.request_id for _, f in rejected] == ["u1", "u2"]
    rejected.clear()
    receipt = service(store, log, clock).import_entries(
        read, "alice", skip_unknown=True, chunk_rows=2, rejects=rejected.extend
    )
    assert (receipt.accepted, receipt.unknown, receipt.unknown_ids) == (3, 2, ("u1", "u2"))
    assert [(d, f.request_id) for d, f in rejected] == [("fraud", "u1"), ("fraud", "u2")]
    assert sorted(truths(store, "fraud")) == ["r1", "r2", "r3"]


def test_values_out_of_range_are_refused_not_crashed_on() -> None:
    with pytest.raises(InvalidInput, match="value 1000000000000000000000 is too large"):
        feedback_item({"request_id": "r", "value": 10**21}, "x")
    with pytest.raises(InvalidInput, match="got nan"):
        feedback_item({"request_id": "r", "value": float("nan")}, "x")
    with pytest.raises(InvalidInput, match="label must be"):
        feedback_item({"request_id": "r", "label": 10**400}, "x")
