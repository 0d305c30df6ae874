"""lstmknn engine: the forecasting core (config, models, folds, fusion, walk-forward), the
composition above it (backtest, as-of signal, universes, sweeps, paper trading, audit) and the
command line (``engine.cli``). See the README's Layout section."""
