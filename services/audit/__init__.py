"""The audit trail: records and summaries, conversation replay, queries and export, checkpoints.

Used by the projections service (the audit read model), the gateway (/v1/audit) and the CLI
(`ledgerline audit …`). docs/audit.md describes it for auditors and operators.
"""
