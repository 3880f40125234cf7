"""The names a setting chooses among, declared apart from the code behind them: the settings
classes, and the command line built from them, read these without importing torch."""

FAMILIES = ("mlp", "cnn")  # model families (kdlab.models)
STRATEGIES = ("fixed", "oracle-test", "validation", "prior-matching", "prediction-share")  # calibration
OPTIMIZERS = ("adam", "sgd", "nesterov")  # nesterov: sgd with Nesterov momentum (training.optim)
SCHEDULES = ("constant", "cosine", "linear")  # learning-rate schedules (training.schedule)
# The highest temperature accepted: far above any the paper or its sweeps use, and low enough
# that fp32 softmax at T still keeps the differences between a teacher's logits (T -> infinity
# is logit matching) and that T squared stays finite.
MAX_TEMPERATURE = 10_000.0
