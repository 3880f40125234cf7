"""The names a setting chooses among, declared apart from the code behind them: the settings
classes, and the command line built from them, read these without importing torch."""

FAMILIES = ("mlp", "cnn")  # model families (kdlab.models)
STRATEGIES = ("fixed", "oracle-test", "validation", "prior-matching", "prediction-share")  # calibration
OPTIMIZERS = ("adam", "sgd", "nesterov")  # nesterov: sgd with Nesterov momentum (training.optim)
SCHEDULES = ("constant", "cosine", "linear")  # learning-rate schedules (training.schedule)
# Above this temperature fp32 softmax rounds away the differences between a teacher's classes
# (T -> infinity is logit matching, which any T in the hundreds already shows).
MAX_TEMPERATURE = 10_000.0
