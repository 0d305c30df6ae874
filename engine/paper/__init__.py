"""Paper trading: a SQLite ledger per account (one symbol or a universe), stepped bar by bar
with the backtest's semantics, filled locally or through Alpaca's paper API.

* :mod:`engine.paper.store`: ledger schema and every SQL statement, account folders
  (no symlinks), the account lock, SQLite errors as one-line user errors.
* :mod:`engine.paper.broker`: the :class:`~engine.paper.broker.Broker` boundary, the
  local :class:`~engine.paper.broker.PaperBroker` and the factory the step loop takes.
* :mod:`engine.paper.accounts`: init (sources, symbols, config), loading the account's
  data, status and signal exports.
* :mod:`engine.paper.history`: symbol identity, history checks, accepted revisions,
  rolling sources.
* :mod:`engine.paper.step`: the step loop (decisions of the new bars, one transaction a bar).
* :mod:`engine.paper.broker_account`: accounts trading through a broker (``--broker alpaca``):
  init, the ledger's mirror of the broker's records, status, implementation shortfall; the
  bridge itself is :mod:`engine.paper.remote` (crash-safe phases),
  :mod:`engine.paper.alpaca` (the venue), :mod:`engine.paper.broker_store`
  (``broker.sqlite``) and :mod:`engine.paper.orders`.
* :mod:`engine.paper.text`: what the commands print; :mod:`engine.paper.report`: the tearsheet.
* :mod:`engine.cli.paper`: ``lstmknn paper ...``.
"""
