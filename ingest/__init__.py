"""The ingest service: bird tracks, weather and sensor readings into InfluxDB 2 and 3, fast, and nothing lost.

The way data flows, module by module:

- `sources/` read the inputs (Movebank CSV/REST, Open-Meteo/OpenWeatherMap, the simulated fleet or a sensor
  CSV; `csvreader` cuts big CSVs into blocks with exact line numbers) and yield `Chunk`s: Arrow tables shaped
  as `schema` declares, plus the rows already found bad.
- `lineprotocol` encodes a table in one vectorized pass; `writer` cuts the lines into batches within the
  memory budget and gzips each once; `sinks/` deliver them (retries, `spool` on disk, refused lines to
  `rejects`), through the official clients for InfluxDB 2 and 3, or to a file for `--lp-out`.
- `pipeline` runs one load and counts it (`stats`); `jobs` are the loads behind each command; `runner` is the
  long-running `run` mode (schedule, `state`: cursors and heartbeat); `outputs` builds the sinks and the
  buckets (`buckets.yaml`) from the one `config`; `reader` reads data back for `export`.
"""
