"""Operations: self-healing (more with the operations issue)."""
