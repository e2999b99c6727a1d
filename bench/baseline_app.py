"""The raw baseline for bench/ingest.py: Flask, parse the JSON body, one INSERT, commit, 202.

`gunicorn 'bench.baseline_app:create_app()'` with BENCH_BASELINE_DB set to a database
that has the `bench_baseline` table (bench/ingest.py creates it).
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, request
from sqlalchemy import create_engine, text

INSERT = text("INSERT INTO bench_baseline (external_id, type, properties) "
              "VALUES (:external_id, :type, CAST(:properties AS jsonb))")


def create_app() -> Flask:
    app = Flask(__name__)
    engine = create_engine(os.environ["BENCH_BASELINE_DB"])

    @app.post("/events")
    def post_event() -> Any:
        payload = json.loads(request.get_data())
        with engine.begin() as conn:  # one transaction, one commit per request
            conn.execute(INSERT, {"external_id": payload["id"], "type": payload["type"],
                                  "properties": json.dumps(payload["properties"])})
        return {"accepted": True}, 202

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app
