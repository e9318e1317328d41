"""Networks (pure torch), their registry and the Lightning module."""
