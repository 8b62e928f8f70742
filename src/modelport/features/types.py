"""Feature value types, named as Feast names them (``from feast.types import Float64``).

Each type knows the DuckDB column types a source may hold for it and the SQL type the offline
store casts the column to, so a retrieved column always has the declared type whatever the file
stored (an integer CSV column declared ``Float64`` comes back as float64).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Bool",
    "Bytes",
    "DataType",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "String",
    "UnixTimestamp",
]

_SMALL_INTS = ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT")
_INTS = (*_SMALL_INTS, "BIGINT", "UINTEGER")
_TIMESTAMPS = (
    "TIMESTAMP",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMP WITH TIME ZONE",
    "DATE",
)


@dataclass(frozen=True)
class DataType:
    """A feature value type.

    Attributes:
        name: The Feast name (``"Float64"``), also how the type prints.
        sql_type: The DuckDB type the offline store casts the column to.
        accepts: The DuckDB column types a source may hold for it (``DECIMAL`` matches any
            precision).
    """

    name: str
    sql_type: str
    accepts: tuple[str, ...]

    def __str__(self) -> str:
        return self.name

    def admits(self, duckdb_type: str) -> bool:
        """Whether a source column of ``duckdb_type`` may hold values of this type.

        Args:
            duckdb_type: The type DuckDB reports for the column (``DESCRIBE``).

        Returns:
            True when the column can be cast to :attr:`sql_type` without changing its meaning.
        """
        base = duckdb_type.split("(", 1)[0].strip().upper()
        return base in self.accepts


Int32 = DataType("Int32", "INTEGER", _SMALL_INTS)
Int64 = DataType("Int64", "BIGINT", _INTS)
Float32 = DataType("Float32", "FLOAT", ("FLOAT",))
Float64 = DataType("Float64", "DOUBLE", ("FLOAT", "DOUBLE", "DECIMAL", *_INTS))
String = DataType("String", "VARCHAR", ("VARCHAR",))
Bool = DataType("Bool", "BOOLEAN", ("BOOLEAN",))
Bytes = DataType("Bytes", "BLOB", ("BLOB",))
#: An instant, returned in UTC; naive source values are taken as UTC.
UnixTimestamp = DataType("UnixTimestamp", "TIMESTAMP WITH TIME ZONE", _TIMESTAMPS)
