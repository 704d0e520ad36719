"""netc runtime."""
