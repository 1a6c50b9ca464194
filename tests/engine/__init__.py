"""A local stand-in for InfluxDB 3 Core's Processing Engine and storage, to run the plugins without a server.

`LocalEngine` keeps databases (line protocol in, Apache DataFusion SQL out, Core's catalog limits and Parquet
file accounting), the engine cache, and calls plugins with the engine's argument shapes and return
conventions. Use it as the `engine` pytest fixture (`tests.engine.fixtures`) or from the command line:
`python -m tests.engine --help`. tests/support/influxdb3.py serves it over Core's HTTP API.
"""

from tests.engine.engine import PLUGIN_DIR, LocalEngine, PluginError, PluginRun
from tests.engine.linebuilder import LineBuilder
from tests.engine.packages import PackageEnvironment
from tests.engine.parquet import ParquetFile
from tests.engine.responses import Response
from tests.engine.store import CatalogError, QueryError, WriteError

__all__ = ["PLUGIN_DIR", "CatalogError", "LineBuilder", "LocalEngine", "PackageEnvironment", "ParquetFile",
           "PluginError", "PluginRun", "QueryError", "Response", "WriteError"]
