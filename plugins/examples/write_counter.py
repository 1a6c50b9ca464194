"""
{
    "plugin_type": ["onwrite"],
    "onwrite_args_config": [
        {
            "name": "output_table",
            "example": "example_write_counts",
            "description": "Table the counts are written to (default example_write_counts).",
            "required": false
        }
    ]
}
"""

# Example WAL plugin: after every write to the trigger's table(s), count the rows each table received and
# write one point per table. Create it with a `table:<name>` or `all_tables` trigger specification.
# This is a single-file plugin: the engine runs it in a fresh namespace, so it imports nothing of its own.


def process_writes(influxdb3_local, table_batches, args=None):
    # `args` is None when the trigger was created without --trigger-arguments.
    output = (args or {}).get("output_table", "example_write_counts")
    for batch in table_batches:
        table = batch["table_name"]
        if table == output:
            continue  # with all_tables, our own writes come back here: never count them (that would loop)
        rows = batch["rows"]  # a list of dicts: column -> value, with "time" in int nanoseconds
        # LineBuilder is provided by the engine (no import). The write is queued and sent after we return.
        line = LineBuilder(output).tag("source_table", table).int64_field("rows", len(rows))
        influxdb3_local.write(line)
        influxdb3_local.info(f"example_write_counter: {table} received {len(rows)} rows")
