"""OneID: one person behind many identifiers, with merge and split."""
