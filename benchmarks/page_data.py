"""What the Flask and Django page scenarios render: 50 rows into benchmarks/templates/page.html
(about 10 KB), after 2 ms of ``time.sleep`` standing for a database query."""

from __future__ import annotations

import time
from typing import Any, Dict

QUERY_SECONDS = 0.002
_ROWS = [
    {
        "id": 1000 + i,
        "customer": f"Customer <{i}> & Sons",  # escaped by both template engines
        "item": f"Widget model {i % 7}",
        "quantity": i % 5 + 1,
        "total": f"{(i % 5 + 1) * 12.5:.2f}",
        "status": "shipped" if i % 3 else "pending",
        "overdue": i % 11 == 0,
    }
    for i in range(50)
]


def context() -> Dict[str, Any]:
    time.sleep(QUERY_SECONDS)  # the database call
    return {"title": "Orders", "user": "alice", "rows": list(_ROWS)}
