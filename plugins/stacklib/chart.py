"""The forecast page: an interactive Plotly chart of history, forecast and prediction interval.

The page embeds plotly.js (about 4.7 MB) instead of loading it from a CDN: it must draw in a browser that
cannot reach the internet, which is how the stack is often run. Trace colours are fixed so tests (and
people) can tell the traces apart.
"""

from __future__ import annotations

from html import escape

import pandas as pd

__all__ = ["COLORS", "forecast_page"]

COLORS = {"history": "#1f77b4", "forecast": "#d62728", "interval": "rgba(214, 39, 40, 0.25)"}


def forecast_page(title: str, history: pd.DataFrame, forecast: pd.DataFrame | None, note: str = "") -> str:
    """A complete HTML page. `history` has ds, y; `forecast` has ds, yhat, yhat_lower, yhat_upper (or None)."""
    import plotly.graph_objects as go  # imported here: only the chart plugin pays for it

    figure = go.Figure()
    if forecast is not None and not forecast.empty:
        figure.add_trace(go.Scatter(x=forecast["ds"], y=forecast["yhat_upper"], mode="lines", line={"width": 0},
                                    name="upper bound", showlegend=False, hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=forecast["ds"], y=forecast["yhat_lower"], mode="lines", line={"width": 0},
                                    fill="tonexty", fillcolor=COLORS["interval"], name="prediction interval"))
        figure.add_trace(go.Scatter(x=forecast["ds"], y=forecast["yhat"], mode="lines", name="forecast",
                                    line={"color": COLORS["forecast"], "width": 2}))
    figure.add_trace(go.Scatter(x=history["ds"], y=history["y"], mode="lines", name="history",
                                line={"color": COLORS["history"], "width": 1}))
    figure.update_layout(title={"text": escape(title)}, template="plotly_white", hovermode="x unified",
                         margin={"l": 60, "r": 20, "t": 60, "b": 40},
                         legend={"orientation": "h", "y": -0.12})
    if note:
        figure.add_annotation(text=escape(note), xref="paper", yref="paper", x=0, y=1.06, showarrow=False)
    return figure.to_html(include_plotlyjs=True, full_html=True, config={"responsive": True})
