"""Training: losses, hard-negative mining and a fine-tuning loop for cross-encoders (``crossrank train``)."""
