"""End-to-end tests: the simulator, the adapters, the webhooks app and SQLite, on one clock."""
