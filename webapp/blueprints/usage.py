"""The Usage page (admin only): requests, errors and tokens per key (or user) and model over
a range of days, a chart per day, and the same records as CSV."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue

from webapp.charts import day_bars
from webapp.forms.usage import UsageQuery
from webapp.services import usage, usage_reports

bp = Blueprint("usage", __name__)

PANEL_ID = "usage-panel"


def _query() -> UsageQuery:
    return UsageQuery(request.args, today=datetime.now(UTC).date())


def _wants_panel_only() -> bool:
    # The filter form targets the panel; boosted links and history restores want the page.
    return request.headers.get("HX-Target") == PANEL_ID and not request.headers.get(
        "HX-History-Restore-Request"
    )


@bp.get("/usage")
def index() -> ResponseReturnValue:
    query = _query()
    usage.flush()  # this process's newest requests count too
    context = {
        "query": query,
        "key_choices": usage_reports.key_choices(),
        "model_choices": usage_reports.model_choices(),
        "rows": [],
        "chart": None,
    }
    if query.valid:
        points = usage_reports.daily_series(query.filters)
        context["rows"] = usage_reports.summary(query.filters)
        context["chart"] = day_bars([(p.day, p.requests, p.errors) for p in points])
    template = "usage/_panel.html" if _wants_panel_only() else "usage/index.html"
    return render_template(template, **context), 200 if query.valid else 400


@bp.get("/usage.csv")
def export() -> ResponseReturnValue:
    query = _query()
    if not query.valid:
        problems = "\n".join(f"{name}: {message}" for name, message in query.errors.items())
        return Response(problems + "\n", status=400, mimetype="text/plain")
    usage.flush()
    filename = f"usage-{query.first_day:%Y%m%d}-{query.last_day:%Y%m%d}.csv"
    return Response(
        stream_with_context(usage_reports.csv_lines(usage_reports.export_rows(query.filters))),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
