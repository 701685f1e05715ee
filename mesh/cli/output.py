"""Tables and YAML/JSON for `seldon-mesh get`, kubectl-style."""

from __future__ import annotations

import json
from typing import Any

import yaml


def render(deployments: list[dict[str, Any]], output: str, detail: bool) -> str:
    if output == "json":
        if len(deployments) == 1 and detail:
            return json.dumps(deployments[0], indent=2)
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": deployments}, indent=2)
    if output == "yaml":
        if len(deployments) == 1 and detail:
            return yaml.safe_dump(deployments[0], sort_keys=False)
        return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": deployments}, sort_keys=False)
    lines = _table(
        ["NAMESPACE", "NAME", "STATE", "PREDICTORS", "DESCRIPTION"],
        [
            [
                d["metadata"]["namespace"],
                d["metadata"]["name"],
                d["status"]["state"],
                ",".join(f"{p['name']}:{p.get('traffic', 0)}" for p in d["spec"]["predictors"]),
                d["status"]["description"],
            ]
            for d in deployments
        ],
    )
    if detail:
        for d in deployments:
            lines.append("")
            lines.append(f"address: {d['status']['address']['url']}")
            lines += _table(
                ["PREDICTOR", "NODE", "STATE", "RESTARTS", "HTTP", "GRPC", "REASON"],
                [
                    [
                        c["predictor"],
                        c["node"],
                        c["state"],
                        str(c["restarts"]),
                        ",".join(c["http"]),
                        ",".join(c["grpc"]),
                        c["reason"],
                    ]
                    for c in d["status"]["components"]
                ],
            )
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    return [
        "   ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
