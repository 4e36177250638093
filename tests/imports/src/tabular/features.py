"""The columns of the tabular model's input."""

FEATURE_NAMES = ("age", "income", "tenure_months", "support_calls")
