"""
{
    "plugin_type": ["http"],
    "http_args_config": [
        {
            "name": "greeting",
            "example": "Hello",
            "description": "Word to greet with (default Hello).",
            "required": false
        }
    ]
}
"""

# Example HTTP plugin: GET /api/v3/engine/<path>?name=Ada answers JSON. The return value decides the answer:
# a dict or list becomes JSON, a str becomes an HTML page, and (body, status, headers) sets the rest.
import json


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    greeting = (args or {}).get("greeting", "Hello")
    name = query_parameters.get("name")  # query parameters arrive as a dict of str
    if not name:
        return {"error": "add ?name=<your name>"}, 400, {"Content-Type": "application/json"}
    answer = {"message": f"{greeting}, {name}!"}
    if request_body:  # the body arrives as bytes (empty for a GET)
        try:
            answer["you_sent"] = json.loads(request_body)
        except ValueError:
            return {"error": "the body is not JSON"}, 400, {"Content-Type": "application/json"}
    influxdb3_local.info(f"example_hello: greeted {name}")
    return answer
