"""Shared code of this stack's Processing Engine plugins (argument checks, run-id logging, safe writes, SQL
helpers, statistics, forecasting, charts) and the names of the tables they write (`stacklib.tables`).

The engine imports each plugin folder (`forecast/prophet_forecast/`, ...) as a top-level package with only
that folder's parent on sys.path, so every plugin appends the plugin directory to sys.path before
`import stacklib`. This package must stay importable without the engine: `tables` is plain data that the
dashboards and tests read as `plugins.stacklib.tables`, so nothing heavy is imported here.
"""
