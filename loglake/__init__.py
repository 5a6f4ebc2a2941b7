"""loglake: access logs to Hive-partitioned Parquet, registered in a SQL catalog, with no per-row inserts."""

__version__ = "0.1.0"
