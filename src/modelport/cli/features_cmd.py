"""Feature store commands: ``features apply|list|show|delete|materialize|get|training-set|skew``.

They work on the installation's feature store directly (the registry in the metadata database,
the online store ``MODELPORT_FEATURES__ONLINE_STORE``), through the same service the control
plane uses, so validation, the audit trail and the JSON shapes are the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelport.cli._output import checked_output, print_payload
from modelport.core.errors import InvalidInput

if TYPE_CHECKING:
    from modelport.features.documents import Definition, DefinitionKind
    from modelport.features.registry import StoredDefinition
    from modelport.service.features import FeatureStoreService

# Storage is imported by the commands that use it, not to parse options.

__all__ = ["attach", "features_app"]

features_app = typer.Typer(
    help="The feature store: definitions, materialisation, online reads and training sets.",
    no_args_is_help=True,
)

_OUTPUT = typer.Option(
    "--output", "-o", help="table (readable), json or yaml (what the API returns)."
)
_KIND = typer.Argument(help="entities, featureviews or featureservices.")
_NAME = typer.Argument(help="The definition's name.")


@contextmanager
def _service() -> Iterator[tuple[FeatureStoreService, str]]:
    from modelport.cli._settings import checked_settings
    from modelport.service.wiring import current_user, open_features

    settings = checked_settings()
    with open_features(settings) as service:
        yield service, current_user(settings)


def _kind(plural: str) -> DefinitionKind:
    from modelport.service.features import kind_of_plural

    return kind_of_plural(plural)


def _describe(stored: StoredDefinition) -> dict[str, Any]:
    from modelport.service.features import describe_definition

    return describe_definition(stored)


def repository_definitions(path: Path) -> list[Definition]:
    """The definitions a repository folder or file declares (see :mod:`modelport.features.repo`).

    Raises:
        NotFound: Nothing is at ``path``.
        InvalidInput: A document is not a valid definition, or no file declares any.
        ConfigError: A Python file fails to run.
    """
    from modelport.core.documents import load_documents
    from modelport.features.repo import python_definitions, repository_files

    python, documents = repository_files(path)
    found: list[Definition] = python_definitions(python)
    parsed = []
    for file in documents:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{str(file)!r}: not UTF-8 text") from None
        parsed += [(file, doc) for doc in load_documents(text, str(file))]
    if parsed:
        found += _document_definitions(parsed, found)
    if not found:
        raise InvalidInput(f"{str(path)!r} declares no Entity, FeatureView or FeatureService")
    return found


def _document_definitions(parsed: list[tuple[Path, Any]], known: list[Definition]) -> list[Any]:
    from modelport.features import Entity, FeatureStore, FeatureView
    from modelport.features.repo import absolute_sources
    from modelport.service.features import definitions_from_documents

    # The Python definitions are what the documents may name, beside the applied ones.
    staging = FeatureStore([d for d in known if isinstance(d, Entity | FeatureView)])
    built = definitions_from_documents([doc for _, doc in parsed], staging)
    folders = {doc.get("metadata", {}).get("name"): file.parent for file, doc in parsed}
    return [
        absolute_sources(d, folders.get(d.name, Path("."))) if isinstance(d, FeatureView) else d
        for d in built
    ]


@features_app.command("apply")
def features_apply(
    path: Annotated[
        Path,
        typer.Argument(
            help="A feature repository folder (its .py files and YAML documents), or one file."
        ),
    ] = Path("."),
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Register or update the definitions a repository declares (all of them, or none).

    Python files are run and the Entity, FeatureView and FeatureService objects they bind are
    collected, as ``feast apply`` does; YAML files hold the same definitions as documents.
    Relative source paths are made absolute against the declaring file's folder.
    """
    form = checked_output(output)
    with _service() as (service, actor):
        definitions = repository_definitions(path)
        from modelport.features.documents import KINDS

        existing = {(s.kind, s.name) for kind in KINDS for s in service.list(kind)}
        stored = service.apply(definitions, actor)
    if form != "table":
        print_payload([_describe(s) for s in stored], form)
        return
    for record in stored:
        verb = "configured" if (record.kind, record.name) in existing else "created"
        typer.echo(f"{record.kind.lower()}/{record.name} {verb} (generation {record.generation})")


