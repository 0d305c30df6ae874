"""Paper trading: a SQLite ledger per account, stepped bar by bar with backtest semantics.

* :mod:`engine.paper.store`: ledger schema and every SQL statement, account folders
  (no symlinks), the account lock, SQLite errors as one-line user errors.
* :mod:`engine.paper.broker`: the :class:`~engine.paper.broker.Broker` boundary, the
  local :class:`~engine.paper.broker.PaperBroker` and the factory the runner takes.
* :mod:`engine.paper.runner`: init, step (history checks, rolling sources, accepted
  revisions), status, signals, report.
* :mod:`engine.cli.paper`: ``lstmknn paper ...``.
"""
