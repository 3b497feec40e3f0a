"""The spec language: loading with source positions, the pydantic schema, validation."""
