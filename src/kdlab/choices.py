"""The names a setting chooses among, declared apart from the code behind them: the settings
classes, and the command line built from them, read these without importing torch."""

FAMILIES = ("mlp", "cnn")  # model families (kdlab.models)
STRATEGIES = ("fixed", "oracle-test", "validation", "prior-matching", "prediction-share")  # calibration
OPTIMIZERS = ("adam", "sgd", "nesterov")  # nesterov: sgd with Nesterov momentum (training.optim)
SCHEDULES = ("constant", "cosine", "linear")  # learning-rate schedules (training.schedule)
