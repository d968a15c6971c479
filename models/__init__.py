"""models: everything TensorFlow and the evaluation around it, importable without Spark.

The Transformer and LSTM encoders (``transformer``), the encoding of user_sequences rows into its inputs,
training on several workers and its launchers, the baselines and the behaviour-only ceiling, metrics with
paired intervals, calibration, the promotion gate, the registry of versions, explanations and the report.
docs/model.md describes the model and how it is judged.
"""
