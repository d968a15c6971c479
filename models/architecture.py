"""Which computation ``models.transformer.build_model`` makes of a ModelConfig and its weights.

Raised whenever that changes for the same config and weights. Training records it with each version
(``metadata.json``: ``model.architecture``). A version recorded with the current number is rebuilt from the
code and given its saved weights when it is loaded (models/predict.py: faster for every scoring process than
reviving its saved graph); any other version loads the graph it was saved with. Kept apart from
the model so that ``jobs train`` records it without importing TensorFlow.

1: LastQueryAttention, and a trained PositionEmbedding (before, the position table was an untrained
constant drawn again by every build). The Lambda layers becoming registered layers (same names, same
computation, no weights) did not change it: versions saved with Lambdas rebuild and score the same.
"""
ARCHITECTURE = 1
