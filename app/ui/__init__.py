"""The PyScript dashboard (runs only in the page)."""
