"""The webhooks app, in private modules; ``outreach.webhooks`` is the public face."""
