"""A small HTTP API, its worker and its migration: the app slipway's lab deploys."""
