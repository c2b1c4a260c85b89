"""The one-command demo (``smaformer demo``): :mod:`.run` runs it, :mod:`.trainers` holds its two trainers on one
shared CPU budget, :mod:`.pass_mark` judges what they learned."""
