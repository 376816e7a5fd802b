"""Market data: OHLCV loading and validation, chronological splits, causal features and
training-time augmentation. numpy and pandas only (no simulator, no torch)."""