@features_app.command("list")
def features_list(
    kind: Annotated[
        str | None, typer.Argument(help="Only entities, featureviews or featureservices.")
    ] = None,
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """List the feature definitions with their generation and who changed them last."""
    form = checked_output(output)
    kinds: list[DefinitionKind] = (
        [_kind(kind)] if kind is not None else ["Entity", "FeatureView", "FeatureService"]
    )
    with _service() as (service, _):
        found = [s for k in kinds for s in service.list(k)]
    if form != "table":
        print_payload({"definitions": [_describe(s) for s in found]}, form)
        return
    if not found:
        typer.echo("no feature definitions yet; declare some and run: modelport features apply DIR")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("kind", "name", "details", "generation", "updated")
    for stored in found:
        table.add_row(
            stored.kind,
            stored.name,
            _details(stored.document()),
            str(stored.generation),
            f"{stored.updated_at:%Y-%m-%d %H:%M} by {stored.updated_by}",
        )
    Console(highlight=False).print(table)


def _details(document: dict[str, Any]) -> str:
    spec = document["spec"]
    if document["kind"] == "Entity":
        return "keys: " + ", ".join(spec["joinKeys"])
    if document["kind"] == "FeatureView":
        ttl = spec["ttl"]
        features = ", ".join(f["name"] for f in spec["schema"])
        return f"{features} (ttl {ttl:g}s{', online' if spec['online'] else ''})"
    return ", ".join(
        f"{p['view']}:{','.join(p['features']) if p.get('features') else '*'}"
        for p in spec["features"]
    )


@features_app.command("show")
def features_show(
    kind: Annotated[str, _KIND],
    name: Annotated[str, _NAME],
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Show one definition: its document, generation and who changed it last."""
    form = checked_output(output)
    with _service() as (service, _):
        stored = service.get(_kind(kind), name)
    if form != "table":
        print_payload(_describe(stored), form)
        return
    import yaml

    typer.echo(
        f"# generation {stored.generation}, created {stored.created_at:%Y-%m-%d %H:%M} "
        f"by {stored.created_by}, updated {stored.updated_at:%Y-%m-%d %H:%M} by "
        f"{stored.updated_by}"
    )
    typer.echo(yaml.safe_dump(stored.document(), sort_keys=False).rstrip())


@features_app.command("delete")
def features_delete(
    kind: Annotated[str, _KIND],
    name: Annotated[str, _NAME],
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Delete a definition nothing uses any more (a view's online rows go with it)."""
    form = checked_output(output)
    with _service() as (service, actor):
        removed = service.delete(_kind(kind), name, actor)
    if form != "table":
        print_payload(_describe(removed), form)
        return
    typer.echo(
        f"{removed.kind.lower()}/{removed.name} deleted (was generation {removed.generation})"
    )


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    from modelport.cli._when import instant

    return instant(text, option)


@features_app.command("materialize")
def features_materialize(
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last instant (ISO 8601; naive is UTC) \\[default: now]."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="First instant; without it each view continues from where it last ended "
            "(materialize-incremental).",
        ),
    ] = None,
    views: Annotated[
        list[str] | None, typer.Option("--view", "-v", help="Only this view (repeatable).")
    ] = None,
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Copy the newest feature rows of each online view into the online store."""
    from datetime import UTC

    form = checked_output(output)
    until = _time(end, "--end") or datetime.now(UTC)
    with _service() as (service, actor):
        from modelport.cli._settings import checked_settings

        summary = service.materialize(
            actor,
            start=_time(start, "--start"),
            end=until,
            views=views or None,
            progress=None if form == "table" else False,
            chunk_rows=checked_settings().features.materialize_chunk_rows,
        )
    from modelport.service.features import describe_summary

    described = describe_summary(summary)
    if form != "table":
        print_payload(described, form)
        return
    if not described["views"]:
        typer.echo("no online feature views to materialise")
    for view, part in described["views"].items():
        since = part["start"] or "the beginning"
        typer.echo(
            f"featureview/{view}: {part['rows']} rows from {since} to {described['end']}, "
            f"{part['applied']} newer than the online store's"
        )


@features_app.command("get")
def features_get(
    features: Annotated[
        list[str] | None, typer.Argument(help="view:feature references.", show_default=False)
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option(
            "--entity",
            "-e",
            help="A join key value, KEY=VALUE (repeat per key; a key given N times asks for N "
            "entities).",
        ),
    ] = None,
    service_name: Annotated[
        str | None, typer.Option("--service", help="A feature service instead of references.")
    ] = None,
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Read the latest features of entities from the online store (as a model would get them)."""
    form = checked_output(output)
    columns = _entity_columns(entity or [])
    with _service() as (service, _):
        store = service.store
        store.refresh()
        wanted: Any = _wanted(store, features, service_name)
        response = store.get_online_features(wanted, columns)
    data = response.to_dict()
    statuses = {k: [s.name for s in v] for k, v in response.statuses.items()}
    if form != "table":
        print_payload({"features": data, "statuses": statuses}, form)
        return
    from rich.console import Console
    from rich.table import Table

    names = list(data)
    table = Table(*names)
    for row in range(len(next(iter(data.values())))):
        cells = []
        for name in names:
            value = data[name][row]
            status = statuses.get(name, [None] * (row + 1))[row]
            shown = "null" if value is None else str(value)
            cells.append(shown if status in (None, "PRESENT") else f"{shown} ({status})")
        table.add_row(*cells)
    Console(highlight=False).print(table)


def _wanted(store: Any, features: list[str] | None, service_name: str | None) -> Any:
    if (features is None) == (service_name is None):
        raise InvalidInput("give view:feature references or --service NAME (one of them)")
    return store.get_feature_service(service_name) if service_name is not None else features


def _entity_columns(pairs: list[str]) -> dict[str, Sequence[Any]]:
    if not pairs:
        raise InvalidInput("give at least one --entity KEY=VALUE (e.g. --entity user_id=1)")
    columns: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--entity {pair!r}: expected KEY=VALUE, e.g. user_id=1")
        columns.setdefault(key, []).append(int(value) if _is_int(value) else value)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput("every join key needs as many --entity values as the others")
    return dict(columns)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdecimal()


@features_app.command("training-set")
def features_training_set(
    entities: Annotated[
        Path,
        typer.Option(
            "--entities",
            help="Parquet or CSV file of entity rows: the join keys and a time column.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write it: .parquet or .csv.")],
    features: Annotated[
        list[str] | None, typer.Argument(help="view:feature references.", show_default=False)
    ] = None,
    service_name: Annotated[
        str | None, typer.Option("--service", help="A feature service instead of references.")
    ] = None,
    timestamp_column: Annotated[
        str, typer.Option("--timestamp-column", help="The entity file's time column.")
    ] = "event_timestamp",
    full_feature_names: Annotated[
        bool, typer.Option("--full-feature-names", help="Name columns view__feature.")
    ] = False,
) -> None:
    """Write a point-in-time correct training set: each entity row with its features as of then."""
    from modelport.cli._files import existing_file

    source = existing_file(entities, "--entities")
    if out.suffix not in (".parquet", ".csv"):
        raise InvalidInput(f"--out {str(out)!r}: expected a .parquet or .csv file name")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if source.suffix == ".csv":
        table = pacsv.read_csv(source)
    elif source.suffix == ".parquet":
        table = pq.read_table(source)
    else:
        raise InvalidInput(f"--entities {str(source)!r}: expected a .parquet or .csv file")
    with _service() as (service, _):
        store = service.store
        store.refresh()
        wanted: Any = _wanted(store, features, service_name)
        result = store.get_historical_features(
            table, wanted, full_feature_names, timestamp_column=timestamp_column
        ).to_arrow()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        pacsv.write_csv(result, out)
    else:
        pq.write_table(result, out)
    typer.echo(f"{result.num_rows} rows x {result.num_columns} columns written to {out}")


@features_app.command("skew")
def features_skew(
    deployment: Annotated[
        str, typer.Argument(help="The deployment whose served features to check.")
    ],
    window: Annotated[
        str, typer.Option(help="How far back from now (90m, 1h, 1d), or a start time.")
    ] = "1d",
    limit: Annotated[
        int, typer.Option(min=1, help="Newest logged predictions of the window read at most.")
    ] = 100_000,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="Relative tolerance for float features.")
    ] = 1e-6,
    output: Annotated[str, _OUTPUT] = "table",
) -> None:
    """Training-serving skew: the features a deployment served, recomputed offline.

    Reads the deployment's logged predictions (each enriched one keeps its entity keys, the
    read's instant and the values served), recomputes every value with the point-in-time join
    at that instant, and reports per feature how many disagree.
    """
    from datetime import UTC

    from modelport.cli._settings import checked_settings
    from modelport.cli._when import since
    from modelport.service.feature_skew import feature_skew
    from modelport.service.wiring import open_feature_store, open_prediction_sink

    form = checked_output(output)
    now = datetime.now(UTC)
    start = since(window, now, "--window")
    settings = checked_settings()
    sink = open_prediction_sink(settings)
    try:
        table = sink.read(deployment, since=start, limit=limit)
    finally:
        sink.close()
    with open_feature_store(settings) as store:
        report = feature_skew(table, store, deployment, rel_tol=tolerance)
    document = report.document()
    if form != "table":
        print_payload(document, form)
        return
    typer.echo(
        f"deployment {deployment}: {report.predictions} enriched predictions, {report.rows} rows "
        f"compared since {start:%Y-%m-%d %H:%M:%S} UTC ({report.skipped} without features)"
    )
    if not report.features:
        typer.echo("no served feature values in the window: nothing to compare")
        return
    from rich.console import Console
    from rich.table import Table

    table_view = Table(
        "feature", "compared", "mismatches", "rate", "missing online", "missing offline"
    )
    for skew in report.features:
        table_view.add_row(
            skew.feature,
            str(skew.compared),
            str(skew.mismatches),
            f"{skew.rate:.2%}",
            str(skew.missing_online),
            str(skew.missing_offline),
        )
    Console(highlight=False).print(table_view)
    for skew in report.features:
        for example in skew.examples:
            typer.echo(
                f"  {skew.feature} request {example.request_id} row {example.row} at "
                f"{example.at.isoformat()}: served {example.online!r}, offline {example.offline!r}"
            )


def attach(app: typer.Typer) -> None:
    """Add the feature store commands to ``app``."""
    app.add_typer(features_app, name="features")
