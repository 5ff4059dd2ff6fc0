"""The pytest plugin: thin hooks, options and settings, run state, collection, fixtures, outcomes, summary."""
