"""Paper trading: a SQLite ledger per account, stepped bar by bar with backtest semantics.

* :mod:`engine.paper.store`: ledger schema, account folders, the account lock.
* :mod:`engine.paper.broker`: the :class:`~engine.paper.broker.Broker` boundary and the
  local :class:`~engine.paper.broker.PaperBroker`.
* :mod:`engine.paper.runner`: init, step, status, report.
* :mod:`engine.paper.cli`: ``lstmknn paper ...``.
"""
