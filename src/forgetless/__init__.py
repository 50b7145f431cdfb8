"""forgetless: continual pretraining of causal language models, with a ledger of learning and forgetting."""

__version__ = "0.1.0"
