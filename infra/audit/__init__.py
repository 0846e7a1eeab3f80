"""Audit: the tamper-evidence chain and its verification, history and time travel, replay and
diff of the read models, export, and the record of every audit read (see docs/audit.md)."""
