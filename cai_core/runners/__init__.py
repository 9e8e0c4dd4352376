"""Runners: a stage applied over a prompt set or a set of records, resumable, writing to the
store chunk by chunk (the stages themselves stay pure functions of records and a backend)."""
