"""A local stand-in for InfluxDB 3's Processing Engine, to run the plugins without a server.

`LocalEngine` keeps databases (line protocol in, Apache DataFusion SQL out), the engine cache, and calls
plugins with the engine's argument shapes and return conventions. Use it as the `engine` pytest fixture
(`tests.engine.fixtures`) or from the command line: `python -m tests.engine --help`.
"""

from tests.engine.engine import PLUGIN_DIR, LocalEngine, PluginError, PluginRun
from tests.engine.linebuilder import LineBuilder
from tests.engine.responses import Response
from tests.engine.store import QueryError, WriteError

__all__ = ["PLUGIN_DIR", "LineBuilder", "LocalEngine", "PluginError", "PluginRun", "QueryError", "Response",
           "WriteError"]
