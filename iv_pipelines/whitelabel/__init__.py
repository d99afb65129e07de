"""White-label presentation of DACs: client themes (sacred and flexible tokens)."""
