"""One broker step in a process of its own, for the kill -9 tests.

``python -m tests.broker_driver SPEC``: SPEC is JSON with ``folder``, ``account``,
``symbols``, ``bar``, ``targets`` and ``closes``; the keys and the endpoint come
from the environment (``APCA_API_*``), the pause points from
``LSTMKNN_BROKER_PAUSE``. Prints ``ready`` once the broker is open, the step's
summary lines when done; a broker error goes to stderr with exit status 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    spec = json.loads(sys.argv[1])
    from lstmknn.engine.paper.alpaca import alpaca_broker
    from lstmknn.engine.paper.broker_store import BROKER_FILE, BrokerStore
    from lstmknn.engine.paper.remote import BrokerError, broker_step

    store = BrokerStore.open(Path(spec["folder"]) / BROKER_FILE)
    broker = alpaca_broker(store, spec["account"], spec["symbols"], timeout=5.0, retries=1,
                           retry_wait=0.01)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        report = broker_step(broker, spec["bar"], spec["targets"], spec["closes"])
    except BrokerError as exc:
        sys.stderr.write(f"{exc}\n")
        return 3
    sys.stdout.write(json.dumps(report.lines()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
